// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/async_client.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bench/latency_recorder.h"
#include "common/status.h"

namespace sluice::bench {

struct MqttCounterOptions {
  std::string url = "tcp://127.0.0.1:1883";
  std::string client_id = "sluice-bench-sub";
  std::string filter = "bench/#";
  int qos = 1;
  // false: a persistent session that the broker keeps (and queues for) while this probe is
  // disconnected; with automatic reconnect it rides out a broker restart.
  bool clean_session = true;
  std::string tag = "run";  // the run whose events are counted
  uint64_t count = 0;       // expected events of `tag`; reading stops once all arrived
  std::string live_tag;     // optional second run, only tallied (latency during a drain)
  uint64_t live_count = 0;
  std::chrono::milliseconds idle_timeout{15000};  // since the last event, once `tag` began
  std::chrono::milliseconds timeout{600000};
  std::string ready_file;  // written once subscribed, so a script can start publishing
  // Every interval, "unix_s received_of_tag" is appended here (backlog over time).
  std::string timeline_csv;
  std::chrono::milliseconds timeline_interval{250};
};

// The plain subscriber of the benchmark: the no-gateway ceiling (publisher -> Mosquitto -> this)
// and the far end of Mosquitto's bridge. It only decodes the stamp and counts, so it costs about
// what any consumer of the broker costs. Latency is receive time minus the stamp's send time.
// One thread calls Run; Paho's callback thread feeds the recorders under mu_.
class MqttCounter {
 public:
  explicit MqttCounter(MqttCounterOptions options);
  MqttCounter(const MqttCounter&) = delete;
  MqttCounter& operator=(const MqttCounter&) = delete;

  Status Run(nlohmann::ordered_json* result);

 private:
  void OnMessage(const mqtt::const_message_ptr& msg);
  // REQUIRES: mu_ held. Every expected event of both runs arrived.
  bool Complete() const { return main_.complete() && (!live_ || live_->complete()); }

  const MqttCounterOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  LatencyRecorder main_;                 // GUARDED_BY(mu_)
  std::optional<LatencyRecorder> live_;  // GUARDED_BY(mu_)
  uint64_t foreign_ = 0;                 // GUARDED_BY(mu_) messages without a known stamp
  std::chrono::steady_clock::time_point last_main_{};  // GUARDED_BY(mu_)
};

}  // namespace sluice::bench
