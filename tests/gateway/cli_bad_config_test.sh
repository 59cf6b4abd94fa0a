#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `sluice check-config` and `sluice run` refuse each kind of bad configuration with exit status 2
# and a message on stderr that names the key. Usage: cli_bad_config_test.sh SLUICE_BINARY
set -uo pipefail
sluice=${1:?usage: $0 SLUICE_BINARY}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
route='[[route]]
mqtt = "devices/+/data"
kafka_topic = "events"'
failures=0

# expect NAME EXPECTED_TEXT CONFIG_TEXT
expect() {
  local name=$1 want=$2 config=$3 cmd rc err
  printf '%s\n' "$config" >"$dir/$name.toml"
  for cmd in check-config run; do
    # A timeout: an accepted configuration would leave `run` running.
    err=$(timeout 60 "$sluice" "$cmd" --config "$dir/$name.toml" 2>&1 >/dev/null)
    rc=$?
    if [[ $rc != 2 || "$err" != *"$want"* ]]; then
      echo "FAIL $name ($cmd): exit $rc, wanted 2 and '$want' in: $err"
      failures=$((failures + 1))
    else
      echo "ok   $name ($cmd): $err"
    fi
  done
}

expect unknown-key "storage.max_byte" "[storage]
max_byte = 5
$route"
expect type-error "storage.commit_interval_ms" "[storage]
commit_interval_ms = \"10\"
$route"
expect out-of-range "route[1].qos" "$route
qos = 3"
expect bad-size "storage.max_bytes" "[storage]
max_bytes = \"12 parsecs\"
$route"
expect bad-enum "storage.overflow" "[storage]
overflow = \"drop-newest\"
$route"
expect bad-filter "route[1].mqtt" '[[route]]
mqtt = "devices/#/data"
kafka_topic = "events"'
expect bad-key-pattern "route[1].key" "$route
key = \"devices/{a}/{b}\""
expect bad-kafka-topic "route[1].kafka_topic" '[[route]]
mqtt = "devices/+/data"
kafka_topic = "has space"'
expect bad-mqtt-url "mqtt.url" "[mqtt]
url = \"http://broker:1883\"
$route"
expect bad-kafka-brokers "kafka.brokers" "[kafka]
brokers = \"http://kafka1:9092\"
$route"
expect missing-route "route" "[storage]
path = \"$dir/events.db\""
expect missing-topic "route[1].kafka_topic" '[[route]]
mqtt = "devices/+/data"'
expect forbidden-property "kafka.properties" "[kafka.properties]
acks = \"1\"
$route"
expect syntax-error "$dir/syntax-error.toml" "[storage
$route"

