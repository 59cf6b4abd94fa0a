#pragma once

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/logger.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/log_throttle.h"
#include "connectors/router.h"
#include "connectors/sink.h"

namespace sluice::connectors {

struct KafkaSinkOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string compression = "lz4";
  int linger_ms = 5;
  int batch_bytes = 1000000;
  int max_in_flight = 50000;
  int retry_backoff_ms = 250;
  int reconnect_max_ms = 10000;
  std::string gateway_id;
  std::map<std::string, std::string> properties;  // passed to librdkafka as they are
};

// Header names on every record; docs/kafka-records.md describes their formats.
inline constexpr const char* kHeaderMqttTopic = "mqtt.topic";
inline constexpr const char* kHeaderMqttQos = "mqtt.qos";
inline constexpr const char* kHeaderGateway = "sluice.gateway";
inline constexpr const char* kHeaderSeq = "sluice.seq";
inline constexpr const char* kHeaderReceivedMs = "sluice.received_ms";

// The Kafka sink on librdkafka's C++ producer.
//
// Ordering and duplicates: the producer is idempotent (enable.idempotence, acks=all) with no
// message timeout (message.timeout.ms=0): librdkafka retries transient failures itself, forever,
// keeping per-partition order and suppressing duplicates from its own retries. The record key is
// the route's device key, so all events of a device go to one partition, in sequence order.
//
// Permanent refusals (record too large, unknown topic) come back as kRejected. An authorization
// refusal (topic or cluster ACL) is the operator's to fix, not the event's: it comes back as kRetry
// (or Unavailable from Send), with a throttled error naming the topic. A fatal idempotence error
// rebuilds the producer, at most as often as a backoff allows, and reports what was in flight as
// kRetry.
//
// Thread-safety: one thread calls every method (the forwarder), as Sink requires; librdkafka's own
// threads never call into this class except through Poll.
class KafkaSink final : public Sink {
 public:
  // `router` must outlive the sink.
  static Status Create(KafkaSinkOptions options, const Router* router,
                       std::shared_ptr<spdlog::logger> logger, std::unique_ptr<KafkaSink>* out);
  ~KafkaSink() override;

  Status Send(const storage::Event& event) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override;
  size_t InFlight() const override { return in_flight_; }
  bool Connected() const override { return connected_.load(); }
  std::string HoldReason() const override { return hold_reason_; }
  const std::string& name() const override { return name_; }

  // Waits up to `timeout` for every in-flight event to be reported (shutdown).
  void Drain(std::chrono::milliseconds timeout, std::vector<Delivery>* out);

 private:
  class Callbacks;

  KafkaSink(KafkaSinkOptions options, const Router* router, std::shared_ptr<spdlog::logger> logger);
  Status BuildProducer();
  // While nothing is in flight no delivery report says whether Kafka answers, so an idle sink asks
  // for metadata now and then to learn that it is connected (readiness, metrics).
  void ProbeConnection();
  void RebuildAfterFatal(const std::string& reason, std::vector<Delivery>* out);
  void WarnAuthorization(const std::string& topic, RdKafka::ErrorCode err);

  const KafkaSinkOptions options_;
  const Router* const router_;
  std::shared_ptr<spdlog::logger> log_;
  const std::string name_ = "kafka";
  std::unique_ptr<Callbacks> callbacks_;
  std::unique_ptr<RdKafka::Producer> producer_;
  size_t in_flight_ = 0;
  std::atomic<bool> connected_{false};
  std::string hold_reason_;
  std::chrono::steady_clock::time_point next_probe_{};
  Backoff rebuild_backoff_{std::chrono::milliseconds(500), std::chrono::seconds(30)};
  std::chrono::steady_clock::time_point next_rebuild_{};
  LogThrottle authorization_log_{std::chrono::seconds(30)};
  LogThrottle fatal_log_{std::chrono::seconds(30)};
};

}  // namespace sluice::connectors
