#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sluice benchmarks, side by side with Mosquitto's bridge, in one run (see bench/README.md).
#
# Usage: bench/run.sh [--smoke] [--eos|--no-eos] [--outage-events N] [--repetitions N]
#                     [--stages LIST] [--data-dir DIR] [--out DIR] [--build-dir DIR] [--keep-work]
#   --smoke      tiny sizes: checks that every stage produces its figures (CI)
#   --repetitions N  alternating ceiling/sluice repetitions per ingest figure (default 3; smoke 2)
#   --stages LIST  comma-separated, of ingest (ceiling, ingest, fsync probe), drain (latency,
#                outage, drain, bare-producer probe), bridge (Mosquitto's bridge), drain-kinesis
#                (the outage and drain against kinesalite, the Kinesis upstream), drain-rabbitmq
#                (the same outage drained to a RabbitMQ stream); default ingest,drain,bridge,
#                drain-kinesis; with --smoke all five
#   --data-dir DIR  where sluice's logs, the edge bridge's persistence and the fsync probe's file
#                live, in a fresh directory under DIR (default: the --out directory's work/data),
#                e.g. on a throttled block device
#   --eos, --no-eos  run the online, outage and drain stages a second time with delivery =
#                "exactly-once" (default: in the full run, not in the smoke run)
#   --outage-events N  events buffered during the outage (default 1,000,000; smoke 20,000)
#   --out DIR    results (default build/bench-results): results.md, results.json, drain.png,
#                machine.json and the raw measurements in DIR/raw
#   --build-dir  use sluice, sluice-bench from this build instead of building build/bench
#   --keep-work  keep the brokers' and sluice's state (DIR/work) for inspection
# Environment: BENCH_PORT_BASE (default 23010) takes ports BASE..BASE+6 on 127.0.0.1 (and
#   BASE+7 for drain-kinesis's kinesalite, BASE+8..BASE+14 for drain-rabbitmq's broker);
#   BENCH_BRIDGE_AUTOSAVE (default 1800, Mosquitto's own default) seconds between the edge
#   Mosquitto's persistence saves.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

smoke=0
out=$root/build/bench-results
build_dir=""
keep_work=0
eos=""
outage_override=""
reps_override=""
stages=""
data_dir=""
while (($#)); do
  case $1 in
  --smoke) smoke=1; shift ;;
  --out) out=${2:?}; shift 2 ;;
  --build-dir) build_dir=${2:?}; shift 2 ;;
  --keep-work) keep_work=1; shift ;;
  --outage-events) outage_override=${2:?}; shift 2 ;;
  --eos) eos=1; shift ;;
  --no-eos) eos=0; shift ;;
  --repetitions) reps_override=${2:?}; shift 2 ;;
  --stages) stages=${2:?}; shift 2 ;;
  --data-dir) data_dir=${2:?}; shift 2 ;;
  -h | --help) sed -n '3,27p' "$0"; exit 0 ;;
  *) echo "bench/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The exactly-once pass repeats stages 3-5 (two Kafka restarts): the smoke run leaves it out to
# stay short, unless asked.
[[ -n "$eos" ]] || eos=$((!smoke))
# Sizes, per repetition for the ingest figures. The full run takes about 15-20 minutes on a
# 2-core machine.
if ((smoke)); then
  reps=2 ceil_n0=3000 ceil_n1=2000 ingest_full_q1=300 fsync_secs=1
  lat_secs_1k=3 lat_secs_10k=1
  outage_n=20000 live_rate=200 live_secs=5
else
  reps=3 ceil_n0=100000 ceil_n1=50000 ingest_full_q1=4000 fsync_secs=3
  lat_secs_1k=20 lat_secs_10k=10
  outage_n=1000000 live_rate=1000 live_secs=30
fi
if [[ -n "$outage_override" ]]; then
  [[ "$outage_override" =~ ^[1-9][0-9]*$ ]] || { echo "bench/run.sh: bad --outage-events" >&2; exit 2; }
  outage_n=$outage_override
fi
if [[ -n "$reps_override" ]]; then
  [[ "$reps_override" =~ ^[1-9][0-9]?$ ]] || { echo "bench/run.sh: bad --repetitions" >&2; exit 2; }
  reps=$reps_override
fi
# drain-rabbitmq boots a RabbitMQ broker twice: a full run leaves it out unless asked, the smoke
# run takes it so that the stage cannot rot.
if [[ -z "$stages" ]]; then
  stages=ingest,drain,bridge,drain-kinesis
  if ((smoke)); then stages+=,drain-rabbitmq; fi
fi
declare -A run_stage=()
IFS=, read -r -a stage_list <<<"$stages"
for st in "${stage_list[@]}"; do
  case $st in
  ingest | drain | bridge | drain-kinesis | drain-rabbitmq) run_stage[$st]=1 ;;
  *) echo "bench/run.sh: unknown stage '$st' (ingest, drain, bridge, drain-kinesis, drain-rabbitmq)" >&2; exit 2 ;;
  esac
