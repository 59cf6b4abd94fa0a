#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sluice's Debian package under a real systemd as PID 1: boots a throwaway Debian 12 root in a
# container (systemd-nspawn -b, sharing the host's network), installs the .deb there with apt, and
# drives the unit as shipped (systemd/sluice.service) with systemctl against a Mosquitto and a
# Kafka that this script starts on the host's loopback. In order, it checks that:
#   1. `systemctl start sluice` stays activating while the MQTT broker is down (sluice logs that it
#      keeps retrying) and returns, active, only once sluice sent READY=1 after the broker came up;
#      the MQTT password reaches sluice through LoadCredential= (Mosquitto allows the event topics
#      to user sluice only; the credential file is root's alone);
#   2. `systemctl status sluice` shows sluice's STATUS= line, with events delivered;
#   3. a failpoint that wedges the forwarder (SLUICE_FAILPOINT in a drop-in, with WatchdogSec=4s)
#      stops the watchdog pings: systemd kills sluice (Result=watchdog) and restarts it;
#   4. `systemctl kill -s KILL sluice` is followed by a restart (Restart=on-failure);
#   5. `systemctl reload sluice` applies a changed log level, there and back, without a restart;
#   6. `journalctl -u sluice` has sluice's lines at their syslog priorities (warning 4, err 3,
#      info 6, debug 7);
#   7. `systemctl stop sluice` stops it cleanly (exit 0, Result=success, no SIGKILL) in time;
#   8. through all of it a simulated fleet (sluice-sim, on the host) published QoS 1 events, and
#      sluice-verify finds every one in Kafka, in order per device.
# sluice-sim and sluice-verify are taken from the .deb itself. The container's root is a copy of a
# cached Debian root with systemd, systemd-sysv and dbus (scripts/lib/debian_root.sh).
#
# Usage: scripts/systemd-test.sh [--build-dir DIR | --deb FILE]
#   (default: build the .deb from build/ci, which must be built already)
# Exit code: 0 passed, 1 failed, 77 skipped (the kernel or the user cannot make the container's
# namespaces; with CI=true that fails instead, since CI runs as root and must run it).
# Environment: SLUICE_SYSTEMD_TEST_PORT_BASE (default 23050): Mosquitto on BASE, Kafka on BASE+1
# and its controller on BASE+2, all on 127.0.0.1. Needs root and the Debian mirror (see
# scripts/package-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source-path=SCRIPTDIR source=lib/debian_root.sh
source scripts/lib/debian_root.sh
debian_root_package_args "$0" "$@"

skip() {
  if [[ "${CI:-}" == true ]]; then
    echo "systemd-test: FAIL: $* (CI runs as root and must run this test)" >&2
    exit 1
  fi
  echo "systemd-test: SKIP: $*"
  exit 77
}
if ((EUID != 0)); then
  sudo -n true 2>/dev/null || skip "needs root (or sudo -n) for the container"
  exec sudo -n "$0" --build-dir "$build_dir" ${deb:+--deb "$deb"}
fi

started=$SECONDS
say() { printf '%4ds systemd-test: %s\n' $((SECONDS - started)) "$*"; }
ok() { say "ok: $*"; }

scripts/install-deps.sh >/dev/null
# What systemd-nspawn needs of the kernel: mount, PID, UTS and IPC namespaces.
if ! out=$(unshare --mount --pid --uts --ipc --fork --mount-proc true 2>&1); then
  skip "the kernel refuses the namespaces a container needs: $out"
fi

base=${SLUICE_SYSTEMD_TEST_PORT_BASE:-23050}
mqtt_port=$base kafka_port=$((base + 1)) kafka_ctl=$((base + 2))
topic=systemd-test
unit=sluice.service
work=$(mktemp -d /tmp/sluice-systemd-test.XXXXXX)
root=$work/root
nspawn_pid="" ct="" sim_pid="" kafka_job="" start_job="" nspawn_tmpfs=0 root_tmpfs=0

