// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_connection.h"

#include <doctest/doctest.h>

#include "connectors/kafka_probe.h"
#include "connectors/mqtt_probe.h"

namespace sluice::connectors {
namespace {

uint32_t SessionExpiry(const mqtt::connect_options& o) {
  const mqtt::properties& p = o.get_properties();
  REQUIRE(p.contains(mqtt::property::SESSION_EXPIRY_INTERVAL));
  return static_cast<uint32_t>(mqtt::get<int32_t>(p, mqtt::property::SESSION_EXPIRY_INTERVAL));
}

MqttConnection Connection(MqttProtocol protocol) {
  MqttConnection c;
  c.protocol = protocol;
  c.client_id = "sluice-gw";
  c.username = "u";
  c.password = "p";
  return c;
}

TEST_CASE("ConnectOptions keeps the daemon's session: clean start off, never expiring") {
  const mqtt::connect_options v5 =
      ConnectOptions(Connection(MqttProtocol::kV5), MqttSession::kPersistent);
  CHECK(v5.get_mqtt_version() == MQTTVERSION_5);
  CHECK_FALSE(v5.is_clean_start());
  // Paho C refuses the 3.1.1 flag under MQTT 5.
  CHECK_FALSE(v5.is_clean_session());
  CHECK(SessionExpiry(v5) == kSessionNeverExpires);
  const mqtt::connect_options v311 =
      ConnectOptions(Connection(MqttProtocol::kV311), MqttSession::kPersistent);
  CHECK_FALSE(v311.is_clean_session());
  CHECK_FALSE(v311.is_clean_start());
  CHECK(v311.get_properties().empty());
}

TEST_CASE("ConnectOptions gives the probe a clean session that ends with its connection") {
  const mqtt::connect_options v5 =
      ConnectOptions(Connection(MqttProtocol::kV5), MqttSession::kTransient);
  CHECK(v5.is_clean_start());
  CHECK_FALSE(v5.is_clean_session());
  CHECK(SessionExpiry(v5) == 0);
  const mqtt::connect_options v311 =
      ConnectOptions(Connection(MqttProtocol::kV311), MqttSession::kTransient);
  CHECK(v311.is_clean_session());
  // Paho C refuses the MQTT 5 flag under 3.1.1.
  CHECK_FALSE(v311.is_clean_start());
  // The same credentials either way.
  CHECK(v311.get_user_name() == "u");
}

TEST_CASE("The probe's MQTT client id and transactional id are never the daemon's") {
  const MqttConnection c = Connection(MqttProtocol::kV5);
  CHECK(ProbeClientId(c) == "sluice-gw-probe");
  KafkaSinkOptions o;
  o.gateway_id = "gw";
  o.upstream = "central";
  CHECK(ProbeTransactionalId(o) == "sluice-gw-central.probe");
  // The daemon's ids are sluice-<gateway>-<upstream>, and an upstream's name holds no '.': even
  // an upstream named after the probe's id cannot take it.
  KafkaSinkOptions lookalike = o;
  lookalike.upstream = "central-probe";
  CHECK(TransactionalId(lookalike) != ProbeTransactionalId(o));
  CHECK(ProbeTransactionalId(o).rfind(TransactionalId(o), 0) == 0);
}

}  // namespace
}  // namespace sluice::connectors
