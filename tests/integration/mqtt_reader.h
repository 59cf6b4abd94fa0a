// SPDX-License-Identifier: Apache-2.0

#pragma once

// A persistent-session MQTT subscriber for tests: reads back what an MQTT upstream received
// (connectors/mqtt_sink.h now, daemon-level tests later). It reconnects by itself and keeps every
// message it was given, in arrival order, with its MQTT 5 user properties.

#include <mqtt/async_client.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "connectors/mqtt_connection.h"

namespace sluice::testing {

struct ReceivedMessage {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retained = false;  // as published (MQTT 5 retain-as-published; 3.1.1: as delivered)
  std::map<std::string, std::string> user_properties;  // MQTT 5 only
};

// Thread-safe. Paho's callback thread appends; the test reads.
class MqttReader {
 public:
  // `connection.client_id` names the persistent session: the same id resumes it.
  MqttReader(connectors::MqttConnection connection, std::vector<std::string> filters);
  ~MqttReader();
  MqttReader(const MqttReader&) = delete;
  MqttReader& operator=(const MqttReader&) = delete;

  // Connects and subscribes every filter at QoS 1, waiting up to `timeout` for the SUBACKs.
  Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Disconnects cleanly; the broker keeps the session.
  void Stop();

  std::vector<ReceivedMessage> Messages() const;
  size_t Count() const;
  // Waits until at least `n` messages arrived or `timeout` passed; true if they did.
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout) const;
  bool Connected() const;

 private:
  void Subscribe();

  const connectors::MqttConnection connection_;
  const std::vector<std::string> filters_;
  std::unique_ptr<mqtt::async_client> client_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<ReceivedMessage> messages_;  // GUARDED_BY(mu_)
};

}  // namespace sluice::testing
