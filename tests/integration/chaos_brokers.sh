#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CTest fixtures of the chaos tests: brokers that the tests may cut off or kill.
#
# Usage:
#   chaos_brokers.sh netns-start   STATE NS SUBNET MQTT_PORT KAFKA_PORT
#   chaos_brokers.sh netns-stop    STATE NS SUBNET
#   chaos_brokers.sh cluster-start STATE MQTT_PORT KAFKA_PORT
#   chaos_brokers.sh cluster-stop  STATE
#
# netns-start: Mosquitto on 127.0.0.1:MQTT_PORT, and Kafka inside network namespace NS on
# SUBNET.2:KAFKA_PORT (controller KAFKA_PORT+1), reached from this host over a veth pair
# (tests/integration/chaos_net.sh). Where this host allows no network namespaces, it writes the
# reason to STATE/skip and succeeds, so the tests report SKIP; under CI (CI=true) that is an error.
# cluster-start: Mosquitto on MQTT_PORT and a three-node Kafka cluster on 127.0.0.1 from
# KAFKA_PORT (scripts/kafka-cluster.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scripts=$(cd "$here/../../scripts" && pwd)

netns_stop() {
  local state=$1 ns=$2 subnet=$3
  "$scripts/mosquitto.sh" stop --dir "$state/mosquitto" || true
  # Stopping needs no namespace: kafka.sh signals the broker's PID.
  "$scripts/kafka.sh" stop --dir "$state/kafka" || true
  "$here/chaos_net.sh" down "$ns" "$subnet" || true
}

netns_start() {
  local state=$1 ns=$2 subnet=$3 mqtt_port=$4 kafka_port=$5
  # Brokers and a namespace left by an interrupted earlier run would hold the ports and names.
  [[ -d "$state" ]] && netns_stop "$state" "$ns" "$subnet"
  rm -rf "$state"
  mkdir -p "$state"
  local rc=0
  "$here/chaos_net.sh" up "$ns" "$subnet" 2>"$state/up.err" || rc=$?
  if ((rc == 77)); then
    {
      echo "network namespaces are not available here: $(cat "$state/up.err")"
    } >"$state/skip"
    cat "$state/skip"
    if [[ "${CI:-}" == true ]]; then
      echo "chaos_brokers.sh: CI runs as root and must run the network tests" >&2
      exit 1
    fi
    exit 0
  fi
  ((rc == 0)) || {
    cat "$state/up.err" >&2
    exit "$rc"
  }
  trap 'netns_stop "$state" "$ns" "$subnet"' ERR
  "$scripts/mosquitto.sh" start --dir "$state/mosquitto" --port "$mqtt_port" --persistence
  ip netns exec "$ns" "$scripts/kafka.sh" start --dir "$state/kafka" --port "$kafka_port" \
    --controller-port "$((kafka_port + 1))" --host "$subnet.2"
  trap - ERR
}

cluster_stop() {
  local state=$1
  "$scripts/mosquitto.sh" stop --dir "$state/mosquitto" || true
  "$scripts/kafka-cluster.sh" stop --dir "$state/cluster" || true
}

cluster_start() {
  local state=$1 mqtt_port=$2 kafka_port=$3
  [[ -d "$state" ]] && cluster_stop "$state"
  rm -rf "$state"
  mkdir -p "$state"
  trap 'cluster_stop "$state"' ERR
  "$scripts/mosquitto.sh" start --dir "$state/mosquitto" --port "$mqtt_port" --persistence
  local t0=$SECONDS
  "$scripts/kafka-cluster.sh" start --dir "$state/cluster" --port "$kafka_port"
  echo "chaos_brokers.sh: three-node cluster ready in $((SECONDS - t0)) s"
  trap - ERR
}

(($# >= 2)) || {
  sed -n '/^# Usage:/,/^#$/{/^#$/q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}
action=$1
shift
case $action in
netns-start) netns_start "$@" ;;
netns-stop) netns_stop "$@" ;;
cluster-start) cluster_start "$@" ;;
cluster-stop) cluster_stop "$@" ;;
*)
  echo "chaos_brokers.sh: unknown action '$action'" >&2
  exit 2
  ;;
esac
