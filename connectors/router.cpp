// SPDX-License-Identifier: Apache-2.0

#include "connectors/router.h"

namespace sluice::connectors {

const Route* Router::Find(std::string_view mqtt_topic) const {
  for (const Route& r : routes_) {
    if (TopicMatchesFilter(r.mqtt_filter, mqtt_topic)) return &r;
  }
  return nullptr;
}

}  // namespace sluice::connectors
