// SPDX-License-Identifier: Apache-2.0

// SIGKILL storm: a simulated fleet (sluice-sim) publishes steadily into the shared Mosquitto
// (persistence on, max_queued_messages 0) while sluice is killed with SIGKILL at random moments
// and restarted, again and again. At the end the fleet stops, sluice drains, and the verifier
// (sluice-verify, read_committed) reads Kafka back against the fleet's own summary: nothing the
// broker acknowledged to a device may be lost or reordered. With at-least-once delivery
// duplicates are allowed and reported; with exactly-once there may be none.
//
// SLUICE_CHAOS_KILLS and SLUICE_CHAOS_EOS_KILLS set the number of kills (default 20 at-least-once,
// 100 exactly-once), SLUICE_CHAOS_SEED repeats a run.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/notify_listener.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::ChaosSeedFromEnvironment;
using sluice::testing::EnvOr;
using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

uint64_t LastSeq(const std::string& log_path) {
  auto st = ReadLogStats(log_path);
  return st ? st->last_seq : 0;
}

void Storm(bool exactly_once, const char* kills_variable, int default_kills) {
  const Env env = Env::FromEnvironment();
  const std::string sim_bin = MustEnv("SLUICE_SIM_BIN");
  const std::string verify_bin = MustEnv("SLUICE_VERIFY_BIN");
  const int kills = static_cast<int>(EnvOr(kills_variable, default_kills));
  const char* const scenario = exactly_once ? "sigkill-storm-exactly-once" : "sigkill-storm";
  const uint64_t seed = ChaosSeedFromEnvironment();
  std::printf("scenario=%s seed=%llu kills=%d (SLUICE_CHAOS_SEED repeats the run)\n", scenario,
              static_cast<unsigned long long>(seed), kills);
  std::fflush(stdout);
  std::mt19937_64 rng(seed);

  TempDir dir;
  const std::string suffix = UniqueSuffix();
  const std::string topic = "chaos-storm-" + suffix;
  const std::string db = dir.File("events.db");
  const std::string config = dir.File("sluice.toml");
  {
    std::ofstream out(config);
    out << "[gateway]\nid = \"storm-" << suffix << "\"\n"
        << "[storage]\npath = \"" << db << "\"\n"
        << "[mqtt]\nurl = \"" << env.mqtt_url << "\"\nclient_id = \"sluice-storm-" << suffix
        << "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
        << "[kafka]\nbrokers = \"" << env.kafka_brokers << "\"\nreconnect_max_ms = 1000\n"
        << "delivery = \"" << (exactly_once ? "exactly-once" : "at-least-once") << "\"\n";
    for (const char* kind : {"telemetry", "events"}) {
      out << "[[route]]\nmqtt = \"devices/+/" << kind << "\"\nkafka_topic = \"" << topic
          << "\"\nkey = \"devices/{device}/#\"\nqos = 1\n";
    }
  }
  SluiceProcess sluice(env.sluice_bin, config, dir.path().string());
  // Running again = opened its log and subscribed (session resumed): the broker then delivers the
  // backlog it queued while sluice was dead. Each run says so once, with READY=1 on the notify
  // socket, as it tells systemd.
  NotifyListener notify(dir.File("notify.sock"));
  auto start_and_wait = [&] {
    const size_t readies = notify.Count("READY=1");
    sluice.Start({notify.Env()});
    REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("READY=1") > readies; }, 60s, 5ms),
                    sluice.LogText());
  };
  start_and_wait();

  // Every profile at QoS 1: a QoS 0 event has no acknowledgement to keep, so a kill may lose it
  // by design. ~150 events/s from 12 devices, alarms and doors included.
  const std::string summary = dir.File("fleet.json");
  ChildProcess fleet(
      sim_bin,
      {"--url", env.mqtt_url, "--devices", "12", "--total-rate", "150", "--seed",
       std::to_string(seed), "--client-prefix", "storm-" + suffix, "--qos-vibration", "1",
       "--summary-json", summary, "--progress-interval", "5", "--flush-timeout", "30"},
      dir.File("sim.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return LastSeq(db) > 0; }, 60s, 20ms),
                  ReadFile(dir.File("sim.log")));

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<uint64_t> killed_at;
  for (int k = 0; k < kills; ++k) {
    // A random moment: after 0..300 more events reached the log since sluice came back (0 kills
    // it while the broker is still redelivering what queued up during the restart).
    const uint64_t base = LastSeq(db);
    const uint64_t more = rng() % 301;
    REQUIRE_MESSAGE(WaitFor([&] { return LastSeq(db) >= base + more; }, 60s, 2ms),
                    sluice.RunLogText());
    REQUIRE(sluice.Running());
    sluice.Kill();
    killed_at.push_back(LastSeq(db));
    start_and_wait();
  }
  const double storm_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const auto fleet_status = fleet.Wait(90s, SIGTERM);
  REQUIRE(fleet_status.has_value());
  CHECK(*fleet_status == 0);
  const auto totals = nlohmann::json::parse(ReadFile(summary))["totals"];
  const uint64_t sent = totals["sent"].get<uint64_t>();
  std::printf("fleet: %s\n", totals.dump().c_str());

  // Drained: a marker published after the fleet stopped sits behind every fleet event in sluice's
  // session queue, and the log forwards in order; once Kafka has it, Kafka has them all.
  const std::string marker = "sigkill-storm-end-" + suffix;
  // mosquitto_pub -q 1 exits once the broker acknowledged the marker.
  REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " +
                env.mqtt_url.substr(env.mqtt_url.rfind(':') + 1) +
                " -t devices/storm-marker/events -m " + marker) == 0);
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        for (const Record& r : ReadTopic(env.kafka_brokers, topic, SIZE_MAX, 2s)) {
                          if (r.value == marker) return true;
                        }
                        return false;
                      },
                      180s, 500ms),
                  sluice.RunLogText());

  const std::string report = dir.File("verify.json");
  const int verify_rc = Shell(verify_bin + " --brokers " + env.kafka_brokers + " --topic " + topic +
                              " --expect " + summary + " --idle-timeout 5 --max-ranges 8" +
                              (exactly_once ? " --fail-on-duplicates" : "") + " --json " + report +
                              " > " + dir.File("verify.txt") + " 2>&1");
  std::printf("%s", ReadFile(dir.File("verify.txt")).c_str());
  const auto v = nlohmann::json::parse(ReadFile(report))["totals"];
  const uint64_t lost = v["lost"].get<uint64_t>();
  const uint64_t duplicates = v["duplicates"].get<uint64_t>();
  const uint64_t reordered = v["reordered"].get<uint64_t>();
  std::printf(
      "scenario=%s kills=%d sent=%llu arrived=%llu lost=%llu duplicates=%llu "
      "reordered=%llu records=%llu storm_s=%.1f seed=%llu\n",
      scenario, kills, static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(v["unique"].get<uint64_t>()),
      static_cast<unsigned long long>(lost), static_cast<unsigned long long>(duplicates),
      static_cast<unsigned long long>(reordered),
      static_cast<unsigned long long>(v["records"].get<uint64_t>()), storm_s,
      static_cast<unsigned long long>(seed));
  std::string at;
  for (uint64_t s : killed_at) at += " " + std::to_string(s);
  std::printf("log last_seq at each kill:%s\n", at.c_str());

  CHECK(verify_rc == 0);
  CHECK(lost == 0);
  CHECK(reordered == 0);
  if (exactly_once) CHECK(duplicates == 0);
  CHECK(v["unique"].get<uint64_t>() >= sent);
  CHECK(static_cast<int>(killed_at.size()) == kills);
  // Every kill found sluice at work: the log grew across the storm.
  CHECK(killed_at.back() > killed_at.front());
  CHECK(sluice.Terminate() == 0);
}

TEST_CASE("SIGKILL storm under a steady fleet: nothing acknowledged is lost or reordered") {
  Storm(/*exactly_once=*/false, "SLUICE_CHAOS_KILLS", 20);
}

TEST_CASE("SIGKILL storm with exactly-once delivery: nothing lost, duplicated or reordered") {
  Storm(/*exactly_once=*/true, "SLUICE_CHAOS_EOS_KILLS", 100);
}

}  // namespace
}  // namespace sluice::itest
