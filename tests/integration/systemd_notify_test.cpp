// SPDX-License-Identifier: Apache-2.0

// sluice under a service manager, against a real Mosquitto and a real Kafka broker: the
// notification protocol (sd_notify(3)) seen from a real AF_UNIX datagram socket standing in for
// systemd, the watchdog with a wedged forwarder, the bounded shutdown, and SIGHUP reloads.

#include <doctest/doctest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/notify_listener.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The shared fixture, started with extra lines in its [gateway] table and without waiting: these
// tests wait on the notify socket instead.
struct NotifyFixture : SluiceFixture {
  explicit NotifyFixture(const std::string& name) : SluiceFixture("itest", name) {}
  // Writes the test's configuration with `gateway_lines` added to its [gateway] table.
  std::string WriteConfig(const std::string& gateway_lines) {
    const std::string path = cfg.Write(env);
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const std::string header = "[gateway]\n";
    REQUIRE(text.rfind(header, 0) == 0);
    text.insert(header.size(), gateway_lines);
    std::ofstream(path, std::ios::trunc) << text;
    return path;
  }
  void Start(const std::string& gateway_lines, const std::vector<std::string>& extra_env) {
    Launch(WriteConfig(gateway_lines), extra_env);
  }
  bool LogHas(const std::string& s) { return Log().find(s) != std::string::npos; }
};

int64_t Ms(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

// The largest gap between consecutive lines.
Clock::duration LargestGap(const std::vector<NotifyListener::Line>& lines) {
  Clock::duration gap{0};
  for (size_t i = 1; i < lines.size(); ++i) gap = std::max(gap, lines[i].at - lines[i - 1].at);
  return gap;
}

TEST_CASE("under a service manager: READY=1 after the subscription, STATUS=, pings, STOPPING=1") {
  NotifyFixture f("notify");
  NotifyListener notify(f.dir.File("notify.sock"));
  // 2 s: pings every 0.5 s, heartbeats fresh for 1 s.
  f.Start("", {notify.Env(), "WATCHDOG_USEC=2000000"});

  REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("READY=1") > 0; }, 60s),
                  (f.Log() + notify.Dump()));
  // Written before READY=1 was sent, so it is in the log by the time READY=1 arrived.
  CHECK(f.LogHas("connected to MQTT broker"));
  CHECK(f.LogHas("service watchdog: 2000 ms"));

  // Published right after READY=1 with a session the broker never saw before: they arrive only
  // if the subscription was in place when READY=1 was sent.
  const auto devices = Devices(2);
  constexpr int kPerDevice = 100;
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, kPerDevice, 1);
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 200, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  std::printf("[notify] records %zu lost %zu duplicates %zu reordered %zu\n", v.records, v.lost,
              v.duplicates, v.reordered);
  CHECK(v.records == 200);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);

  // STATUS= follows the pipeline: the 200 events show up as delivered.
  CHECK_MESSAGE(WaitFor(
                    [&] {
                      for (const auto& l : notify.With("STATUS=")) {
                        if (l.text.find("delivered 200") != std::string::npos) return true;
                      }
                      return false;
                    },
                    20s),
                notify.Dump());

  // Pings keep coming, never further apart than the watchdog timeout.
  REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("WATCHDOG=1") >= 8; }, 30s), notify.Dump());
  const auto pings = notify.With("WATCHDOG=1");
  std::printf("[notify] %zu pings, largest gap %lld ms\n", pings.size(),
              static_cast<long long>(Ms(LargestGap(pings))));
  CHECK(LargestGap(pings) < 2s);

  const auto before_stop = notify.Lines().size();
  CHECK(f.process->Terminate() == 0);
  const auto lines = notify.Lines();
  bool stopping = false;
  for (size_t i = before_stop; i < lines.size(); ++i) stopping |= lines[i].text == "STOPPING=1";
  CHECK_MESSAGE(stopping, notify.Dump());
}

