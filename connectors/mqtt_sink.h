#pragma once

#include <cstddef>
#include <string>

#include "connectors/mqtt_connection.h"

namespace sluice::connectors {

struct MqttSinkOptions {
  std::string name = "mqtt";    // the upstream's name, for logs
  MqttConnection connection;    // the remote broker
  size_t max_in_flight = 1000;  // QoS 1 messages sent and not yet acknowledged, at most
  // Topic template of gap records (docs/guarantees.md, "Gap records").
  std::string gap_topic = "sluice/{gateway}/gaps";
  std::string gateway_id;
  std::string log_id;  // the log's random identity
};

}  // namespace sluice::connectors
