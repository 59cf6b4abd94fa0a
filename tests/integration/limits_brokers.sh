#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CTest fixture for the limits tests: a Kafka broker of their own that creates no topics
# (auto.create.topics.enable=false), for the unknown-topic scenario.
# Usage: limits_brokers.sh start|stop STATE_DIR KAFKA_PORT CONTROLLER_PORT
set -euo pipefail
here=$(cd "$(dirname "$0")/../../scripts" && pwd)
action=$1 state=$2 kafka_port=$3 ctl_port=$4
case "$action" in
  start)
    # A broker left running by an interrupted earlier run of the same build would hold the ports.
    if [[ -d "$state" ]]; then
      "$here/kafka.sh" stop --dir "$state/kafka" || true
    fi
    rm -rf "$state"
    mkdir -p "$state"
    printf 'auto.create.topics.enable=false\n' >"$state/no-auto-create.properties"
    "$here/kafka.sh" start --dir "$state/kafka" --port "$kafka_port" --controller-port "$ctl_port" \
      --extra-properties "$state/no-auto-create.properties"
    ;;
  stop)
    "$here/kafka.sh" stop --dir "$state/kafka" || true
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR KAFKA_PORT CONTROLLER_PORT" >&2
    exit 2
    ;;
esac
