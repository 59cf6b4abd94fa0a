# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Process management shared by the scripts that run a private server for tests
# and demos (scripts/kafka.sh, mosquitto.sh, kinesis.sh, rabbitmq.sh,
# tests/integration/cloud_broker.sh; scripts/kafka-cluster.sh uses only die,
# usage and broker_main). Each runs at most one broker per state directory DIR
# and tracks it with a pid file in DIR, so tests and demos can run side by side
# on different DIRs and ports.
#
# Sourced after `set -euo pipefail`. The sourcing script sets:
#   broker_name       prefix of messages (kafka.sh, mosquitto.sh)
#   broker_pidfile    name of the pid file in DIR
#   broker_term_secs  how long stop waits after SIGTERM before it sends SIGKILL
#   broker_poll_slow  poll interval (s) while the broker shuts down
#   broker_poll_fast  poll interval (s) for the near-instant steps
#   broker_poll_ready poll interval (s) of the readiness probe (optional, default 0.1)
#   broker_logs       the broker's log files in DIR, printed when it fails to start
#                     (optional, default stdout.log)
#   broker_commands   the commands of broker_main (optional, default "start stop status")
# and defines:
#   broker_cmdline DIR  a substring of the broker's command line unique to DIR
#   broker_address DIR  HOST:PORT that the broker in DIR listens on
#   broker_stopped DIR KILLED  (optional) run by stop once the broker is not running
#   cmd_NAME ARGS...    each command of broker_commands except stop and status
# shellcheck disable=SC2154 # the broker_* settings come from the sourcing script

# Messages carry the script's name: tests and demos run both brokers at once.
die() {
  echo "$broker_name: $*" >&2
  exit 1
}

# The usage text is the script's own header, from "# Usage:" to the next bare
# "#" line, so help and documentation cannot drift apart.
usage() {
  sed -n '/^# Usage:/,/^#$/{/^#$/q;s/^# \{0,1\}//;p}' "$0" >&2
  exit 2
}

