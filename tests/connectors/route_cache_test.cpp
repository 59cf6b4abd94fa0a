// SPDX-License-Identifier: Apache-2.0

#include "connectors/route_cache.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace {

using sluice::connectors::KeyPattern;
using sluice::connectors::Route;
using sluice::connectors::RouteCache;
using sluice::connectors::Router;

Route MakeRoute(const std::string& filter, const std::string& upstream_topic,
                const std::string& key_pattern) {
  Route r;
  r.mqtt_filter = filter;
  r.upstream_topic = upstream_topic;
  REQUIRE(KeyPattern::Parse(key_pattern, &r.key).ok());
  return r;
}

Router MakeRouter() {
  std::vector<Route> routes;
  routes.push_back(MakeRoute("plant/+/alarm", "alarms", "plant/{device}/#"));
  routes.push_back(MakeRoute("plant/#", "telemetry", "plant/{device}/#"));
  routes.push_back(MakeRoute("lab/#", "", "lab/{device}/#"));  // feeds another upstream only
  return Router(std::move(routes));
}

// Topics over many devices, several rounds, so that slots are taken over and asked again.
std::vector<std::string> Topics() {
  std::vector<std::string> topics;
  for (int round = 0; round < 3; ++round) {
    for (int d = 0; d < 40; ++d) {
      const std::string dev = "dev-" + std::to_string(d);
      topics.push_back("plant/" + dev + "/alarm");
      topics.push_back("plant/" + dev + "/telemetry/temp");
      topics.push_back("lab/" + dev + "/x");
      topics.push_back("office/" + dev);  // no route
    }
  }
  return topics;
}

}  // namespace

TEST_CASE("RouteCache answers as Router::Find and KeyFor do, also when slots are taken over") {
  const Router router = MakeRouter();
  // One slot: every topic takes over the slot of the one before; 4 and 256: some stay.
  for (size_t slots : {size_t{1}, size_t{4}, RouteCache::kDefaultSlots}) {
    INFO("slots " << slots);
    RouteCache cache(&router, slots);
    for (const std::string& topic : Topics()) {
      INFO("topic " << topic);
      const Route* want = router.Find(topic);
      const RouteCache::Entry& got = cache.Find(topic);
      CHECK(got.route == want);
      CHECK(got.topic == topic);
      CHECK(got.key == (want != nullptr ? want->key.KeyFor(topic) : std::string()));
    }
  }
}

TEST_CASE("RouteCache keys by the captured level and finds the first matching route") {
  const Router router = MakeRouter();
  RouteCache cache(&router);
  const RouteCache::Entry& alarm = cache.Find("plant/p7/alarm");
  REQUIRE(alarm.route != nullptr);
  CHECK(alarm.route->upstream_topic == "alarms");
  CHECK(alarm.key == "p7");
  const RouteCache::Entry& temp = cache.Find("plant/p7/temp");
  REQUIRE(temp.route != nullptr);
  CHECK(temp.route->upstream_topic == "telemetry");
  CHECK(cache.Find("office/p7").route == nullptr);
  CHECK(cache.Find("office/p7").key.empty());
  // Asked again after other topics: the same answer.
  CHECK(cache.Find("plant/p7/alarm").route->upstream_topic == "alarms");
}
