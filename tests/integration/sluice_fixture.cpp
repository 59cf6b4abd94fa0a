// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/sluice_fixture.h"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>

namespace sluice::itest {

SluiceFixture::SluiceFixture(const std::string& family, const std::string& name, int qos)
    : env(Env::FromEnvironment()) {
  const std::string suffix = UniqueSuffix();
  cfg.dir = dir.path().string();
  cfg.gateway_id = name + "-" + suffix;
  cfg.mqtt_prefix = family + "/" + name + "-" + suffix;
  cfg.kafka_topic = family + "-" + name + "-" + suffix;
  cfg.qos = qos;
}

void SluiceFixture::StartSluice(const std::vector<std::string>& extra_env,
                                const std::string& config_text) {
  std::string config_path;
  if (!process) {
    if (config_text.empty()) {
      config_path = cfg.Write(env);
    } else {
      config_path = cfg.dir + "/sluice.toml";
      std::ofstream(config_path) << config_text;
    }
  }
  if (!notify) notify = std::make_unique<NotifyListener>(dir.File("fixture-notify.sock"));
  std::vector<std::string> run_env = extra_env;
  run_env.push_back(notify->Env());
  // Each run sends READY=1 once: after a restart only a new one proves that this run subscribed.
  const size_t readies = notify->Count("READY=1");
  Launch(config_path, run_env);
  sluice::testing::WaitFor(
      [&] { return notify->Count("READY=1") > readies || !process->Running(); },
      std::chrono::seconds(60));
  REQUIRE_MESSAGE(notify->Count("READY=1") > readies, (process->LogText() + notify->Dump()));
}

void SluiceFixture::Launch(const std::string& config_path,
                           const std::vector<std::string>& extra_env) {
  if (!process) process = std::make_unique<SluiceProcess>(env.sluice_bin, config_path, cfg.dir);
  process->Start(extra_env);
}

std::string SluiceFixture::LogPath() const {
  return log_path.empty() ? cfg.LogPath() : log_path;
}

std::optional<storage::LogStats> SluiceFixture::MaybeStats() const {
  return ReadLogStats(LogPath());
}

storage::LogStats SluiceFixture::Stats() const {
  return MaybeStats().value_or(storage::LogStats{});
}

std::string SluiceFixture::Log() const {
  return process ? process->LogText() : std::string();
}

}  // namespace sluice::itest
