#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A Kafka cluster of N combined broker+controller nodes (KRaft) on one host, for tests of broker
# failures. Each node is a scripts/kafka.sh broker in DIR/nodeI: node I listens on
# PORT+2(I-1) and its controller on PORT+2(I-1)+1. Every topic is replicated N times with
# min.insync.replicas 2, so acks=all survives the loss of one node.
#
# Usage:
#   scripts/kafka-cluster.sh start      --dir DIR --port PORT [--nodes N] [--host H]
#   scripts/kafka-cluster.sh start-node --dir DIR --node I
#   scripts/kafka-cluster.sh stop       --dir DIR [--kill]
#   scripts/kafka-cluster.sh brokers    --dir DIR
#
# start formats and starts all nodes at once (one node alone has no quorum, so it cannot become
# ready before the others are up) and returns when every node answers. start-node restarts one
# node of a started cluster, after `scripts/kafka.sh stop --dir DIR/nodeI [--kill]`. brokers
# prints the bootstrap list (host:port,...).
#
# Environment: those of scripts/kafka.sh. KAFKA_HEAP_OPTS defaults to -Xmx384m -Xms128m here:
# three JVMs share the machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx384m -Xms128m}

# From scripts/lib/broker.sh: die, usage and broker_main; the nodes are kafka.sh's brokers.
broker_name=kafka-cluster.sh
broker_commands="start start-node stop brokers"
# shellcheck source-path=SCRIPTDIR source=lib/broker.sh
source "$here/lib/broker.sh"

# DIR/cluster.env records what start chose, so that start-node and brokers need only DIR.
load() {
  [[ -f "$1/cluster.env" ]] || die "no cluster in $1 (run start first)"
  # shellcheck source=/dev/null
  source "$1/cluster.env"
}

node_args() {  # node_args I: the kafka.sh start arguments of node I
  local i=$1 p=$((port + 2 * ($1 - 1)))
  echo --dir "$dir/node$i" --port "$p" --controller-port "$((p + 1))" --node-id "$i" \
    --host "$host" --voters "$voters" --cluster-id "$cluster_id" --replication "$nodes"
}

cmd_start() {
  local nodes=3 port="" host=127.0.0.1
  dir=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --port) port=${2:?}; shift 2 ;;
    --nodes) nodes=${2:?}; shift 2 ;;
    --host) host=${2:?}; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" && "$port" =~ ^[0-9]+$ && "$nodes" =~ ^[1-9]$ ]] || usage
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  "$here/kafka.sh" fetch >/dev/null
  local voters="" i cluster_id
  for ((i = 1; i <= nodes; i++)); do
    voters+="${voters:+,}$i@$host:$((port + 2 * (i - 1) + 1))"
  done
  if [[ -f "$dir/cluster.env" ]]; then
    cluster_id=$(sed -n 's/^cluster_id=//p' "$dir/cluster.env")
  else
    # Kafka's own format: 16 random bytes, URL-safe base64 without padding, no leading '-'.
    while :; do
      cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
      [[ "$cluster_id" != -* ]] && break
    done
  fi
  printf 'nodes=%s\nport=%s\nhost=%s\nvoters=%s\ncluster_id=%s\n' \
    "$nodes" "$port" "$host" "$voters" "$cluster_id" >"$dir/cluster.env"
  load "$dir"

  local -a pids=()
  for ((i = 1; i <= nodes; i++)); do
    # shellcheck disable=SC2046 # node_args is a word list
    "$here/kafka.sh" start $(node_args "$i") >"$dir/start-node$i.log" 2>&1 &
    pids+=($!)
  done
  local failed=0
  for ((i = 1; i <= nodes; i++)); do
    if ! wait "${pids[i - 1]}"; then
      failed=1
      cat "$dir/start-node$i.log" >&2
    fi
  done
  if ((failed)); then
    cmd_stop --dir "$dir" >/dev/null || true
    die "cluster did not start (see above)"
  fi
  echo "kafka-cluster.sh: $nodes nodes up: $(cmd_brokers --dir "$dir")"
}

cmd_start_node() {
  local i=""
  dir=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --node) i=${2:?}; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" && "$i" =~ ^[0-9]+$ ]] || usage
  dir=$(cd "$dir" && pwd -P)
  load "$dir"
  ((i >= 1 && i <= nodes)) || die "no node $i in a cluster of $nodes"
  # shellcheck disable=SC2046 # node_args is a word list
  "$here/kafka.sh" start $(node_args "$i")
}

cmd_stop() {
  local kill=() i rc=0
  dir=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    --kill) kill=(--kill); shift ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" ]] || usage
  [[ -f "$dir/cluster.env" ]] || return 0
  load "$dir"
  # In parallel: a node waits for the quorum while it shuts down, so the last one alone would
  # wait for its full SIGTERM grace period.
  local -a pids=()
  for ((i = 1; i <= nodes; i++)); do
    "$here/kafka.sh" stop --dir "$dir/node$i" "${kill[@]}" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
  return $rc
}

cmd_brokers() {
  dir=""
  while (($#)); do
    case $1 in
    --dir) dir=${2:?}; shift 2 ;;
    *) usage ;;
    esac
  done
  [[ -n "$dir" ]] || usage
  load "$dir"
  local i list=""
  for ((i = 1; i <= nodes; i++)); do list+="${list:+,}$host:$((port + 2 * (i - 1)))"; done
  echo "$list"
}

broker_main "$@"
