// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <span>
#include <string>

namespace sluice::connectors {

// What an upstream error means for the event it came with. docs/kafka-records.md, "Error model",
// lists the same codes with the same classes (a unit test compares the two).
enum class KafkaErrorClass {
  kTransient,  // retry in place, in order; librdkafka retries most of these itself
  kHold,       // the operator must act (topic, ACL, credentials, broker setup): hold the log
  kRejected,   // this one event can never be accepted: dead-letter it
  kTooLarge,   // too large: resend alone; dead-letter only an event too large on its own
};

struct KafkaErrorRule {
  RdKafka::ErrorCode code;
  const char* name;  // the RdKafka::ErrorCode enumerator, e.g. "ERR_UNKNOWN_TOPIC_OR_PART"
  KafkaErrorClass cls;
  // For kHold: what the operator must do, a sentence about "the topic" (the sink names it).
  // Otherwise: why the code is in its class.
  const char* action;
};

// Every code that can reach the Kafka sink (produce()'s return, a delivery report, an error
// event), each once.
std::span<const KafkaErrorRule> KafkaErrorModel();

// The rule for `code`; a code the table does not list gets KafkaDefaultErrorRule().
const KafkaErrorRule& ClassifyKafkaError(RdKafka::ErrorCode code);

// For codes the table does not list: hold, never dead-letter (see the .cpp).
const KafkaErrorRule& KafkaDefaultErrorRule();

// "transient", "hold", "rejected", "too large": the words docs/kafka-records.md uses.
const char* KafkaErrorClassName(KafkaErrorClass cls);

}  // namespace sluice::connectors
