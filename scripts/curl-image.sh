#!/usr/bin/env bash
# Builds the test image gofer-test/curl:latest for one engine: busybox (sh and the usual
# tools) plus Debian's curl with the shared libraries it links, so a task can call gofer's
# API on a Unix socket (`curl --unix-socket`). Nothing is pulled from the internet: the
# root filesystem is made from the host's Debian packages (busybox-static, curl) and
# imported. Idempotent: returns at once when the image is there.
# Usage: scripts/curl-image.sh docker|podman
set -euo pipefail
ENGINE=${1:?usage: curl-image.sh docker|podman}
ENGINE_WORK=${ENGINE_WORK:-/tmp/gofer-engines}
IMAGE=gofer-test/curl:latest

case "$ENGINE" in
  docker) exists() { docker image inspect "$IMAGE" >/dev/null 2>&1; } ;;
  podman) exists() { podman image exists "$IMAGE"; } ;;
  *) echo "curl-image.sh: unknown engine $ENGINE (docker or podman)" >&2; exit 2 ;;
esac
if exists; then exit 0; fi

mkdir -p "$ENGINE_WORK"
TAR="$ENGINE_WORK/curl-rootfs.tar"
if [ ! -s "$TAR" ]; then
  for p in busybox-static curl; do
    if ! dpkg -s "$p" >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >/dev/null
    fi
  done
  d=$(mktemp -d)
  mkdir -p "$d"/bin "$d"/usr/bin "$d"/etc "$d"/tmp "$d"/proc "$d"/sys "$d"/dev "$d"/run
  chmod 1777 "$d/tmp"
  cp /bin/busybox "$d/bin/busybox"
  for a in sh echo sleep env cat ls true false printf wc head tail grep sed tr kill ps id test; do
    ln -s busybox "$d/bin/$a"
  done
  cp /usr/bin/curl "$d/usr/bin/curl"
  # The dynamic loader and every library curl links, at the paths the loader expects.
  ldd /usr/bin/curl | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
    mkdir -p "$d$(dirname "$lib")"
    cp -L "$lib" "$d$lib"
  done
  echo 'root:x:0:0:root:/:/bin/sh' >"$d/etc/passwd"
  echo 'root:x:0:' >"$d/etc/group"
  tar --numeric-owner -C "$d" -cf "$TAR.tmp" .
  mv "$TAR.tmp" "$TAR"
  rm -rf "$d"
fi
case "$ENGINE" in
  docker) docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin:/usr/bin' "$TAR" "$IMAGE" >/dev/null ;;
  podman) podman import -q -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin:/usr/bin' "$TAR" "$IMAGE" >/dev/null ;;
esac
echo "curl-image.sh: built $IMAGE for $ENGINE"
