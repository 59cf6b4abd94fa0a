// SPDX-License-Identifier: Apache-2.0

#include "gateway/service_notifier.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using namespace std::chrono_literals;
using sluice::testing::ManualClock;
using sluice::testing::NullLogger;

struct Sent {
  std::vector<std::string> states;
  size_t Count(const std::string& prefix) const {
    size_t n = 0;
    for (const auto& s : states) n += s.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
};

ServiceNotifier Make(Sent* sent, const ManualClock* clock, std::chrono::microseconds watchdog) {
  ServiceNotifierOptions o;
  o.watchdog = watchdog;
  o.status_interval = 1s;
  return ServiceNotifier(
      [sent](const std::string& s) {
        sent->states.push_back(s);
        return true;
      },
      o, clock, NullLogger());
}

TEST_CASE("ServiceNotifier pings the watchdog every quarter timeout while heartbeats are fresh") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 2s);
  CHECK(n.fresh_limit() == 1s);
  auto status = [] { return std::string("ok"); };
  // The forwarder beats on every tick of this loop: 200 ms ticks for 4 s.
  for (int i = 0; i < 20; ++i) {
    n.Tick(status, {{"forwarder", clock.Now()}});
    clock.Advance(200ms);
  }
  // 0, 600, 1200, ... 3600 ms: one ping per 500 ms interval rounded up to the tick.
  CHECK(sent.Count("WATCHDOG=1") == 7);
  CHECK_FALSE(n.stale().has_value());
}

TEST_CASE("ServiceNotifier withholds pings once a heartbeat is older than half the timeout") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 2s);
  auto status = [] { return std::string("ok"); };
  const auto wedged_at = clock.Now();
  n.Tick(status, {{"forwarder", wedged_at}});
  REQUIRE(sent.Count("WATCHDOG=1") == 1);
  // Still fresh at exactly the limit: one more ping at 600 ms.
  for (int i = 0; i < 5; ++i) {
    clock.Advance(200ms);
    n.Tick(status, {{"forwarder", wedged_at}});
  }
  CHECK(sent.Count("WATCHDOG=1") == 2);
  // From 1.2 s on the heartbeat is stale: no ping however long the main loop goes on.
  for (int i = 0; i < 50; ++i) {
    clock.Advance(200ms);
    n.Tick(status, {{"forwarder", wedged_at}});
  }
  CHECK(sent.Count("WATCHDOG=1") == 2);
  CHECK(n.stale() == std::optional<std::string>("forwarder"));

  // Progress again: pings resume at once.
  n.Tick(status, {{"forwarder", clock.Now()}});
  CHECK(sent.Count("WATCHDOG=1") == 3);
  CHECK_FALSE(n.stale().has_value());
}

TEST_CASE("ServiceNotifier: one stale heartbeat among fresh ones withholds the ping") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 2s);
  const auto old = clock.Now();
  clock.Advance(5s);
  n.Tick([] { return std::string("ok"); }, {{"forwarder", clock.Now()}, {"writer", old}});
  CHECK(sent.Count("WATCHDOG=1") == 0);
  CHECK(n.stale() == std::optional<std::string>("writer"));
}

TEST_CASE("ServiceNotifier sends no pings without a watchdog timeout") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 0us);
  for (int i = 0; i < 10; ++i) {
    n.Tick([] { return std::string("ok"); }, {{"forwarder", clock.Now()}});
    clock.Advance(1s);
  }
  CHECK(sent.Count("WATCHDOG=1") == 0);
  CHECK(sent.Count("STATUS=") == 1);  // the status did not change after the first
}

TEST_CASE("ServiceNotifier sends READY=1 once, and STATUS= only when the line changed") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 0us);
  n.Ready("subscribed");
  n.Ready("subscribed again after a reconnect");
  REQUIRE(sent.states.size() == 1);
  CHECK(sent.states[0] == "READY=1\nSTATUS=subscribed");

  int calls = 0;
  std::string line = "backlog 0";
  auto status = [&] {
    ++calls;
    return line;
  };
  n.Tick(status, {});
  CHECK(sent.Count("STATUS=backlog 0") == 1);
  clock.Advance(300ms);
  line = "backlog 5";
  n.Tick(status, {});  // not due yet: the status is not even computed
  CHECK(calls == 1);
  clock.Advance(700ms);
  n.Tick(status, {});
  CHECK(sent.Count("STATUS=backlog 5") == 1);
  clock.Advance(1s);
  n.Tick(status, {});  // unchanged: nothing sent
  CHECK(calls == 3);
  CHECK(sent.Count("STATUS=") == 2);
}

TEST_CASE("ServiceNotifier: reload brackets, and nothing after STOPPING=1") {
  ManualClock clock;
  Sent sent;
  ServiceNotifier n = Make(&sent, &clock, 2s);
  n.Reloading();  // not ready yet: a READY=1 after the reload would claim readiness
  n.Reloaded();
  CHECK(sent.states.empty());
  n.Ready("up");
  n.Reloading();
  n.Reloaded();
  REQUIRE(sent.states.size() == 3);
  CHECK(sent.states[1].rfind("RELOADING=1", 0) == 0);
  CHECK(sent.states[2] == "READY=1");

  n.Stopping("stopping");
  CHECK(sent.states.back() == "STOPPING=1\nSTATUS=stopping");
  const size_t before = sent.states.size();
  clock.Advance(5s);
  n.Tick([] { return std::string("late"); }, {{"forwarder", clock.Now()}});
  n.Ready("late");
  n.Stopping("again");
  CHECK(sent.states.size() == before);
}

TEST_CASE("ServiceNotifier without a sender does nothing") {
  ManualClock clock;
  ServiceNotifier n(nullptr, ServiceNotifierOptions{2s, 1s}, &clock, NullLogger());
  CHECK_FALSE(n.enabled());
  int calls = 0;
  n.Ready("x");
  n.Tick(
      [&] {
        ++calls;
        return std::string("x");
      },
      {});
  n.Stopping("x");
  CHECK(calls == 0);
}

}  // namespace
}  // namespace sluice::gateway
