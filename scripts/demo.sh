#!/usr/bin/env bash
# The sluice demo: devices -> Mosquitto -> sluice -> Kafka, with an uplink outage in the middle,
# ending with a read-back from Kafka that shows every event arrived, in order, once.
#
# Sets up a fresh Debian 12 machine (packages, Kafka jars), builds sluice, starts its own Mosquitto
# and Kafka on spare ports, and stops everything it started on exit, Ctrl-C included.
# Usage: scripts/demo.sh [--short]      (--short: a smaller, quicker run, as CI uses)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

devices=4
per_phase=1500       # events per device before the outage, and again during it
outage_s=20
if [[ "${1:-}" == "--short" ]]; then
  per_phase=300
  outage_s=5
fi
mqtt_port=${DEMO_MQTT_PORT:-18830}
kafka_port=${DEMO_KAFKA_PORT:-19092}
topic=demo-telemetry

say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

say "setting up: packages, Kafka jars, build (first run takes a few minutes)"
scripts/install-deps.sh >/dev/null
scripts/kafka.sh fetch >/dev/null
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF >/dev/null
cmake --build build/demo -j "$(nproc)" >/dev/null
sluice=$root/build/demo/gateway/sluice

state=$(mktemp -d /tmp/sluice-demo.XXXXXX)
sluice_pid=""
publishers=()
cleanup() {
  set +e
  for p in "${publishers[@]}"; do kill "$p" 2>/dev/null; done
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
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "$topic"
key = "devices/{device}/#"
qos = 1
TOML
"$sluice" run --config "$state/sluice.toml" >"$state/sluice.log" 2>&1 &
sluice_pid=$!
for _ in $(seq 1 100); do
  grep -q "connected to MQTT broker" "$state/sluice.log" && break
  sleep 0.1
done
grep -q "connected to MQTT broker" "$state/sluice.log" || { cat "$state/sluice.log"; exit 1; }
say "sluice running (pid $sluice_pid), log in $state/sluice.log"

backlog() {
  sqlite3 -readonly "$state/sluice/events.db" "SELECT count(*) FROM events" 2>/dev/null || echo "?"
}

# The stand-in devices: one mosquitto_pub per device (well under its 65,535-message limit per
# connection), QoS 1, payload "<device>:<n>", paced over `secs` seconds.
publish() {  # publish FIRST COUNT SECS
  local first=$1 count=$2 secs=$3 d
  publishers=()
  for d in $(seq 1 "$devices"); do
    awk -v d="dev$d" -v a="$first" -v n="$count" -v s="$secs" 'BEGIN {
          for (i = a; i < a + n; i++) {
            printf "%s:%d\n", d, i; fflush();
            if (s > 0 && i % 50 == 0) system("sleep " s * 50 / n);
          } }' |
      mosquitto_pub -p "$mqtt_port" -q 1 -i "demo-dev$d" -t "devices/dev$d/telemetry" -l &
    publishers+=($!)
  done
}
wait_publishers() {
  for p in "${publishers[@]}"; do wait "$p"; done
  publishers=()
}

total=$((devices * per_phase * 2))
say "phase 1: $devices devices publish $per_phase events each, uplink up"
publish 1 "$per_phase" 0
wait_publishers
for _ in $(seq 1 300); do [[ "$(backlog)" == 0 ]] && break; sleep 0.2; done
say "phase 1 done: backlog $(backlog) events"

say "phase 2: cutting the uplink (Kafka stopped) for ${outage_s}s while the devices keep publishing"
scripts/kafka.sh stop --dir "$state/kafka" >/dev/null
publish $((per_phase + 1)) "$per_phase" "$outage_s"
for _ in $(seq 1 "$outage_s"); do
  sleep 1
  say "  uplink DOWN  backlog in sluice's log: $(backlog) events"
done
wait_publishers
b=$(backlog)
say "  uplink DOWN  backlog in sluice's log: $b events ($((devices * per_phase)) published during the outage)"

say "phase 3: uplink back (Kafka started); the backlog drains in order"
scripts/kafka.sh start --dir "$state/kafka" --port "$kafka_port" >/dev/null
start=$(date +%s.%N)
while :; do
  b=$(backlog)
  say "  uplink UP    backlog: $b events"
  [[ "$b" == 0 ]] && break
  sleep 0.5
done
say "  drained in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after Kafka answered"

say "phase 4: reading topic '$topic' back from Kafka and checking every device's sequence"
kcat -b "127.0.0.1:$kafka_port" -C -t "$topic" -o beginning -e -q -f '%k %s\n' >"$state/readback.txt"
awk -v devices="$devices" -v per="$((per_phase * 2))" '
  { split($2, f, ":"); d = f[1]; n = f[2] + 0; got[d]++
    if ($1 != d) badkey++
    if (seen[d, n]++) dup[d]++
    else if (n < last[d]) reord[d]++
    if (n > last[d]) last[d] = n }
  END {
    printf "\n%-8s %8s %8s %6s %10s %11s\n", "device", "sent", "arrived", "lost", "reordered", "duplicates"
    for (i = 1; i <= devices; i++) {
      d = "dev" i; lost = 0
      for (n = 1; n <= per; n++) if (!((d, n) in seen)) lost++
      printf "%-8s %8d %8d %6d %10d %11d\n", d, per, got[d], lost, reord[d] + 0, dup[d] + 0
      tl += lost; tr += reord[d]; td += dup[d]; ta += got[d]
    }
    printf "%-8s %8d %8d %6d %10d %11d\n\n", "total", per * devices, ta, tl, tr, td
    exit (tl + tr + badkey > 0) }' "$state/readback.txt" && ok=1 || ok=0
if [[ $ok == 1 ]]; then
  say "RESULT: all $total events arrived in Kafka, in order per device, nothing lost"
else
  say "RESULT: FAILED: events lost or reordered (see the table)"
  exit 1
fi
