#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A network namespace joined to this host by a veth pair, and the faults a real uplink has: the
# link going down, a partition that swallows every packet, a slow and lossy line.
#
# Usage:
#   chaos_net.sh up NS SUBNET      create NS; this host gets SUBNET.1/30 on NS-h, NS gets SUBNET.2/30
#   chaos_net.sh down NS SUBNET    delete NS, its veth pair and the guard route (idempotent)
#   chaos_net.sh link-down NS      NS's end of the link goes down: no carrier, packets go nowhere
#   chaos_net.sh blackhole NS      NS drops every packet in and out; the link stays up
#   chaos_net.sh impair NS         delay, rate limit and random loss in both directions
#   chaos_net.sh heal NS           undo link-down, blackhole and impair
#
# NS is at most 13 characters (interface names NS-h and NS-n have at most 15). SUBNET is the first
# three octets of a private /30, e.g. 10.231.0. up exits 77 with the reason when this host does not
# allow network namespaces (not root, or no CAP_NET_ADMIN in a container).
set -euo pipefail

die() {
  echo "chaos_net.sh: $*" >&2
  exit 1
}
usage() {
  sed -n '/^# Usage:/,/^#$/{/^#$/q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

# The rules live in NS's own nftables ruleset, so the host's firewall is never touched.
readonly table=sluice_chaos

check_ns() {
  [[ "$1" =~ ^[A-Za-z0-9_-]{1,13}$ ]] || die "bad namespace name '$1' (1..13 of A-Z a-z 0-9 _ -)"
}
check_subnet() {
  [[ "$1" =~ ^(10|172|192)\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "bad SUBNET '$1' (e.g. 10.231.0)"
}

cmd_up() {
  local ns=$1 subnet=$2
  if ((EUID != 0)); then
    echo "network namespaces need root (running as uid $EUID)" >&2
    exit 77
  fi
  command -v ip >/dev/null || die "ip not found (install iproute2)"
  cmd_down "$ns" "$subnet"
  local err
  if ! err=$(ip netns add "$ns" 2>&1); then
    echo "ip netns add $ns failed: $err" >&2
    exit 77
  fi
  ip link add "$ns-h" type veth peer name "$ns-n"
  ip link set "$ns-n" netns "$ns"
  ip addr add "$subnet.1/30" dev "$ns-h"
  ip link set "$ns-h" up
  # When the link is down, the kernel would route the subnet by the default route, i.e. off this
  # host; the guard route (worse metric than the link's own route) keeps it here and drops it.
  ip route add blackhole "$subnet.0/30" metric 4000
  ip netns exec "$ns" ip addr add "$subnet.2/30" dev "$ns-n"
  ip netns exec "$ns" ip link set "$ns-n" up
  ip netns exec "$ns" ip link set lo up
}

cmd_down() {
  local ns=$1 subnet=$2
  ip netns del "$ns" 2>/dev/null || true
  # Deleting the namespace deletes both ends of the pair; only a half-made pair survives.
  ip link del "$ns-h" 2>/dev/null || true
  ip route del blackhole "$subnet.0/30" metric 4000 2>/dev/null || true
}

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

cmd_link_down() {
  in_ns "$1" ip link set "$1-n" down
}

cmd_blackhole() {
  local ns=$1
  command -v nft >/dev/null || die "nft not found (install nftables)"
  in_ns "$ns" nft -f - <<EOF
table inet $table {
  chain input { type filter hook input priority 0; policy accept; iifname "$ns-n" drop; }
  chain output { type filter hook output priority 0; policy accept; oifname "$ns-n" drop; }
}
EOF
}

# netem (delay with jitter, loss) where the kernel has it. Kernels built without sch_netem get the
# same kind of line from what they have: tbf queues packets behind a slow rate, which delays
# them, and nftables drops a random share.
cmd_impair() {
  local ns=$1
  if tc qdisc add dev "$ns-h" root netem delay 40ms 10ms loss 10% 2>/dev/null; then
    in_ns "$ns" tc qdisc add dev "$ns-n" root netem delay 40ms 10ms loss 10%
    echo "impairment: netem delay 40ms +-10ms, loss 10%, each direction"
    return 0
  fi
  command -v nft >/dev/null || die "nft not found (install nftables)"
  tc qdisc add dev "$ns-h" root tbf rate 1mbit burst 16kb latency 2s
  in_ns "$ns" tc qdisc add dev "$ns-n" root tbf rate 1mbit burst 16kb latency 2s
  in_ns "$ns" nft -f - <<EOF
table inet $table {
  chain input { type filter hook input priority 0; policy accept; iifname "$ns-n" numgen random mod 100 < 10 drop; }
  chain output { type filter hook output priority 0; policy accept; oifname "$ns-n" numgen random mod 100 < 10 drop; }
}
EOF
  echo "impairment: no sch_netem in this kernel; tbf 1 Mbit/s (queueing delay) and nftables 10% random loss, each direction"
}

cmd_heal() {
  local ns=$1
  in_ns "$ns" ip link set "$ns-n" up
  ip link set "$ns-h" up
  tc qdisc del dev "$ns-h" root 2>/dev/null || true
  in_ns "$ns" tc qdisc del dev "$ns-n" root 2>/dev/null || true
  if command -v nft >/dev/null; then
    in_ns "$ns" nft delete table inet "$table" 2>/dev/null || true
  fi
}

(($# >= 2)) || usage
cmd=$1 ns=$2
check_ns "$ns"
case $cmd in
up | down)
  (($# == 3)) || usage
  check_subnet "$3"
  "cmd_$cmd" "$ns" "$3"
  ;;
link-down) cmd_link_down "$ns" ;;
blackhole) cmd_blackhole "$ns" ;;
impair) cmd_impair "$ns" ;;
heal) cmd_heal "$ns" ;;
*) usage ;;
esac
