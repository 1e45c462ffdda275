#!/usr/bin/env bash
# Runs every check and test of the workspace. Sets up the real engines the tests need
# (Docker, Podman, local registries, the busybox test image, the two-node test swarm)
# when it can, and stops the swarm afterwards (its two extra dockerds are only for tests).
# With CI=true a missing engine makes the real-engine tests fail instead of skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# The swarm goes away however the tests end (when this run made it, or found it up).
stop_swarm() { [ "$(id -u)" -ne 0 ] || ./scripts/setup-swarm.sh stop >/dev/null 2>&1 || true; }
trap stop_swarm EXIT

# Building needs protoc (containerd-client generates its gRPC bindings at build time).
if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
  else
    echo "test.sh: protoc is missing: sudo apt-get install protobuf-compiler" >&2
    exit 1
  fi
fi

# The tests' own containerd (scripts/setup-containerd.sh), for the containerd backend's
# tests and the command's `--engine containerd`.
export CONTAINERD_ADDRESS=${CONTAINERD_ADDRESS:-/run/gofer-containerd/containerd.sock}
# The test swarm's manager (scripts/setup-swarm.sh), for the command's `--engine swarm`.
export GOFER_SWARM_HOST=${GOFER_SWARM_HOST:-unix:///run/gofer-swarm/manager.sock}

if ! ./scripts/engines.sh all; then
  if [ "${CI:-}" = "true" ]; then
    echo "test.sh: engines are missing; the real-engine tests will fail (CI=true)" >&2
  else
    echo "test.sh: engines are missing; real-engine tests will skip (not CI)" >&2
  fi
fi

step() { echo; echo "==> $*"; "$@"; }
step cargo fmt --all -- --check
step python3 scripts/import-circles.py   # no import circle between the files of a crate
step cargo clippy --workspace --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" step cargo doc --workspace --all-features --no-deps
step cargo test --workspace --all-features --no-fail-fast
echo
echo "test.sh: all checks passed"
