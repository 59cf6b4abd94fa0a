// SPDX-License-Identifier: Apache-2.0

// The sluice command: `run`, `check-config [--probe]`, `status`, `dead-letters`, `replay`,
// `--version`. This is the one place where the object graph is assembled (through Daemon) and where
// exceptions are caught for good.

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>

#include "common/clock.h"
#include "gateway/config.h"
#include "gateway/config_file.h"
#include "gateway/daemon.h"
#include "gateway/dead_letter_command.h"
#include "gateway/failpoint.h"
#include "gateway/log_setup.h"
#include "gateway/memory_releaser.h"
#include "gateway/probe_command.h"
#include "gateway/replay_command.h"
#include "gateway/service_notifier.h"
#include "gateway/status_report.h"
#include "gateway/stop_deadline.h"
#include "sluice/version.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 2;
// Another sluice with this gateway id took over an exactly-once Kafka upstream. The unit does not
// restart on it (RestartPreventExitStatus): a restart would fence the other one in turn.
constexpr int kExitFenced = 3;
// `check-config --probe`: the file is valid, but a check against the brokers failed.
constexpr int kExitProbeFailed = 4;

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// SIGHUP: re-reads the configuration and applies what can change at run time; a bad file keeps
// the running configuration. Everything else is wired into the pipeline at start, where changing
// it under running threads (broker addresses, routes, the log) is not safe.
void Reload(sluice::gateway::ConfigFile* file, spdlog::logger* logger,
            std::chrono::seconds* stop_timeout) {
  sluice::gateway::Config fresh;
  std::vector<std::string> changed;
  sluice::Status s = file->Reload(&fresh, &changed);
  if (!s.ok()) {
    logger->error("SIGHUP: configuration not reloaded, still running with the previous one: {}",
                  s.ToString());
    return;
  }
  std::vector<std::string> applied;
  std::vector<std::string> need_restart;
  for (const std::string& key : changed) {
    if (key == "gateway.log_level") {
      // A changed file wins over --log-level: the operator edited it and asked for the reload.
      logger->set_level(spdlog::level::from_str(fresh.gateway.log_level));
      applied.push_back(key + " = " + fresh.gateway.log_level);
    } else if (key == "gateway.stop_timeout_s") {
      *stop_timeout = std::chrono::seconds(fresh.gateway.stop_timeout_s);
      applied.push_back(key + " = " + std::to_string(fresh.gateway.stop_timeout_s));
    } else {
      need_restart.push_back(key);
    }
  }
  logger->info("SIGHUP: reloaded {}: {}", file->path(),
               applied.empty() ? "nothing to apply" : "applied " + Join(applied));
  if (!need_restart.empty()) {
    logger->warn("SIGHUP: changed keys not applied until sluice restarts: {}", Join(need_restart));
  }
}

// `probe_timeout` > 0: also run the probe (ProbeCommand), each check waiting at most that long.
int CheckConfig(const std::string& path, std::chrono::milliseconds probe_timeout) {
  sluice::gateway::Config config;
  sluice::Status s = sluice::gateway::LoadConfigFile(
      path, &config, sluice::gateway::ConfigEnvironment::FromProcess());
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  std::printf("%s: OK (gateway '%s', %zu route(s), log %s)\n", path.c_str(),
              config.gateway.id.c_str(), config.routes.size(), config.storage.path.c_str());
  if (!config.legacy_rewrite.empty()) {
    std::printf(
        "%s: notice: written in the old form ([kafka] and route.kafka_topic), which keeps working "
        "as one upstream named 'kafka'. In the new form (docs/configuration.md) the [kafka] "
        "tables and every [[route]] block become:\n\n%s",
        path.c_str(), config.legacy_rewrite.c_str());
  }
  if (probe_timeout.count() <= 0) return kExitOk;
  std::fflush(stdout);
  sluice::gateway::ProbeCommand probe(config, probe_timeout, std::cout);
  return probe.Run().failed == 0 ? kExitOk : kExitProbeFailed;
}

// The log a read-beside-the-daemon command works on: `log_path` when given, else the one the
// configuration names (with its max_bytes). Returns kExitOk, or the exit code after saying why.
int ResolveLogPath(const std::string& config_path, const std::string& log_path, std::string* path,
                   uint64_t* max_bytes) {
  *path = log_path;
  *max_bytes = 0;
  if (!path->empty()) return kExitOk;
  sluice::gateway::Config config;
  sluice::Status s = sluice::gateway::LoadConfigFile(
      config_path, &config, sluice::gateway::ConfigEnvironment::FromProcess());
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  *path = config.storage.path;
  *max_bytes = config.storage.max_bytes;
  return kExitOk;
}

