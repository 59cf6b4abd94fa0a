#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sluice on a Raspberry-Pi-class SD card (bench/throttled-disk.sh): the card's own limit for
# durable appends, the proof that the throttle holds, and how much sluice writes to the card per
# event at steady rates. Prints markdown tables (docs/performance.md, "Flash wear", explains them).
#
# Usage: bench/sd-card.sh BUILD_DIR [--seconds S] [--rates "100 1000"] [--syncs "normal full"]
#                         [--probe-seconds P] [--write-iops N] [--write-mbps M]
#                         [--commit-interval-ms MS]
#   BUILD_DIR        has gateway/sluice and bench/sluice-bench
#   --seconds S      length of each ingest run (default 60)
#   --rates, --syncs the ingest runs: every rate (QoS 1 events/s) under every storage.sync
#   --probe-seconds  length of each fsync probe (default 10)
#   --write-iops, --write-mbps  the card (default: throttled-disk.sh's, an A1 card)
#   --commit-interval-ms  storage.commit_interval_ms for sluice (default: sluice's own)
# Environment: BENCH_PORT_BASE (default 23010): Mosquitto on BASE+7, sluice's metrics on BASE+8,
#   and BASE+9 as the Kafka that is not there (the ingest runs measure the log alone).
# Needs root (throttled-disk.sh). Takes about 35 s + runs x (S + 1) s (4 min 40 s by default).
# The card is /tmp/sluice-sd.*/card, removed at the end whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '7,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
(($#)) || usage
build_dir=$(realpath "$1")
shift
secs=60 rates="100 1000" syncs="normal full" probe_secs=10 card_args=() commit_interval_ms=""
while (($#)); do
  case $1 in
  --seconds) secs=${2:?}; shift 2 ;;
  --rates) rates=${2:?}; shift 2 ;;
  --syncs) syncs=${2:?}; shift 2 ;;
  --commit-interval-ms) commit_interval_ms=${2:?}; shift 2 ;;
  --probe-seconds) probe_secs=${2:?}; shift 2 ;;
  --write-iops | --write-mbps) card_args+=("$1" "${2:?}"); shift 2 ;;
  -h | --help) usage ;;
  *) echo "bench/sd-card.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
sluice=$build_dir/gateway/sluice
bench=$build_dir/bench/sluice-bench
[[ -x "$sluice" && -x "$bench" ]] ||
  { echo "bench/sd-card.sh: no sluice or sluice-bench in $build_dir" >&2; exit 1; }
base=${BENCH_PORT_BASE:-23010}
mqtt_port=$((base + 7)) metrics_port=$((base + 8)) kafka_port=$((base + 9))

started=$(date +%s)
say() { printf '[sd-card +%4ss] %s\n' "$(($(date +%s) - started))" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }
# shellcheck source=scripts/lib/sluice_http.sh
source scripts/lib/sluice_http.sh

