// The sluice command: `run`, `check-config`, `--version`. This is the one place where the object
// graph is assembled (through Daemon) and where exceptions are caught for good.

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "common/clock.h"
#include "gateway/config.h"
#include "gateway/daemon.h"
#include "gateway/failpoint.h"
#include "gateway/status_report.h"
#include "sluice/version.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;

std::shared_ptr<spdlog::logger> MakeLogger(const std::string& level) {
  auto logger =
      std::make_shared<spdlog::logger>("sluice", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  return logger;
}

int CheckConfig(const std::string& path) {
  sluice::gateway::Config config;
  sluice::Status s = sluice::gateway::LoadConfigFile(path, &config);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  std::printf("%s: OK (gateway '%s', %zu route(s), log %s)\n", path.c_str(),
              config.gateway.id.c_str(), config.routes.size(), config.storage.path.c_str());
  return kExitOk;
}

int ShowStatus(const std::string& config_path, const std::string& log_path, bool json) {
  std::string path = log_path;
  uint64_t max_bytes = 0;
  if (path.empty()) {
    sluice::gateway::Config config;
    sluice::Status s = sluice::gateway::LoadConfigFile(config_path, &config);
    if (!s.ok()) {
      std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
      return kExitConfig;
    }
    path = config.storage.path;
    max_bytes = config.storage.max_bytes;
  }
  sluice::SystemClock clock;
  sluice::gateway::StatusReport report;
  sluice::Status s = sluice::gateway::ReadStatus(path, max_bytes, clock, &report);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitFailure;
  }
  std::printf("%s\n", json ? report.ToJson().c_str() : report.ToText().c_str());
  return kExitOk;
}

int Run(const std::string& path, const std::string& level_override) {
  sluice::gateway::Config config;
  sluice::Status s = sluice::gateway::LoadConfigFile(path, &config);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  auto logger = MakeLogger(level_override.empty() ? config.gateway.log_level : level_override);

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  sluice::gateway::FailpointHook failpoint;
  const char* failpoint_spec = std::getenv("SLUICE_FAILPOINT");
  s = sluice::gateway::ParseFailpoint(failpoint_spec ? failpoint_spec : "", &failpoint);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  if (failpoint) logger->warn("fault injection armed: SLUICE_FAILPOINT={}", failpoint_spec);

  sluice::SystemClock clock;
  sluice::gateway::Daemon daemon(config, logger, &clock, failpoint);
  s = daemon.Open();
  if (!s.ok()) {
    logger->critical("cannot start: {}", s.ToString());
    daemon.Shutdown();
    return kExitFailure;
  }

  const auto summary_every = std::chrono::seconds(60);
  auto next_summary = std::chrono::steady_clock::now() + summary_every;
  int exit_code = kExitOk;
  for (;;) {
    timespec tick{0, 200 * 1000 * 1000};
    const int sig = sigtimedwait(&signals, nullptr, &tick);
    if (sig == SIGTERM || sig == SIGINT) {
      logger->info("received {}, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGHUP) {
      logger->info("received SIGHUP; {}", daemon.Summary());
    }
    s = daemon.Failed();
    if (!s.ok()) {
      logger->critical("stopping after a fatal error: {}", s.ToString());
      exit_code = kExitFailure;
      break;
    }
    if (std::chrono::steady_clock::now() >= next_summary) {
      logger->info("{}", daemon.Summary());
      next_summary += summary_every;
    }
  }
  daemon.Shutdown();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice: an edge event gateway. MQTT in, a durable local log, in-order forwarding "
      "to Kafka."};
  app.set_version_flag("--version", std::string("sluice ") + sluice::kVersion);
  app.require_subcommand(1);

  std::string config_path;
  std::string level;
  auto* run = app.add_subcommand("run", "Run the gateway in the foreground until SIGTERM/SIGINT");
  run->add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
  run->add_option("--log-level", level, "Override gateway.log_level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  std::string check_path;
  auto* check = app.add_subcommand("check-config", "Validate a configuration file and exit");
  check->add_option("-c,--config", check_path, "Configuration file (TOML)")->required();

  std::string status_config = "/etc/sluice/sluice.toml";
  std::string status_log;
  bool status_json = false;
  auto* status = app.add_subcommand(
      "status", "Show the log's backlog, cursor and drops (read-only, safe beside the daemon)");
  status->add_option("-c,--config", status_config, "Configuration file naming the log")
      ->capture_default_str();
  status->add_option("--log", status_log, "Read this log file instead of the configured one");
  status->add_flag("--json", status_json, "Machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitConfig;
  }
  try {
    if (*run) return Run(config_path, level);
    if (*check) return CheckConfig(check_path);
    if (*status) return ShowStatus(status_config, status_log, status_json);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: unexpected error: %s\n", e.what());
    return kExitFailure;
  }
  return kExitConfig;
}
