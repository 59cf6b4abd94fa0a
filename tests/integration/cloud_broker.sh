#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A "cloud" Mosquitto for the MQTT upstream's tests: TLS only (a client certificate required),
# user names and passwords, an ACL, contained in DIR. Certificates and passwords are made on the
# first start in DIR (nothing secret is committed) and kept across restarts, so that a test can
# stop, kill and start the broker while its clients keep their settings.
#
# Usage:
#   cloud_broker.sh start  --dir DIR --port PORT [--persistence] [--max-packet BYTES]
#   cloud_broker.sh stop   --dir DIR [--kill]
#   cloud_broker.sh status --dir DIR
#
# Listeners: 127.0.0.1:PORT, and 127.0.0.2:PORT+1 with the same certificate, whose names
# (IP:127.0.0.1, DNS:localhost) do not include 127.0.0.2: a host-name verification failure.
# Files in DIR for the tests:
#   tls/ca.pem            the CA that signed the server and client certificates
#   tls/other-ca.pem      a CA that signed nothing here (a wrong tls.ca_file)
#   tls/client.pem, tls/client.key   a client certificate and its key
#   sluice.password       user "sluice": may publish to site/#, sluice/#, cloud/# (not to denied/#)
#   reader.password       user "reader": may read everything
# --persistence keeps sessions and queued messages in DIR/mosquitto.db across stop/start (saved
# every second and on a clean stop; stop --kill may lose the last second).
# --max-packet sets Mosquitto's max_packet_size, which MQTT 5 clients learn from CONNACK.
#
# Environment:
#   MOSQUITTO_START_TIMEOUT  seconds to wait for the broker to answer (default 15)
#   MOSQUITTO_BIN            broker binary (default /usr/sbin/mosquitto)
set -euo pipefail

mosquitto_bin=${MOSQUITTO_BIN:-/usr/sbin/mosquitto}
scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)

# Settings for scripts/lib/broker.sh.
broker_name=cloud_broker.sh
broker_pidfile=mosquitto.pid
broker_term_secs=15
broker_poll_slow=0.05
broker_poll_fast=0.02
# shellcheck source=../../scripts/lib/broker.sh
source "$scripts/lib/broker.sh"

broker_cmdline() { printf '%s' "-c $1/mosquitto.conf"; }
broker_address() {
  local port
  port=$(sed -n 's/^listener \([0-9]*\) 127.0.0.1$/\1/p' "$1/mosquitto.conf")
  echo "127.0.0.1:$port"
}

# CA, other CA, server certificate (SAN IP:127.0.0.1, DNS:localhost) and client certificate, with
# EC keys (fast to make). Made once per DIR.
make_certificates() {
  local tls=$1
  [[ -s "$tls/client.key" ]] && return 0
  mkdir -p "$tls"
  (
    cd "$tls"
    umask 077
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    local ca_ext=(-addext "basicConstraints=critical,CA:TRUE"
      -addext "keyUsage=critical,keyCertSign,cRLSign")
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 7 \
      -subj "/CN=sluice test CA" "${ca_ext[@]}" 2>/dev/null
    openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 7 \
      -subj "/CN=sluice other CA" "${ca_ext[@]}" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
      >server.ext
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=clientAuth" >client.ext
    local who
    for who in server client; do
      openssl req "${ec[@]}" -keyout "$who.key" -out "$who.csr" -subj "/CN=sluice-test-$who" \
        2>/dev/null
      openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$who.pem" -days 7 -extfile "$who.ext" 2>/dev/null
    done
    rm -f ./*.csr ./*.ext ca.srl
    chmod 644 ./*.pem
  ) || die "cannot make the test certificates in $tls (is openssl installed?)"
}

make_users() {
  local dir=$1 user
  [[ -s "$dir/passwd" ]] && return 0
  (
    umask 077
    : >"$dir/passwd"
    for user in sluice reader; do
      openssl rand -hex 12 >"$dir/$user.password"
      mosquitto_passwd -b "$dir/passwd" "$user" "$(<"$dir/$user.password")"
    done
  )
  cat >"$dir/acl" <<'EOF'
user sluice
topic write site/#
topic write sluice/#
topic write cloud/#

user reader
topic read #
topic read $SYS/#
EOF
}

cmd_start() {
  local dir="" port="" persistence=false max_packet=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --port) port=${2:?}; shift 2 ;;
    --persistence) persistence=true; shift ;;
    --max-packet) max_packet=${2:?}; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" && -n "$port" ]] || usage
  [[ "$port" =~ ^[0-9]+$ ]] || die "bad --port '$port'"
  [[ -z "$max_packet" || "$max_packet" =~ ^[0-9]+$ ]] || die "bad --max-packet '$max_packet'"
  [[ -x "$mosquitto_bin" ]] || die "$mosquitto_bin not found (run scripts/install-deps.sh)"
  command -v mosquitto_sub >/dev/null || die "mosquitto_sub not found (run scripts/install-deps.sh)"
  command -v openssl >/dev/null || die "openssl not found"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  refuse_if_busy "$dir" "$port" "$((port + 1))"
  make_certificates "$dir/tls"
  make_users "$dir"

  local tls_settings
  tls_settings="cafile $dir/tls/ca.pem
certfile $dir/tls/server.pem
keyfile $dir/tls/server.key
require_certificate true"
  cat >"$dir/mosquitto.conf" <<EOF
# Generated by tests/integration/cloud_broker.sh; rewritten on every start.
user $(id -un)
per_listener_settings false
allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl

listener $port 127.0.0.1
$tls_settings

listener $((port + 1)) 127.0.0.2
$tls_settings

persistence $persistence
persistence_location $dir/
persistence_file mosquitto.db
autosave_interval 1
max_queued_messages 0
max_inflight_messages 20
set_tcp_nodelay true
${max_packet:+max_packet_size $max_packet}

log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
EOF

  spawn "$dir" "$mosquitto_bin" -c "$dir/mosquitto.conf"
  local timeout=${MOSQUITTO_START_TIMEOUT:-15}
  local deadline=$(($(now) + timeout)) pid
  pid=$(wait_for_pid "$dir" "$deadline")
  # Ready = a client with the test's own credentials reads $SYS/broker/version over TLS.
  while :; do
    if ! alive "$pid"; then
      tail -n 20 "$dir/stdout.log" "$dir/mosquitto.log" >&2 2>/dev/null || true
      rm -f "$dir/mosquitto.pid"
      die "broker exited during startup"
    fi
    # shellcheck disable=SC2016 # literal MQTT topic
    if mosquitto_sub -h 127.0.0.1 -p "$port" --cafile "$dir/tls/ca.pem" \
      --cert "$dir/tls/client.pem" --key "$dir/tls/client.key" \
      -u reader -P "$(<"$dir/reader.password")" -i "cloud-broker-ready-$$" \
      -t '$SYS/broker/version' -C 1 -W 2 >/dev/null 2>&1; then
      break
    fi
    if (($(now) >= deadline)); then
      tail -n 20 "$dir/stdout.log" "$dir/mosquitto.log" >&2 2>/dev/null || true
      die "broker not ready after ${timeout}s (pid $pid; use: $0 stop --dir $dir)"
    fi
    sleep 0.1
  done
  echo "cloud_broker.sh: TLS broker up on 127.0.0.1:$port and 127.0.0.2:$((port + 1))" \
    "(pid $pid, persistence $persistence, dir $dir)"
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
*) usage ;;
esac
