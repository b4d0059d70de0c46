#!/usr/bin/env bash
# Builds the images the docker driver tests run, without a registry:
#   drover-test/busybox:local   a scratch image holding Debian's static busybox
#                               (/bin/busybox plus one symlink per applet, /etc/passwd, /tmp).
# Idempotent: an image that exists is kept (pass --force to rebuild). Needs a running dockerd,
# the docker CLI and the busybox-static package (/bin/busybox).
set -euo pipefail

IMAGE=drover-test/busybox:local
DOCKER=${DOCKER:-docker}
BUSYBOX=${BUSYBOX:-/bin/busybox}

if [ "${1:-}" != "--force" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is already built (pass --force to rebuild)"
  exit 0
fi
if [ ! -x "$BUSYBOX" ]; then
  echo "error: $BUSYBOX is missing (apt-get install busybox-static)" >&2
  exit 1
fi
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "error: $BUSYBOX does not list its applets; is it Debian's busybox-static?" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

tar -C "$root" --numeric-owner -c . |
  "$DOCKER" import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
echo "built $IMAGE"