int ShowStatus(const std::string& config_path, const std::string& log_path, bool json) {
  std::string path;
  uint64_t max_bytes = 0;
  if (int rc = ResolveLogPath(config_path, log_path, &path, &max_bytes); rc != kExitOk) return rc;
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

// `sluice replay ...`: the log named by --log, else by the configuration.
int RequestReplay(const std::string& config_path, const std::string& log_path,
                  const std::string& upstream, std::optional<uint64_t> from,
                  const std::string& since) {
  std::string path;
  uint64_t max_bytes = 0;
  if (int rc = ResolveLogPath(config_path, log_path, &path, &max_bytes); rc != kExitOk) return rc;
  sluice::SystemClock clock;
  sluice::gateway::ReplayCommand command(path, &clock, std::cout);
  sluice::Status s = command.Request(upstream, from, since);
  std::cout.flush();
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return s.code() == sluice::Status::Code::kInvalidArgument ? kExitConfig : kExitFailure;
  }
  return kExitOk;
}

// `sluice dead-letters ...`: the log named by --log, else by the configuration.
int DeadLetters(const std::string& config_path, const std::string& log_path,
                const std::function<sluice::Status(sluice::gateway::DeadLetterCommand&)>& run) {
  std::string path;
  uint64_t max_bytes = 0;
  if (int rc = ResolveLogPath(config_path, log_path, &path, &max_bytes); rc != kExitOk) return rc;
  sluice::gateway::DeadLetterCommand command(path, std::cout);
  sluice::Status s = run(command);
  std::cout.flush();
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return s.code() == sluice::Status::Code::kInvalidArgument ? kExitConfig : kExitFailure;
  }
  return kExitOk;
}

