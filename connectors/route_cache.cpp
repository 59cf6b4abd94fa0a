// SPDX-License-Identifier: Apache-2.0

#include "connectors/route_cache.h"

#include <functional>

namespace sluice::connectors {

RouteCache::RouteCache(const Router* router, size_t slots) : router_(router), slots_(slots) {}

const RouteCache::Entry& RouteCache::Find(std::string_view topic) {
  Entry& e = slots_[std::hash<std::string_view>{}(topic) & (slots_.size() - 1)];
  if (e.filled && e.topic == topic) return e;
  // Assigned in place: the slot's strings keep their buffers from one topic to the next.
  e.topic.assign(topic);
  e.route = router_->Find(topic);
  if (e.route != nullptr) {
    e.key.assign(e.route->key.KeyFor(topic));
  } else {
    e.key.clear();
  }
  e.filled = true;
  return e;
}

}  // namespace sluice::connectors
