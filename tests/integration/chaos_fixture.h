#pragma once

// What the chaos tests share: a test's own sluice, config and temp dir against the brokers of a
// chaos fixture (tests/integration/chaos_brokers.sh), and the one-line report the tests print.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace sluice::itest {

struct ChaosFixture {
  explicit ChaosFixture(const std::string& name) : env(Env::FromEnvironment()) {
    const std::string suffix = UniqueSuffix();
    cfg.dir = dir.path().string();
    cfg.gateway_id = name + "-" + suffix;
    cfg.mqtt_prefix = "chaos/" + name + "-" + suffix;
    cfg.kafka_topic = "chaos-" + name + "-" + suffix;
  }
  // Starts (or restarts) sluice and waits until it subscribed: the broker then keeps what is
  // published for it.
  void StartSluice() {
    if (!process) {
      process = std::make_unique<SluiceProcess>(env.sluice_bin, cfg.Write(env), cfg.dir);
    }
    process->Start();
    REQUIRE_MESSAGE(sluice::testing::WaitFor(
                        [&] {
                          return process->RunLogText().find("connected to MQTT broker") !=
                                 std::string::npos;
                        },
                        std::chrono::seconds(60)),
                    process->LogText());
  }
  std::optional<storage::LogStats> Stats() const { return ReadLogStats(cfg.LogPath()); }
  uint64_t Cursor() const {
    auto st = Stats();
    return st ? st->cursor : 0;
  }
  uint64_t LastSeq() const {
    auto st = Stats();
    return st ? st->last_seq : 0;
  }
  std::string Log() const { return process ? process->LogText() : std::string(); }

  Env env;
  sluice::testing::TempDir dir;
  TestConfig cfg;
  std::unique_ptr<SluiceProcess> process;
};

// The figures a chaos test reports, one line per scenario so that they can be quoted. `sent` is
// the number of distinct events the publishers had acknowledged by the MQTT broker, `arrived`
// the number of distinct events found in Kafka; `extra` adds " key=value" fields.
inline void ReportScenario(const std::string& scenario, size_t sent, const Verdict& v,
                           const std::string& extra = std::string()) {
  const size_t arrived = sent >= v.lost ? sent - v.lost : 0;
  std::printf("scenario=%s sent=%zu arrived=%zu lost=%zu duplicates=%zu reordered=%zu%s\n",
              scenario.c_str(), sent, arrived, v.lost, v.duplicates, v.reordered, extra.c_str());
  if (!v.first_problem.empty()) std::printf("  first problem: %s\n", v.first_problem.c_str());
  std::fflush(stdout);
}

inline double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace sluice::itest
