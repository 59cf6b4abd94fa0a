# shellcheck shell=bash
# SPDX-License-Identifier: Apache-2.0
# Reads a running sluice's HTTP endpoint ([metrics] listen) from scripts, so that they wait for
# readiness the way an operator's probe does rather than by grepping the daemon's log. Needs no
# curl (scripts/install-deps.sh does not install it): bash's /dev/tcp, one request per connection,
# as sluice answers every request with Connection: close.
#
# Sourced after `set -euo pipefail`. Defines:
#   sluice_http HOST PORT PATH
#       prints the whole response (status line, headers, body); fails without a connection
#   sluice_wait_ready HOST PORT SECONDS PID [METRIC]
#       waits until GET /readyz answers 200; given METRIC, until /metrics shows "METRIC 1"
#       instead (sluice_mqtt_connected: subscribed, for a run that has no Kafka on purpose).
#       Fails at once if process PID exits, and after SECONDS.
#   sluice_start SLUICE DIR METRICS_PORT SECONDS
#       runs SLUICE (the binary) with DIR/sluice.toml in the background, its output in
#       DIR/sluice.log, sets sluice_pid to its PID and waits up to SECONDS until it is subscribed
#       (sluice_wait_ready with sluice_mqtt_connected: the runs of the benchmarks need no
#       upstream for that); on failure prints DIR/sluice.log to stderr and fails.

sluice_http() {
  local host=$1 port=$2 path=$3
  # A subshell: a failed redirection of `exec` would end the calling shell.
  (
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
    timeout 5 cat <&3
  ) 2>/dev/null
}

sluice_wait_ready() {
  local host=$1 port=$2 secs=$3 pid=$4 metric=${5:-} out
  local deadline=$((SECONDS + secs))
  while ((SECONDS <= deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -z "$metric" ]]; then
      out=$(sluice_http "$host" "$port" /readyz) || out=""
      [[ "$out" == "HTTP/1.1 200 "* ]] && return 0
    else
      out=$(sluice_http "$host" "$port" /metrics) || out=""
      grep -qx "$metric 1" <<<"$out" && return 0
    fi
    sleep 0.1
  done
  return 1
}

sluice_start() {
  local sluice=$1 dir=$2 metrics_port=$3 secs=$4
  "$sluice" run --config "$dir/sluice.toml" >"$dir/sluice.log" 2>&1 &
  sluice_pid=$!
  sluice_wait_ready 127.0.0.1 "$metrics_port" "$secs" "$sluice_pid" sluice_mqtt_connected && return 0
  cat "$dir/sluice.log" >&2
  return 1
}
