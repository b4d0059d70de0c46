#!/usr/bin/env bash
# Keeps DESIGN.md's dependency direction: the data model and the scheduler stay pure (no async
# runtime, no network, no consensus), so they can be tested and benchmarked in isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() {
  local crate=$1; shift
  cargo metadata --format-version 1 >/dev/null 2>&1 || true
  if ! cargo tree -p "$crate" -e normal --prefix none >/tmp/drover-deps.$$ 2>/dev/null; then
    echo "skip: $crate is not in the workspace yet"; return
  fi
  for banned in "$@"; do
    if grep -qE "^$banned v" /tmp/drover-deps.$$; then
      echo "FAIL: $crate depends on $banned"; fail=1
    fi
  done
  rm -f /tmp/drover-deps.$$
  echo "ok: $crate has none of: $*"
}
check drover-types tokio openraft tonic axum hcl-rs bollard
check drover-state tokio openraft tonic axum bollard drover-scheduler
check drover-scheduler tokio openraft tonic axum bollard redb
# server → raft, rpc: the transport and consensus crates never reach back into the server.
check drover-raft drover-server tonic axum
check drover-rpc drover-server openraft redb   # (tonic itself routes with axum)
# drivers ← client: drivers know nothing of the client, the servers or consensus; the client
# talks to servers only through drover-rpc, never by linking the server or Raft.
check drover-drivers drover-client drover-server drover-raft openraft tonic axum redb
check drover-client drover-server drover-raft openraft drover-http   # (axum comes in with tonic)
exit $fail
