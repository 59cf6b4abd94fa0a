// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/mqtt_reader.h"

#include <mqtt/properties.h>
#include <mqtt/subscribe_options.h>

namespace sluice::testing {

MqttReader::MqttReader(connectors::MqttConnection connection, std::vector<std::string> filters)
    : connection_(std::move(connection)), filters_(std::move(filters)) {}

MqttReader::~MqttReader() {
  Stop();
}

Status MqttReader::Start(std::chrono::milliseconds timeout) {
  const bool v5 = connection_.protocol == connectors::MqttProtocol::kV5;
  try {
    client_ = std::make_unique<mqtt::async_client>(
        connection_.url, connection_.client_id,
        mqtt::create_options(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1), nullptr);
    client_->set_message_callback([this](mqtt::const_message_ptr m) {
      ReceivedMessage r;
      r.topic = m->get_topic();
      r.payload = m->get_payload_str();
      r.qos = m->get_qos();
      r.retained = m->is_retained();
      const mqtt::properties& props = m->get_properties();
      for (size_t i = 0; i < props.size(); ++i) {
        try {
          auto [k, v] = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
          r.user_properties[k] = v;
        } catch (const std::exception&) {
          break;  // no more user properties
        }
      }
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(std::move(r));
      cv_.notify_all();
    });
    // After a broker restart that lost the session, the subscriptions must be made again; with a
    // resumed session subscribing again is harmless.
    client_->set_connected_handler([this](const std::string&) { Subscribe(); });
    mqtt::connect_options opts = connectors::PersistentSessionOptions(connection_);
    if (v5) {
      // Paho C++ 1.2 drops properties given to connect_options_builder, so the session would end
      // with the connection and the reader would miss what is published while the broker
      // restarts. main fixes PersistentSessionOptions itself (147d0a5); this is redundant then.
      opts.set_properties({{mqtt::property::SESSION_EXPIRY_INTERVAL,
                            static_cast<int32_t>(connectors::kSessionNeverExpires)}});
    }
    opts.set_automatic_reconnect(1, 2);
    if (!client_->connect(opts)->wait_for(timeout)) {
      return Status::Unavailable("reader: connect to " + connection_.url + " timed out");
    }
  } catch (const std::exception& e) {
    return Status::Unavailable("reader: connect to " + connection_.url + ": " + e.what());
  }
  // The connected handler subscribes; wait for a SUBACK of our own to know it is in place.
  try {
    for (const std::string& f : filters_) {
      mqtt::token_ptr tok = v5 ? client_->subscribe(f, 1, mqtt::subscribe_options(false, true))
                               : client_->subscribe(f, 1);
      if (!tok->wait_for(timeout)) return Status::Unavailable("reader: subscribe timed out");
    }
  } catch (const std::exception& e) {
    return Status::Unavailable(std::string("reader: subscribe: ") + e.what());
  }
  return Status::Ok();
}

void MqttReader::Subscribe() {
  const bool v5 = connection_.protocol == connectors::MqttProtocol::kV5;
  try {
    for (const std::string& f : filters_) {
      // Retain-as-published: the test sees the RETAIN flag the upstream was given.
      if (v5) {
        client_->subscribe(f, 1, mqtt::subscribe_options(false, true));
      } else {
        client_->subscribe(f, 1);
      }
    }
  } catch (const std::exception&) {
    // Disconnected again; the next connection subscribes.
  }
}

void MqttReader::Stop() {
  if (!client_) return;
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(5));
  } catch (const std::exception&) {
    // Gone already.
  }
  client_.reset();
}

std::vector<ReceivedMessage> MqttReader::Messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t MqttReader::Count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

bool MqttReader::WaitForCount(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n; });
}

bool MqttReader::Connected() const {
  return client_ && client_->is_connected();
}

}  // namespace sluice::testing
