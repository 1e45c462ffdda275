#!/usr/bin/env bash
# The main job: runs the seed's hello-world task through gofer on the local engine
# (Docker, else Podman) and prints the task's log and the run's result.
# Sets the engine up first when it can (root, nothing running).
set -euo pipefail
cd "$(dirname "$0")/.."
if ./scripts/engines.sh docker; then
  exec cargo run -q -p gofer-scheduler-docker --example hello
elif ./scripts/engines.sh podman; then
  exec cargo run -q -p gofer-scheduler-podman --example hello
else
  echo "hello.sh: no container engine is reachable." >&2
  echo "hello.sh: install and start Docker (or Podman with its API service); as root on Debian: scripts/setup-docker.sh" >&2
  exit 1
fi
