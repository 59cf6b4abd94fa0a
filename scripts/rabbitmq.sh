#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A private RabbitMQ broker (Debian's rabbitmq-server) for tests, benchmarks and demos: its own
# node name, Erlang cookie, data, logs and ports, all contained in DIR; never the system service.
# Users, certificates and passwords are made on the first start in DIR (nothing secret is
# committed) and kept across restarts, so a test can stop, kill and start the broker while its
# clients keep their settings. Streams need no plugin (AMQP 0-9-1 declares and reads them) and no
# plugin is enabled, so nothing reaches the network.
#
# Usage:
#   scripts/rabbitmq.sh start  --dir DIR --port PORT [--host H] [--stream NAME]...
#   scripts/rabbitmq.sh stop   --dir DIR [--kill]
#   scripts/rabbitmq.sh status --dir DIR
#   scripts/rabbitmq.sh alarm  --dir DIR memory|disk|off
#
# Ports: PORT plain AMQP and PORT+1 AMQP over TLS (client certificate required), both on
# 127.0.0.1 (the TLS port on 127.0.0.2 too, an address the certificate does not hold), or on H
# with --host H (an IPv4 address, e.g. in a network namespace; the certificate made by the first
# start then holds H as well); PORT+2 the node's Erlang distribution port, PORT+3 its epmd,
# PORT+4..PORT+6 the distribution ports of command-line tools.
# Files in DIR for clients:
#   tls/ca.pem, tls/other-ca.pem, tls/client.pem, tls/client.key
#                     (scripts/lib/test_certificates.sh)
#   sluice.password   user "sluice", all permissions on vhost "/"
#   reader.password   user "reader", all permissions on vhost "/"
# --stream NAME declares a durable stream (x-queue-type = stream) on vhost "/" at boot, if it does
# not exist yet (the tests declare theirs over AMQP instead).
# stop --kill is SIGKILL (a crash); a later start recovers the node's data from DIR.
# alarm raises a resource alarm on the running broker, as an operator would meet one: memory sets
# vm_memory_high_watermark so low that the node is above it at once, disk sets disk_free_limit
# above any disk's free space; off restores the limit the last alarm changed. RabbitMQ then blocks
# publishing connections (connection.blocked) until it is off. Each call runs rabbitmqctl, an
# Erlang VM of its own: a few seconds.
#
# Environment:
#   RABBITMQ_START_TIMEOUT  seconds to wait for the broker to answer (default 60)
set -euo pipefail

scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rabbit_bin=${RABBITMQ_SERVER_BIN:-/usr/lib/rabbitmq/bin/rabbitmq-server}

# Settings for scripts/lib/broker.sh.
broker_name=rabbitmq.sh
broker_pidfile=rabbitmq.pid
# SIGTERM = a clean shutdown of the node (Erlang's init:stop): a few seconds.
broker_term_secs=30
broker_poll_slow=0.1
broker_poll_fast=0.05
broker_logs=(stdout.log log/rabbit.log)
broker_commands="start stop status alarm"
rabbitmqctl_bin=$(dirname "$rabbit_bin")/rabbitmqctl
# The node's limits as start configures them, which alarm off restores.
disk_free_limit=50MB
memory_high_watermark=0.4
# shellcheck source-path=SCRIPTDIR source=lib/broker.sh
source "$scripts/lib/broker.sh"
# shellcheck source-path=SCRIPTDIR source=lib/test_certificates.sh
source "$scripts/lib/test_certificates.sh"

# The Erlang VM runs with -home DIR (its cookie lives there): unique to DIR.
broker_cmdline() { printf '%s' "-home $1 "; }
broker_address() {
  sed -n 's/^listeners.tcp.default = \(.*\)$/\1/p' "$1/rabbitmq.conf"
}

# RabbitMQ's default password hash (rabbit_password_hashing_sha256): base64(salt ++
# SHA-256(salt ++ password)) with a 4-byte salt, so that the users exist from the first boot
# (load_definitions) and no command-line tool has to start an Erlang VM to add them.
password_hash() {
  local tmp
  tmp=$(mktemp -d)
  openssl rand 4 >"$tmp/salt"
  { cat "$tmp/salt"; printf '%s' "$1"; } | openssl dgst -sha256 -binary >"$tmp/digest"
  cat "$tmp/salt" "$tmp/digest" | base64 -w0
  rm -rf "$tmp"
}

# The users (their passwords made once per DIR) and the streams to declare, loaded at every boot.
make_definitions() {
  local dir=$1 user users="" permissions="" queues="" stream
  shift
  for user in sluice reader; do
    [[ -s "$dir/$user.password" ]] || (umask 077 && openssl rand -hex 12 >"$dir/$user.password")
    users+="${users:+,}{\"name\":\"$user\",\"password_hash\":\"$(password_hash "$(<"$dir/$user.password")")\",\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[]}"
    permissions+="${permissions:+,}{\"user\":\"$user\",\"vhost\":\"/\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}"
  done
  for stream in "$@"; do
    queues+="${queues:+,}{\"name\":\"$stream\",\"vhost\":\"/\",\"durable\":true,\"auto_delete\":false,\"arguments\":{\"x-queue-type\":\"stream\"}}"
  done
  (
    umask 077
    printf '{"vhosts":[{"name":"/"}],"users":[%s],"permissions":[%s],"queues":[%s]}\n' \
      "$users" "$permissions" "$queues" >"$dir/definitions.json"
  )
}

