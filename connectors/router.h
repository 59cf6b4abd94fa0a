// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "connectors/topic_pattern.h"

namespace sluice::connectors {

// One MQTT topic filter and, for one upstream, the target and key rule its events follow.
struct Route {
  std::string mqtt_filter;
  // This upstream's target: a Kafka topic or an MQTT topic template. Empty: the route does not
  // feed this upstream, whose forwarder passes its events by.
  std::string upstream_topic;
  KeyPattern key;
  int qos = 1;
  bool forward_retain = false;  // MQTT upstreams: publish with the event's RETAIN flag
};

// Maps an MQTT topic to its route: the first route, in configuration order, whose filter matches.
// Immutable after construction; thread-safe.
class Router {
 public:
  explicit Router(std::vector<Route> routes) : routes_(std::move(routes)) {}

  const Route* Find(std::string_view mqtt_topic) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace sluice::connectors