# Upstreams ([upstream.NAME]) and route.to.
upstreams='[upstream.central]
kind = "kafka"
[upstream.cloud]
kind = "mqtt"
url = "tcp://cloud.example:1883"'
expect unknown-upstream "route[1].to.centrl: no upstream is named 'centrl' (did you mean 'central'?)" "$upstreams
[[route]]
mqtt = \"devices/+/data\"
to = { centrl = \"events\", cloud = true }"
expect bad-template "route[1].to.cloud" "$upstreams
[[route]]
mqtt = \"devices/+/data\"
to = { central = \"events\", cloud = \"site/{devce}\" }"
expect unfed-upstream "upstream.cloud is fed by no route" "$upstreams
[[route]]
mqtt = \"devices/+/data\"
to = { central = \"events\" }"
expect tls-key-plain-url "upstream.cloud.tls.ca_file" "$upstreams
[upstream.cloud.tls]
ca_file = \"/etc/ssl/ca.pem\"
[[route]]
mqtt = \"devices/+/data\"
to = { central = \"events\", cloud = true }"
expect mixed-forms "[kafka] is the old form's one upstream" "[kafka]
brokers = \"k1:9092\"
$upstreams
[[route]]
mqtt = \"devices/+/data\"
to = { central = \"events\", cloud = true }"

# The old form passes check-config with a notice that gives the new form; the new form passes
# without one.
printf '%s\n' "$route" >"$dir/legacy.toml"
out=$("$sluice" check-config --config "$dir/legacy.toml" 2>&1)
rc=$?
if [[ $rc != 0 || "$out" != *"notice: written in the old form"* ||
      "$out" != *'to = { kafka = "events" }'* ]]; then
  echo "FAIL legacy-notice: exit $rc, wanted 0 and the rewrite in: $out"
  failures=$((failures + 1))
else
  echo "ok   legacy-notice"
fi
printf '%s\n[[route]]\nmqtt = "devices/+/data"\nto = { central = "events", cloud = true }\n' \
  "$upstreams" >"$dir/new-form.toml"
out=$("$sluice" check-config --config "$dir/new-form.toml" 2>&1)
rc=$?
if [[ $rc != 0 || "$out" == *"notice"* ]]; then
  echo "FAIL new-form: exit $rc, wanted 0 and no notice in: $out"
  failures=$((failures + 1))
else
  echo "ok   new-form: $out"
fi

# A secret under a misspelt or refused property: exit 2 naming the key, and the value appears
# nowhere in what either command prints (it used to be logged at critical level and sent to
# systemd as STATUS= by every restart of `run`).
secret='Hunter2-s3cr3t-Value'
# expect_secret_hidden NAME EXPECTED_TEXT CONFIG_TEXT [SECRET]
expect_secret_hidden() {
  local name=$1 want=$2 config=$3 hidden=${4:-$secret} cmd rc out
  printf '%s\n' "$config" >"$dir/$name.toml"
  for cmd in check-config run; do
    out=$(NOTIFY_SOCKET= timeout 60 "$sluice" "$cmd" --config "$dir/$name.toml" 2>&1)
    rc=$?
    if [[ $rc != 2 || "$out" != *"$want"* || "$out" == *"$hidden"* ]]; then
      echo "FAIL $name ($cmd): exit $rc, wanted 2, '$want' and no secret in: $out"
      failures=$((failures + 1))
    else
      echo "ok   $name ($cmd): $out"
    fi
  done
}
expect_secret_hidden misspelt-property "'sasl.pasword' is not a librdkafka property" "[kafka.properties]
\"sasl.pasword\" = \"$secret\"
$route"
expect_secret_hidden bad-enum-property "kafka property 'security.protocol'" "[kafka.properties]
\"security.protocol\" = \"$secret\"
$route"
expect_secret_hidden bad-flags-property "kafka property 'debug'" "[kafka.properties]
debug = \"broker,$secret\"
$route"
expect_secret_hidden bad-expansion "kafka.properties 'sasl.password'" "[kafka.properties]
\"sasl.password\" = \"\${X}$secret\"
$route"
expect_secret_hidden mqtt-password-type "mqtt.password" "[mqtt]
username = \"u\"
password = 918273645
$route" 918273645
expect_secret_hidden upstream-password-no-user "upstream.cloud.password" "$upstreams
password = \"$secret\"
[[route]]
mqtt = \"devices/+/data\"
to = { central = \"events\", cloud = true }"

# A configuration path that names an endless file: exit 2 promptly, not a hang (the timeout turns
# a hang into exit 124) and not an exhausted memory.
for cmd in check-config run; do
  start=$SECONDS
  err=$(timeout 20 "$sluice" "$cmd" --config /dev/zero 2>&1 >/dev/null)
  rc=$?
  if [[ $rc != 2 || "$err" != *"is larger than"* || $((SECONDS - start)) -gt 5 ]]; then
    echo "FAIL dev-zero ($cmd): exit $rc after $((SECONDS - start)) s, wanted 2 promptly: $err"
    failures=$((failures + 1))
  else
    echo "ok   dev-zero ($cmd): $err"
  fi
done

# A log file that is not a sluice log: `run` and `status` exit 1 naming it, and leave it as it was.
# expect_refused_log NAME EXPECTED_TEXT   (the log file is $dir/NAME.db, prepared by the caller)
expect_refused_log() {
  local name=$1 want=$2 cmd rc err before after
  printf '[storage]\npath = "%s"\n[kafka]\nbrokers = "127.0.0.1:1"\n%s\n' "$dir/$name.db" \
    "$route" >"$dir/$name.toml"
  before=$(sha256sum <"$dir/$name.db")
  for cmd in run status; do
    err=$(timeout 60 "$sluice" "$cmd" --config "$dir/$name.toml" 2>&1 >/dev/null)
    rc=$?
    after=$(sha256sum <"$dir/$name.db")
    if [[ $rc != 1 || "$err" != *"$dir/$name.db"* || "$err" != *"$want"* || "$before" != "$after" ]]; then
      echo "FAIL $name ($cmd): exit $rc, wanted 1 naming the file and '$want', unchanged: $err"
      failures=$((failures + 1))
    else
      echo "ok   $name ($cmd): $(printf '%s' "$err" | tail -n 1)"
    fi
  done
}
head -c 8192 /dev/urandom >"$dir/garbage.db"
expect_refused_log garbage "not an SQLite database"
sqlite3 "$dir/foreign.db" "CREATE TABLE t(x); INSERT INTO t VALUES(1);"
expect_refused_log foreign "not a sluice event log"

# `check-config --probe`: an invalid file exits 2 and probes nothing; the probe's options are
# checked; a valid file whose brokers refuse connections (closed ports) exits 4 with a FAIL line
# per broker (the checks themselves run against real brokers: tests/integration, "probe: ...").
printf '[mqtt]\nurl = "tcp://127.0.0.1:1"\n[storage]\nmax_byte = 5\n%s\n' "$route" \
  >"$dir/probe-invalid.toml"
# MQTT only: a refused connection fails at once (librdkafka would retry until the timeout).
printf '[mqtt]\nurl = "tcp://127.0.0.1:1"\n[upstream.cloud]\nkind = "mqtt"\nurl = "%s"\n%s\n' \
  "tcp://127.0.0.1:1" '[[route]]
mqtt = "devices/+/data"
to = { cloud = "x/{mqtt_topic}" }' >"$dir/probe-refused.toml"
# expect_probe NAME EXIT WANTED_TEXT UNWANTED_TEXT ARGS...
# Leaves the output in $out.
expect_probe() {
  local name=$1 want_rc=$2 want=$3 unwanted=$4 rc
  shift 4
  out=$(timeout 60 "$sluice" check-config "$@" 2>&1)
  rc=$?
  if [[ $rc != "$want_rc" || "$out" != *"$want"* || ( -n "$unwanted" && "$out" == *"$unwanted"* ) ]]; then
    echo "FAIL $name: exit $rc, wanted $want_rc and '$want' (not '$unwanted') in: $out"
    failures=$((failures + 1))
  else
    echo "ok   $name: exit $rc"
  fi
}
expect_probe probe-invalid-config 2 "storage.max_byte" "probe:" --probe --config "$dir/probe-invalid.toml"
expect_probe probe-timeout-alone 2 "--probe-timeout requires --probe" "" --probe-timeout 3 \
  --config "$dir/probe-refused.toml"
expect_probe probe-timeout-zero 2 "--probe-timeout" "probe:" --probe --probe-timeout 0 \
  --config "$dir/probe-refused.toml"
expect_probe probe-refused 4 "FAIL  mqtt: cannot connect to tcp://127.0.0.1:1" "" --probe \
  --config "$dir/probe-refused.toml"
if [[ "$out" != *"FAIL  upstream cloud (mqtt): cannot connect to tcp://127.0.0.1:1"* ]]; then
  echo "FAIL probe-refused-upstream: no FAIL line for the upstream in: $out"
  failures=$((failures + 1))
fi

# Every option `check-config --help` lists is documented in docs/operations.md.
operations=$(dirname "$0")/../../docs/operations.md
for option in $("$sluice" check-config --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
  [[ $option == --help ]] && continue
  if ! grep -qE -- "$option([^a-z-]|\$)" "$operations"; then
    echo "FAIL check-config option $option is not in docs/operations.md"
    failures=$((failures + 1))
  fi
done

# Nothing was created for a configuration that was refused.
if [[ -e "$dir/events.db" ]]; then
  echo "FAIL: a refused configuration created the log"
  failures=$((failures + 1))
fi
if ((failures)); then
  echo "$failures failed"
  exit 1
fi
echo "every bad configuration refused with exit 2, every foreign log with exit 1, every failed probe with exit 4"
