#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CTest fixture: starts (or stops) the Mosquitto and Kafka brokers shared by the integration tests.
# Usage: brokers.sh start|stop STATE_DIR MQTT_PORT KAFKA_PORT
set -euo pipefail
here=$(cd "$(dirname "$0")/../../scripts" && pwd)
action=$1 state=$2 mqtt_port=$3 kafka_port=$4
case "$action" in
  start)
    # Brokers left running by an interrupted earlier run of the same build would hold the ports.
    if [[ -d "$state" ]]; then
      "$here/mosquitto.sh" stop --dir "$state/mosquitto" || true
      "$here/kafka.sh" stop --dir "$state/kafka" || true
    fi
    rm -rf "$state"
    mkdir -p "$state"
    "$here/mosquitto.sh" start --dir "$state/mosquitto" --port "$mqtt_port" --persistence
    "$here/kafka.sh" start --dir "$state/kafka" --port "$kafka_port"
    ;;
  stop)
    "$here/mosquitto.sh" stop --dir "$state/mosquitto" || true
    "$here/kafka.sh" stop --dir "$state/kafka" || true
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR MQTT_PORT KAFKA_PORT" >&2
    exit 2
    ;;
esac
