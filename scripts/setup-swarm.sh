#!/usr/bin/env bash
# The project's two-node Docker Swarm (nodes gofer-swarm-manager, gofer-swarm-worker, node labels
# gofer-node=manager|worker) for tests, built only inside
# two network namespaces this script creates, joined by a veth pair on 10.251.0.0/24 (.1 manager,
# .2 worker). They have no other link and no default route, so no traffic can leave them.
# Each node is an extra dockerd with its own data-root, exec-root, supervised containerd, cgroup
# parent, hostname (UTS namespace) and socket; the main dockerd (/var/run/docker.sock) is only read
# (docker save). Idempotent (start twice is fine, start repairs a crashed daemon); run as root.
# Usage: swarm.sh [start|stop|status]   (default start)
#   start   set up what is missing, load gofer-test/busybox:latest into both nodes, run a
#           replicated-job on each node; then: export DOCKER_HOST=unix:///run/gofer-swarm/manager.sock
#   stop    leave the swarm, stop both dockerds, delete namespaces, veth, cgroups and data dirs
#   status  say whether the swarm is up (exit 0) or not (exit 1)
# Logs: $ENGINE_WORK/swarm-{manager,worker}.log (kept by stop). For services: --no-resolve-image (no
# registry is reachable from the nodes). Overlay networks work across the nodes, but this kernel has
# no IPVS and no ESP: use --endpoint-mode dnsrr (or tasks.<svc>), not VIPs, ingress-published ports
# (mode=host works, on 10.251.0.x) or --opt encrypted.
set -euo pipefail
ENGINE_WORK=${ENGINE_WORK:-/tmp/gofer-engines}
RUN=/run/gofer-swarm         # sockets, pid files, exec roots, daemon.json
DATA=/var/lib/gofer-swarm    # data roots
IMAGE=gofer-test/busybox:latest
NODES=(manager worker)       # node i: netns/hostname gofer-swarm-<node>, address 10.251.0.<i+1>
MSOCK=unix://$RUN/manager.sock

unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH   # callers may point these at the swarm
exec 9<"${BASH_SOURCE[0]}"; flock 9   # one run at a time (daemons get 9<&-, not this lock)

