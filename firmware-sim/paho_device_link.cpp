// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/paho_device_link.h"

#include <cstdio>

namespace sluice::sim {

namespace {

std::string Reason(const mqtt::token& tok) {
  return mqtt::exception::printable_error(tok.get_return_code(), tok.get_reason_code());
}

// Paho reports a refused MQTT 3.1.1 CONNECT by the CONNACK code and a failed TCP connection as a
// bare -1; both are spelled out so that the operator sees what to fix.
std::string ConnectFailure(const std::string& url, const mqtt::token& tok) {
  const int rc = tok.get_return_code();
  std::string why;
  switch (rc) {
    case MQTTASYNC_FAILURE:
      why = "no connection (broker down or unreachable)";
      break;
    case 1:
      why = "refused: unacceptable protocol version";
      break;
    case 2:
      why = "refused: client identifier rejected";
      break;
    case 3:
      why = "refused: server unavailable";
      break;
    case 4:
      why = "refused: bad user name or password";
      break;
    case 5:
      why = "refused: not authorized";
      break;
    default:
      why = Reason(tok);
  }
  return url + ": " + why;
}

bool WantsTls(const PahoLinkOptions& o) {
  return o.url.rfind("ssl://", 0) == 0 || o.url.rfind("mqtts://", 0) == 0 || !o.ca_file.empty() ||
         !o.cert_file.empty() || !o.key_file.empty();
}

uint64_t TagOf(const mqtt::token& tok) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(tok.get_user_context()));
}

}  // namespace

void PahoDeviceLink::Callback::on_success(const mqtt::token& tok) {
  // Runs on a Paho thread: nothing may escape it.
  try {
    on_success_(tok);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-sim: error in a Paho success callback: %s\n", e.what());
  }
}

void PahoDeviceLink::Callback::on_failure(const mqtt::token& tok) {
  try {
    on_failure_(tok);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-sim: error in a Paho failure callback: %s\n", e.what());
  }
}

DeviceLinkFactory PahoDeviceLink::Factory(PahoLinkOptions options) {
  return [options](const LinkSpec& spec, Listener* listener,
                   std::unique_ptr<DeviceLink>* out) -> Status {
    std::unique_ptr<mqtt::async_client> client;
    try {
      client = std::make_unique<mqtt::async_client>(options.url, spec.client_id,
                                                    mqtt::create_options(MQTTVERSION_3_1_1));
    } catch (const std::exception& e) {
      return Status::InvalidArgument("cannot create an MQTT client for " + options.url +
                                     " (client id '" + spec.client_id + "'): " + e.what());
    }
    *out = std::make_unique<PahoDeviceLink>(options, spec, listener, std::move(client));
    return Status::Ok();
  };
}

PahoDeviceLink::PahoDeviceLink(const PahoLinkOptions& options, const LinkSpec& spec,
                               Listener* listener, std::unique_ptr<mqtt::async_client> client)
    : options_(options),
      spec_(spec),
      listener_(listener),
      client_(std::move(client)),
      connect_cb_([this](const mqtt::token&) { listener_->OnConnected(); },
                  [this](const mqtt::token& tok) {
                    listener_->OnConnectFailed(ConnectFailure(options_.url, tok));
                  }),
      publish_cb_(
          [this](const mqtt::token& tok) { listener_->OnPublished(TagOf(tok)); },
          [this](const mqtt::token& tok) { listener_->OnPublishFailed(TagOf(tok), Reason(tok)); }),
      disconnect_cb_([this](const mqtt::token&) { listener_->OnDisconnected(); },
                     // A failed disconnect still leaves the client disconnected.
                     [this](const mqtt::token&) { listener_->OnDisconnected(); }) {
  client_->set_connection_lost_handler([this](const std::string& cause) {
    try {
      listener_->OnConnectionLost(options_.url + ": " +
                                  (cause.empty() ? "connection lost" : cause));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sluice-sim: error in the connection-lost callback: %s\n", e.what());
    }
  });
}

PahoDeviceLink::~PahoDeviceLink() {
  // The fleet disconnects every link before destroying it; this covers early exits, so that Paho
  // calls no callback into a destroyed listener.
  try {
    if (client_->is_connected()) client_->disconnect(0)->wait_for(std::chrono::seconds(2));
  } catch (const std::exception&) {
    // Already disconnected: nothing left to close.
  }
  client_->set_connection_lost_handler(nullptr);
  // Destroying the client may still fail pending operations through the callbacks, which are
  // members declared after it: destroy it while they exist.
  client_.reset();
}

Status PahoDeviceLink::Connect() {
  try {
    auto builder = mqtt::connect_options_builder()
                       .mqtt_version(MQTTVERSION_3_1_1)
                       .clean_session(true)
                       .automatic_reconnect(false)
                       .keep_alive_interval(options_.keepalive)
                       .connect_timeout(options_.connect_timeout)
                       .max_inflight(options_.max_inflight)
                       .will(mqtt::message(spec_.will_topic, spec_.will_payload, 1, true));
    if (!options_.username.empty()) builder.user_name(options_.username);
    if (!options_.password.empty()) builder.password(options_.password);
    if (WantsTls(options_)) {
      mqtt::ssl_options ssl;
      if (!options_.ca_file.empty()) ssl.set_trust_store(options_.ca_file);
      if (!options_.cert_file.empty()) ssl.set_key_store(options_.cert_file);
      if (!options_.key_file.empty()) ssl.set_private_key(options_.key_file);
      builder.ssl(std::move(ssl));
    }
    client_->connect(builder.finalize(), nullptr, connect_cb_);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("cannot start connecting to " + options_.url + " as '" +
                               spec_.client_id + "': " + e.what());
  }
}

Status PahoDeviceLink::Publish(const std::string& topic, const std::string& payload, int qos,
                               bool retained, uint64_t tag) {
  try {
    auto msg = mqtt::make_message(topic, payload, qos, retained);
    client_->publish(msg, reinterpret_cast<void*>(static_cast<uintptr_t>(tag)), publish_cb_);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("cannot publish to '" + topic + "' as '" + spec_.client_id +
                               "': " + e.what());
  }
}

Status PahoDeviceLink::Disconnect(std::chrono::milliseconds timeout) {
  try {
    client_->disconnect(static_cast<int>(timeout.count()), nullptr, disconnect_cb_);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Status::Unavailable("cannot disconnect '" + spec_.client_id + "': " + e.what());
  }
}

}  // namespace sluice::sim
