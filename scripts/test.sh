#!/usr/bin/env bash
# The whole test suite, as the README documents it and CI runs it.
#   formatting → lints → dependency rules → unit, integration and property tests → doc tests
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "dependency rules"
./scripts/check-deps.sh

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

step "doc tests"
cargo test --workspace --doc

step "benchmarks compile"
cargo bench --workspace --no-run