# True if PID is a live (non-zombie) process. The broker is not our child once
# the starting script exits, so a zombie may linger if nobody reaps it.
alive() {
  local pid=$1 state
  [[ -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# True if PID is the broker started for DIR: a stale pid file may name a PID
# that the system has since reused for an unrelated process.
ours() {
  local pid=$1 dir=$2 cmdline
  alive "$pid" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"$(broker_cmdline "$dir")"* ]]
}

# Fails on a missing, empty or garbled pid file (e.g. one cut short by a crash)
# instead of handing kill something that is not a PID.
read_pid() {
  local pidfile=$1/$broker_pidfile pid
  [[ -s "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  echo "$pid"
}

# Asks the kernel rather than trying to bind, so the check has no side effects.
port_in_use() {
  [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}

# Whole seconds are precise enough for deadlines of several seconds.
now() { date +%s; }

# Start refuses to run a second broker on DIR, and a port held by someone else
# is reported with its owner here instead of as a bind error deep in the
# broker's log. A stale pid file is removed so that the wait for the new
# broker's PID cannot pick up the old one.
refuse_if_busy() {
  local dir=$1 pid p
  shift
  if pid=$(read_pid "$dir") && ours "$pid" "$dir"; then
    die "already running in $dir (pid $pid); stop it first"
  fi
  rm -f "$dir/$broker_pidfile"
  for p in "$@"; do
    if port_in_use "$p"; then
      ss -Hltnp "sport = :$p" >&2 || true
      die "port $p is already in use by another process"
    fi
  done
}

# Runs the broker command in the background under setsid: its own session, so
# killing the caller's process group (ctest timeout, Ctrl-C in a demo) does not
# take the broker down with it. The wrapper shell writes its own PID and then
# execs the command, so the pid file holds the broker's real PID whether or not
# setsid had to fork.
spawn() {
  local dir=$1
  shift
  : >"$dir/stdout.log"
  # shellcheck disable=SC2016 # $$ and $1 are for the inner shell
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/$broker_pidfile" "$@" \
    </dev/null >>"$dir/stdout.log" 2>&1 &
}

# Prints the new broker's PID once spawn's wrapper has written it: until then
# there is nothing to watch. DEADLINE is shared with the readiness wait.
wait_for_pid() {
  local dir=$1 deadline=$2 pid
  while ! pid=$(read_pid "$dir"); do
    (($(now) < deadline)) || die "broker process did not start (see $dir/stdout.log)"
    sleep "$broker_poll_fast"
  done
  echo "$pid"
}

# Prints the new broker's PID once it answers: PROBE (a command, its output discarded) succeeds
# within TIMEOUT seconds of the call. Dies with the tail of the broker's logs if the broker exits
# first or the time is up.
wait_ready() {
  local dir=$1 timeout=$2 pid deadline
  shift 2
  deadline=$(($(now) + timeout))
  pid=$(wait_for_pid "$dir" "$deadline")
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      print_logs "$dir"
      rm -f "$dir/$broker_pidfile"
      die "broker exited during startup (see $dir)"
    fi
    if (($(now) >= deadline)); then
      print_logs "$dir"
      die "broker not ready after ${timeout}s (pid $pid still running; use: $0 stop --dir $dir)"
    fi
    sleep "${broker_poll_ready:-0.1}"
  done
  echo "$pid"
}

print_logs() {
  local dir=$1 f
  for f in "${broker_logs[@]:-stdout.log}"; do
    if [[ -s "$dir/$f" ]]; then
      echo "---- tail of $dir/$f ----" >&2
      tail -n 40 "$dir/$f" >&2
    fi
  done
}

# True once a TCP connection to HOST:PORT is accepted (bash's /dev/tcp; nothing is sent).
tcp_open() {
  # A subshell: a failed redirection of `exec` would end the calling shell.
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Returns when PID is gone or after SECS, whichever comes first; the caller
# decides what a survivor means.
wait_gone() {
  local pid=$1 deadline=$(($(now) + $2)) poll=$3
  while alive "$pid" && (($(now) < deadline)); do
    sleep "$poll"
  done
}

# stop --dir DIR [--kill]. Stopping a stopped broker succeeds, so cleanup code
# can call it unconditionally; a broker that ignores SIGTERM is killed so that
# it cannot hold the ports forever; --kill simulates a crash.
cmd_stop() {
  local dir="" kill_now=0
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --kill) kill_now=1; shift ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" ]] || usage
  if [[ ! -d "$dir" ]]; then
    return 0
  fi
  dir=$(cd "$dir" && pwd -P)
  local pid
  if ! pid=$(read_pid "$dir") || ! ours "$pid" "$dir"; then
    rm -f "$dir/$broker_pidfile"
    echo "$broker_name: not running in $dir"
    after_stop "$dir" "$kill_now"
    return 0
  fi

  if ((kill_now)); then
    kill -KILL "$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" "$broker_term_secs" "$broker_poll_slow"
    if alive "$pid"; then
      echo "$broker_name: pid $pid ignored SIGTERM for ${broker_term_secs}s, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # SIGKILL is asynchronous too; wait until the ports are really released.
  wait_gone "$pid" 10 "$broker_poll_fast"
  alive "$pid" && die "pid $pid did not exit"
  rm -f "$dir/$broker_pidfile"
  echo "$broker_name: stopped (pid $pid)"
  after_stop "$dir" "$kill_now"
}

after_stop() {
  if declare -F broker_stopped >/dev/null; then
    broker_stopped "$@"
  fi
}

# status --dir DIR. Exit status 3 is LSB's "program is not running", so
# callers can tell "stopped" from a usage error (2).
cmd_status() {
  local dir=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" ]] || usage
  [[ -d "$dir" ]] && dir=$(cd "$dir" && pwd -P)
  local pid address
  if pid=$(read_pid "$dir") && ours "$pid" "$dir"; then
    address=$(broker_address "$dir")
    echo "running pid $pid on $address"
    return 0
  fi
  echo "stopped"
  return 3
}

# The command line: COMMAND ARGS..., COMMAND one of broker_commands, run as cmd_COMMAND (a "-" in
# it as "_"); anything else prints the usage and exits 2.
broker_main() {
  (($# >= 1)) || usage
  local cmd=$1 known
  shift
  for known in ${broker_commands:-start stop status}; do
    if [[ "$cmd" == "$known" ]]; then
      "cmd_${cmd//-/_}" "$@"
      return
    fi
  done
  usage
}
