// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/logger.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::connectors {

struct KafkaSinkOptions;

// Where an exactly-once upstream stands: every event of the log `log_id` with seq <= `seq` that
// the upstream takes is in Kafka, committed.
struct Checkpoint {
  std::string log_id;
  uint64_t seq = 0;
};

// The checkpoint record's value (docs/kafka-records.md, "Checkpoint records").
std::string EncodeCheckpoint(const Checkpoint& checkpoint);
// False if `value` is not a checkpoint of a version this sluice reads.
bool DecodeCheckpoint(std::string_view value, Checkpoint* out);

// One upstream's checkpoint in the compacted checkpoint topic, after Kafka Connect's exactly-once
// source connectors (KIP-618): the sink writes it inside each transaction, so that events and
// position commit together or not at all, and reads it back with read_committed to learn where
// forwarding resumes.
//
// The record is keyed "<gateway_id>/<upstream>" and always goes to the partition its key hashes to
// (FNV-1a), so that reading it back means reading one partition, from its end backwards until the
// key's last record turns up.
//
// Thread-safety: one thread (the sink's) calls every method.
class KafkaCheckpoint {
 public:
  KafkaCheckpoint(const KafkaSinkOptions& options, std::shared_ptr<spdlog::logger> logger);
  ~KafkaCheckpoint();

  const std::string& topic() const { return topic_; }
  const std::string& key() const { return key_; }

  // Creates the topic (compacted, one partition) unless it exists, through `producer`'s admin
  // API, and learns its partition count. Unavailable with the cause (and what to do) otherwise.
  Status Prepare(RdKafka::Producer* producer, std::chrono::milliseconds timeout);

  // The partition the checkpoint goes to. REQUIRES: Prepare succeeded.
  int32_t partition() const { return partition_; }

  // The last committed checkpoint for this key, read with isolation.level=read_committed; nullopt
  // if the topic holds none. Unavailable if the partition could not be read to its end in time
  // (for instance while another producer's transaction keeps its last stable offset back).
  // REQUIRES: Prepare succeeded.
  Status Read(std::chrono::milliseconds timeout, std::optional<Checkpoint>* out);

 private:
  Status MakeConsumer();
  class Events;

  const std::string topic_;
  const std::string key_;
  const std::string brokers_;
  const std::string gateway_id_;
  const std::map<std::string, std::string>& properties_;  // the sink's options outlive this
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Events> events_;  // before consumer_: the consumer calls it until destroyed
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
  int32_t partition_ = -1;
};

}  // namespace sluice::connectors
