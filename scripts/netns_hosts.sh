#!/usr/bin/env bash
# Several "hosts" on one machine for multi-host MPI tests and measurements: each host is a
# network namespace with its own address (198.18.0.0/24, the benchmarking range, used only
# inside these namespaces), its own host name and its own mount namespace, joined by a
# bridge in a switch namespace. Nothing outside the namespaces is contacted or changed
# (apart from /etc/netns/<ns>/hosts, which `ip netns exec` shows as /etc/hosts inside).
#
#   scripts/netns_hosts.sh up DIR N [--qdisc "tbf rate 10gbit burst 256kb latency 1ms"]
#       hosts h1..hN (ranks) and h0 (where mpirun runs); writes DIR/agent.sh (Open MPI's
#       launcher agent: --mca plm_rsh_agent DIR/agent.sh), DIR/hosts (a hostfile, one slot
#       each), DIR/prefix; DIR/mounts.<host> may list "SRC DST" bind mounts a host sees.
#       --qdisc shapes every host's outgoing traffic with that tc queueing discipline (so
#       both directions of each link), e.g. tbf for a 10 Gbit/s link, or netem for delay
#       where the kernel has sch_netem. Exit 3 when the kernel lacks the discipline.
#   scripts/netns_hosts.sh run DIR HOST CMD...    run CMD on HOST (e.g. mpirun on h0)
#   scripts/netns_hosts.sh down DIR               remove everything `up` made
# Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 and util-linux's unshare.
set -euo pipefail
cmd=${1:?usage: netns_hosts.sh up|run|down DIR ...}
D=${2:?usage: netns_hosts.sh up|run|down DIR ...}

host_env() {   # the part of a command line that enters host $1's namespaces
  local P; P=$(cat "$D/prefix")
  printf 'ip netns exec %s unshare --uts --mount sh -c' "${P}_$1"
}

case "$cmd" in
up)
  N=${3:?usage: netns_hosts.sh up DIR N}
  QDISC=""; [ "${4:-}" = --qdisc ] && QDISC=${5:?--qdisc needs tc qdisc parameters}
  mkdir -p "$D"
  P="mt$(( $$ % 100000 ))"
  echo "$P" > "$D/prefix"
  ip netns add "${P}_sw"
  ip -n "${P}_sw" link add br0 type bridge
  ip -n "${P}_sw" link set br0 up
  : > "$D/hosts"
  for i in $(seq 0 "$N"); do
    h=h$i ns="${P}_h$i"
    ip netns add "$ns"
    ip -n "${P}_sw" link add "v_$h" type veth peer name eth0 netns "$ns"
    ip -n "${P}_sw" link set "v_$h" master br0
    ip -n "${P}_sw" link set "v_$h" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "198.18.0.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [ -n "$QDISC" ]; then
      # shellcheck disable=SC2086
      tc -n "$ns" qdisc add dev eth0 root $QDISC || { echo "netns_hosts: tc qdisc '$QDISC' not available" >&2; exit 3; }
    fi
    [ "$i" -gt 0 ] && echo "$h slots=1" >> "$D/hosts"
  done
  for i in $(seq 0 "$N"); do
    mkdir -p "/etc/netns/${P}_h$i"
    { echo "127.0.0.1 localhost"; for j in $(seq 0 "$N"); do echo "198.18.0.$((10 + j)) h$j"; done; } \
      > "/etc/netns/${P}_h$i/hosts"
  done
  # Open MPI starts its daemon on a "remote" host as: agent HOST orted ARGS...
  cat > "$D/agent.sh" <<AGENT
#!/bin/sh
h=\$1; shift
mounts=""
if [ -f "$D/mounts.\$h" ]; then
  while read -r src dst; do [ -n "\$src" ] && mounts="\$mounts mount --bind '\$src' '\$dst';"; done < "$D/mounts.\$h"
fi
exec ip netns exec ${P}_\$h unshare --uts --mount sh -c "hostname \$h; \$mounts \$*"
AGENT
  chmod +x "$D/agent.sh"
  ;;
run)
  H=${3:?usage: netns_hosts.sh run DIR HOST CMD...}; shift 3
  P=$(cat "$D/prefix")
  q=""; for a in "$@"; do q="$q '${a//\'/\'\\\'\'}'"; done
  exec ip netns exec "${P}_$H" unshare --uts --mount sh -c "hostname $H; $q"
  ;;
down)
  [ -f "$D/prefix" ] || exit 0
  P=$(cat "$D/prefix")
  for ns in $(ip netns list | awk '{print $1}' | grep "^${P}_" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  rm -f "$D/prefix"
  ;;
*) echo "netns_hosts: unknown command $cmd" >&2; exit 2 ;;
esac
