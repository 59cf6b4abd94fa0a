// SPDX-License-Identifier: Apache-2.0

#include "bench/mqtt_counter.h"

#include <cstdio>
#include <fstream>
#include <iomanip>

#include "bench/bench_payload.h"

namespace sluice::bench {

MqttCounter::MqttCounter(MqttCounterOptions options)
    : options_(std::move(options)), main_(options_.count) {
  if (!options_.live_tag.empty()) live_.emplace(options_.live_count);
}

void MqttCounter::OnMessage(const mqtt::const_message_ptr& msg) {
  const int64_t now = NowUnixMicros();
  const auto& payload = msg->get_payload_ref();
  const auto stamp = DecodeStamp(std::string_view(payload.data(), payload.size()));
  std::lock_guard<std::mutex> lock(mu_);
  if (stamp && stamp->tag == options_.tag) {
    main_.Add(stamp->seq, now - stamp->send_us, now);
    last_main_ = std::chrono::steady_clock::now();
    if (Complete()) cv_.notify_all();
  } else if (stamp && live_ && stamp->tag == options_.live_tag) {
    live_->Add(stamp->seq, now - stamp->send_us, now);
    last_main_ = std::chrono::steady_clock::now();
    if (Complete()) cv_.notify_all();
  } else {
    ++foreign_;
  }
}

Status MqttCounter::Run(nlohmann::ordered_json* result) {
  mqtt::async_client client(options_.url, options_.client_id,
                            mqtt::create_options(MQTTVERSION_3_1_1));
  client.set_message_callback([this](mqtt::const_message_ptr msg) {
    // Runs on Paho's thread: nothing may escape it.
    try {
      OnMessage(msg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-bench: message callback: %s\n", e.what());
    }
  });
  // Subscribing again after every (re)connect is harmless with a resumed session and required
  // with a broker that lost it.
  client.set_connected_handler([&client, this](const std::string&) {
    try {
      client.subscribe(options_.filter, options_.qos);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-bench: subscribe: %s\n", e.what());
    }
  });
  mqtt::connect_options conn;
  conn.set_clean_session(options_.clean_session);
  conn.set_keep_alive_interval(30);
  conn.set_automatic_reconnect(1, 2);
  try {
    client.connect(conn)->wait_for(std::chrono::seconds(10));
    if (!client.is_connected())
      return Status::Unavailable("subscriber: cannot connect to " + options_.url);
    // The connected handler subscribes too; this one is waited for so the ready file is true.
    client.subscribe(options_.filter, options_.qos)->wait_for(std::chrono::seconds(10));
  } catch (const mqtt::exception& e) {
    return Status::Unavailable("subscriber: " + options_.url + ": " + e.what());
  }
  if (!options_.ready_file.empty()) std::ofstream(options_.ready_file) << "ready\n";

  std::ofstream timeline;
  if (!options_.timeline_csv.empty()) timeline.open(options_.timeline_csv);
  // Unix seconds to the millisecond; the default 6 significant digits would cut them to ~15 min.
  timeline << std::fixed << std::setprecision(3);
  const auto start = std::chrono::steady_clock::now();
  std::string stop = "timeout";
  {
    std::unique_lock<std::mutex> lock(mu_);
    last_main_ = start;
    while (true) {
      if (Complete()) {
        stop = "complete";
        break;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now - start >= options_.timeout) break;
      if (main_.unique() > 0 && now - last_main_ >= options_.idle_timeout) {
        stop = "idle";
        break;
      }
      if (timeline.is_open()) {
        timeline << static_cast<double>(NowUnixMicros()) / 1e6 << ' ' << main_.unique() << '\n';
      }
      cv_.wait_for(lock, options_.timeline_interval);
    }
    if (timeline.is_open()) {
      timeline << static_cast<double>(NowUnixMicros()) / 1e6 << ' ' << main_.unique() << '\n';
    }
  }
  try {
    client.disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const mqtt::exception&) {
    // Counts are final.
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto& r = *result;
  r["tag"] = options_.tag;
  r["stop"] = stop;
  r["events"] = main_.Summary();
  if (live_) r["live"] = live_->Summary();
  r["foreign"] = foreign_;
  return Status::Ok();
}

}  // namespace sluice::bench