# The environment of every Erlang VM of this node: the broker and the command-line tools.
node_env() {
  local dir=$1 port=$2
  export HOME=$dir
  export RABBITMQ_NODENAME=sluice$port@localhost
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia
  export RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_LOGS=$dir/log/rabbit.log
  export RABBITMQ_PID_FILE=$dir/node.pid
  export RABBITMQ_DIST_PORT=$((port + 2))
  export ERL_EPMD_PORT=$((port + 3))
  export RABBITMQ_CTL_DIST_PORT_MIN=$((port + 4))
  export RABBITMQ_CTL_DIST_PORT_MAX=$((port + 6))
}

cmd_start() {
  local dir="" port="" host=127.0.0.1 streams=()
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --port) port=${2:?}; shift 2 ;;
    --host) host=${2:?}; shift 2 ;;
    --stream) streams+=("${2:?}"); shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" && -n "$port" ]] || usage
  [[ "$port" =~ ^[0-9]+$ ]] || die "bad --port '$port'"
  [[ "$host" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "bad --host '$host' (an IPv4 address)"
  [[ -x "$rabbit_bin" ]] || die "$rabbit_bin not found (run scripts/install-deps.sh)"
  command -v openssl >/dev/null || die "openssl not found"

  mkdir -p "$dir/log"
  dir=$(cd "$dir" && pwd -P)
  # The epmd of an earlier run of this node may still hold PORT+3: it is ours, and serves again.
  refuse_if_busy "$dir" "$port" "$((port + 1))" "$((port + 2))"
  make_test_certificates "$dir/tls" "$host"
  make_definitions "$dir" "${streams[@]}"
  echo "[]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<CONF
# Generated by scripts/rabbitmq.sh; rewritten on every start.
listeners.tcp.default = $host:$port
listeners.ssl.default = $host:$((port + 1))
$([[ "$host" != 127.0.0.1 ]] || echo "listeners.ssl.other = 127.0.0.2:$((port + 1))")
ssl_options.cacertfile = $dir/tls/ca.pem
ssl_options.certfile = $dir/tls/server.pem
ssl_options.keyfile = $dir/tls/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = true
load_definitions = $dir/definitions.json
disk_free_limit.absolute = $disk_free_limit
vm_memory_high_watermark.relative = $memory_high_watermark
log.file.level = info
log.console = false
CONF
  node_env "$dir" "$port"
  # RABBITMQ_ALLOW_INPUT: the start script then execs the Erlang VM itself (its PID is the broker,
  # so stop --kill kills the broker and not a wrapper); -noinput keeps the VM off stdin.
  export RABBITMQ_ALLOW_INPUT=1
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-noinput"
  local started
  started=$(date +%s%N)
  spawn "$dir" "$rabbit_bin"
  # Ready = the TLS listener accepts connections: RabbitMQ opens its listeners in its last boot
  # step, after the definitions (users) are loaded.
  local pid
  pid=$(wait_ready "$dir" "${RABBITMQ_START_TIMEOUT:-60}" tcp_open "$host" "$((port + 1))")
  echo "rabbitmq.sh: broker up on $host:$port (AMQP) and :$((port + 1)) (AMQPS) after" \
    "$((($(date +%s%N) - started) / 1000000)) ms (pid $pid, dir $dir)"
}

# After stop: wait until the node's ports are free, and end its epmd too on a clean stop (epmd
# outlives the VM by design; a crash leaves it, as a real one would, and the next start registers
# with it again).
broker_stopped() {
  local dir=$1 kill_now=$2
  [[ -s "$dir/rabbitmq.conf" ]] || return 0
  local port
  port=$(sed -n 's/^listeners.tcp.default = .*:\([0-9]*\)$/\1/p' "$dir/rabbitmq.conf")
  [[ -n "$port" ]] || return 0
  # The VM's main thread is reaped before its other threads have closed its sockets (measured:
  # after a SIGKILL the AMQP port stayed in use for a moment): stopped means the ports are free.
  local deadline=$(($(now) + 10)) p
  for p in "$port" "$((port + 1))" "$((port + 2))"; do
    while port_in_use "$p"; do
      (($(now) < deadline)) || die "port $p still in use 10 s after the broker stopped"
      sleep "$broker_poll_fast"
    done
  done
  if ((!kill_now)); then
    ERL_EPMD_PORT=$((port + 3)) epmd -kill >/dev/null 2>&1 || true
  fi
}

cmd_alarm() {
  local dir="" what=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    memory | disk | off) what=$1; shift ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" && -n "$what" ]] || usage
  [[ -s "$dir/rabbitmq.conf" ]] || die "no broker was started in $dir"
  dir=$(cd "$dir" && pwd -P)
  local port
  port=$(sed -n 's/^listeners.tcp.default = .*:\([0-9]*\)$/\1/p' "$dir/rabbitmq.conf")
  node_env "$dir" "$port"
  local ctl=("$rabbitmqctl_bin" -q -n "$RABBITMQ_NODENAME")
  if [[ "$what" == off ]]; then
    case $(cat "$dir/alarm" 2>/dev/null) in
    memory) "${ctl[@]}" set_vm_memory_high_watermark "$memory_high_watermark" ;;
    disk) "${ctl[@]}" set_disk_free_limit "$disk_free_limit" ;;
    *) return 0 ;;
    esac
    rm -f "$dir/alarm"
    return 0
  fi
  echo "$what" >"$dir/alarm"
  case $what in
  memory) "${ctl[@]}" set_vm_memory_high_watermark 0.0000001 ;;
  disk) "${ctl[@]}" set_disk_free_limit 1000000GB ;;
  esac
}

broker_main "$@"
