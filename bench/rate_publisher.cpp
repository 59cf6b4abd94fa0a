// SPDX-License-Identifier: Apache-2.0

#include "bench/rate_publisher.h"

#include <thread>
#include <vector>

#include "bench/bench_payload.h"

namespace sluice::bench {

RatePublisher::RatePublisher(RatePublisherOptions options) : options_(std::move(options)) {}

void RatePublisher::Complete(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  if (outstanding_ > 0) --outstanding_;
  if (ok) {
    ++completed_;
  } else {
    ++failed_;
  }
  last_complete_us_ = NowUnixMicros();
  cv_.notify_one();
}

Status RatePublisher::Run(nlohmann::ordered_json* result) {
  if (options_.devices < 1 || options_.window < 1 || options_.qos < 0 || options_.qos > 1) {
    return Status::InvalidArgument("publisher: devices and window must be >= 1, qos 0 or 1");
  }
  std::vector<std::string> topics;
  for (int d = 0; d < options_.devices; ++d) {
    char name[32];
    std::snprintf(name, sizeof name, "/dev-%03d/telemetry", d);
    topics.push_back(options_.topic_prefix + name);
  }
  // Paho counts publishes not yet written to the socket against max_buffered_messages (default
  // 100) even while connected; the window is the bound that matters here.
  mqtt::async_client client(options_.url, options_.client_id,
                            mqtt::create_options(MQTTVERSION_3_1_1, options_.window + 16));
  mqtt::connect_options conn;
  conn.set_clean_session(true);
  conn.set_keep_alive_interval(30);
  conn.set_max_inflight(options_.window + 16);
  try {
    if (!client.connect(conn)->wait_for(options_.connect_timeout)) {
      return Status::Unavailable("publisher: no CONNACK from " + options_.url);
    }
  } catch (const mqtt::exception& e) {
    return Status::Unavailable("publisher: cannot connect to " + options_.url + ": " + e.what());
  }

  const auto start = std::chrono::steady_clock::now();
  const int64_t start_us = NowUnixMicros();
  std::chrono::nanoseconds late_max{0};
  uint64_t sent = 0;
  Status status;
  for (uint64_t k = 0; k < options_.count; ++k) {
    if (options_.rate > 0) {
      const auto due = start + std::chrono::nanoseconds(static_cast<int64_t>(
                                   static_cast<double>(k) * 1e9 / options_.rate));
      const auto now = std::chrono::steady_clock::now();
      if (now < due) {
        std::this_thread::sleep_until(due);
      } else {
        late_max = std::max(late_max, std::chrono::nanoseconds(now - due));
      }
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return outstanding_ < static_cast<uint64_t>(options_.window); });
      ++outstanding_;
    }
    const std::string payload =
        EncodeStamp({options_.tag, k, NowUnixMicros()}, options_.payload_bytes);
    try {
      client.publish(topics[k % topics.size()], payload.data(), payload.size(), options_.qos, false,
                     nullptr, listener_);
      ++sent;
    } catch (const mqtt::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      --outstanding_;
      status = Status::Unavailable("publisher: publish " + std::to_string(k) + " to " +
                                   options_.url + " failed: " + e.what());
      break;
    }
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, options_.finish_timeout, [&] { return outstanding_ == 0; }) &&
        status.ok()) {
      status = Status::Unavailable("publisher: " + std::to_string(outstanding_) +
                                   " publishes still incomplete after the finish timeout");
    }
  }
  const int64_t end_us = NowUnixMicros();
  try {
    client.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
    // Counts are final; a failed disconnect changes nothing measured.
  }
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t done_us = last_complete_us_ == 0 ? end_us : last_complete_us_;
  const double elapsed = static_cast<double>(done_us - start_us) / 1e6;
  auto& r = *result;
  r["tag"] = options_.tag;
  r["qos"] = options_.qos;
  r["payload_bytes"] = options_.payload_bytes;
  r["target_rate"] = options_.rate;
  r["sent"] = sent;
  r["completed"] = completed_;
  r["failed"] = failed_;
  r["start_us"] = start_us;
  r["end_us"] = done_us;
  r["elapsed_s"] = elapsed;
  r["rate"] = elapsed > 0 ? static_cast<double>(completed_) / elapsed : 0.0;
  r["late_max_ms"] = static_cast<double>(late_max.count()) / 1e6;
  if (status.ok() && failed_ > 0) {
    status = Status::Unavailable("publisher: " + std::to_string(failed_) + " publishes failed");
  }
  return status;
}

}  // namespace sluice::bench
