// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::bench {

struct ProduceProbeOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string topic;  // REQUIRES: not empty; a fresh topic, so that nothing else competes
  uint64_t count = 100000;
  size_t record_bytes = 100;
  // Keys "bench/drain/dev-NNN" over this many devices and the headers sluice's sink puts on every
  // record, so that the records on the wire are shaped like the ones sluice drains.
  int devices = 10;
  double timeout_s = 300;
};

// The drain ceiling: a bare idempotent librdkafka producer with the settings sluice's Kafka sink
// takes from the one table of owned settings (connectors/kafka_conf.h, OwnedProducerSettings on a
// default KafkaSinkOptions: acks=all, idempotence, linger, batch size, compression, queue size).
// One record is produced and confirmed first (topic created, producer id acquired, connection
// up); then `count` records as fast as the producer queue takes them, polling on a full queue.
// Rate = count / (first produce -> last delivery report).
// Not thread-safe: one thread calls Run; librdkafka calls back only from inside poll()/flush().
class ProduceProbe {
 public:
  // `clock` must outlive the probe.
  ProduceProbe(ProduceProbeOptions options, const Clock* clock)
      : options_(std::move(options)), clock_(clock) {}

  // result: settings (every librdkafka setting the probe made), produced, delivered, failed,
  // first_error, start_us, end_us (Unix us), elapsed_s, records_per_s.
  Status Run(nlohmann::ordered_json* result);

 private:
  const ProduceProbeOptions options_;
  const Clock* const clock_;
};

}  // namespace sluice::bench