int Run(const std::string& path, const std::string& level_override) {
  sluice::gateway::Config config;
  sluice::gateway::ConfigFile config_file(path, sluice::gateway::ConfigEnvironment::FromProcess());
  sluice::Status s = config_file.Load(&config);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice: %s\n", s.message().c_str());
    return kExitConfig;
  }
  auto logger = sluice::gateway::MakeDaemonLogger(
      level_override.empty() ? config.gateway.log_level : level_override,
      sluice::gateway::FdIsJournalStream(STDERR_FILENO, std::getenv("JOURNAL_STREAM")));
  auto stop_timeout = std::chrono::seconds(config.gateway.stop_timeout_s);

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
  auto notifier = sluice::gateway::ServiceNotifier::FromEnvironment(&clock, logger);
  if (notifier->watchdog().count() > 0) {
    logger->info("service watchdog: {} ms; pings stop when the forwarder stalls for {} ms",
                 notifier->watchdog().count() / 1000, notifier->fresh_limit().count() / 1000);
  }
  // Bounds Shutdown(), whatever hangs in it (docs/operations.md).
  auto bounded_shutdown = [&](sluice::gateway::Daemon& d) {
    sluice::gateway::StopDeadline deadline(stop_timeout, [&logger, stop_timeout] {
      logger->critical(
          "shutdown did not finish within gateway.stop_timeout_s = {} s; exiting now (events "
          "not confirmed by Kafka stay in the log and are sent again)",
          stop_timeout.count());
      logger->flush();
      _exit(kExitFailure);
    });
    d.Shutdown();
  };
  sluice::gateway::Daemon daemon(config, logger, &clock, failpoint);
  daemon.SetOnReady([&notifier] { notifier->Ready("MQTT subscribed; forwarding"); });
  s = daemon.Open();
  if (!s.ok()) {
    logger->critical("cannot start: {}", s.ToString());
    notifier->Stopping("cannot start: " + s.ToString());
    bounded_shutdown(daemon);
    return kExitFailure;
  }

  sluice::gateway::MemoryReleaser releaser(sluice::gateway::HeapControl::Glibc(), {}, &clock,
                                           logger);
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
      notifier->Reloading();
      Reload(&config_file, logger.get(), &stop_timeout);
      notifier->Reloaded();
      logger->info("{}", daemon.Summary());
    }
    s = daemon.Failed();
    if (!s.ok()) {
      logger->critical("stopping after a fatal error: {}", s.ToString());
      exit_code = s.code() == sluice::Status::Code::kFenced ? kExitFenced : kExitFailure;
      break;
    }
    if (std::chrono::steady_clock::now() >= next_summary) {
      logger->info("{}", daemon.Summary());
      next_summary += summary_every;
    }
    notifier->Tick([&daemon] { return daemon.Summary(); }, daemon.Heartbeats());
    releaser.Tick();
  }
  notifier->Stopping(exit_code == kExitOk ? "stopping" : "stopping after a fatal error");
  bounded_shutdown(daemon);
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice: an edge event gateway. MQTT in, a durable local log, in-order forwarding "
      "to Kafka and MQTT upstreams."};
  app.set_version_flag("--version", std::string("sluice ") + sluice::kVersion);
  app.require_subcommand(1);

  std::string config_path;
  std::string level;
  auto* run = app.add_subcommand("run", "Run the gateway in the foreground until SIGTERM/SIGINT");
  run->add_option("-c,--config", config_path, "Configuration file (TOML)")->required();
  run->add_option("--log-level", level, "Override gateway.log_level")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  std::string check_path;
  bool check_probe = false;
  unsigned check_probe_timeout = 5;
  auto* check = app.add_subcommand(
      "check-config",
      "Validate a configuration file and exit. Exit code 0: valid (and, with --probe, every "
      "check passed); 2: invalid; 4: valid, but a --probe check failed");
  check->add_option("-c,--config", check_path, "Configuration file (TOML)")->required();
  auto* probe_flag = check->add_flag(
      "--probe", check_probe,
      "Also connect to the MQTT broker and to every upstream with the configured credentials "
      "and TLS, and print one line per check (ok, warn, FAIL): broker reachable, authentication "
      "and TLS (host name too) accepted, each subscription allowed, each Kafka topic present, "
      "producing allowed. Never disturbs a running sluice: own client ids and transactional "
      "ids, no message or record sent, no topic created");
  check
      ->add_option("--probe-timeout", check_probe_timeout,
                   "Seconds each --probe check waits at most")
      ->capture_default_str()
      ->check(CLI::Range(1u, 300u))
      ->needs(probe_flag);

  std::string status_config = "/etc/sluice/sluice.toml";
  std::string status_log;
  bool status_json = false;
  auto* status = app.add_subcommand(
      "status", "Show the log's backlog, cursor and drops (read-only, safe beside the daemon)");
  status->add_option("-c,--config", status_config, "Configuration file naming the log")
      ->capture_default_str();
  status->add_option("--log", status_log, "Read this log file instead of the configured one");
  status->add_flag("--json", status_json, "Machine-readable output");

  std::string dl_config = "/etc/sluice/sluice.toml";
  std::string dl_log;
  auto* dead = app.add_subcommand(
      "dead-letters", "List, show, replay or purge the events an upstream refused for good");
  dead->require_subcommand(1);
  dead->add_option("-c,--config", dl_config, "Configuration file naming the log")
      ->capture_default_str();
  dead->add_option("--log", dl_log, "Use this log file instead of the configured one");
  size_t dl_limit = 100;
  uint64_t dl_after = 0;
  auto* dl_list = dead->add_subcommand(
      "list", "One line per dead letter, oldest first (read-only, safe beside the daemon)");
  dl_list->add_option("--limit", dl_limit, "Show at most this many")->capture_default_str();
  dl_list->add_option("--after", dl_after, "Start after this seq (paging)");
  uint64_t dl_seq = 0;
  bool dl_hex = false;
  auto* dl_show = dead->add_subcommand(
      "show", "One dead letter with its payload (read-only, safe beside the daemon)");
  dl_show->add_option("seq", dl_seq, "Sequence number of the dead letter")->required();
  dl_show->add_flag("--hex", dl_hex, "Show the payload as hex even if it is text");
  std::vector<uint64_t> dl_seqs;
  bool dl_all = false;
  auto* dl_replay = dead->add_subcommand(
      "replay",
      "Append dead letters to the end of the log as new events, to be forwarded again (sluice "
      "must be stopped)");
  auto* dl_purge =
      dead->add_subcommand("purge", "Delete dead letters for good (sluice must be stopped)");
  for (auto* sub : {dl_replay, dl_purge}) {
    auto* seqs = sub->add_option("seq", dl_seqs, "Sequence numbers of the dead letters");
    sub->add_flag("--all", dl_all, "Every dead letter")->excludes(seqs);
  }
  for (auto* sub : {dl_list, dl_show, dl_replay, dl_purge}) sub->fallthrough();

  std::string rp_config = "/etc/sluice/sluice.toml";
  std::string rp_log;
  std::string rp_upstream;
  std::optional<uint64_t> rp_from;
  std::string rp_since;
  auto* replay = app.add_subcommand(
      "replay",
      "Send a retained range of the log to one upstream again, beside live forwarding (safe "
      "beside the daemon, which starts it within a second)");
  replay->add_option("-c,--config", rp_config, "Configuration file naming the log")
      ->capture_default_str();
  replay->add_option("--log", rp_log, "Use this log file instead of the configured one");
  replay->add_option("--upstream", rp_upstream, "The upstream's name ([upstream.NAME])")
      ->required();
  auto* rp_from_opt = replay->add_option("--from", rp_from, "First sequence number to send again");
  replay
      ->add_option("--since", rp_since,
                   "Send events received since TIME: 2026-12-05T10:00:00Z, or 30s/90m/2h/1d ago")
      ->excludes(rp_from_opt);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitConfig;
  }
  try {
    if (*run) return Run(config_path, level);
    if (*check) {
      return CheckConfig(check_path, check_probe ? std::chrono::seconds(check_probe_timeout)
                                                 : std::chrono::milliseconds(0));
    }
    if (*status) return ShowStatus(status_config, status_log, status_json);
    if (*dead) {
      return DeadLetters(dl_config, dl_log, [&](sluice::gateway::DeadLetterCommand& c) {
        if (*dl_list) return c.List(dl_after, dl_limit);
        if (*dl_show) return c.Show(dl_seq, dl_hex);
        if (*dl_replay) return c.Replay(dl_seqs, dl_all);
        return c.Purge(dl_seqs, dl_all);
      });
    }
    if (*replay) return RequestReplay(rp_config, rp_log, rp_upstream, rp_from, rp_since);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: unexpected error: %s\n", e.what());
    return kExitFailure;
  }
  return kExitConfig;
}
