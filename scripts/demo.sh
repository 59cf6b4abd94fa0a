#!/usr/bin/env bash
# The sluice demo: a simulated device fleet (sluice-sim) -> Mosquitto -> sluice -> Kafka, with an uplink outage in the middle,
# ending with the verifier (sluice-verify) reading Kafka back: every event arrived, in order.
#
# Sets up a fresh Debian 12 machine (packages, Kafka jars), builds sluice, starts its own Mosquitto
# and Kafka on spare ports, and stops everything it started on exit, Ctrl-C included.
# Usage: scripts/demo.sh [--short]      (--short: a quicker run with a smaller fleet, as CI uses)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

devices=20
rate=10              # events/s per telemetry device (sluice-sim's --rate)
warmup_s=10          # uplink up before the outage
outage_s=20
after_s=10           # devices keep publishing after the uplink returns
if [[ "${1:-}" == "--short" ]]; then
  devices=8
  warmup_s=4
  outage_s=6
  after_s=3
fi
mqtt_port=${DEMO_MQTT_PORT:-18830}
kafka_port=${DEMO_KAFKA_PORT:-19092}
metrics_port=${DEMO_METRICS_PORT:-19464}
topic=demo-events

say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# shellcheck source=scripts/lib/sluice_http.sh
source scripts/lib/sluice_http.sh

say "setting up: packages, Kafka jars, build (first run takes a few minutes)"
scripts/install-deps.sh >/dev/null
scripts/kafka.sh fetch >/dev/null
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" >/dev/null
sluice=$root/build/demo/gateway/sluice
sim=$root/build/demo/firmware-sim/sluice-sim
verify=$root/build/demo/firmware-sim/sluice-verify

state=$(mktemp -d /tmp/sluice-demo.XXXXXX)
sluice_pid=""
sim_pid=""
cleanup() {
  set +e
  [[ -n "$sim_pid" ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  [[ -n "$sluice_pid" ]] && kill -TERM "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  scripts/kafka.sh stop --dir "$state/kafka" >/dev/null 2>&1
  scripts/mosquitto.sh stop --dir "$state/mosquitto" >/dev/null 2>&1
  rm -rf "$state"
}
trap cleanup EXIT
trap 'say "interrupted; stopping everything"; exit 130' INT TERM

say "starting Mosquitto on 127.0.0.1:$mqtt_port and Kafka on 127.0.0.1:$kafka_port"
scripts/mosquitto.sh start --dir "$state/mosquitto" --port "$mqtt_port" --persistence >/dev/null
scripts/kafka.sh start --dir "$state/kafka" --port "$kafka_port" >/dev/null

cat >"$state/sluice.toml" <<TOML
[gateway]
id = "demo-gateway"
[storage]
path = "$state/sluice/events.db"
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
reconnect_max_ms = 2000
[kafka]
brokers = "127.0.0.1:$kafka_port"
reconnect_max_ms = 1000
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "$topic"
key = "devices/{device}/#"
qos = 1
[[route]]
mqtt = "devices/+/events"
kafka_topic = "$topic"
key = "devices/{device}/#"
qos = 1
TOML
"$sluice" run --config "$state/sluice.toml" >"$state/sluice.log" 2>&1 &
sluice_pid=$!
# Ready: subscribed to Mosquitto and connected to Kafka, as /readyz tells a probe.
sluice_wait_ready 127.0.0.1 "$metrics_port" 60 "$sluice_pid" || { cat "$state/sluice.log"; exit 1; }
say "sluice running and ready (pid $sluice_pid, http://127.0.0.1:$metrics_port/readyz), log in $state/sluice.log"

backlog() {
  "$sluice" status --config "$state/sluice.toml" | sed -n 's/^backlog *//p'
}
status_field() {  # status_field NAME: one number from `sluice status --json`
  "$sluice" status --config "$state/sluice.toml" --json | sed -n "s/.*\"$1\": \([0-9]*\).*/\1/p" | head -1
}
backlog_events() { status_field backlog_events; }

total_s=$((warmup_s + outage_s + after_s))
say "starting the fleet: $devices simulated devices (telemetry, vibration, alarms, doors), ${total_s}s"
"$sim" --url "tcp://127.0.0.1:$mqtt_port" --devices "$devices" --rate "$rate" --duration "$total_s" \
  --seed 42 --summary-json "$state/fleet.json" --progress-interval 5 >"$state/sim.log" 2>&1 &
sim_pid=$!

sleep "$warmup_s"
say "uplink up:   backlog $(backlog)"
say "cutting the uplink: Kafka stopped for ${outage_s}s while the devices keep publishing"
scripts/kafka.sh stop --dir "$state/kafka" >/dev/null
for _ in $(seq 1 $((outage_s / 2))); do
  sleep 2
  say "uplink DOWN: backlog $(backlog)"
done
say "uplink back: Kafka starting"
scripts/kafka.sh start --dir "$state/kafka" --port "$kafka_port" >/dev/null
start=$(date +%s.%N)
outage_last=$(status_field last_seq)
# Drained once every event logged during the outage is confirmed; live events keep flowing behind.
while :; do
  cursor=$(status_field cursor)
  say "uplink UP:   backlog $(backlog)"
  ((cursor >= outage_last)) && break
  sleep 1
done
say "outage backlog (up to seq $outage_last) confirmed by Kafka $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after it started; live events keep flowing"
wait "$sim_pid"
sim_pid=""
say "fleet finished: $(grep '^total:' "$state/sim.log" || tail -1 "$state/sim.log")"
for _ in $(seq 1 60); do [[ "$(backlog_events)" == 0 ]] && break; sleep 0.5; done

say "reading topic '$topic' back from Kafka and checking every device's sequence, per boot"
echo
if "$verify" --brokers "127.0.0.1:$kafka_port" --topic "$topic" --expect "$state/fleet.json" \
  --idle-timeout 5; then
  echo
  say "RESULT: every event the devices sent arrived in Kafka, in order per device, none lost"
else
  echo
  say "RESULT: FAILED (see the verifier's report above; sluice's log: $state/sluice.log)"
  exit 1
fi
