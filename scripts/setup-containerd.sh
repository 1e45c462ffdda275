#!/usr/bin/env bash
# Sets up what gofer's containerd tests need, on a Debian machine as root, without
# systemd: a containerd of the tests' own (Debian's containerd 1.6 with runc, beside any
# other containerd: its own socket, root and state), the CNI plugins Debian ships
# (containernetworking-plugins: bridge, host-local, loopback, in /usr/lib/cni), and the
# test images gofer-test/busybox:latest and gofer-test/curl:latest imported into the
# namespace `gofer` from the local Docker engine (scripts/setup-docker.sh makes them; no
# image is pulled from the internet).
#
#   socket  /run/gofer-containerd/containerd.sock   (export CONTAINERD_ADDRESS=... to use it)
#   root    /var/lib/gofer-containerd, state /run/gofer-containerd/state
#
# Idempotent: when everything is already up it checks and exits at once. Logs and the pid
# file go to $ENGINE_WORK (default /tmp/gofer-engines). Stop with:
#   kill $(cat $ENGINE_WORK/containerd.pid)
set -euo pipefail
ENGINE_WORK=${ENGINE_WORK:-/tmp/gofer-engines}
SOCK=/run/gofer-containerd/containerd.sock
NS=gofer
IMAGES=(gofer-test/busybox:latest gofer-test/curl:latest)

have() { command -v "$1" >/dev/null 2>&1; }
ctr_() { ctr --address "$SOCK" --namespace "$NS" "$@"; }
engine_up() { have ctr && ctr --address "$SOCK" version >/dev/null 2>&1; }
image_in() { ctr_ images ls -q 2>/dev/null | grep -qx "docker.io/$1"; }
images_in() { for i in "${IMAGES[@]}"; do image_in "$i" || return 1; done; }
all_up() {
  engine_up && images_in && [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] &&
    [ -x /usr/lib/cni/firewall ] && [ -x /usr/bin/tini-static ]
}
ready() { echo "containerd ready: $(ctr --address "$SOCK" version 2>/dev/null | awk '/Server/{s=1} s&&/Version/{print $2; exit}') at $SOCK"; }

if all_up; then ready; exit 0; fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-containerd.sh: the tests' containerd is not up, and setting it up needs root." >&2
  echo "Run: sudo scripts/setup-containerd.sh" >&2
  exit 1
fi
mkdir -p "$ENGINE_WORK" /run/gofer-containerd
export DEBIAN_FRONTEND=noninteractive

pkgs=()
for p in containerd runc containernetworking-plugins iptables iproute2 tini; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
done
if ((${#pkgs[@]})); then
  echo "installing ${pkgs[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

wait_for() { # tries command... for up to 30 s
  for _ in $(seq 1 150); do "$@" && return 0; sleep 0.2; done
  return 1
}

if ! engine_up; then
  cat >"$ENGINE_WORK/containerd.toml" <<TOML
version = 2
root = "/var/lib/gofer-containerd"
state = "/run/gofer-containerd/state"
# Kubernetes' CRI plugin is not needed (gofer talks to the core services) and is slow to start.
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$SOCK.debug"
TOML
  nohup containerd --config "$ENGINE_WORK/containerd.toml" >"$ENGINE_WORK/containerd.log" 2>&1 &
  echo $! >"$ENGINE_WORK/containerd.pid"
  wait_for engine_up || { tail -n 50 "$ENGINE_WORK/containerd.log" >&2; exit 1; }
fi

for i in "${IMAGES[@]}"; do
  if ! image_in "$i"; then
    docker image inspect "$i" >/dev/null 2>&1 || {
      echo "setup-containerd.sh: $i is not in the local Docker engine; run scripts/setup-docker.sh first" >&2
      exit 1
    }
    docker save "$i" | ctr_ images import - >/dev/null
  fi
done
all_up || { echo "setup-containerd.sh: containerd still not ready" >&2; exit 1; }
ready
