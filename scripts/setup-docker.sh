#!/usr/bin/env bash
# Sets up what gofer's Docker tests and demo need, on a Debian machine as root, without
# systemd: a Docker engine (docker.io, API 1.41 on Debian bookworm), a plain registry on
# 127.0.0.1:5000 holding localhost:5000/busybox:latest, a registry with basic auth on
# 127.0.0.1:5001 (user gofer, password s3cret) holding localhost:5001/private/busybox:latest,
# the local image gofer-test/busybox:latest built from Debian's busybox-static, and
# gofer-test/curl:latest (busybox and Debian's curl, scripts/curl-image.sh) (no image
# is pulled from the internet).
#
# Idempotent: when everything is already up it checks and exits at once.
# State, logs and pid files go to $ENGINE_WORK (default /tmp/gofer-engines). Stop with:
#   kill $(cat $ENGINE_WORK/dockerd.pid $ENGINE_WORK/registry.pid $ENGINE_WORK/auth-registry.pid)
set -euo pipefail
ENGINE_WORK=${ENGINE_WORK:-/tmp/gofer-engines}
IMAGE=gofer-test/busybox:latest

have() { command -v "$1" >/dev/null 2>&1; }
http_code() { curl -s -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
engine_up() { have docker && docker info >/dev/null 2>&1; }
plain_registry_up() { [ "$(http_code http://127.0.0.1:5000/v2/)" = 200 ]; }
auth_registry_up() { [ "$(http_code http://127.0.0.1:5001/v2/)" = 401 ]; }
plain_image_pushed() { [ "$(http_code http://127.0.0.1:5000/v2/busybox/manifests/latest)" = 200 ]; }
private_image_pushed() {
  [ "$(http_code -u gofer:s3cret http://127.0.0.1:5001/v2/private/busybox/manifests/latest)" = 200 ]
}
all_up() {
  have curl && engine_up && docker image inspect "$IMAGE" >/dev/null 2>&1 &&
    docker image inspect gofer-test/curl:latest >/dev/null 2>&1 &&
    plain_registry_up && auth_registry_up && plain_image_pushed && private_image_pushed
}
ready() { echo "docker ready: server $(docker version -f '{{.Server.Version}} API {{.Server.APIVersion}}')"; }

if all_up; then ready; exit 0; fi

if [ "$(id -u)" != 0 ]; then
  echo "setup-docker.sh: the Docker engine or the test registries are not up, and setting them up needs root." >&2
  echo "Run: sudo scripts/setup-docker.sh" >&2
  exit 1
fi
mkdir -p "$ENGINE_WORK"
export DEBIAN_FRONTEND=noninteractive

pkgs=()
for p in docker.io busybox-static docker-registry apache2-utils curl ca-certificates; do
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

# dockerd, started directly (no systemd): overlay2, the default bridge, cgroupfs.
if ! engine_up; then
  nohup /usr/sbin/dockerd >"$ENGINE_WORK/dockerd.log" 2>&1 &
  echo $! >"$ENGINE_WORK/dockerd.pid"
  wait_for engine_up || { tail -n 50 "$ENGINE_WORK/dockerd.log" >&2; exit 1; }
fi

# The plain registry (distribution), HTTP on loopback; Docker treats 127.0.0.0/8 as insecure.
if ! plain_registry_up; then
  mkdir -p "$ENGINE_WORK/registry-data"
  cat >"$ENGINE_WORK/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $ENGINE_WORK/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5000
YML
  nohup /usr/bin/docker-registry serve "$ENGINE_WORK/registry.yml" >"$ENGINE_WORK/registry.log" 2>&1 &
  echo $! >"$ENGINE_WORK/registry.pid"
  wait_for plain_registry_up || { tail -n 20 "$ENGINE_WORK/registry.log" >&2; exit 1; }
fi

# The registry with basic auth (htpasswd, bcrypt).
if ! auth_registry_up; then
  mkdir -p "$ENGINE_WORK/auth-registry-data"
  htpasswd -Bbn gofer s3cret >"$ENGINE_WORK/htpasswd"
  cat >"$ENGINE_WORK/auth-registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $ENGINE_WORK/auth-registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:5001
auth:
  htpasswd:
    realm: gofer-test
    path: $ENGINE_WORK/htpasswd
YML
  nohup /usr/bin/docker-registry serve "$ENGINE_WORK/auth-registry.yml" >"$ENGINE_WORK/auth-registry.log" 2>&1 &
  echo $! >"$ENGINE_WORK/auth-registry.pid"
  wait_for auth_registry_up || { tail -n 20 "$ENGINE_WORK/auth-registry.log" >&2; exit 1; }
fi

# The test image: a tiny busybox root filesystem imported as an image.
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
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
    tar --numeric-owner -C "$d" -cf "$TAR.tmp" .
    mv "$TAR.tmp" "$TAR"
    rm -rf "$d"
  fi
  docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' "$TAR" "$IMAGE" >/dev/null
fi

# The API test image: busybox and curl (for `curl --unix-socket`), from Debian packages.
ENGINE_WORK=$ENGINE_WORK "$(dirname "$0")/curl-image.sh" docker

# Both registries hold a copy; the local tags are removed so tests exercise the pull path.
if ! plain_image_pushed; then
  docker tag "$IMAGE" localhost:5000/busybox:latest
  docker push -q localhost:5000/busybox:latest >/dev/null
  docker rmi localhost:5000/busybox:latest >/dev/null
fi
if ! private_image_pushed; then
  cfg=$(mktemp -d)
  echo s3cret | DOCKER_CONFIG=$cfg docker login -u gofer --password-stdin localhost:5001 >/dev/null
  docker tag "$IMAGE" localhost:5001/private/busybox:latest
  DOCKER_CONFIG=$cfg docker push -q localhost:5001/private/busybox:latest >/dev/null
  docker rmi localhost:5001/private/busybox:latest >/dev/null
  rm -rf "$cfg"
fi
ready
