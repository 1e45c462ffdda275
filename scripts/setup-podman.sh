#!/usr/bin/env bash
# Sets up Podman for gofer's tests and main job on Debian/Ubuntu (root, no systemd needed):
# podman + catatonit (the --init process), containers.conf defaults that work in
# containers/VMs without CAP_SYS_RESOURCE, registry entries for the local test registries
# (127.0.0.1:5000 plain, 127.0.0.1:5001 with basic auth; both speak plain HTTP), the libpod
# REST API service on a unix socket, and the test image gofer-test/busybox:latest.
#
# The registries themselves are Docker's (scripts/setup-docker.sh starts them); when they
# are not up this script runs scripts/setup-docker.sh first if it exists.
# Idempotent, and fast when everything is already in place.
# Stop the service with:  kill $(cat $ENGINE_WORK/podman-service.pid)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
ENGINE_WORK=${ENGINE_WORK:-/tmp/gofer-engines}
PODMAN_SOCK=${PODMAN_SOCK:-/run/podman/podman.sock}
IMAGE=gofer-test/busybox:latest
log() { echo "setup-podman: $*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-podman: must run as root (it installs packages and starts the rootful service)" >&2
  exit 1
fi
mkdir -p "$ENGINE_WORK" "$(dirname "$PODMAN_SOCK")" /etc/containers/registries.conf.d

ping() { curl -sf --max-time 2 --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null 2>&1; }
registry_up() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/v2/"; }

# 1. The registries (Docker's). Without them only the pull tests fail; go on regardless.
if ! registry_up 5000 || ! registry_up 5001; then
  if [ -x "$here/setup-docker.sh" ]; then
    log "local registries are not up; running scripts/setup-docker.sh first"
    "$here/setup-docker.sh" || log "scripts/setup-docker.sh failed; registry pull tests will fail"
  else
    log "local registries on 127.0.0.1:5000/5001 are not up and scripts/setup-docker.sh is missing;" \
      "run it first for the registry pull tests"
  fi
fi

# 2. Packages. catatonit is what podman runs as PID 1 for --init.
pkgs=()
for p in podman catatonit busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
done
if ((${#pkgs[@]})); then
  log "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# 3. Configuration; a file is rewritten only when its content changes.
changed=0
put() { # put FILE CONTENT
  if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
    printf '%s\n' "$2" >"$1"
    changed=1
    log "wrote $1"
  fi
}
# Without CAP_SYS_RESOURCE, podman's default rlimits (nofile 1048576, nproc 4194304) make
# runc fail with "error setting rlimit type 7: operation not permitted": cap the defaults at
# what this process holds (podman lowers its own nproc to pid_max).
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu); pidmax=$(cat /proc/sys/kernel/pid_max)
[ "$nofile" = unlimited ] && nofile=1048576
{ [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; } && nproc=$pidmax
cgroup_manager=cgroupfs
[ -d /run/systemd/system ] && cgroup_manager=systemd
put /etc/containers/containers.conf "[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]
[engine]
cgroup_manager = \"$cgroup_manager\"
events_logger = \"file\""
# Both test registries speak plain HTTP.
put /etc/containers/registries.conf.d/50-local-test-registry.conf '[[registry]]
location = "localhost:5000"
insecure = true'
put /etc/containers/registries.conf.d/51-gofer-auth-test-registry.conf '[[registry]]
location = "localhost:5001"
insecure = true'

# 4. The API service. It reads registries.conf once, so a running one is restarted after
# a change, when this script (or the shared set-up) started it.
pidfile="$ENGINE_WORK/podman-service.pid"
stale=$changed
for f in /etc/containers/containers.conf /etc/containers/registries.conf.d/5[01]-*.conf; do
  [ -s "$pidfile" ] && [ "$f" -nt "$pidfile" ] && stale=1
done
if ping && [ "$stale" = 1 ]; then
  if [ -s "$pidfile" ] && grep -q "podman" "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
    log "configuration is newer than the podman service; restarting it (containers keep running)"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 50); do ping || break; sleep 0.1; done
  else
    log "configuration changed but the running podman service was not started here;" \
      "restart it to pick up the registry entries"
  fi
fi
if ! ping; then
  rm -f "$PODMAN_SOCK"
  # conmon (2.1.6 with podman 4.3.1) writes stray files such as "oom" into its working
  # directory, which it inherits from the service: keep them out of the caller's.
  cd "$ENGINE_WORK"
  nohup podman system service --time=0 "unix://$PODMAN_SOCK" >"$ENGINE_WORK/podman-service.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do ping && break; sleep 0.1; done
  ping || { cat "$ENGINE_WORK/podman-service.log" >&2; exit 1; }
  log "podman service started on $PODMAN_SOCK"
fi

# 5. The test image: a busybox-static rootfs (no image can be pulled from the internet).
if ! podman image exists "$IMAGE"; then
  TAR="$ENGINE_WORK/busybox-rootfs.tar"
  if [ ! -s "$TAR" ]; then
    d=$(mktemp -d)
    mkdir -p "$d"/bin "$d"/etc "$d"/tmp "$d"/proc "$d"/sys "$d"/dev
    chmod 1777 "$d/tmp"
    cp /bin/busybox "$d/bin/busybox"
    for a in sh echo sleep env cat ls true false printf wc head tail grep nc kill ps id hostname; do
      ln -s busybox "$d/bin/$a"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$d/etc/passwd"
    echo 'root:x:0:' >"$d/etc/group"
    tar --numeric-owner -C "$d" -cf "$TAR" .
    rm -rf "$d"
  fi
  podman import -q -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' "$TAR" "$IMAGE" >/dev/null
  log "imported $IMAGE"
fi
# 6. The API test image: busybox and curl (for `curl --unix-socket`), from Debian packages.
ENGINE_WORK=$ENGINE_WORK "$(dirname "$0")/curl-image.sh" podman
log "ready: podman $(podman version -f '{{.Server.Version}}' 2>/dev/null || podman version -f '{{.Version}}'), socket $PODMAN_SOCK"