d() { local n=$1; shift; docker -H "unix://$RUN/$n.sock" "$@"; }
main() { docker -H unix:///var/run/docker.sock "$@"; }
alive() { curl -sf --max-time 3 --unix-socket "$RUN/$1.sock" http://d/_ping >/dev/null 2>&1; }
state() { d "$1" info -f '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo down; }
die() { echo "swarm: $*" >&2; exit 1; }
ours() {  # pid of node $1's dockerd from its pid file, if that process still is that dockerd
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && [ -n "$pid" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "^dockerd .*-H unix://$RUN/$1.sock " || return 1
  echo "$pid"
}
in_ns() { [ "$(readlink "/proc/$1/ns/net")" = "net:[$(stat -L -c %i "/run/netns/gofer-swarm-$2" 2>/dev/null)]" ]; }

net_up() {  # namespaces, veth (eth0 on both sides), addresses, loopback
  local i n
  for n in "${NODES[@]}"; do   # (re)create unless usable (after a reboot /run/netns/* are plain files)
    ip -n "gofer-swarm-$n" link show lo >/dev/null 2>&1 ||
      { ip netns del "gofer-swarm-$n" 2>/dev/null || true; ip netns add "gofer-swarm-$n"; }
  done
  if ! ip -n gofer-swarm-manager link show eth0 >/dev/null 2>&1 ||
     ! ip -n gofer-swarm-worker link show eth0 >/dev/null 2>&1; then
    for n in "${NODES[@]}"; do ip -n "gofer-swarm-$n" link del eth0 2>/dev/null || true; done
    ip link add eth0 netns gofer-swarm-manager type veth peer name eth0 netns gofer-swarm-worker
  fi
  for i in 0 1; do
    n=gofer-swarm-${NODES[i]}
    ip -n "$n" link set lo up
    ip -n "$n" addr replace "10.251.0.$((i + 1))/24" dev eth0
    ip -n "$n" link set eth0 up
  done
}

stop_node() {  # SIGTERM the node's dockerd, then kill what a crash may have left (shims, containers)
  local n=$1 pid socks
  if pid=$(ours "$n"); then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  socks=$(sed 's|^unix://||' "$RUN/$n"/containerd/daemon/io.containerd.runtime.v2.task/*/*/address 2>/dev/null || true)
  for pid in $(ip netns pids "gofer-swarm-$n" 2>/dev/null) \
             $(cat /sys/fs/cgroup/*/"gofer-swarm-$n"/*/cgroup.procs 2>/dev/null | sort -u); do
    kill -9 "$pid" 2>/dev/null || true
  done
  # killed shims leave their sockets in /run/containerd/s; a stale containerd.pid (a zombie or
  # reused pid looks alive) makes the next dockerd wait for a containerd that is not there
  rm -f $socks "$RUN/$n.pid" "$RUN/$n.sock" "$RUN/$n/containerd/containerd.pid"
}

node_up() {  # start node $1 (index) unless its dockerd answers from the right namespace
  local i=$1 n=${NODES[$1]} pid
  pid=$(ours "$n") && in_ns "$pid" "$n" && alive "$n" && return 0
  stop_node "$n"
  mkdir -p "$RUN/$n" "$DATA/$n" "$ENGINE_WORK"
  [ ! -S /run/containerd/containerd.sock ] ||   # dockerd 20.10 then uses it instead of its own
    echo "swarm: warning: a system containerd runs; $n shares it (namespace gofer-swarm-$n)" >&2
  # own config (not /etc/docker/daemon.json) and own key.json, i.e. its own engine ID
  echo "{\"deprecated-key-path\": \"$DATA/$n/key.json\"}" >"$RUN/$n.json"
  # own netns (nsenter: keeps /sys/fs/cgroup, unlike 'ip netns exec'), own hostname for the swarm;
  # PREFER_OFFLINE: tasks use the loaded image and never try a registry pull.
  DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 nohup nsenter --net="/run/netns/gofer-swarm-$n" \
    unshare --uts sh -c 'hostname "$0" && exec "$@"' "gofer-swarm-$n" \
    dockerd --config-file "$RUN/$n.json" -H "unix://$RUN/$n.sock" --pidfile "$RUN/$n.pid" \
      --data-root "$DATA/$n" --exec-root "$RUN/$n" \
      --containerd-namespace "gofer-swarm-$n" --containerd-plugins-namespace "gofer-swarm-$n-plugins" \
      --cgroup-parent "/gofer-swarm-$n" --bip "10.254.$i.1/24" \
      --default-address-pool base=10.253.0.0/16,size=24 >>"$ENGINE_WORK/swarm-$n.log" 2>&1 9<&- &
}

settled() {  # wait (max 30s) until node $1 is no longer pending in the swarm; print its state
  local s
  for _ in $(seq 1 150); do
    s=$(state "$1"); case $s in active|inactive|error|locked) break ;; esac; sleep 0.2
  done
  echo "$s"
}

swarm_up() {
  local fresh=0 wid mid id
  if [ "$(settled manager)" != active ] || [ "$(d manager info -f '{{.Swarm.ControlAvailable}}')" != true ]; then
    d manager swarm leave --force >/dev/null 2>&1 || true
    d manager swarm init --advertise-addr 10.251.0.1 --listen-addr 10.251.0.1:2377 \
      --default-addr-pool 10.252.0.0/16 >/dev/null
    fresh=1
  fi
  mid=$(d manager info -f '{{.Swarm.NodeID}}')
  wid=$(d worker info -f '{{.Swarm.NodeID}}')
  if ((fresh)) || [ "$(settled worker)" != active ] || ! d manager node inspect "$wid" >/dev/null 2>&1; then
    d worker swarm leave --force >/dev/null 2>&1 || true
    d worker swarm join --token "$(d manager swarm join-token -q worker)" \
      --advertise-addr 10.251.0.2 --listen-addr 10.251.0.2:2377 10.251.0.1:2377 >/dev/null
    wid=$(d worker info -f '{{.Swarm.NodeID}}')
  fi
  for id in $(d manager node ls -q); do   # forget nodes of earlier joins
    [ "$id" = "$mid" ] || [ "$id" = "$wid" ] || d manager node rm --force "$id" >/dev/null
  done
  # node labels for the placement tests: gofer-node=manager|worker
  d manager node update --label-add gofer-node=manager "$mid" >/dev/null
  d manager node update --label-add gofer-node=worker "$wid" >/dev/null
  for _ in $(seq 1 150); do
    [ "$(d manager node ls --format '{{.Status}}' | grep -c '^Ready$')" = 2 ] && return 0; sleep 0.2
  done
  die "nodes not Ready: $(d manager node ls 2>&1)"
}

load_image() {  # copy the test image from the main engine unless the node has the same one
  local want n
  want=$(main image inspect -f '{{.Id}}' "$IMAGE") || die "$IMAGE missing in the main engine (run docker.sh)"
  for n in "${NODES[@]}"; do
    [ "$(d "$n" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null)" = "$want" ] ||
      main save "$IMAGE" | d "$n" load -q >/dev/null
  done
}

verify() {  # one replicated-job per node; print where it ran and what it logged
  local n s st node err
  for n in "${NODES[@]}"; do
    s=gofer-swarm-check-$n
    d manager service rm "$s" >/dev/null 2>&1 || true
    d manager service create -d -q --name "$s" --mode replicated-job --replicas 1 \
      --restart-condition none --no-resolve-image --constraint "node.hostname==gofer-swarm-$n" \
      --hostname '{{.Node.Hostname}}' "$IMAGE" sh -c 'echo "job ran on $(hostname)"' >/dev/null
  done
  for n in "${NODES[@]}"; do
    s=gofer-swarm-check-$n
    for _ in $(seq 1 300); do
      IFS='|' read -r st node err < <(d manager service ps "$s" --format '{{.CurrentState}}|{{.Node}}|{{.Error}}' 2>/dev/null | head -n 1) || true
      case $st in Complete*|Failed*|Rejected*) break ;; esac; sleep 0.2
    done
    [[ $st == Complete* ]] || die "job $s: ${st:-no task} $err"
    echo "swarm: job $s completed on node $node, log: $(d manager service logs --raw "$s" 2>&1)"
    d manager service rm "$s" >/dev/null
  done
}

status() {
  local n ready
  for n in "${NODES[@]}"; do
    alive "$n" || { echo "swarm down: $n dockerd not running ($RUN/$n.sock)"; return 1; }
  done
  ready=$(d manager node ls --format '{{.Status}}' 2>/dev/null | grep -c '^Ready$' || true)
  [ "$ready" = 2 ] || { echo "swarm down: $ready of 2 nodes Ready"; return 1; }
  echo "swarm up: manager $MSOCK, 2 nodes"
}

stop() {
  local n
  for n in "${NODES[@]}"; do   # both nodes at once: leave the swarm, stop the daemon
    { alive "$n" && d "$n" swarm leave --force >/dev/null 2>&1; stop_node "$n"; } &
  done
  wait
  # unmount what the daemons left under our dirs (deepest first), then remove everything
  awk -v r="^($RUN|$DATA)(/|\$)" '$5 ~ r {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n 1 umount -l
  for n in "${NODES[@]}"; do ip netns del "gofer-swarm-$n" 2>/dev/null || true; done
  find /sys/fs/cgroup -mindepth 2 -maxdepth 3 -depth -type d -path '/sys/fs/cgroup/*/gofer-swarm-*' \
    -exec rmdir {} + 2>/dev/null || true
  rm -rf --one-file-system "$RUN" "$DATA"
  echo "swarm stopped"
}

case ${1:-start} in
  start)
    main info >/dev/null 2>&1 || die "main docker engine not running (run docker.sh)"
    net_up
    node_up 0; node_up 1
    for n in "${NODES[@]}"; do
      for _ in $(seq 1 150); do alive "$n" && break; sleep 0.2; done
      alive "$n" || { tail -n 30 "$ENGINE_WORK/swarm-$n.log" >&2; die "$n dockerd did not start"; }
    done
    swarm_up
    load_image
    verify
    echo "swarm ready: manager $MSOCK, 2 nodes"
    ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
