#!/usr/bin/env bash
# The main job: runs the seed's hello-world pipeline (examples/hello.toml) with the
# `gofer` command on the local engine (Docker, else Podman): prints the task's log
# ("Hello from Gofer!") and the run's result, then what the task was given
# (`gofer task get`). Sets the engine up first when it can (root, nothing running).
# GOFER_HELLO_IMAGE runs another image; GOFER_HOME picks the data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
if ./scripts/engines.sh docker >&2; then
  engine=docker
elif ./scripts/engines.sh podman >&2; then
  engine=podman
else
  echo "hello.sh: no container engine is reachable." >&2
  echo "hello.sh: install and start Docker (or Podman with its API service); as root on Debian: scripts/setup-docker.sh" >&2
  exit 1
fi
cargo build -q -p gofer-cli
gofer=target/debug/gofer
file=examples/hello.toml
if [ -n "${GOFER_HELLO_IMAGE:-}" ]; then
  file="$(mktemp --suffix=.toml)"
  trap 'rm -f "$file"' EXIT
  sed "s|^image = .*|image = \"$GOFER_HELLO_IMAGE\"|" examples/hello.toml >"$file"
fi
out="$(mktemp)"
trap 'rm -f "$out" ${GOFER_HELLO_IMAGE:+"$file"}' EXIT
status=0
"$gofer" --engine "$engine" run "$file" | tee "$out" || status=$?
run="$(sed -n 's/^run \([0-9]*\) of pipeline hello_world:.*/\1/p' "$out")"
if [ -n "$run" ]; then
  echo
  echo "\$ gofer task get hello_world $run simple_task"
  "$gofer" --engine "$engine" task get hello_world "$run" simple_task
fi
exit "$status"
