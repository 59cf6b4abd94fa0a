#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The drain rate of a backlog (N events, 100,000 by default) into a private Kafka, at-least-once
# and exactly-once with several transaction intervals and sizes: the measurement behind the
# defaults of transaction_interval_ms and transaction_max_events (docs/performance.md).
# Usage: bench/transaction-sweep.sh [BUILD_DIR]   (default build/bench; ports 23092, 23093)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$root/build/bench}" && pwd); S=$root/scripts; K=23092; M=23093
D=$(mktemp -d /tmp/sluice-sweep.XXXXXX)
$S/kafka.sh start --dir $D/kafka --port $K >/dev/null
$S/mosquitto.sh start --dir $D/mosq --port $M --persistence >/dev/null
trap '$S/kafka.sh stop --dir $D/kafka >/dev/null; $S/mosquitto.sh stop --dir $D/mosq >/dev/null; rm -rf $D' EXIT
N=${N:-100000}
run() {  # name delivery interval max
  local name=$1 delivery=$2 interval=$3 max=$4 dir=$D/$1
  rm -rf $dir; mkdir -p $dir
  cat > $dir/fill.toml <<T
[gateway]
id = "sweep-$name"
[storage]
path = "$dir/log.db"
[mqtt]
url = "tcp://127.0.0.1:$M"
client_id = "sweep-$name"
[upstream.k]
kind = "kafka"
brokers = "127.0.0.1:1"
[[route]]
mqtt = "devices/+/telemetry"
key = "devices/{device}/#"
to = { k = "sweep-$name" }
T
  sed "s/127.0.0.1:1\"/127.0.0.1:$K\"\ndelivery = \"$delivery\"\ntransaction_interval_ms = $interval\ntransaction_max_events = $max/" $dir/fill.toml > $dir/drain.toml
  $B/gateway/sluice run --config $dir/fill.toml > $dir/fill.log 2>&1 & local p=$!
  until grep -q 'subscription(s) granted' $dir/fill.log 2>/dev/null; do sleep 0.2; done
  $B/firmware-sim/sluice-sim --url tcp://127.0.0.1:$M --devices 10 --profiles telemetry:10 --qos-telemetry 0 --total-rate 40000 --events $N -q --client-prefix sw-$name > /dev/null 2>&1
  until [ "$($B/gateway/sluice status --log $dir/log.db --json | grep -m1 '"last_seq"' | tr -dc 0-9)" -ge $((N*95/100)) ]; do sleep 0.2; done
  sleep 1; kill $p; wait $p || true
  local last t0 t1 cpu
  last=$($B/gateway/sluice status --log $dir/log.db --json | grep -m1 '"last_seq"' | tr -dc 0-9)
  t0=$(date +%s.%N)
  $B/gateway/sluice run --config $dir/drain.toml > $dir/drain.log 2>&1 & p=$!
  until [ "$($B/gateway/sluice status --log $dir/log.db --json | grep -m1 '"cursor"' | tr -dc 0-9)" -ge $last ]; do sleep 0.1; done
  t1=$(date +%s.%N)
  cpu=$(awk '{print ($14+$15)/100}' /proc/$p/stat)
  kill $p; wait $p || true
  printf '%-22s %-13s interval=%-5s max=%-6s events=%s drain_s=%.2f rate=%.0f ev/s sluice_cpu_s=%s\n' $name $delivery $interval $max $last "$(echo "$t1-$t0"|bc)" "$(echo "$last/($t1-$t0)"|bc -l)" $cpu
}
run alo at-least-once 100 10000
run eos-i10 exactly-once 10 10000
run eos-i100 exactly-once 100 10000
run eos-i1000 exactly-once 1000 10000
run eos-m1000 exactly-once 100 1000
run eos-m50000 exactly-once 100 50000
