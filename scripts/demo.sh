#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The sluice demo: a simulated device fleet (sluice-sim) -> Mosquitto -> sluice -> two upstreams
# fed from one log: "central", a Kafka cluster, and "cloud", a second Mosquitto standing for a
# cloud MQTT broker. First the cloud broker is cut while Kafka keeps receiving, then Kafka is cut
# while the cloud keeps receiving; each backlog grows on its own and drains when its upstream
# returns. At the end the verifier (sluice-verify) reads both back: every event arrived on each
# side, in order per device.
#
# Sets up a fresh Debian 12 machine (packages, Kafka jars), builds sluice, starts its own
# Mosquittos and Kafka on spare ports, and stops everything it started on exit, Ctrl-C included.
# Usage: scripts/demo.sh [--short] [--build-dir DIR]
#   --short          a quicker run with a smaller fleet, as CI uses
#   --build-dir DIR  use (and bring up to date) an existing build tree instead of build/demo
# Environment: DEMO_MQTT_PORT, DEMO_CLOUD_PORT, DEMO_KAFKA_PORT, DEMO_METRICS_PORT (ports).
set -euo pipefail
cd "$(dirname "$0")/.."

devices=20
rate=10              # events/s per telemetry device (sluice-sim's --rate)
warmup_s=8           # both upstreams up
cloud_outage_s=12    # the cloud broker stopped; Kafka keeps receiving
between_s=6          # both up again (the cloud's backlog drains meanwhile)
outage_s=16          # Kafka stopped; the cloud keeps receiving
after_s=8            # devices keep publishing after Kafka returns
build_dir=""
while (($#)); do
  case $1 in
  --short)
    devices=8
    warmup_s=3
    cloud_outage_s=4
    between_s=2
    outage_s=6
    after_s=2
    shift
    ;;
  --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
  *) echo "usage: scripts/demo.sh [--short] [--build-dir DIR]" >&2; exit 2 ;;
  esac
done
mqtt_port=${DEMO_MQTT_PORT:-18830}
cloud_port=${DEMO_CLOUD_PORT:-18840}
kafka_port=${DEMO_KAFKA_PORT:-19092}
metrics_port=${DEMO_METRICS_PORT:-19464}
topic=demo-events
cloud_filter='site/#'
reader_id=demo-cloud-reader  # the verifier's persistent session at the cloud broker