TEST_CASE("a wedged forwarder stops the watchdog pings; SIGTERM exits within stop_timeout_s") {
  NotifyFixture f("wedge");
  NotifyListener notify(f.dir.File("notify.sock"));
  // The forwarder hangs for good when it first reads events from the log.
  f.Start("stop_timeout_s = 3\n",
          {notify.Env(), "WATCHDOG_USEC=2000000", "SLUICE_FAILPOINT=forwarder.wedge:1"});
  REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("READY=1") > 0; }, 60s),
                  (f.Log() + notify.Dump()));
  REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("WATCHDOG=1") >= 3; }, 30s), notify.Dump());

  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, Devices(1), 1, 10, 1);
  // Pings stop: none for 3 s (1.5 watchdog timeouts; a healthy daemon pings every 0.5 s) ...
  auto last_ping = [&] {
    const auto p = notify.With("WATCHDOG=1");
    return p.empty() ? Clock::time_point{} : p.back().at;
  };
  REQUIRE_MESSAGE(WaitFor([&] { return Clock::now() - last_ping() > 3s; }, 30s, 50ms),
                  (f.Log() + notify.Dump()));
  // ... while the process lives and says why.
  CHECK(f.process->Running());
  CHECK(f.LogHas("watchdog: the forwarder to kafka made no progress"));
  const size_t pings = notify.Count("WATCHDOG=1");
  std::printf("[wedge] %zu pings before the wedge, none for %lld ms after\n", pings,
              static_cast<long long>(Ms(Clock::now() - last_ping())));

  // The events were taken from MQTT before the wedge and wait in the log.
  auto st = f.MaybeStats();
  REQUIRE(st.has_value());
  CHECK(st->last_seq == 10);
  CHECK(st->cursor == 0);

  // The forwarder cannot be joined; the hard bound ends the process.
  const auto t0 = Clock::now();
  const int status = f.process->Terminate(60s);
  const auto took = Clock::now() - t0;
  std::printf("[wedge] SIGTERM -> exit %d after %lld ms (stop_timeout_s = 3)\n", status,
              static_cast<long long>(Ms(took)));
  CHECK(status == 1);
  CHECK(took >= 3s);
  CHECK(took < 15s);
  CHECK(f.LogHas("shutdown did not finish within gateway.stop_timeout_s = 3 s"));
  CHECK(notify.Count("STOPPING=1") == 1);
  CHECK(notify.Count("WATCHDOG=1") == pings);
  // Nothing lost: the events are still in the log for the next start.
  st = f.MaybeStats();
  REQUIRE(st.has_value());
  CHECK(st->events == 10);
}

TEST_CASE("SIGHUP applies a new log_level, names what needs a restart, survives a bad file") {
  NotifyFixture f("sighup");
  NotifyListener notify(f.dir.File("notify.sock"));
  f.Start("", {notify.Env()});
  REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("READY=1") > 0; }, 60s),
                  (f.Log() + notify.Dump()));
  const std::string config = f.dir.File("sluice.toml");
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  const auto devices = Devices(1);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 10, 1);
  REQUIRE(WaitFor([&] { return notify.Count("STATUS=") >= 2; }, 20s));
  CHECK_FALSE(f.LogHas(" debug "));  // --log-level info

  // Debug on, and a key that only a restart applies.
  f.WriteConfig("log_level = \"debug\"\n");
  {
    std::ifstream in(config);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    const std::string at = "reconnect_min_ms = 100";
    REQUIRE(text.find(at) != std::string::npos);
    text.replace(text.find(at), at.size(), "reconnect_min_ms = 200");
    std::ofstream(config, std::ios::trunc) << text;
  }
  const size_t ready_before = notify.Count("READY=1");
  REQUIRE(kill(f.process->Pid(), SIGHUP) == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return f.LogHas("applied gateway.log_level = debug"); }, 20s),
                  f.Log());
  CHECK(f.LogHas("changed keys not applied until sluice restarts: mqtt.reconnect_min_ms"));
  CHECK(WaitFor([&] { return notify.Count("READY=1") == ready_before + 1; }, 10s));
  CHECK(notify.Count("RELOADING=1") == 1);
  // The new level is in force: debug lines appear as events flow.
  pub.Publish(f.cfg.mqtt_prefix, devices, 11, 10, 1);
  CHECK_MESSAGE(WaitFor([&] { return f.LogHas(" debug service status:"); }, 20s), f.Log());

  // A bad file: the daemon keeps running with what it has, and says why.
  std::ofstream(config, std::ios::trunc) << "[gateway]\nlog_level = \"loud\"\n";
  REQUIRE(kill(f.process->Pid(), SIGHUP) == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return f.LogHas("SIGHUP: configuration not reloaded"); }, 20s),
                  f.Log());
  CHECK(f.LogHas("gateway.log_level"));
  CHECK(f.process->Running());
  pub.Publish(f.cfg.mqtt_prefix, devices, 21, 10, 1);
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 30, 20s);
  Verdict v = Verify(records, devices, 30);
  std::printf("[sighup] records %zu lost %zu duplicates %zu reordered %zu\n", v.records, v.lost,
              v.duplicates, v.reordered);
  CHECK(v.records == 30);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(f.process->Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
