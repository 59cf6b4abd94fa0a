// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/async_client.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace sluice::bench {

struct RatePublisherOptions {
  std::string url = "tcp://127.0.0.1:1883";
  std::string client_id = "sluice-bench-pub";
  // Topic of event k: "<topic_prefix>/dev-<k mod devices>/telemetry", so that a gateway keying by
  // device sees several keys, as in the field.
  std::string topic_prefix = "bench";
  int devices = 10;
  int qos = 1;
  size_t payload_bytes = 100;
  std::string tag = "run";
  uint64_t count = 10000;
  double rate = 0;  // events/s; 0: as fast as the window allows
  // Publishes not yet completed (PUBACK for QoS 1, written to the socket for QoS 0) at most.
  int window = 256;
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds finish_timeout{120000};  // for the last completions
};

// Publishes `count` stamped events (bench_payload.h) at a precise rate over one MQTT connection,
// with a bounded window of incomplete publishes. Paho assigns message ids from the free ones, so
// it does not stop at 65,535 messages as `mosquitto_pub -l` does. Due times come from the event
// number alone (start + k / rate), so pacing does not drift when the publisher falls behind.
// One thread calls Run; Paho's threads call only the completion listener, which locks.
class RatePublisher {
 public:
  explicit RatePublisher(RatePublisherOptions options);
  RatePublisher(const RatePublisher&) = delete;
  RatePublisher& operator=(const RatePublisher&) = delete;

  // Fills `result` with sent, completed, failed, start/end times (Unix us), elapsed_s, rate and
  // late_max_ms (how far behind schedule a publish ever was).
  Status Run(nlohmann::ordered_json* result);

 private:
  class Listener final : public mqtt::iaction_listener {
   public:
    explicit Listener(RatePublisher* owner) : owner_(owner) {}
    void on_success(const mqtt::token&) override { owner_->Complete(true); }
    void on_failure(const mqtt::token&) override { owner_->Complete(false); }

   private:
    RatePublisher* owner_;
  };

  void Complete(bool ok);

  const RatePublisherOptions options_;
  Listener listener_{this};
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t outstanding_ = 0;      // GUARDED_BY(mu_)
  uint64_t completed_ = 0;        // GUARDED_BY(mu_)
  uint64_t failed_ = 0;           // GUARDED_BY(mu_)
  int64_t last_complete_us_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace sluice::bench
