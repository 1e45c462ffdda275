#!/usr/bin/env bash
# Makes sure the container engines the tests and the main job need are up:
# Docker (+ the local registries and the busybox test image), Podman, and a two-node
# Docker Swarm beside the main engine (scripts/setup-swarm.sh; needs Docker first), and
# a containerd of the tests' own (scripts/setup-containerd.sh; needs Docker first for
# the test images).
# Starts what is missing when it can (root, no systemd needed); otherwise says what is
# missing and how to get it. Usage: scripts/engines.sh [docker|podman|swarm|containerd|all]
# (default: all)
# Exit status: 0 when every requested engine answers, 1 otherwise.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
want="${1:-all}"
status=0

docker_up() { docker info >/dev/null 2>&1 && curl -sf http://127.0.0.1:5000/v2/ >/dev/null 2>&1; }
podman_up() {
  local sock="${PODMAN_SOCK:-/run/podman/podman.sock}"
  curl -sf --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 &&
    # the auth registry's entry, which setup-podman.sh adds (and restarts the service for)
    [ -f /etc/containers/registries.conf.d/51-gofer-auth-test-registry.conf ]
}

swarm_up() { "$here/setup-swarm.sh" status >/dev/null 2>&1; }
containerd_up() {
  ctr --address "${CONTAINERD_ADDRESS:-/run/gofer-containerd/containerd.sock}" version >/dev/null 2>&1
}
swarm_setup() { "$here/setup-swarm.sh" start; }

ensure() {
  local name=$1 check=$2 setup=$3
  if [ "$(id -u)" -eq 0 ]; then
    # The set-up scripts are idempotent and return in a fraction of a second when
    # everything (engine, registries, test image) is already there.
    if ! "$setup"; then
      echo "engines: $setup failed; see its output above." >&2
      return 1
    fi
  elif ! $check; then
    echo "engines: $name is not reachable and this is not root, so it cannot be set up here." >&2
    echo "engines: run 'sudo $setup' (Debian/Ubuntu) or start $name yourself." >&2
    return 1
  fi
  if $check; then
    echo "engines: $name is up"
  else
    echo "engines: $name still does not answer" >&2
    return 1
  fi
}

case "$want" in
  docker) ensure docker docker_up "$here/setup-docker.sh" || status=1 ;;
  podman) ensure podman podman_up "$here/setup-podman.sh" || status=1 ;;
  swarm)  ensure swarm swarm_up swarm_setup || status=1 ;;
  containerd) ensure containerd containerd_up "$here/setup-containerd.sh" || status=1 ;;
  all)    ensure docker docker_up "$here/setup-docker.sh" || status=1
          ensure podman podman_up "$here/setup-podman.sh" || status=1
          ensure swarm swarm_up swarm_setup || status=1
          ensure containerd containerd_up "$here/setup-containerd.sh" || status=1 ;;
  *) echo "usage: $0 [docker|podman|swarm|containerd|all]" >&2; exit 2 ;;
esac
exit $status
