// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_connection.h"

#include <mqtt/ssl_options.h>

namespace sluice::connectors {

mqtt::connect_options PersistentSessionOptions(const MqttConnection& c) {
  return ConnectOptions(c, MqttSession::kPersistent);
}

mqtt::connect_options ConnectOptions(const MqttConnection& c, MqttSession session) {
  const bool v5 = c.protocol == MqttProtocol::kV5;
  const bool persistent = session == MqttSession::kPersistent;
  auto builder =
      mqtt::connect_options_builder()
          .mqtt_version(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
          .keep_alive_interval(c.keepalive)
          .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(c.connect_timeout));
  // Paho C refuses the 3.1.1 flag set under MQTT 5 and the MQTT 5 flag under 3.1.1: each version
  // says it with its own. A persistent session has both off, so Paho keeps its own session state.
  builder.clean_session(!persistent && !v5);
  if (v5) builder.clean_start(!persistent);
  if (!c.username.empty()) builder.user_name(c.username);
  if (!c.password.empty()) builder.password(c.password);
  if (c.tls) {
    mqtt::ssl_options ssl;
    if (!c.ca_file.empty()) ssl.set_trust_store(c.ca_file);
    if (!c.cert_file.empty()) ssl.set_key_store(c.cert_file);
    if (!c.key_file.empty()) ssl.set_private_key(c.key_file);
    ssl.set_enable_server_cert_auth(c.tls_verify);
    ssl.set_verify(c.tls_verify);
    builder.ssl(std::move(ssl));
  }
  mqtt::connect_options opts = builder.finalize();
  if (v5) {
    // Set on the finished options: with Paho C++ 1.2 (Debian 12), properties given to the builder
    // never reach the CONNECT packet, and the broker then keeps no session (session present 0
    // on every reconnect).
    opts.set_properties({{mqtt::property::SESSION_EXPIRY_INTERVAL,
                          static_cast<int32_t>(persistent ? kSessionNeverExpires : 0)}});
  }
  return opts;
}

}  // namespace sluice::connectors
