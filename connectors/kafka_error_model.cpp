// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_error_model.h"

#include <array>

namespace sluice::connectors {

namespace {

using C = KafkaErrorClass;

#define SLUICE_RULE(code, cls, action) \
  KafkaErrorRule {                     \
    RdKafka::code, #code, cls, action  \
  }

// The single table of the sink's error model. Principles:
// - Kafka's own "retriable" flag and librdkafka's handling decide (a): with message.timeout.ms=0
//   librdkafka retries these forever in order, so they rarely reach a delivery report at all.
// - An error that every event of a topic (or of the cluster) would get alike is the operator's,
//   not the event's: (b), hold. Dead-lettering it would empty a whole fleet's logs into the
//   dead-letter table for one missing topic, one ACL or one wrong clock.
// - Only an error about this record's own bytes is (c), rejected.
constexpr std::array kRules = {
    // (a) transient: connection, leadership, replication and idempotence state.
    SLUICE_RULE(ERR__TRANSPORT, C::kTransient, "a broker connection failed; librdkafka reconnects"),
    SLUICE_RULE(ERR__RESOLVE, C::kTransient,
                "a broker name did not resolve; retried (a typo never resolves: see the log)"),
    SLUICE_RULE(ERR__TIMED_OUT, C::kTransient, "a request timed out"),
    SLUICE_RULE(ERR__TIMED_OUT_QUEUE, C::kTransient, "timed out in librdkafka's queue"),
    SLUICE_RULE(ERR__MSG_TIMED_OUT, C::kTransient,
                "outlived its transaction (exactly-once; at-least-once never times out): the "
                "transaction aborts and the events are resent"),
    SLUICE_RULE(ERR__QUEUE_FULL, C::kTransient,
                "librdkafka's queue is full: serve delivery reports, then send again"),
    SLUICE_RULE(ERR__PURGE_QUEUE, C::kTransient,
                "purged by a producer rebuild or a transaction's abort; resent"),
    SLUICE_RULE(ERR__PURGE_INFLIGHT, C::kTransient,
                "purged by a producer rebuild or a transaction's abort; resent"),
    // Seen only by the producer that was fenced, which stops for good (exit code 3).
    SLUICE_RULE(ERR__FENCED, C::kTransient,
                "another sluice with this gateway id took over the transactional producer"),
    SLUICE_RULE(ERR_PRODUCER_FENCED, C::kTransient,
                "another sluice with this gateway id took over the transactional producer"),
    SLUICE_RULE(ERR__DESTROY, C::kTransient, "the producer was closed; resent by the next one"),
    SLUICE_RULE(ERR__FATAL, C::kTransient,
                "the idempotent producer failed for good; it is rebuilt and the events resent"),
    SLUICE_RULE(ERR__GAPLESS_GUARANTEE, C::kTransient,
                "the idempotent producer lost its sequence; rebuilt and resent"),
    SLUICE_RULE(ERR__INCONSISTENT, C::kTransient, "inconsistent producer state; resent"),
    SLUICE_RULE(ERR__ISR_INSUFF, C::kTransient, "too few in-sync replicas for now"),
    SLUICE_RULE(ERR__RETRY, C::kTransient, "librdkafka asks for a retry"),
    SLUICE_RULE(ERR__NODE_UPDATE, C::kTransient, "a broker's address changed"),
    SLUICE_RULE(ERR__INTR, C::kTransient, "interrupted"),
    SLUICE_RULE(ERR__CRIT_SYS_RESOURCE, C::kTransient, "the system ran short of threads or memory"),
    SLUICE_RULE(ERR_LEADER_NOT_AVAILABLE, C::kTransient, "a leader election is under way"),
    SLUICE_RULE(ERR_NOT_LEADER_FOR_PARTITION, C::kTransient, "the partition's leader moved"),
    SLUICE_RULE(ERR_REQUEST_TIMED_OUT, C::kTransient, "the broker timed out waiting for replicas"),
    SLUICE_RULE(ERR_BROKER_NOT_AVAILABLE, C::kTransient, "a broker is down"),
    SLUICE_RULE(ERR_REPLICA_NOT_AVAILABLE, C::kTransient, "a replica is down"),
    SLUICE_RULE(ERR_NETWORK_EXCEPTION, C::kTransient, "the broker lost a connection"),
    // Retriable in Kafka and the normal state while a replica restarts. A topic whose
    // min.insync.replicas exceeds its replication factor also answers this, for good; the backlog
    // metrics and librdkafka's log show it, and holding would fail readiness on every restart.
    SLUICE_RULE(ERR_NOT_ENOUGH_REPLICAS, C::kTransient, "fewer in-sync replicas than required"),
    SLUICE_RULE(ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, C::kTransient,
                "written, but too few replicas confirmed it"),
    SLUICE_RULE(ERR_KAFKA_STORAGE_ERROR, C::kTransient, "a broker's disk failed; leadership moves"),
    SLUICE_RULE(ERR_FENCED_LEADER_EPOCH, C::kTransient, "stale leader metadata"),
    SLUICE_RULE(ERR_UNKNOWN_LEADER_EPOCH, C::kTransient, "stale leader metadata"),
    SLUICE_RULE(ERR_PREFERRED_LEADER_NOT_AVAILABLE, C::kTransient, "a leader election is pending"),
    SLUICE_RULE(ERR_ELIGIBLE_LEADERS_NOT_AVAILABLE, C::kTransient, "no eligible leader yet"),
    SLUICE_RULE(ERR_REASSIGNMENT_IN_PROGRESS, C::kTransient, "partitions are being moved"),
    SLUICE_RULE(ERR_NOT_CONTROLLER, C::kTransient, "the controller moved"),
    SLUICE_RULE(ERR_COORDINATOR_LOAD_IN_PROGRESS, C::kTransient, "a coordinator is loading"),
    SLUICE_RULE(ERR_COORDINATOR_NOT_AVAILABLE, C::kTransient, "no coordinator yet"),
    SLUICE_RULE(ERR_NOT_COORDINATOR, C::kTransient, "the coordinator moved"),
    SLUICE_RULE(ERR_OPERATION_NOT_ATTEMPTED, C::kTransient,
                "not attempted because of another error"),
    SLUICE_RULE(ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, C::kTransient,
                "the idempotent producer lost its sequence; librdkafka recovers or it is rebuilt"),
    SLUICE_RULE(ERR_UNKNOWN_PRODUCER_ID, C::kTransient,
                "the broker forgot the producer id; librdkafka renews it"),
    SLUICE_RULE(ERR_INVALID_PRODUCER_EPOCH, C::kTransient, "stale producer epoch; renewed"),
    SLUICE_RULE(ERR_INVALID_PRODUCER_ID_MAPPING, C::kTransient, "stale producer id; renewed"),
    SLUICE_RULE(ERR_CONCURRENT_TRANSACTIONS, C::kTransient, "a previous producer id is closing"),

    // (b) hold: the operator must act.
    // Kafka marks unknown-topic-or-partition retriable and brokers answer it for a known topic
    // during restarts (librdkafka issue 3513); either way no event is at fault.
    SLUICE_RULE(ERR_UNKNOWN_TOPIC_OR_PART, C::kHold,
                "create the topic (or let the cluster create it: auto.create.topics.enable)"),
    SLUICE_RULE(ERR__UNKNOWN_TOPIC, C::kHold,
                "create the topic (or let the cluster create it: auto.create.topics.enable)"),
    SLUICE_RULE(ERR__UNKNOWN_PARTITION, C::kHold, "check the topic's partitions"),
    // An invalid name is a configuration mistake shared by every event of the route.
    SLUICE_RULE(ERR_TOPIC_EXCEPTION, C::kHold,
                "the topic name is invalid: fix the route's kafka_topic and restart sluice"),
    SLUICE_RULE(ERR_TOPIC_AUTHORIZATION_FAILED, C::kHold,
                "grant sluice's principal WRITE and DESCRIBE on the topic (and IDEMPOTENT_WRITE "
                "on the cluster)"),
    SLUICE_RULE(ERR_CLUSTER_AUTHORIZATION_FAILED, C::kHold,
                "grant sluice's principal IDEMPOTENT_WRITE on the cluster (and WRITE and DESCRIBE "
                "on the topic)"),
    SLUICE_RULE(ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED, C::kHold,
                "grant sluice's principal access to its transactional id"),
    SLUICE_RULE(ERR__AUTHENTICATION, C::kHold,
                "fix the Kafka credentials (kafka.sasl_*, sasl.* or ssl.* settings) and restart "
                "sluice"),
    SLUICE_RULE(ERR_SASL_AUTHENTICATION_FAILED, C::kHold,
                "fix the SASL user name or password and restart sluice"),
    SLUICE_RULE(ERR_UNSUPPORTED_SASL_MECHANISM, C::kHold,
                "choose a SASL mechanism the brokers enable (sasl.mechanism)"),
    SLUICE_RULE(ERR_ILLEGAL_SASL_STATE, C::kHold, "check the brokers' SASL listener setup"),
    SLUICE_RULE(ERR_UNACCEPTABLE_CREDENTIAL, C::kHold,
                "the brokers refuse the credential: renew it"),
    SLUICE_RULE(ERR_SECURITY_DISABLED, C::kHold, "enable security on the brokers' listener"),
    SLUICE_RULE(ERR__SSL, C::kHold,
                "fix the TLS setup (CA, certificate, key, host name) on sluice or the brokers"),
    // Producer quotas throttle rather than fail; this one only comes with a quota that refuses.
    SLUICE_RULE(ERR_THROTTLING_QUOTA_EXCEEDED, C::kHold, "raise the client quota of sluice"),
    // A broker policy refuses what would be created or written for the topic (e.g. auto-creation
    // by a CreateTopicPolicy): the same for every event, so the policy or the topic must change.
    SLUICE_RULE(ERR_POLICY_VIOLATION, C::kHold,
                "a broker policy refuses the topic: create it as the policy allows"),
    SLUICE_RULE(ERR__ALL_BROKERS_DOWN, C::kHold,
                "no broker answers: check kafka.brokers, the network and the cluster"),
    SLUICE_RULE(ERR_LISTENER_NOT_FOUND, C::kHold,
                "the brokers advertise no listener for this connection: fix advertised.listeners"),
    // The record's CreateTime is the send time, so a refused timestamp means the gateway's clock
    // (or the topic's message.timestamp.difference.max.ms), and every event would be refused.
    SLUICE_RULE(ERR_INVALID_TIMESTAMP, C::kHold,
                "the gateway's clock is off: fix it (or the topic's "
                "message.timestamp.difference.max.ms)"),
    SLUICE_RULE(ERR_INVALID_REQUIRED_ACKS, C::kHold, "the brokers refuse acks=all: upgrade them"),
    SLUICE_RULE(ERR_UNSUPPORTED_VERSION, C::kHold,
                "the brokers are too old for sluice: upgrade them"),
    SLUICE_RULE(ERR__UNSUPPORTED_FEATURE, C::kHold,
                "the brokers lack a feature sluice needs (record headers, idempotence): upgrade "
                "them"),
    SLUICE_RULE(ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT, C::kHold,
                "raise the topic's message.format.version (record headers need v2)"),
    SLUICE_RULE(ERR_UNSUPPORTED_COMPRESSION_TYPE, C::kHold,
                "the topic refuses kafka.compression: choose another or change the topic"),

    // (c) rejected: this record's own bytes are at fault.
    SLUICE_RULE(ERR_INVALID_RECORD, C::kRejected,
                "the broker's record validation refused this record"),
    SLUICE_RULE(ERR_INVALID_MSG, C::kRejected,
                "the broker found this record corrupt after librdkafka's own retries"),
    SLUICE_RULE(ERR_INVALID_MSG_SIZE, C::kRejected, "the record's size is invalid"),
    SLUICE_RULE(ERR__BAD_MSG, C::kRejected, "librdkafka cannot encode this record"),
    SLUICE_RULE(ERR__INVALID_ARG, C::kRejected, "librdkafka refused this record's arguments"),

    // (c) too large: a batch answer in a delivery report; from produce() the record alone.
    SLUICE_RULE(ERR_MSG_SIZE_TOO_LARGE, C::kTooLarge,
                "over the topic's max.message.bytes or librdkafka's message.max.bytes"),
    SLUICE_RULE(ERR_RECORD_LIST_TOO_LARGE, C::kTooLarge, "the request was too large"),
};

#undef SLUICE_RULE

// An error the table does not know is held, not retried in place and never dead-lettered: a
// dead letter on a guess loses the order for good, and an immediate resend of an error that
// persists would resend the window in a tight loop; a hold backs off, sends one event at a time,
// and says in /readyz and the log that something needs a look.
constexpr KafkaErrorRule kDefault{RdKafka::ERR_UNKNOWN, "(any other)", C::kHold,
                                  "an error sluice does not classify: check the brokers' log"};

}  // namespace

std::span<const KafkaErrorRule> KafkaErrorModel() {
  return kRules;
}

const KafkaErrorRule& KafkaDefaultErrorRule() {
  return kDefault;
}

const KafkaErrorRule& ClassifyKafkaError(RdKafka::ErrorCode code) {
  for (const KafkaErrorRule& r : kRules) {
    if (r.code == code) return r;
  }
  return kDefault;
}

const char* KafkaErrorClassName(KafkaErrorClass cls) {
  switch (cls) {
    case KafkaErrorClass::kTransient:
      return "transient";
    case KafkaErrorClass::kHold:
      return "hold";
    case KafkaErrorClass::kRejected:
      return "rejected";
    case KafkaErrorClass::kTooLarge:
      return "too large";
  }
  return "hold";
}

}  // namespace sluice::connectors
