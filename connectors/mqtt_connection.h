// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/connect_options.h>

#include <chrono>
#include <string>

namespace sluice::connectors {

// The MQTT protocol version sluice speaks. MQTT 5 lets the broker judge whether a subscription is
// new (retain handling 1); with MQTT 3.1.1 sluice judges it from the session state. The default
// (the configuration's, docs/configuration.md) is 3.1.1.
enum class MqttProtocol { kV5, kV311 };

// How sluice connects to one MQTT broker: the local one it reads from (MqttSource) and any remote
// one it forwards to (MqttSink) alike, so the two cannot differ in how they treat TLS, credentials
// or sessions.
struct MqttConnection {
  std::string url = "tcp://127.0.0.1:1883";  // tcp://, mqtt://, ssl://, mqtts://
  MqttProtocol protocol = MqttProtocol::kV311;
  std::string client_id;  // fixed, so that the broker keeps the session while sluice is away
  std::string username;
  std::string password;
  bool tls = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool tls_verify = true;  // the broker's certificate and its host name
  std::chrono::seconds keepalive{30};
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{30000};
  std::chrono::milliseconds connect_timeout{10000};
};

// MQTT 5 section 3.1.2.11.2: 0xFFFFFFFF, the session never expires, as in MQTT 3.1.1 with clean
// session off (the broker's own limit, e.g. Mosquitto's persistent_client_expiration, applies).
inline constexpr uint32_t kSessionNeverExpires = 0xFFFFFFFF;

// What the broker keeps of a connection's session.
enum class MqttSession {
  // MQTT 5: clean start off and a session that never expires; MQTT 3.1.1: clean session off. The
  // daemon's connections: the broker queues events for sluice while it is away.
  kPersistent,
  // A clean session that ends with the connection (MQTT 5: session expiry 0). `sluice
  // check-config --probe`: it must neither resume nor leave behind a session of its own.
  kTransient,
};

// Paho connect options for `c`: protocol, keepalive, connect timeout, credentials and TLS, with
// the session `session`. Every connection sluice makes to an MQTT broker takes its options here.
mqtt::connect_options ConnectOptions(const MqttConnection& c, MqttSession session);

// ConnectOptions(c, MqttSession::kPersistent).
mqtt::connect_options PersistentSessionOptions(const MqttConnection& c);

}  // namespace sluice::connectors