say() { printf '[demo %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# shellcheck source=scripts/lib/sluice_http.sh
source scripts/lib/sluice_http.sh

say "setting up: packages, Kafka jars, build (first run takes a few minutes)"
scripts/install-deps.sh >/dev/null
scripts/kafka.sh fetch >/dev/null
if [[ -z "$build_dir" ]]; then
  build_dir=build/demo
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_BUILD_TESTS=OFF \
    >/dev/null
fi
cmake --build "$build_dir" -j "$(nproc)" --target sluice sluice-sim sluice-verify >/dev/null
build_dir=$(cd "$build_dir" && pwd)
sluice=$build_dir/gateway/sluice
sim=$build_dir/firmware-sim/sluice-sim
verify=$build_dir/firmware-sim/sluice-verify

state=$(mktemp -d /tmp/sluice-demo.XXXXXX)
sluice_pid=""
sim_pid=""
verify_pids=()
cleanup() {
  set +e
  [[ -n "$sim_pid" ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  for p in "${verify_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [[ -n "$sluice_pid" ]] && kill -TERM "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  scripts/kafka.sh stop --dir "$state/kafka" >/dev/null 2>&1
  scripts/mosquitto.sh stop --dir "$state/cloud" >/dev/null 2>&1
  scripts/mosquitto.sh stop --dir "$state/mosquitto" >/dev/null 2>&1
  rm -rf "$state"
}
trap cleanup EXIT
trap 'say "interrupted; stopping everything"; exit 130' INT TERM

# Both Mosquittos keep persistent sessions across a stop: the local one sluice's, the cloud one
# the verifier's, which must not lose what was queued for it while the cloud broker was down.
say "starting Mosquitto (devices) on 127.0.0.1:$mqtt_port, Mosquitto (cloud) on" \
  "127.0.0.1:$cloud_port and Kafka on 127.0.0.1:$kafka_port"
scripts/mosquitto.sh start --dir "$state/mosquitto" --port "$mqtt_port" --persistence >/dev/null
scripts/mosquitto.sh start --dir "$state/cloud" --port "$cloud_port" --persistence >/dev/null
scripts/kafka.sh start --dir "$state/kafka" --port "$kafka_port" >/dev/null

# The cloud side is read back at the end through a persistent session made now, before anything
# is published, so that the cloud broker queues every event sluice sends it.
cloud_reader=("$verify" --source mqtt --url "tcp://127.0.0.1:$cloud_port" --mqtt-version 5
  --client-id "$reader_id" --topic "$cloud_filter")
"${cloud_reader[@]}" --subscribe-only >/dev/null

cat >"$state/sluice.toml" <<TOML
[gateway]
id = "demo-gateway"
[storage]
path = "$state/sluice/events.db"
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
reconnect_max_ms = 2000
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"

[upstream.central]
kind = "kafka"
brokers = "127.0.0.1:$kafka_port"
reconnect_max_ms = 1000

[upstream.cloud]
kind = "mqtt"
url = "tcp://127.0.0.1:$cloud_port"
protocol = "5"
reconnect_max_ms = 1000

[[route]]
mqtt = "devices/+/telemetry"
key = "devices/{device}/#"
qos = 1
to = { central = "$topic", cloud = "site/{gateway}/{mqtt_topic}" }
[[route]]
mqtt = "devices/+/events"
key = "devices/{device}/#"
qos = 1
to = { central = "$topic", cloud = "site/{gateway}/{mqtt_topic}" }
TOML
"$sluice" run --config "$state/sluice.toml" >"$state/sluice.log" 2>&1 &
sluice_pid=$!
# Ready: subscribed to Mosquitto and both upstreams reachable, as /readyz tells a probe.
sluice_wait_ready 127.0.0.1 "$metrics_port" 60 "$sluice_pid" || { cat "$state/sluice.log"; exit 1; }
say "sluice running and ready (pid $sluice_pid, http://127.0.0.1:$metrics_port/readyz), log in $state/sluice.log"

status_text() { "$sluice" status --config "$state/sluice.toml"; }
last_seq() { status_text | sed -n 's/^sequence *last assigned \([0-9]*\).*/\1/p'; }
cursor_of() {  # cursor_of UPSTREAM: every event up to it is confirmed by that upstream
  status_text | sed -n "s/^upstream *$1: cursor \([0-9]*\),.*/\1/p"
}
backlog_events() {  # events some upstream has not confirmed yet
  "$sluice" status --config "$state/sluice.toml" --json |
    sed -n 's/^  "backlog_events": \([0-9]*\).*/\1/p'
}
# One line per upstream from the metrics endpoint: what it confirmed (this process), its backlog and
# the age of its oldest waiting event.
upstream_line() {
  local metrics
  metrics=$(sluice_http 127.0.0.1 "$metrics_port" /metrics) || metrics=""
  awk '
    function v(name, up) { return (name "{upstream=\"" up "\"}") in m ? m[name "{upstream=\"" up "\"}"] : "?" }
    { m[$1] = $2 }
    END {
      n = split("central cloud", ups, " ")
      for (i = 1; i <= n; i++) {
        u = ups[i]
        printf "%s%s %s: confirmed %d, backlog %d events (oldest %d s)", (i > 1 ? " | " : ""), u,
          (v("sluice_upstream_connected", u) == 1 ? "up  " : "DOWN"),
          v("sluice_events_forwarded_total", u), v("sluice_upstream_backlog_events", u),
          v("sluice_upstream_backlog_oldest_age_seconds", u)
      }
    }' <<<"$metrics"
}
show_status() {  # the per-upstream lines of `sluice status`, as an operator would see them
  say "sluice status:"
  status_text | grep -E '^(backlog|upstream) ' | sed 's/^/    /'
}
# Waits until UPSTREAM has confirmed every event up to SEQ, printing progress; fails after 120 s.
wait_drained() {
  local upstream=$1 seq=$2 started=$SECONDS cursor
  while :; do
    cursor=$(cursor_of "$upstream")
    say "  $(upstream_line)"
    ((${cursor:-0} >= seq)) && break
    if ((SECONDS - started > 120)); then
      say "RESULT: FAILED: $upstream still at cursor $cursor after 120 s (wanted $seq; log: $state/sluice.log)"
      exit 1
    fi
    sleep 1
  done
  say "$upstream's outage backlog (up to seq $seq) confirmed $((SECONDS - started)) s after it came back; live events keep flowing"
}
outage_ticks() {  # outage_ticks SECONDS: a line every 2 s while one upstream is down
  local t
  for ((t = 0; t < $1; t += 2)); do
    sleep 2
    say "  $(upstream_line)"
  done
}

total_s=$((warmup_s + cloud_outage_s + between_s + outage_s + after_s))
say "starting the fleet: $devices simulated devices (telemetry, vibration, alarms, doors), ${total_s}s"
"$sim" --url "tcp://127.0.0.1:$mqtt_port" --devices "$devices" --rate "$rate" --duration "$total_s" \
  --seed 42 --summary-json "$state/fleet.json" --progress-interval 5 >"$state/sim.log" 2>&1 &
sim_pid=$!
phase_start=$SECONDS

sleep "$warmup_s"
say "both upstreams up: $(upstream_line)"

say "cutting the cloud: its Mosquitto stopped for ${cloud_outage_s}s; Kafka keeps receiving"
scripts/mosquitto.sh stop --dir "$state/cloud" >/dev/null
outage_ticks "$cloud_outage_s"
show_status
say "cloud back: its Mosquitto starting"
scripts/mosquitto.sh start --dir "$state/cloud" --port "$cloud_port" --persistence >/dev/null
wait_drained cloud "$(last_seq)"

# Kafka's outage starts on the fleet's schedule, however long the cloud took to drain.
rest=$((warmup_s + cloud_outage_s + between_s - (SECONDS - phase_start)))
((rest > 0)) && sleep "$rest"
say "cutting Kafka: stopped for ${outage_s}s; the cloud keeps receiving"
scripts/kafka.sh stop --dir "$state/kafka" >/dev/null
outage_ticks "$outage_s"
show_status
say "Kafka back: starting"
scripts/kafka.sh start --dir "$state/kafka" --port "$kafka_port" >/dev/null
wait_drained central "$(last_seq)"

wait "$sim_pid"
sim_pid=""
say "fleet finished: $(grep '^total:' "$state/sim.log" || tail -1 "$state/sim.log")"
for _ in $(seq 1 60); do [[ "$(backlog_events)" == 0 ]] && break; sleep 0.5; done
show_status

say "reading both sides back and checking every device's sequence, per boot:"
say "  central: topic '$topic' from Kafka; cloud: '$cloud_filter' through the reader's session"
"$verify" --brokers "127.0.0.1:$kafka_port" --topic "$topic" --expect "$state/fleet.json" \
  --idle-timeout 5 --json "$state/central.json" >"$state/central.txt" 2>&1 &
verify_pids+=($!)
"${cloud_reader[@]}" --expect "$state/fleet.json" --idle-timeout 5 --json "$state/cloud.json" \
  >"$state/cloud.txt" 2>&1 &
verify_pids+=($!)
rc_central=0
rc_cloud=0
wait "${verify_pids[0]}" || rc_central=$?
wait "${verify_pids[1]}" || rc_cloud=$?
verify_pids=()
for side in central cloud; do
  echo
  echo "=== $side ==="
  cat "$state/$side.txt"
done
echo

total() {  # total FILE KEY: a figure of the verifier's "totals" (its first object at indent 4)
  sed -n "s/^    \"$2\": \([0-9]*\).*/\1/p" "$1" | head -1
}
sent=$(total "$state/fleet.json" sent)
printf '%-8s %-32s %8s %8s %6s %10s %9s  %s\n' upstream "read back from" sent arrived lost \
  duplicates reordered result
for side in central cloud; do
  rc_var=rc_$side
  if [[ "$side" == central ]]; then
    where="Kafka topic $topic"
  else
    where="MQTT $cloud_filter (MQTT 5)"
  fi
  if [[ -s "$state/$side.json" ]]; then
    printf '%-8s %-32s %8s %8s %6s %10s %9s  %s\n' "$side" "$where" "$sent" \
      "$(total "$state/$side.json" records)" "$(total "$state/$side.json" lost)" \
      "$(total "$state/$side.json" duplicates)" "$(total "$state/$side.json" reordered)" \
      "$([[ ${!rc_var} == 0 ]] && echo passed || echo FAILED)"
  else
    printf '%-8s %-32s %8s %8s %6s %10s %9s  %s\n' "$side" "$where" "$sent" - - - - \
      "FAILED (verifier exit ${!rc_var})"
  fi
done
echo "sent: events the devices published; arrived: records read back, duplicates included;"
echo "lost, duplicates, reordered: per device and boot, as sluice-verify counts them (above)"
echo
if ((rc_central == 0 && rc_cloud == 0)); then
  say "RESULT: every event the devices sent arrived in Kafka and at the cloud broker, in order per device, none lost"
else
  say "RESULT: FAILED (see the verifiers' reports above; sluice's log: $state/sluice.log)"
  exit 1
fi
