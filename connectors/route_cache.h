// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/router.h"

namespace sluice::connectors {

// Router::Find and KeyPattern::KeyFor for the MQTT topics an upstream saw last. Find matches a
// topic against each route's filter in turn, level by level; a drain asks it for the same devices'
// topics millions of times, twice per event (whether the upstream takes it, and its Kafka topic
// and key), and that was 6% of the forwarder's time (docs/performance.md, "Drain path profile").
//
// Direct-mapped on the topic's hash: a topic that is not remembered costs one Find and one KeyFor,
// as without the cache, plus the hash. The router is immutable, so what is remembered stays true.
//
// Not thread-safe: each cache belongs to one thread (the forwarder's). `router` must outlive it.
class RouteCache {
 public:
  struct Entry {
    std::string topic;
    const Route* route = nullptr;  // Router::Find(topic); null if no route matches
    std::string key;               // route->key.KeyFor(topic); empty without a route
    bool filled = false;
  };

  // REQUIRES: slots is a power of two.
  explicit RouteCache(const Router* router, size_t slots = kDefaultSlots);

  // The route of `topic` and its record key. The reference is valid until the next call.
  const Entry& Find(std::string_view topic);

  static constexpr size_t kDefaultSlots = 256;

 private:
  const Router* router_;
  std::vector<Entry> slots_;
};

}  // namespace sluice::connectors