# --- cleanup: always, whatever failed ----------------------------------------------------------
cleanup() {
  set +e
  [[ -n "$sim_pid" ]] && kill -KILL "$sim_pid" 2>/dev/null
  [[ -n "$start_job" ]] && kill "$start_job" 2>/dev/null
  if [[ -n "$nspawn_pid" ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
    # A clean poweroff first; the container's init (and with it every process of its PID
    # namespace) is killed if that does not end it within 20 s.
    [[ -n "$ct" ]] && timeout 10 nsenter -t "$ct" -a systemctl poweroff >/dev/null 2>&1
    local deadline=$((SECONDS + 20))
    while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
      echo "systemd-test: the container did not power off; killing it" >&2
      [[ -n "$ct" ]] && kill -KILL "$ct"
      kill -KILL "$nspawn_pid"
      deadline=$((SECONDS + 10))
      while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    fi
  fi
  [[ -n "$kafka_job" ]] && wait "$kafka_job" 2>/dev/null
  scripts/kafka.sh stop --dir "$work/kafka" >/dev/null 2>&1
  scripts/mosquitto.sh stop --dir "$work/mosquitto" >/dev/null 2>&1
  debian_root_release "$root"
  if ((root_tmpfs)); then umount "$root" || umount -l "$root"; fi
  # Our tmpfs only, and only once no other container uses it.
  if ((nspawn_tmpfs)) && [[ -z "$(ls -A /run/systemd/nspawn/propagate 2>/dev/null)" ]]; then
    umount /run/systemd/nspawn
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs COMMAND inside the container: every namespace of its init, a clean environment.
in_ct() {
  nsenter -t "$ct" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "$@"
}
prop() { in_ct systemctl show -P "$1" "$unit"; }
journal() { in_ct journalctl -u "$unit" --no-pager "$@"; }
fail() {
  echo "systemd-test: FAIL: $*" >&2
  if [[ -n "$ct" ]]; then
    echo "---- systemctl status sluice ----" >&2
    in_ct systemctl status "$unit" --no-pager -n 0 >&2 || true
    echo "---- journalctl -u sluice (last 60 lines) ----" >&2
    journal -n 60 -o short-monotonic >&2 || true
  fi
  for f in "$work/nspawn.log" "$work/mosquitto/mosquitto.log" "$work/sim.log"; do
    [[ -s "$f" ]] && { echo "---- tail of $f ----" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.2 s until it succeeds.
wait_for() {
  local secs=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    ((SECONDS < deadline)) || fail "$what: not within ${secs}s"
    sleep 0.2
  done
}
state_is() { [[ "$(prop ActiveState)/$(prop SubState)" == "$1" ]]; }
result_is() { [[ "$(prop Result)" == "$1" ]]; }
restarted_since() { (($(prop NRestarts) > $1)) && state_is active/running; }
# grep reads to the end (no -q): under pipefail, a writer cut off by SIGPIPE would fail the pipe.
journal_has() { journal -o cat | grep -F -- "$1" >/dev/null; }
journal_count() { journal -o cat | grep -cF -- "$1" || true; }
journal_count_at_least() { (($(journal_count "$2") >= $1)); }

# --- the package and the brokers ---------------------------------------------------------------
if [[ -z "$deb" ]]; then
  say "building the .deb from $build_dir"
  deb=$(scripts/package-deb.sh --build-dir "$build_dir" 2>/dev/null)
fi
[[ -f "$deb" ]] || fail "no .deb: '$deb'"
# The fleet and the verifier that this very package ships, run on the host.
dpkg-deb -x "$deb" "$work/pkg"
sim=$work/pkg/usr/bin/sluice-sim
verify=$work/pkg/usr/bin/sluice-verify

# Kafka takes the longest to start: it starts while the container's root is made.
scripts/kafka.sh start --dir "$work/kafka" --port "$kafka_port" --controller-port "$kafka_ctl" \
  >"$work/kafka-start.log" 2>&1 &
kafka_job=$!

# Mosquitto lets anonymous clients (the devices, the readiness probe) publish device events and
# read $SYS, and only user sluice read the events: without the password from the credential, sluice
# would get nothing. It is started later, once sluice is activating.
password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
mosquitto_passwd -b -c "$work/mosquitto-passwd" sluice "$password" >/dev/null 2>&1 ||
  fail "mosquitto_passwd could not write $work/mosquitto-passwd"
cat >"$work/mosquitto-acl" <<'EOF'
topic write devices/#
topic read $SYS/#
user sluice
topic read devices/#
EOF
cat >"$work/mosquitto-auth.conf" <<EOF
allow_anonymous true
password_file $work/mosquitto-passwd
acl_file $work/mosquitto-acl
EOF

# --- the container's root ----------------------------------------------------------------------
say "preparing the root: cached Debian 12 with systemd, plus $(basename "$deb") by apt"
cache=$(debian_root_derived systemd systemd systemd-sysv dbus)
# In memory (about 400 MB): on a disk shared with builds, copying the root, dpkg's fsyncs and
# deleting the copy took 45 s; on a tmpfs, 7 s.
mkdir "$root"
mount -t tmpfs -o mode=0755 tmpfs "$root"
root_tmpfs=1
debian_root_copy "$cache" "$root"
cp "$deb" "$root/tmp/"
debian_root_install "$root" "$work/install.log" "/tmp/$(basename "$deb")" || fail "apt-get install"
debian_root_run "$root" systemd-machine-id-setup >/dev/null
debian_root_release "$root"

# An operator's files: the configuration, the password as a root-only credential, the drop-in
# that loads it.
install -d -m 0700 "$root/etc/sluice/credentials"
printf '%s\n' "$password" >"$root/etc/sluice/credentials/mqtt-password"
chmod 0600 "$root/etc/sluice/credentials/mqtt-password"
# Rewritten in place: the package's owner and mode (root:sluice 0640) stay.
cat >"$root/etc/sluice/sluice.toml" <<EOF
[gateway]
id = "systemd-test"
log_level = "info"

[storage]
path = "/var/lib/sluice/events.db"

[mqtt]
url = "tcp://127.0.0.1:$mqtt_port"
username = "sluice"
password_file = "\${CREDENTIALS_DIRECTORY}/mqtt-password"
reconnect_min_ms = 200
reconnect_max_ms = 1000

[upstream.central]
kind = "kafka"
brokers = "127.0.0.1:$kafka_port"
reconnect_max_ms = 1000

[metrics]
enabled = false

[[route]]
mqtt = "devices/+/telemetry"
to = { central = "$topic" }
key = "devices/{device}/#"
qos = 1

[[route]]
mqtt = "devices/+/events"
to = { central = "$topic" }
key = "devices/{device}/#"
qos = 1
EOF
mkdir -p "$root/etc/systemd/system/$unit.d"
cat >"$root/etc/systemd/system/$unit.d/credentials.conf" <<'EOF'
[Service]
LoadCredential=mqtt-password:/etc/sluice/credentials/mqtt-password
EOF

# --- boot ----------------------------------------------------------------------------------------
# nspawn deletes its container's propagation directory (/run/systemd/nspawn/propagate/NAME) only
# from a tmpfs ("Attempted to remove disk file system ..., and we can't allow that"), and /run is
# no tmpfs here. No machined and no systemd as the host's PID 1: --register=no, --keep-unit.
# Without --private-network the container shares the host's loopback, and so the brokers.
mkdir -p /run/systemd/nspawn
if ! mountpoint -q /run/systemd/nspawn; then
  mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn
  nspawn_tmpfs=1
fi
say "booting the container (systemd-nspawn -b)"
setsid systemd-nspawn -D "$root" -M "sluice-test-$$" -b --register=no --keep-unit \
  --console=read-only </dev/null >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
find_init() {
  kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited"
  ct=$(pgrep -P "$nspawn_pid" | head -1)
  [[ -n "$ct" && "$(cat "/proc/$ct/comm" 2>/dev/null)" == systemd ]]
}
wait_for 30 "the container's systemd" find_init
# systemctl needs PID 1's socket, which comes a moment after PID 1.
wait_for 30 "the container's systemd listening" in_ct test -S /run/systemd/private
system_state=$(timeout 120 nsenter -t "$ct" -a systemctl is-system-running --wait 2>&1) || true
case "$system_state" in
  running) ok "booted: systemd $(in_ct systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') is PID 1, is-system-running: running" ;;
  degraded)
    in_ct systemctl --failed --no-pager >&2
    fail "the container booted degraded"
    ;;
  *) fail "the container did not finish booting: is-system-running says '$system_state'" ;;
esac

wait "$kafka_job" || {
  cat "$work/kafka-start.log" >&2
  kafka_job=""
  fail "Kafka did not start"
}
kafka_job=""

# --- 1. start: activating until READY=1, which waits for the MQTT broker --------------------------
say "1. systemctl start sluice, with the MQTT broker down"
# Enabled, as an operator would: systemd also keeps an enabled unit loaded once it stopped, and so
# its last run's properties (ExecMainCode, Result) for step 7.
in_ct systemctl enable --quiet "$unit"
in_ct systemctl start "$unit" &
start_job=$!
retrying="MQTT broker tcp://127.0.0.1:$mqtt_port unavailable"
wait_for 60 "sluice logging that the MQTT broker is unavailable, twice" \
  journal_count_at_least 2 "$retrying"
kill -0 "$start_job" 2>/dev/null || fail "systemctl start returned while the MQTT broker was down"
state_is activating/start || fail "while the broker is down the unit is $(prop ActiveState)/$(prop SubState), not activating/start"
ok "activating while the broker is down; systemctl start waits ($(journal_count "$retrying") retries logged)"
last_retry_us=$(journal -o short-monotonic | grep -F -- "$retrying" | tail -1 |
  sed -n 's/^\[ *\([0-9]*\)\.\([0-9]*\)\].*/\1\2/p')
scripts/mosquitto.sh start --dir "$work/mosquitto" --port "$mqtt_port" \
  --extra-conf "$work/mosquitto-auth.conf" >/dev/null
deadline=$((SECONDS + 60))
while kill -0 "$start_job" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "systemctl start did not return within 60 s of the broker's start"
  sleep 0.2
done
rc=0
wait "$start_job" || rc=$?
start_job=""
((rc == 0)) || fail "systemctl start sluice exited $rc"
state_is active/running || fail "after systemctl start the unit is $(prop ActiveState)/$(prop SubState)"
active_us=$(prop ActiveEnterTimestampMonotonic)
((active_us > last_retry_us)) ||
  fail "the unit went active (monotonic $active_us us) before sluice's last retry ($last_retry_us us)"
journal_has "connected to MQTT broker tcp://127.0.0.1:$mqtt_port as 'sluice-systemd-test'" ||
  fail "sluice did not log its connection to the broker"
ok "active $(((active_us - last_retry_us) / 1000)) ms after sluice's last retry, once connected and subscribed"

# The credential: the password is in root's file only, sluice ran as user sluice, and Mosquitto
# saw user sluice log in (a wrong or missing password would have been refused, and anonymous
# clients cannot read the event topics).
if in_ct runuser -u sluice -- cat /etc/sluice/credentials/mqtt-password >/dev/null 2>&1; then
  fail "user sluice can read /etc/sluice/credentials/mqtt-password itself"
fi
main_pid=$(prop MainPID)
[[ "$(in_ct stat -c %U "/proc/$main_pid")" == sluice ]] ||
  fail "sluice (pid $main_pid) does not run as user sluice"
in_ct test -s "/run/credentials/$unit/mqtt-password" || fail "no credential in /run/credentials/$unit"
grep -qE "as sluice-systemd-test \(.*u'sluice'\)" "$work/mosquitto/mosquitto.log" ||
  fail "Mosquitto did not see user sluice log in"
ok "the MQTT password arrived through LoadCredential= (Mosquitto: user sluice logged in)"

# --- the fleet publishes from here to the end ---------------------------------------------------
# Every profile at QoS 1: QoS 0 events have no acknowledgement to keep and may be lost by design.
"$sim" --url "tcp://127.0.0.1:$mqtt_port" --devices 6 --total-rate 60 --qos-vibration 1 \
  --seed 1 --client-prefix systemd-test --summary-json "$work/fleet.json" --progress-interval 10 \
  --flush-timeout 30 >"$work/sim.log" 2>&1 &
sim_pid=$!

# --- 2. status --------------------------------------------------------------------------------
say "2. systemctl status sluice"
status_shows_delivery() {
  in_ct systemctl status "$unit" --no-pager -n 0 >"$work/status.txt" 2>&1 || true
  grep -qE '^ *Status: "mqtt up received [1-9][0-9]* .*; central up delivered [1-9][0-9]* ' \
    "$work/status.txt"
}
wait_for 30 "systemctl status showing events received and delivered" status_shows_delivery
ok "$(grep -E '^ *Status: ' "$work/status.txt" | sed 's/^ *//')"

# --- 3. the watchdog --------------------------------------------------------------------------
say "3. a wedged forwarder: SLUICE_FAILPOINT=forwarder.wedge:1, WatchdogSec=4s"
cat >"$root/etc/systemd/system/$unit.d/wedge.conf" <<'EOF'
[Service]
Environment=SLUICE_FAILPOINT=forwarder.wedge:1
WatchdogSec=4s
EOF
in_ct systemctl daemon-reload
restarts=$(prop NRestarts)
in_ct systemctl restart --no-block "$unit"
wait_for 60 "systemd killing sluice for want of watchdog pings" result_is watchdog
# The failpoint goes before the restart, so that the next sluice runs healthy.
rm "$root/etc/systemd/system/$unit.d/wedge.conf"
in_ct systemctl daemon-reload
wait_for 60 "a restart after the watchdog timeout" restarted_since "$restarts"
journal_has "fault injection armed: SLUICE_FAILPOINT=forwarder.wedge:1" || fail "the failpoint was not armed"
journal_has "watchdog: the forwarder to central made no progress" ||
  fail "sluice did not log that it withheld the watchdog ping"
journal_has "$unit: Watchdog timeout (limit 4s)!" || fail "systemd did not log the watchdog timeout"
ok "watchdog timeout logged by sluice and systemd; restarted (NRestarts $restarts -> $(prop NRestarts))"

# --- 4. SIGKILL -------------------------------------------------------------------------------
say "4. systemctl kill -s KILL sluice"
restarts=$(prop NRestarts)
old_pid=$(prop MainPID)
in_ct systemctl kill -s KILL "$unit"
wait_for 30 "systemd noticing the SIGKILL" result_is signal
wait_for 60 "a restart after SIGKILL" restarted_since "$restarts"
new_pid=$(prop MainPID)
[[ "$new_pid" != "$old_pid" ]] || fail "MainPID is still $old_pid"
ok "killed (Result=signal) and restarted: pid $old_pid -> $new_pid"

# --- 5. reload --------------------------------------------------------------------------------
say "5. systemctl reload sluice: log level info -> debug -> info"
reload_to() {  # reload_to LEVEL
  sed -i "s/^log_level = .*/log_level = \"$1\"/" "$root/etc/sluice/sluice.toml"
  in_ct systemctl reload "$unit" || fail "systemctl reload exited $?"
  wait_for 20 "the reload to $1 in the journal" journal_has \
    "SIGHUP: reloaded /etc/sluice/sluice.toml: applied gateway.log_level = $1"
}
pid=$(prop MainPID)
[[ "$(journal_count "service status: ")" == 0 ]] || fail "debug lines before the reload"
reload_to debug
# At debug sluice logs each STATUS= change; the fleet changes it every second.
wait_for 20 "a debug line after the reload" journal_count_at_least 1 "service status: "
reload_to info
[[ "$(prop MainPID)" == "$pid" ]] || fail "the reload restarted sluice"
state_is active/running || fail "after the reloads the unit is $(prop ActiveState)/$(prop SubState)"
ok "applied at once (debug lines appeared), pid $pid kept"

# --- 6. priorities in the journal ---------------------------------------------------------------
say "6. journalctl -u sluice: syslog priorities"
at_priority() {  # at_priority LEVEL TEXT: TEXT logged at exactly that priority
  journal -p "$1..$1" -o cat | grep -F -- "$2" >/dev/null || fail "'$2' not at priority $1"
}
at_priority warning "$retrying"
at_priority warning "fault injection armed"
at_priority err "watchdog: the forwarder to central made no progress"
at_priority info "sluice started: gateway 'systemd-test'"
at_priority info "SIGHUP: reloaded"
at_priority debug "service status: "
if journal -p warning -o cat | grep -F "sluice started:" >/dev/null; then
  fail "journalctl -p warning shows an info line"
fi
ok "warning 4, err 3, info 6, debug 7; journalctl -p warning leaves info out"

# --- 7. drain, then stop ------------------------------------------------------------------------
say "7. systemctl stop sluice (after the fleet stopped and sluice drained)"
kill -TERM "$sim_pid"
rc=0
wait "$sim_pid" || rc=$?
sim_pid=""
((rc == 0)) || fail "sluice-sim exited $rc"
# A marker published after the fleet stopped sits behind every fleet event in sluice's session
# queue, and the log forwards in order: once Kafka has it, Kafka has them all.
marker="systemd-test-end-$$"
mosquitto_pub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t devices/marker/events -m "$marker"
marker_in_kafka() {
  kcat -C -b "127.0.0.1:$kafka_port" -t "$topic" -o beginning -e -q 2>/dev/null |
    grep -xF "$marker" >/dev/null
}
wait_for 120 "the marker in Kafka" marker_in_kafka
before=$(journal -o cat | wc -l)
stop_started=$SECONDS
in_ct systemctl stop "$unit" || fail "systemctl stop exited $?"
stop_s=$((SECONDS - stop_started))
# systemd counts death by SIGTERM as success too: ExecMainCode 1 (CLD_EXITED) says that sluice
# exited by itself, status 0 that its shutdown finished within gateway.stop_timeout_s.
result="$(prop ActiveState) $(prop Result) code=$(prop ExecMainCode) status=$(prop ExecMainStatus)"
[[ "$result" == "inactive success code=1 status=0" ]] || fail "after stop: $result"
journal -o cat | tail -n "+$((before + 1))" >"$work/stop.log"
grep -F "received SIGTERM, stopping" "$work/stop.log" >/dev/null || fail "sluice did not log the SIGTERM"
grep -F "sluice stopped:" "$work/stop.log" >/dev/null || fail "sluice did not log its stop"
if grep -E "timed out|SIGKILL" "$work/stop.log"; then fail "systemd had to kill sluice"; fi
ok "stopped in ${stop_s}s (TimeoutStopSec $(prop TimeoutStopUSec)): $result, no SIGKILL"

# --- 8. nothing lost or reordered -------------------------------------------------------------------
say "8. sluice-verify: the fleet's events in Kafka topic $topic"
rc=0
"$verify" --brokers "127.0.0.1:$kafka_port" --topic "$topic" --expect "$work/fleet.json" \
  --idle-timeout 5 --max-ranges 8 --json "$work/verify.json" >"$work/verify.txt" 2>&1 || rc=$?
total() { sed -n "s/^    \"$2\": \([0-9]*\).*/\1/p" "$1" | head -1; }
sent=$(total "$work/fleet.json" sent)
lost=$(total "$work/verify.json" lost)
reordered=$(total "$work/verify.json" reordered)
duplicates=$(total "$work/verify.json" duplicates)
if ((rc != 0)) || [[ "$lost" != 0 || "$reordered" != 0 ]]; then
  cat "$work/verify.txt" >&2
  fail "sluice-verify exited $rc: lost '$lost', reordered '$reordered'"
fi
ok "sent $sent, lost 0, reordered 0, duplicates $duplicates (the watchdog kill and the SIGKILL)"
say "passed: scenario=systemd sent=$sent lost=0 reordered=0 duplicates=$duplicates" \
  "restarts=$(prop NRestarts)"