work=$(mktemp -d /tmp/sluice-sd.XXXXXX)
card=$work/card
sluice_pid=""
cleanup() {
  set +e
  [[ -n "$sluice_pid" ]] && kill -KILL "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  scripts/mosquitto.sh stop --dir "$work/mosquitto" >/dev/null 2>&1
  bench/throttled-disk.sh down "$card"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# field FILE KEY: the first number under KEY in a JSON file of sluice-bench.
field() { grep -o "\"$2\": [-0-9.e+]*" "$1" | head -1 | sed 's/.*: //'; }
card_up() {
  bench/throttled-disk.sh up "$card" "$@" >/dev/null || {
    rc=$?
    ((rc == 77)) && exit 77
    die "throttled-disk.sh up"
  }
}
loop=""
# Bytes written to the card's device so far (sectors of 512 B), its ext4 journal included.
dev_bytes() { echo $(($(awk '{ print $7 }' "/sys/block/$(basename "$loop")/stat") * 512)); }
wbytes() { awk '/^write_bytes/ { print $2 }' "/proc/$1/io"; }
secs_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# ---- the card: fsync probe and dd, unthrottled then throttled -----------------------------------
card_up --write-iops 0 --write-mbps 0
loop=$(findmnt -no SOURCE --mountpoint "$card")
probe_rows=""
for mode in unthrottled throttled; do
  [[ $mode == throttled ]] && card_up "${card_args[@]}"
  say "$mode: fsync probe (${probe_secs} s), dd 50 MiB with fdatasync, buffered dd 50 MiB + syncfs"
  "$bench" fsync-probe --dir "$card" --record-bytes 150 --seconds "$probe_secs" \
    --json "$work/probe-$mode.json" || die "fsync-probe"
  t=$(date +%s.%N)
  dd if=/dev/zero of="$card/dd" bs=1M count=50 conv=fdatasync status=none
  dd_sync=$(secs_since "$t")
  rm "$card/dd" && sync -f "$card"
  t=$(date +%s.%N)
  dd if=/dev/zero of="$card/dd" bs=1M count=50 status=none
  dd_buf=$(secs_since "$t")
  sync -f "$card"
  dd_buf_sync=$(secs_since "$t")
  rm "$card/dd" && sync -f "$card"
  p=$work/probe-$mode.json
  probe_rows+=$(printf '| %s | %.0f | %.0f / %.0f | %.0f | %.0f | %.1f | %s s; %s s |' "$mode" \
    "$(field "$p" records_per_s)" "$(field "$p" p50)" "$(field "$p" p99)" \
    "$(field "$p" bytes_written_per_record)" "$(field "$p" device_bytes_written_per_record)" \
    "$(awk -v s="$dd_sync" 'BEGIN { print 52.4288 / s }')" "$dd_buf" "$dd_buf_sync")$'\n'
done

# ---- sluice ingest: write volume per event ------------------------------------------------------
say "starting Mosquitto on 127.0.0.1:$mqtt_port (off the card, no persistence)"
scripts/mosquitto.sh start --dir "$work/mosquitto" --port "$mqtt_port" >/dev/null
! (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null ||
  die "port $kafka_port is taken (it stands for a Kafka that is down)"
ingest_rows=""
for sync in $syncs; do
  for rate in $rates; do
    run=$sync-$rate
    count=$((rate * secs))
    mkdir -p "$work/$run" "$card/$run"
    cat >"$work/$run/sluice.toml" <<TOML
[gateway]
id = "sd-card"
[storage]
path = "$card/$run/events.db"
max_bytes = "400MiB"
sync = "$sync"
${commit_interval_ms:+commit_interval_ms = $commit_interval_ms}
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
client_id = "sd-card-sluice-$run"
[upstream.kafka]
kind = "kafka"
brokers = "127.0.0.1:$kafka_port"
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"
[[route]]
mqtt = "sd/#"
to = { kafka = "sd" }
key = "sd/{device}/#"
qos = 1
TOML
    sluice_start "$sluice" "$work/$run" "$metrics_port" 15 || die "sluice ($run) did not subscribe"
    sync -f "$card"
    say "sync=$sync: $count QoS 1 events of 100 B at $rate ev/s"
    dev0=$(dev_bytes) wb0=$(wbytes "$sluice_pid")
    "$bench" publish --url "tcp://127.0.0.1:$mqtt_port" --client-id "sd-card-pub-$run" \
      --topic-prefix sd --qos 1 --payload-bytes 100 --tag "$run" --count "$count" --rate "$rate" \
      --finish-timeout 600 --json "$work/$run/pub.json" >/dev/null || die "publish ($run)"
    # QoS 1 is acknowledged only once in the log: every completed publish is there.
    wb1=$(wbytes "$sluice_pid")
    kill -KILL "$sluice_pid"
    wait "$sluice_pid" 2>/dev/null || true
    sluice_pid=""
    # What sluice left dirty in the page cache is its writing too: to the card before counting.
    sync -f "$card"
    dev1=$(dev_bytes)
    # Events sluice made durable (the log and its ingress journal), not those the publisher got
    # a PUBACK for: Mosquitto acknowledges the publisher at once and queues what sluice has not
    # taken yet, so on a slow card the two differ.
    "$sluice" status --config "$work/$run/sluice.toml" --json >"$work/$run/status.json" ||
      die "sluice status ($run)"
    n=$(($(field "$work/$run/status.json" last_seq) + $(field "$work/$run/status.json" journal_pending)))
    ((n > 0)) || die "no event of $run was stored"
    dev_per=$(awk -v d="$((dev1 - dev0))" -v n="$n" 'BEGIN { print d / n }')
    ingest_rows+=$(printf '| %s | %s | %s | %.0f | %s | %.0f | %.0f | %.2f |' "$sync" \
      "${commit_interval_ms:-default}" "$rate" \
      "$(awk -v n="$n" -v s="$(field "$work/$run/pub.json" elapsed_s)" 'BEGIN { print n / s }')" "$n" \
      "$(awk -v d="$((wb1 - wb0))" -v n="$n" 'BEGIN { print d / n }')" "$dev_per" \
      "$(awk -v b="$dev_per" -v r="$rate" 'BEGIN { print b * r * 86400 / 1e9 }')")$'\n'
    rm -rf "${card:?}/$run"
    sync -f "$card"
  done
done

cat <<MD
Card: $(bench/throttled-disk.sh status "$card" | tr '\n' ' ')

| Card | fsync probe, 150-B records/s | latency p50 / p99 (us) | write_bytes / record | device bytes / record | dd 50 MiB + fdatasync (MB/s) | buffered dd 50 MiB; + syncfs |
|---|---:|---:|---:|---:|---:|---:|
${probe_rows}
| storage.sync | commit_interval_ms | offered ev/s | stored ev/s | events stored | sluice write_bytes / event | device bytes / event | GB/day at the offered rate |
|---|---:|---:|---:|---:|---:|---:|---:|
${ingest_rows}
MD
say "done"
