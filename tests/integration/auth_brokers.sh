#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# CTest fixture for the Kafka authentication and authorization tests: a Kafka broker of their own
# with a SASL_PLAINTEXT listener (mechanism PLAIN, users admin and sluice) and the KRaft ACL
# authorizer. The PLAINTEXT and controller listeners stay open (ANONYMOUS is a super user there),
# so the readiness probe, the controller and the tests' reader work without credentials; sluice
# and the tests' admin client use the SASL listener, where the ACLs apply.
# Usage: auth_brokers.sh start|stop STATE_DIR KAFKA_PORT CONTROLLER_PORT SASL_PORT
# The passwords are test fixtures, not secrets: admin-secret and sluice-secret.
set -euo pipefail
here=$(cd "$(dirname "$0")/../../scripts" && pwd)
action=$1 state=$2 kafka_port=$3 ctl_port=$4 sasl_port=$5
case "$action" in
  start)
    # A broker left running by an interrupted earlier run of the same build would hold the ports.
    if [[ -d "$state" ]]; then
      "$here/kafka.sh" stop --dir "$state/kafka" || true
    fi
    rm -rf "$state"
    mkdir -p "$state"
    cat >"$state/auth.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$ctl_port,SASL_PLAINTEXT://127.0.0.1:$sasl_port
advertised.listeners=PLAINTEXT://127.0.0.1:$kafka_port,SASL_PLAINTEXT://127.0.0.1:$sasl_port
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_sluice="sluice-secret";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
PROPS
    "$here/kafka.sh" start --dir "$state/kafka" --port "$kafka_port" --controller-port "$ctl_port" \
      --extra-properties "$state/auth.properties"
    ;;
  stop)
    "$here/kafka.sh" stop --dir "$state/kafka" || true
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR KAFKA_PORT CONTROLLER_PORT SASL_PORT" >&2
    exit 2
    ;;
esac