done
((${#run_stage[@]})) || { echo "bench/run.sh: --stages names no stage" >&2; exit 2; }
want() { [[ -n "${run_stage[$1]:-}" ]]; }
if [[ -n "$data_dir" && ! -d "$data_dir" ]]; then
  echo "bench/run.sh: --data-dir $data_dir is not a directory" >&2
  exit 2
fi
autosave=${BENCH_BRIDGE_AUTOSAVE:-1800}
# Below Linux's ephemeral range (32768-60999 by default): a listener there can find its port taken
# by some client's outgoing connection (a CI run lost the bridge's port 47014 that way).
base=${BENCH_PORT_BASE:-23010}
mqtt_port=$base kafka_port=$((base + 2)) kafka_ctl=$((base + 3))
edge_port=$((base + 4)) upstream_port=$((base + 5)) metrics_port=$((base + 6))
kinesis_port=$((base + 7))
# scripts/rabbitmq.sh takes PORT..PORT+6 (AMQP, AMQPS, the node's distribution port, its epmd and
# the command-line tools' distribution ports): BASE+8..BASE+14, clear of kinesalite's BASE+7.
rabbitmq_port=$((base + 8))
# How the uplink goes away in the drain stage (uplink_down, below): a network cut where nftables
# may be used, else Kafka stopped.
nft_table=sluice_bench_$kafka_port
outage_kind=kafka-restart
if [[ $(id -u) == 0 ]] && command -v nft >/dev/null && nft add table inet "$nft_table" 2>/dev/null; then
  nft delete table inet "$nft_table"
  outage_kind=network-cut
fi
# Kafka's JVM as Kafka's own start scripts set it (kafka-server-start.sh, kafka-run-class.sh): a
# 1 GiB heap and G1 aiming at 20 ms pauses. The tests' serial collector is lighter but stops the
# broker for 26-220 ms now and then (its GC log, beside the latencies), which the latency figures
# would charge to sluice.
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g}
export KAFKA_GC_OPTS=${KAFKA_GC_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15}

started=$(date +%s)
say() { printf '[bench %s +%4ss] %s\n' "$(date +%H:%M:%S)" "$(($(date +%s) - started))" "$*"; }
die() { say "FAILED: $*" >&2; exit 1; }
now_us() { date +%s%6N; }
# shellcheck source=scripts/lib/sluice_http.sh
source scripts/lib/sluice_http.sh

say "setting up: packages, Kafka jars, build"
scripts/install-deps.sh >/dev/null
scripts/kafka.sh fetch >/dev/null
! want drain-kinesis || scripts/kinesis.sh fetch >/dev/null
if [[ -z "$build_dir" ]]; then
  build_dir=$root/build/bench
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF >/dev/null
  cmake --build "$build_dir" -j "$(nproc)" --target sluice sluice-bench >/dev/null
fi
sluice=$build_dir/gateway/sluice
bench=$build_dir/bench/sluice-bench
[[ -x "$sluice" && -x "$bench" ]] || die "no sluice or sluice-bench in $build_dir"

mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw
work=$out/work
rm -rf "$raw" "$work"
mkdir -p "$raw" "$work"
# sluice's logs, the edge bridge's persistence and the fsync probe's file: the disk under test.
if [[ -n "$data_dir" ]]; then
  data=$(mktemp -d "$(cd "$data_dir" && pwd)/sluice-bench.XXXXXX")
else
  data=$work/data
  mkdir -p "$data"
fi

sluice_pid=""
bg_pids=()
cleanup() {
  set +e
  for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [[ -n "$sluice_pid" ]] && kill -TERM "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null
  [[ ${outage_kind:-} != network-cut ]] || nft delete table inet "$nft_table" 2>/dev/null
  scripts/kafka.sh stop --dir "$work/kafka" >/dev/null 2>&1
  scripts/kinesis.sh stop --dir "$work/kinesis" >/dev/null 2>&1
  scripts/rabbitmq.sh stop --dir "$work/rabbitmq" >/dev/null 2>&1
  for d in "$work/mosquitto" "$data/edge" "$work/upstream"; do
    scripts/mosquitto.sh stop --dir "$d" >/dev/null 2>&1
  done
  ((keep_work)) || rm -rf "$work" "$data"
}
trap cleanup EXIT
trap 'say "interrupted; stopping everything"; exit 130' INT TERM

# ---- the machine -------------------------------------------------------------------------------
disk_dev=$(df --output=source "$data" | tail -1)
disk_parent=$(lsblk -no PKNAME "$disk_dev" 2>/dev/null | head -1)
[[ -n "$disk_parent" ]] || disk_parent=$(basename "$disk_dev")
json_str() { printf '"%s"' "$(printf '%s' "$1" | tr -d '"\\' | tr -s ' ')"; }
cat >"$raw/machine.json" <<JSON
{
  "cpu": $(json_str "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"),
  "cores": $(nproc),
  "ram_mib": $(awk '/MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo),
  "kernel": $(json_str "$(uname -sr)"),
  "os": $(json_str "$(. /etc/os-release && echo "$PRETTY_NAME")"),
  "data_dir": $(json_str "$data"),
  "disk": $(json_str "$disk_dev ($(df --output=fstype "$data" | tail -1), $(lsblk -dno MODEL,ROTA,SIZE "/dev/$disk_parent" 2>/dev/null | awk '{ r = $(NF-1) == 1 ? "rotational" : "non-rotational"; print $0 " " r }'))"),
  "loadavg_at_start": $(json_str "$(cut -d' ' -f1-3 /proc/loadavg)"),
  "mosquitto": $(json_str "$(mosquitto -h 2>/dev/null | head -1)"),
  "smoke": $( ((smoke)) && echo true || echo false)
}
JSON
# The fsync probe is another helper's subcommand: without it the sync = "full" ratio is n/a.
fsync_probe=false
# (Not `fsync-probe --help`: CLI11 answers the app's --help before it looks at the subcommand.)
bench_help=$("$bench" --help 2>/dev/null || true)
[[ $bench_help =~ $'\n'\ *fsync-probe\  ]] && fsync_probe=true
json_stages=$(printf '"%s", ' "${stage_list[@]}")
cat >"$raw/sizes.json" <<JSON
{ "repetitions": $reps, "stages": [${json_stages%, }], "fsync_probe": $fsync_probe,
  "fsync_probe_seconds": $fsync_secs, "produce_probe_records": $outage_n,
  "ceiling_qos0": $ceil_n0, "ceiling_qos1": $ceil_n1, "ingest_full_qos1": $ingest_full_q1,
  "latency_seconds": [$lat_secs_1k, $lat_secs_10k], "outage_events": $outage_n,
  "live_rate": $live_rate, "live_seconds": $live_secs, "bridge_autosave_s": $autosave,
  "exactly_once": $( ((eos)) && echo true || echo false), "outage": "$outage_kind" }
JSON
say "machine: $(tr -d '\n' <"$raw/machine.json" | tr -s ' ')"

# ---- process figures from /proc ----------------------------------------------------------------
tck=$(getconf CLK_TCK)
# proc_sample PID: "cpu_ticks write_bytes rss_kib hwm_kib"
proc_sample() {
  local pid=$1 ticks wb rss hwm
  ticks=$(sed -E 's/^.*\) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
  wb=$(awk '/^write_bytes/ { print $2 }' "/proc/$pid/io")
  rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
  echo "$ticks $wb $rss $hwm"
}
# proc_json BEFORE AFTER [extra json fields]: deltas of CPU and writes, RSS and peak at AFTER.
proc_json() {
  local -a b a
  read -r -a b <<<"$1"
  read -r -a a <<<"$2"
  printf '{ "cpu_s": %s, "write_bytes": %s, "rss_kib": %s, "hwm_kib": %s%s }\n' \
    "$(awk -v x="${a[0]}" -v y="${b[0]}" -v t="$tck" 'BEGIN { printf "%.2f", (x - y) / t }')" \
    "$((a[1] - b[1]))" "${a[2]}" "${a[3]}" "${3:+, $3}"
}
# field FILE KEY: the first number under KEY anywhere in FILE (the raw files name each key once
# per level, and the first occurrence is the one of the main run).
field() { grep -o "\"$2\": [-0-9.e+]*" "$1" | head -1 | sed 's/.*: //'; }
# field_in FILE SECTION KEY: the same, from where key SECTION begins.
field_in() { sed -n "/\"$2\": /,\$p" "$1" | grep -o "\"$3\": [-0-9.e+]*" | head -1 | sed 's/.*: //'; }

# gc_pauses LATENCY_JSON: Kafka's GC pauses (scripts/kafka.sh logs them) between the first event
# published and the last appended in that latency run, as JSON: a stall of the broker, not sluice.
gc_pauses() {
  local first last max from to
  first=$(field "$1" first_us | cut -d. -f1)
  last=$(field "$1" last_us | cut -d. -f1)
  max=$(field "$1" max | cut -d. -f1)
  if [[ -z "$first" || -z "$last" || -z "$max" ]]; then
    echo '{}'
    return
  fi
  from=$((first / 1000 - max))
  to=$((last / 1000))
  cat "$work"/kafka/gc-*.log 2>/dev/null | awk -v from="$from" -v to="$to" '
    match($0, /\[[0-9]+ms\]/) {
      t = substr($0, RSTART + 1, RLENGTH - 4) + 0
      if (t < from || t > to || $0 !~ /Pause/ || $NF !~ /ms$/) next
      ms = substr($NF, 1, length($NF) - 2) + 0
      n++; total += ms; if (ms > max) max = ms
    }
    END { printf "{ \"pauses\": %d, \"total_ms\": %.1f, \"max_ms\": %.1f }\n", n, total, max }'
}

# commit_sample: from the running sluice's /metrics, "commits over_50ms over_100ms journal_waits":
# its append transactions so far, those that took over 50 and over 100 ms, and the times an
# acknowledgement waited for the ingress journal. Where a latency stage's tail comes from sluice's
# own writes, these say so.
commit_sample() {
  { sluice_http 127.0.0.1 "$metrics_port" /metrics || true; } | awk '
    /^sluice_log_commit_duration_seconds_bucket/ {
      match($0, /le="[^"]*"/)
      le = substr($0, RSTART + 4, RLENGTH - 5)
      if (le == "0.05") le50 = $NF
      if (le == "0.1") le100 = $NF
    }
    /^sluice_log_commit_duration_seconds_count/ { n = $NF }
    /^sluice_journal_waits_total/ { w = $NF }
    END { printf "%d %d %d %d\n", n, n - le50, n - le100, w }'
}
# commit_json BEFORE AFTER: the difference of two commit_samples, as JSON.
commit_json() {
  local -a b a
  read -r -a b <<<"$1"
  read -r -a a <<<"$2"
  printf '{ "commits": %d, "commits_over_50ms": %d, "commits_over_100ms": %d, "journal_waits": %d }\n' \
    $((a[0] - b[0])) $((a[1] - b[1])) $((a[2] - b[2])) $((a[3] - b[3]))
}

# ---- brokers and sluice ------------------------------------------------------------------------
mosq() { scripts/mosquitto.sh "$@" >/dev/null; }
# wait_file FILE WHAT PID: polls for FILE, written by process PID, for up to 10 s.
wait_file() {
  for _ in $(seq 1 200); do
    [[ -f "$1" ]] && return 0
    kill -0 "$3" 2>/dev/null || die "$2 (it exited)"
    sleep 0.05
  done
  die "$2"
}

# start_sluice NAME SYNC [DELIVERY [TOPIC_PREFIX [STORAGE_LINE]]]: config and output in $work/NAME, the log in
# $data/NAME/events.db; one Kafka upstream named "kafka" (its cursor is
# what watch-log follows), delivery at-least-once unless given; stage S goes to Kafka topic
# TOPIC_PREFIX-S (default bench-S). Every instance has the same MQTT client id, so each one takes
# over the persistent session of the one before instead of leaving it to queue.
start_sluice() {
  local name=$1 sync=$2 delivery=${3:-at-least-once} topics=${4:-bench} storage_line=${5:-}
  mkdir -p "$work/$name" "$data/$name"
  cat >"$work/$name/sluice.toml" <<TOML
[gateway]
id = "bench"
[storage]
path = "$data/$name/events.db"
max_bytes = "8GiB"
sync = "$sync"
$storage_line
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
client_id = "bench-sluice"
reconnect_max_ms = 1000
[upstream.kafka]
kind = "kafka"
brokers = "127.0.0.1:$kafka_port"
reconnect_max_ms = 500
delivery = "$delivery"
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"
TOML
  for stage in ingest lat drain live; do
    printf '[[route]]\nmqtt = "bench/%s/#"\nto = { kafka = "%s-%s" }\nkey = "bench/%s/{device}/#"\nqos = 1\n' \
      "$stage" "$topics" "$stage" "$stage" >>"$work/$name/sluice.toml"
  done
  # Subscribed, read from the endpoint: the ingest runs have no Kafka, so /readyz stays 503.
  sluice_start "$sluice" "$work/$name" "$metrics_port" 10 ||
    die "sluice ($name) did not connect to Mosquitto"
}
stop_sluice() {
  kill -TERM "$sluice_pid"
  wait "$sluice_pid" || die "sluice exited with an error (see $work/*/sluice.log)"
  sluice_pid=""
}
kill_sluice() {
  kill -KILL "$sluice_pid"
  wait "$sluice_pid" 2>/dev/null || true
  sluice_pid=""
}
last_seq() { "$bench" watch-log --db "$1" --timeout 10 | sed -n 's/^ *"last_seq": \([0-9]*\).*/\1/p'; }

publish() {  # publish TAG PREFIX QOS BYTES COUNT RATE URL JSON
  "$bench" publish --tag "$1" --topic-prefix "$2" --qos "$3" --payload-bytes "$4" --count "$5" \
    --rate "$6" --url "$7" --client-id "bench-pub-$1" --json "$8" >/dev/null
}

# ---- 1-2. ingest into the durable log against the no-gateway ceiling -----------------------------
# Every figure is measured $reps times, alternating: the ceiling (publisher -> Mosquitto -> plain
# subscriber, on topics sluice does not subscribe to), then sluice (publisher -> Mosquitto ->
# sluice's log, uplink down: only the log is measured), so that each ratio compares neighbours in
# time; the report takes the medians and shows the spread. Under sync = "full", QoS 1, the fsync
# probe runs before sluice in each repetition, in the directory of sluice's log.

# rate_of N FROM_US TO_US: events/s
rate_of() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", (b > a ? n / ((b - a) / 1e6) : 0) }'; }

# ceiling NAME QOS BYTES COUNT: raw/ceiling-NAME.{pub,sub}.json; the rate in c_rate.
ceiling() {
  local c=$1 qos=$2 bytes=$3 n=$4 sub
  rm -f "$work/ready"
  "$bench" subscribe --url "tcp://127.0.0.1:$mqtt_port" --client-id bench-ceiling \
    --filter 'bench/ceiling/#' --qos "$qos" --tag "$c" --count "$n" --idle-timeout 5 \
    --timeout 300 --ready-file "$work/ready" --json "$raw/ceiling-$c.sub.json" &
  sub=$!
  bg_pids+=("$sub")
  wait_file "$work/ready" "ceiling subscriber did not subscribe" "$sub"
  publish "$c" bench/ceiling "$qos" "$bytes" "$n" 0 "tcp://127.0.0.1:$mqtt_port" \
    "$raw/ceiling-$c.pub.json"
  wait "$sub" || die "ceiling subscriber failed"
  bg_pids=()
  c_rate=$(rate_of "$(field "$raw/ceiling-$c.sub.json" unique)" \
    "$(field "$raw/ceiling-$c.pub.json" start_us)" "$(field "$raw/ceiling-$c.sub.json" last_us)")
}

# ingest NAME DB QOS BYTES COUNT: into the running sluice; raw/ingest-NAME.{pub,log,proc}.json;
# the rate in i_rate.
ingest() {
  local s=$1 db=$2 qos=$3 bytes=$4 n=$5 before_seq before after watcher in_log
  before_seq=$(last_seq "$db")
  before=$(proc_sample "$sluice_pid")
  "$bench" watch-log --db "$db" --until-last-seq $((before_seq + n)) --interval-ms 5 \
    --timeout 300 --json "$raw/ingest-$s.log.json" &
  watcher=$!
  bg_pids+=("$watcher")
  publish "$s" bench/ingest "$qos" "$bytes" "$n" 0 "tcp://127.0.0.1:$mqtt_port" \
    "$raw/ingest-$s.pub.json"
  wait "$watcher" || say "warning: not every event of ingest $s reached the log"
  bg_pids=()
  after=$(proc_sample "$sluice_pid")
  in_log=$(($(field "$raw/ingest-$s.log.json" last_seq) - before_seq))
  proc_json "$before" "$after" "\"events_in_log\": $in_log" >"$raw/ingest-$s.proc.json"
  i_rate=$(rate_of "$in_log" "$(field "$raw/ingest-$s.pub.json" start_us)" \
    "$(field "$raw/ingest-$s.log.json" reached_us)")
}

say "starting Mosquitto on 127.0.0.1:$mqtt_port"
mosq start --dir "$work/mosquitto" --port "$mqtt_port" --persistence
if want ingest; then
  say "ingest: $reps alternating repetitions (ceiling, sluice) per figure; fsync probe: $fsync_probe"
  for sync in normal full; do
    # The ingest figures time events into the log as seen from outside. A run's last events wait
    # up to commit_interval_ms (100) for their commit, though they were durable (acknowledged)
    # through the journal long before: 10 ms keeps that tail out of the rate. At these rates
    # commits are started by commit_after_events anyway, so batching and bytes are unchanged.
    start_sluice "ingest-$sync" "$sync" at-least-once bench "commit_interval_ms = 10"
    db=$data/ingest-$sync/events.db
    for qos in 0 1; do
      for bytes in 100 1024; do
        n=$ceil_n1
        ((qos == 0)) && n=$ceil_n0
        sn=$n
        [[ $sync == full && $qos == 1 ]] && sn=$ingest_full_q1
        line=""
        for r in $(seq 1 "$reps"); do
          s=$sync-q$qos-b$bytes-r$r
          ceiling "$s" "$qos" "$bytes" "$n"
          probe=""
          if [[ $sync == full && $qos == 1 && $fsync_probe == true ]]; then
            "$bench" fsync-probe --dir "$data/ingest-$sync" --record-bytes $((bytes + 50)) \
              --seconds "$fsync_secs" --json "$raw/fsync-$s.json" >/dev/null ||
              die "fsync probe failed"
            probe=" fsync probe $(field "$raw/fsync-$s.json" records_per_s | cut -d. -f1) rec/s,"
          fi
          ingest "$s" "$db" "$qos" "$bytes" "$sn"
          line+=" | ceiling $c_rate,$probe sluice $i_rate"
        done
        say "ingest sync=$sync QoS $qos ${bytes} B (ev/s)${line}"
      done
    done
    # The log is thrown away: a clean stop would only wait (up to 10 s) for the events in flight
    # to an upstream that is not running.
    kill_sluice
    rm -rf "${data:?}/ingest-$sync"
  done
fi

# ---- 3-5. online latency, outage, drain: once per delivery mode ---------------------------------
# produce_probe N: the drain ceiling, $outage_n records of 100 B from a bare idempotent producer
# with the Kafka sink's settings into the fresh topic bench-probe-N; raw/produce-probe-N.json.
# The uplink goes away and comes back (outage_kind, chosen at the top). Where nftables may be used (root), the network to Kafka is
# cut: sluice's connections are reset and reconnecting is refused, while the broker runs on as a
# real uplink's would, warm; the bare-producer probes meet the same warm broker, so the drain is
# compared with them like for like. Elsewhere Kafka itself is stopped and started again (a cold
# JVM: the first seconds of a drain then meet a broker that is still compiling its hot paths).
uplink_down() {
  if [[ $outage_kind == network-cut ]]; then
    nft -f - <<NFT
table inet $nft_table {
  chain out {
    type filter hook output priority 0; policy accept;
    tcp dport $kafka_port reject with tcp reset
  }
}
NFT
  else
    scripts/kafka.sh stop --dir "$work/kafka" >/dev/null
  fi
}
uplink_up() {
  if [[ $outage_kind == network-cut ]]; then
    nft delete table inet "$nft_table"
  else
    scripts/kafka.sh start --dir "$work/kafka" --port "$kafka_port" --controller-port "$kafka_ctl" >/dev/null
  fi
}

produce_probe() {
  say "  bare idempotent producer ($1): $outage_n records of 100 B into bench-probe-$1"
  "$bench" produce-probe --brokers "127.0.0.1:$kafka_port" --topic "bench-probe-$1" \
    --count "$outage_n" --record-bytes 100 --timeout 600 --json "$raw/produce-probe-$1.json" \
    >/dev/null 2>"$work/produce-probe-$1.err" || {
    cat "$work/produce-probe-$1.err" >&2
    die "the bare-producer probe failed"
  }
  say "  bare idempotent producer ($1): $(field "$raw/produce-probe-$1.json" records_per_s | cut -d. -f1) records/s"
}
# start_live TAG PORT NAME: the live traffic beside a drain, in the background (live_pub), to the
# MQTT broker on PORT; the publisher's figures in $raw/NAME.pub.json.
start_live() {
  publish "$1" bench/live 1 100 "$live_n" "$live_rate" "tcp://127.0.0.1:$2" "$raw/$3.pub.json" &
  live_pub=$!
  bg_pids+=("$live_pub")
}
# rep_suffix R: what repetition R adds to its raw files' names ("" for the first, as before
# repetitions, so that a one-repetition run names them as it always did).
rep_suffix() { (($1 == 1)) || printf -- '-r%s' "$1"; }
# online_pass PREFIX DELIVERY REPS: raw figures in $raw/PREFIX*, Kafka topics bench-PREFIX*; starts
# Kafka and a sluice of its own, and stops both. The outage and drain run REPS times on the same
# sluice; in the at-least-once pass the bare-producer probe (the drain ceiling) runs before the
# first outage and after each drain, on the same broker, so every drain has a probe on each side.
online_pass() {
  local px=$1 delivery=$2 pass_reps=$3
  local db=$data/${px}online/events.db topic=bench-$px idle_rss load_hwm rate secs n probe
  local base_seq before after watcher t0 live_pub r sfx commits
  say "[$delivery] starting Kafka on 127.0.0.1:$kafka_port"
  scripts/kafka.sh start --dir "$work/kafka" --port "$kafka_port" --controller-port "$kafka_ctl" >/dev/null
  start_sluice "${px}online" normal "$delivery" "${topic%-}"
  # Warm-up: creates the topics and connects the producer, so that no stage pays for it.
  for stage in lat drain live; do
    publish "${px}warm" "bench/$stage" 1 100 100 0 "tcp://127.0.0.1:$mqtt_port" "$work/warm.json"
    "$bench" kafka-latency --brokers "127.0.0.1:$kafka_port" --topic "${topic}$stage" \
      --tag "${px}warm" --count 100 --idle-timeout 2 --json "$work/warm-$stage.json" >/dev/null
  done
  idle_rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$sluice_pid/status")
  for rate in 1000 10000; do
    secs=$lat_secs_1k
    ((rate == 10000)) && secs=$lat_secs_10k
    n=$((rate * secs))
    say "[$delivery] online latency at $rate ev/s for ${secs}s"
    # At 1,000 ev/s the probe reads while the events are published, so that it also measures when
    # each one became visible to a read_committed consumer.
    probe=""
    rm -f "$work/ready"
    if ((rate == 1000)); then
      "$bench" kafka-latency --brokers "127.0.0.1:$kafka_port" --topic "${topic}lat" \
        --tag "${px}lat$rate" --count "$n" --visible --idle-timeout 3 \
        --ready-file "$work/ready" --json "$raw/${px}latency-$rate.kafka.json" >/dev/null &
      probe=$!
      bg_pids+=("$probe")
      for _ in $(seq 1 600); do [[ -f "$work/ready" ]] && break; sleep 0.05; done
      [[ -f "$work/ready" ]] || die "the latency probe did not start"
    fi
    commits=$(commit_sample)
    publish "${px}lat$rate" bench/lat 1 100 "$n" "$rate" "tcp://127.0.0.1:$mqtt_port" \
      "$raw/${px}latency-$rate.pub.json"
    if [[ -n "$probe" ]]; then
      wait "$probe" || die "the latency probe failed"
      bg_pids=()
    else
      "$bench" kafka-latency --brokers "127.0.0.1:$kafka_port" --topic "${topic}lat" \
        --tag "${px}lat$rate" --count "$n" --idle-timeout 3 \
        --json "$raw/${px}latency-$rate.kafka.json" >/dev/null
    fi
    gc_pauses "$raw/${px}latency-$rate.kafka.json" >"$raw/${px}latency-$rate.gc.json"
    commit_json "$commits" "$(commit_sample)" >"$raw/${px}latency-$rate.sluice.json"
    say "  arrived $(field "$raw/${px}latency-$rate.kafka.json" unique) of $n, p50 $(field "$raw/${px}latency-$rate.kafka.json" p50) ms, p99 $(field "$raw/${px}latency-$rate.kafka.json" p99) ms, p99.9 $(field "$raw/${px}latency-$rate.kafka.json" p999) ms (to the append)"
    [[ -z "$probe" ]] || say "  visible to a read_committed consumer: p50 $(field_in "$raw/${px}latency-$rate.kafka.json" visible p50) ms, p99 $(field_in "$raw/${px}latency-$rate.kafka.json" visible p99) ms"
  done
  load_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$sluice_pid/status")
  [[ -n "$px" ]] || produce_probe 1

  for ((r = 1; r <= pass_reps; r++)); do
    sfx=$(rep_suffix "$r")
    # ---- 4. outage: the uplink goes away, the backlog builds up --------------------------------
    say "[$delivery] uplink down ($outage_kind, repetition $r of $pass_reps): $outage_n events (QoS 1, 100 B) into the log"
    uplink_down
    base_seq=$(last_seq "$db")
    outage_last=$((base_seq + outage_n))
    # The chart at the end is of the at-least-once pass's first drain.
    ((r == 1)) && [[ -z "$px" ]] && chart_outage_last=$outage_last
    before=$(proc_sample "$sluice_pid")
    "$bench" watch-log --db "$db" --until-last-seq "$outage_last" --interval-ms 20 --timeout 1800 \
      --json "$raw/${px}outage$sfx.log.json" &
    watcher=$!
    publish "${px}drain$sfx" bench/drain 1 100 "$outage_n" 0 "tcp://127.0.0.1:$mqtt_port" \
      "$raw/${px}outage$sfx.pub.json"
    wait "$watcher" || die "the outage events did not all reach the log"
    after=$(proc_sample "$sluice_pid")
    proc_json "$before" "$after" >"$raw/${px}outage$sfx.proc.json"
    say "  backlog $outage_n events, sluice RSS $(field "$raw/${px}outage$sfx.proc.json" rss_kib) KiB"

    # ---- 5. drain: the uplink returns while live traffic continues -----------------------------
    "$bench" watch-log --db "$db" --until-cursor "$outage_last" --interval-ms 100 --timeout 1800 \
      --timeline "$raw/${px}drain$sfx.csv" --json "$raw/${px}drain$sfx.log.json" &
    watcher=$!
    # Stopped on exit too: it waits up to 30 minutes for a drain that may never come.
    bg_pids+=("$watcher")
    before=$(proc_sample "$sluice_pid")
    say "[$delivery] uplink back; live traffic at $live_rate ev/s"
    uplink_up
    t0=$(now_us)
    start_live "${px}live$sfx" "$mqtt_port" "${px}live$sfx"
    wait "$watcher" || die "the backlog did not drain"
    after=$(proc_sample "$sluice_pid")
    proc_json "$before" "$after" "\"t0_us\": $t0" >"$raw/${px}drain$sfx.proc.json"
    say "  backlog drained: $outage_n events confirmed by Kafka in $(awk -v a="$(field "$raw/${px}drain$sfx.log.json" cursor_moved_us)" -v b="$(field "$raw/${px}drain$sfx.log.json" reached_us)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }') s from the first confirmation"
    wait "$live_pub" || die "live publisher failed"
    bg_pids=()
    "$bench" kafka-latency --brokers "127.0.0.1:$kafka_port" --topic "${topic}live" \
      --tag "${px}live$sfx" --count "$live_n" --idle-timeout 3 \
      --json "$raw/${px}live$sfx.kafka.json" >/dev/null
    "$bench" kafka-latency --brokers "127.0.0.1:$kafka_port" --topic "${topic}drain" \
      --tag "${px}drain$sfx" --count "$outage_n" --idle-timeout 3 --timeout 600 \
      --json "$raw/${px}drain$sfx.kafka.json" >/dev/null
    say "  Kafka holds $(field "$raw/${px}drain$sfx.kafka.json" unique) of $outage_n outage events ($(field "$raw/${px}drain$sfx.kafka.json" duplicates) duplicates), live p99 during the drain $(field "$raw/${px}live$sfx.kafka.json" p99) ms"
    [[ -n "$px" ]] || produce_probe $((r + 1))
  done
  printf '{ "idle_rss_kib": %s, "load_hwm_kib": %s }\n' "$idle_rss" "$load_hwm" >"$raw/${px}sluice.proc.json"
  stop_sluice
  scripts/kafka.sh stop --dir "$work/kafka" >/dev/null
}

live_n=$((live_rate * live_secs))
if want drain; then
  online_pass "" at-least-once "$reps"
  # The exactly-once pass, whose figures are set beside the at-least-once ones rather than held
  # against a target, drains once.
  ((eos)) && online_pass eos- exactly-once 1
fi
# ---- 5b. drain-kinesis: the outage and drain of stages 4-5 against the Kinesis upstream ----------
# kinesalite (scripts/kinesis.sh, HTTPS with verification) stands in for Kinesis: a stream of 4
# shards, $outage_n events of 100 B from 100 devices (one partition key each, so that a request
# can carry up to 100 records: one per key, docs/ARCHITECTURE.md "(d3)"), buffered while the
# endpoint is down, then drained without live traffic. kinesalite is a Node.js process on this
# machine, so the figure is a lower bound of what the upstream drains, not Kinesis's rate.
if want drain-kinesis; then
  say "drain-kinesis: starting kinesalite on https://127.0.0.1:$kinesis_port"
  scripts/kinesis.sh start --dir "$work/kinesis" --port "$kinesis_port" >/dev/null
  printf '[default]\naws_access_key_id = bench\naws_secret_access_key = bench\n' >"$work/aws-credentials"
  curl -sS --fail --cacert "$work/kinesis/tls/ca.pem" --aws-sigv4 "aws:amz:us-east-1:kinesis" \
    --user bench:bench -H "Content-Type: application/x-amz-json-1.1" \
    -H "X-Amz-Target: Kinesis_20131202.CreateStream" \
    -d '{"StreamName":"bench-drain","ShardCount":4}' "https://127.0.0.1:$kinesis_port/" >/dev/null ||
    die "kinesalite did not create the stream"
  kname=kinesis-drain
  kdb=$data/$kname/events.db
  mkdir -p "$work/$kname" "$data/$kname"
  cat >"$work/$kname/sluice.toml" <<TOML
[gateway]
id = "bench"
[storage]
path = "$kdb"
max_bytes = "8GiB"
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
client_id = "bench-sluice"
reconnect_max_ms = 1000
[upstream.kinesis]
kind = "kinesis"
region = "us-east-1"
endpoint = "https://127.0.0.1:$kinesis_port"
credentials_file = "$work/aws-credentials"
reconnect_max_ms = 500
[upstream.kinesis.tls]
ca_file = "$work/kinesis/tls/ca.pem"
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"
[[route]]
mqtt = "bench/kdrain/#"
key = "bench/kdrain/{device}/#"
to = { kinesis = "bench-drain" }
qos = 1
TOML
  sluice_start "$sluice" "$work/$kname" "$metrics_port" 10 ||
    die "sluice ($kname) did not connect to Mosquitto"
  say "drain-kinesis: endpoint down, then $outage_n events (QoS 1, 100 B, 100 devices) into the log"
  scripts/kinesis.sh stop --dir "$work/kinesis" >/dev/null
  "$bench" watch-log --db "$kdb" --until-last-seq "$outage_n" --interval-ms 20 --timeout 1800 \
    --json "$raw/kinesis-outage.log.json" &
  watcher=$!
  "$bench" publish --tag kdrain --topic-prefix bench/kdrain --devices 100 --qos 1 \
    --payload-bytes 100 --count "$outage_n" --rate 0 --url "tcp://127.0.0.1:$mqtt_port" \
    --client-id bench-pub-kdrain --json "$raw/kinesis-outage.pub.json" >/dev/null
  wait "$watcher" || die "the outage events did not all reach the log"
  "$bench" watch-log --db "$kdb" --until-cursor "$outage_n" --interval-ms 100 --timeout 1800 \
    --json "$raw/kinesis-drain.log.json" &
  watcher=$!
  bg_pids+=("$watcher")
  before=$(proc_sample "$sluice_pid")
  say "drain-kinesis: endpoint back"
  scripts/kinesis.sh start --dir "$work/kinesis" --port "$kinesis_port" >/dev/null
  t0=$(now_us)
  wait "$watcher" || die "the Kinesis backlog did not drain"
  bg_pids=()
  after=$(proc_sample "$sluice_pid")
  proc_json "$before" "$after" "\"t0_us\": $t0" >"$raw/kinesis-drain.proc.json"
  kd_secs=$(awk -v a="$(field "$raw/kinesis-drain.log.json" cursor_moved_us)" \
    -v b="$(field "$raw/kinesis-drain.log.json" reached_us)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')
  kd_rate=$(awk -v n="$outage_n" -v s="$kd_secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
  printf '{ "events": %s, "seconds": %s, "events_per_s": %s }\n' "$outage_n" "$kd_secs" \
    "$kd_rate" >"$raw/kinesis-drain.json"
  say "  Kinesis backlog drained: $outage_n events confirmed by kinesalite in $kd_secs s from the first confirmation ($kd_rate events/s), sluice CPU $(field "$raw/kinesis-drain.proc.json" cpu_s) s"
  stop_sluice
  scripts/kinesis.sh stop --dir "$work/kinesis" >/dev/null
fi
# ---- 5c. drain-rabbitmq: the outage of stage 4, drained to a RabbitMQ stream ---------------------
# sluice with one RabbitMQ upstream (plain AMQP on 127.0.0.1, publisher confirms, default
# max_in_flight) logs $outage_n events of 100 B while the broker is down; then the broker starts
# (scripts/rabbitmq.sh, the stream declared by its definitions) and watch-log times the cursor
# from its first move to the last event: raw/rabbitmq-drain.log.json, rabbitmq-drain.proc.json.
if want drain-rabbitmq; then
  rdb=$data/rabbitmq/events.db
  mkdir -p "$work/rabbitmq-sluice" "$data/rabbitmq"
  # The broker makes its users on the first start; the password file must exist before sluice
  # reads its configuration, so start and stop it once.
  scripts/rabbitmq.sh start --dir "$work/rabbitmq" --port "$rabbitmq_port" --stream bench-drain \
    >/dev/null
  scripts/rabbitmq.sh stop --dir "$work/rabbitmq" >/dev/null
  cat >"$work/rabbitmq-sluice/sluice.toml" <<TOML
[gateway]
id = "bench"
[storage]
path = "$rdb"
max_bytes = "8GiB"
[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
client_id = "bench-sluice"
reconnect_max_ms = 1000
[upstream.rabbit]
kind = "rabbitmq"
url = "amqp://127.0.0.1:$rabbitmq_port"
username = "sluice"
password_file = "$work/rabbitmq/sluice.password"
reconnect_max_ms = 500
[metrics]
enabled = true
listen = "127.0.0.1:$metrics_port"
[[route]]
mqtt = "bench/rdrain/#"
key = "bench/rdrain/{device}/#"
to = { rabbit = "bench-drain" }
qos = 1
TOML
  sluice_start "$sluice" "$work/rabbitmq-sluice" "$metrics_port" 10 ||
    die "sluice (rabbitmq) did not connect to Mosquitto"
  say "[rabbitmq] broker down: $outage_n events (QoS 1, 100 B) into the log"
  "$bench" watch-log --db "$rdb" --until-last-seq "$outage_n" --interval-ms 20 --timeout 1800 \
    --json "$raw/rabbitmq-outage.log.json" &
  watcher=$!
  publish rdrain bench/rdrain 1 100 "$outage_n" 0 "tcp://127.0.0.1:$mqtt_port" \
    "$raw/rabbitmq-outage.pub.json"
  wait "$watcher" || die "the outage events did not all reach the log"
  "$bench" watch-log --db "$rdb" --until-cursor "$outage_n" --interval-ms 100 --timeout 1800 \
    --json "$raw/rabbitmq-drain.log.json" &
  watcher=$!
  bg_pids+=("$watcher")
  before=$(proc_sample "$sluice_pid")
  t0=$(now_us)
  say "[rabbitmq] broker back: starting RabbitMQ on 127.0.0.1:$rabbitmq_port"
  scripts/rabbitmq.sh start --dir "$work/rabbitmq" --port "$rabbitmq_port" --stream bench-drain \
    >/dev/null
  wait "$watcher" || die "the backlog did not drain to RabbitMQ"
  bg_pids=()
  after=$(proc_sample "$sluice_pid")
  proc_json "$before" "$after" "\"t0_us\": $t0" >"$raw/rabbitmq-drain.proc.json"
  say "  backlog drained: $outage_n events confirmed by RabbitMQ in $(awk -v a="$(field "$raw/rabbitmq-drain.log.json" cursor_moved_us)" -v b="$(field "$raw/rabbitmq-drain.log.json" reached_us)" 'BEGIN { printf "%.2f", (b - a) / 1e6 }') s from the first confirmation"
  stop_sluice
  scripts/rabbitmq.sh stop --dir "$work/rabbitmq" >/dev/null
fi

mosq stop --dir "$work/mosquitto"

# ---- 6. the same outage through Mosquitto's bridge ---------------------------------------------
# Repeated as often as sluice's drain, each time on fresh brokers, so that the drain's ratio to the
# bridge is a median over as many pairs.
if want bridge; then
  say "Mosquitto bridge: edge 127.0.0.1:$edge_port -> upstream 127.0.0.1:$upstream_port (autosave ${autosave}s)"
  cat >"$work/bridge.conf" <<CONF
autosave_interval $autosave
connection bench-upstream
address 127.0.0.1:$upstream_port
topic bench/# out 1
cleansession false
clientid bench-bridge
bridge_protocol_version mqttv311
restart_timeout 1
CONF
  for ((r = 1; r <= reps; r++)); do
    sfx=$(rep_suffix "$r")
    rm -rf "$data/edge" "$work/upstream"
    mosq start --dir "$work/upstream" --port "$upstream_port" --persistence
    mosq start --dir "$data/edge" --port "$edge_port" --persistence --extra-conf "$work/bridge.conf"
    rm -f "$work/ready"
    "$bench" subscribe --url "tcp://127.0.0.1:$upstream_port" --client-id bench-upstream-sub \
      --persistent --filter 'bench/#' --qos 1 --tag drain --count "$outage_n" --live-tag live \
      --live-count "$live_n" --idle-timeout 30 --timeout 1800 --ready-file "$work/ready" \
      --timeline "$raw/bridge-drain$sfx.csv" --json "$raw/bridge-drain$sfx.sub.json" &
    bsub=$!
    bg_pids+=("$bsub")
    wait_file "$work/ready" "upstream subscriber did not subscribe" "$bsub"
    # Idle figures and the outage start once the bridge has connected to the upstream.
    for _ in $(seq 1 300); do grep -q "as bench-bridge" "$work/upstream/mosquitto.log" && break; sleep 0.05; done
    grep -q "as bench-bridge" "$work/upstream/mosquitto.log" || die "the bridge did not connect"
    edge=$(cat "$data/edge/mosquitto.pid")
    idle=$(awk '/^VmRSS/ { print $2 }' "/proc/$edge/status")
    say "uplink down (repetition $r of $reps): stopping the upstream Mosquitto, then $outage_n events into the edge"
    mosq stop --dir "$work/upstream"
    before=$(proc_sample "$edge")
    publish drain bench/drain 1 100 "$outage_n" 0 "tcp://127.0.0.1:$edge_port" \
      "$raw/bridge-outage$sfx.pub.json"
    after=$(proc_sample "$edge")
    proc_json "$before" "$after" "\"idle_rss_kib\": $idle" >"$raw/bridge-outage$sfx.proc.json"
    say "  edge holds $outage_n events, RSS $(field "$raw/bridge-outage$sfx.proc.json" rss_kib) KiB"
    before=$(proc_sample "$edge")
    say "uplink back: starting the upstream Mosquitto; live traffic at $live_rate ev/s"
    mosq start --dir "$work/upstream" --port "$upstream_port" --persistence
    t0=$(now_us)
    start_live live "$edge_port" "bridge-live$sfx"
    # The subscriber ends once every outage and live event arrived (or 30 s without any).
    wait "$bsub" || die "upstream subscriber failed"
    after=$(proc_sample "$edge")
    proc_json "$before" "$after" "\"t0_us\": $t0" >"$raw/bridge-drain$sfx.proc.json"
    wait "$live_pub" || die "live publisher failed"
    bg_pids=()
    say "  upstream got $(field "$raw/bridge-drain$sfx.sub.json" unique) of $outage_n outage events in $(awk -v a="$t0" -v b="$(field "$raw/bridge-drain$sfx.sub.json" last_us)" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s"
    mosq stop --dir "$data/edge"
    mosq stop --dir "$work/upstream"
  done
fi

# ---- report and chart ---------------------------------------------------------------------------
"$bench" report --dir "$out" || die "report failed"
# The chart needs both drains.
outputs=(results.md results.json)
if want drain && want bridge; then
  outputs+=(drain.png)
  s_t0=$(field "$raw/drain.proc.json" t0_us)
  b_t0=$(field "$raw/bridge-drain.proc.json" t0_us)
  # Backlog = outage events not yet confirmed upstream, against seconds since the uplink returned.
  awk -v t0="$s_t0" -v last="$chart_outage_last" '{ b = last - $3; if (b < 0) b = 0; printf "%.2f %d\n", $1 - t0 / 1e6, b }' \
    "$raw/drain.csv" | awk '$1 >= -5' >"$work/sluice.dat"
  awk -v t0="$b_t0" -v n="$outage_n" '{ printf "%.2f %d\n", $1 - t0 / 1e6, n - $2 }' \
    "$raw/bridge-drain.csv" | awk '$1 >= -5' >"$work/bridge.dat"
  gnuplot <<GP || die "gnuplot failed"
set terminal pngcairo size 900,500 noenhanced
set output "$out/drain.png"
set title "Backlog after a $outage_n-event outage, with $live_rate ev/s live traffic"
set xlabel "seconds since the uplink returned"
set ylabel "outage events not yet upstream"
set grid
set key top right
plot "$work/sluice.dat" using 1:2 with lines lw 2 title "sluice (-> Kafka)", \
     "$work/bridge.dat" using 1:2 with lines lw 2 title "Mosquitto bridge (-> upstream Mosquitto)"
GP
fi
for f in "${outputs[@]}"; do [[ -s "$out/$f" ]] || die "$out/$f is missing"; done
# A benchmark that lost events through sluice would measure the wrong thing: every event sent
# through sluice must have reached Kafka.
checked=()
want drain && checked=(latency-1000.kafka.json latency-10000.kafka.json drain.kafka.json live.kafka.json)
if ((eos)); then
  for f in "${checked[@]}"; do checked+=("eos-$f"); done
fi
for f in "${checked[@]}"; do
  [[ "$(field "$raw/$f" missing)" == 0 ]] || die "events sent through sluice are missing from Kafka ($raw/$f)"
done
if grep -q '"missing": \[$' "$out/results.json"; then
  grep -A20 '"missing": \[' "$out/results.json" >&2
  die "some stages produced no figures (results.json: missing)"
fi
echo
cat "$out/results.md"
echo
say "done: ${outputs[*]/#/$out/}, raw figures in $out/raw"
