// SPDX-License-Identifier: Apache-2.0

// sluice-sim: a simulated fleet of IoT devices publishing over MQTT. This is where the options are
// read, the fleet is assembled on Paho links and the system clock, signals are taken, and
// exceptions are caught for good; the behaviour lives in the sluice_sim library (Fleet).

#include <signal.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <random>
#include <thread>

#include "common/clock.h"
#include "firmware-sim/fleet.h"
#include "firmware-sim/paho_device_link.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

using sluice::Status;
using namespace sluice::sim;

// "dev-003@12.5" -> {dev-003, 12.5}.
Status ParseReboot(const std::string& text, ScheduledReboot* out) {
  const size_t at = text.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size()) {
    return Status::InvalidArgument("--reboot '" + text +
                                   "' is not DEVICE@SECONDS (e.g. dev-003@10)");
  }
  double seconds = 0;
  const char* first = text.data() + at + 1;
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, seconds);
  if (ec != std::errc() || end != last || !(seconds >= 0)) {
    return Status::InvalidArgument("--reboot '" + text +
                                   "': SECONDS must be a non-negative number");
  }
  out->device = text.substr(0, at);
  out->at_s = seconds;
  return Status::Ok();
}

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0 + 0.5));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-sim: a simulated fleet of IoT devices, each its own MQTT client, publishing "
      "device events (docs/firmware-sim.md)."};

  FleetOptions fleet;
  PahoLinkOptions link;
  std::string profiles;
  double duration_s = 0;
  uint64_t seed = 0;
  std::vector<std::string> reboots;
  std::string summary_json;
  bool quiet = false;
  double progress_s = 5;
  double connect_timeout_s = 30;
  double flush_timeout_s = 10;
  std::array<int, kProfileCount> qos = {-1, -1, -1, -1};

  auto* devices_opt = app.add_option("--devices", fleet.devices, "Number of devices")
                          ->default_val(20)
                          ->check(CLI::Range(1, 100000));
  app.add_option("--profiles", profiles,
                 "Profile counts, e.g. telemetry:14,vibration:2,alarm:2,door:2 (default: 70% "
                 "telemetry, 10% each of the others)");
  auto* rate_opt = app.add_option("--rate", fleet.rate,
                                  "Base events/s per device (a telemetry device's rate; "
                                  "vibration x4 in bursts of 8, door x0.2, alarm x0.05)")
                       ->default_val(1.0)
                       ->check(CLI::PositiveNumber);
  app.add_option("--total-rate", fleet.total_rate,
                 "Events/s for the whole fleet (instead of --rate)")
      ->check(CLI::PositiveNumber)
      ->excludes(rate_opt);
  app.add_option("--duration", duration_s,
                 "Seconds to generate events for (default: until "
                 "--events or a signal)")
      ->check(CLI::PositiveNumber);
  app.add_option("--events", fleet.max_events, "Stop after this many events in all")
      ->check(CLI::PositiveNumber);
  for (ProfileKind kind : DeviceProfile::All()) {
    const DeviceProfile& p = DeviceProfile::Get(kind);
    app.add_option("--qos-" + std::string(p.name()), qos[static_cast<size_t>(kind)],
                   "QoS of " + std::string(p.name()) + " events (default " +
                       std::to_string(p.default_qos()) + ")")
        ->check(CLI::Range(0, 2));
  }
  app.add_option("--payload-bytes", fleet.payload_bytes, "Minimum payload size (padded)")
      ->check(CLI::Range(size_t{0}, size_t{16 * 1024 * 1024}));
  auto* seed_opt = app.add_option("--seed", seed,
                                  "Seed: same seed, same fleet and payloads "
                                  "(default: random, printed)");
  app.add_option("--url", link.url, "Broker URL (tcp://, ssl://)")
      ->default_val("tcp://127.0.0.1:1883");
  app.add_option("--username", link.username, "MQTT user name");
  app.add_option("--password", link.password, "MQTT password");
  app.add_option("--tls-ca", link.ca_file, "CA certificate file (PEM); enables TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", link.cert_file, "Client certificate file (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", link.key_file, "Client private key file (PEM)")
      ->check(CLI::ExistingFile);
  app.add_option("--client-prefix", fleet.client_prefix, "Client ids are <prefix>-<device id>")
      ->default_val("sluice-sim");
  app.add_option("--reboot", reboots,
                 "DEVICE@SECONDS: reboot that device at that time "
                 "(repeatable)");
  app.add_option("--reboot-probability", fleet.reboot_probability,
                 "Random reboots per device per second, drawn from the seed")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--queue", fleet.queue_capacity,
                 "Events each device keeps while offline; the oldest is dropped beyond")
      ->default_val(1000)
      ->check(CLI::Range(size_t{1}, size_t{10000000}));
  app.add_option("--summary-json", summary_json, "Write the final per-device summary here");
  app.add_flag("-q,--quiet", quiet, "No progress lines and no per-device table");
  app.add_option("--progress-interval", progress_s, "Seconds between progress lines")
      ->default_val(5)
      ->check(CLI::PositiveNumber);
  app.add_option("--connect-timeout", connect_timeout_s,
                 "Fail if no device reaches the broker within this many seconds at start")
      ->default_val(30)
      ->check(CLI::PositiveNumber);
  app.add_option("--flush-timeout", flush_timeout_s,
                 "Seconds to let queued events go out at the end")
      ->default_val(10)
      ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  try {
    if (!profiles.empty()) {
      Status s = ProfileMix::Parse(profiles, &fleet.mix);
      if (!s.ok()) {
        std::fprintf(stderr, "sluice-sim: %s\n", s.message().c_str());
        return kExitUsage;
      }
      if (devices_opt->count() == 0) fleet.devices = fleet.mix.total();
    } else {
      fleet.mix = ProfileMix::Default(fleet.devices);
    }
    for (const std::string& r : reboots) {
      ScheduledReboot reboot;
      Status s = ParseReboot(r, &reboot);
      if (!s.ok()) {
        std::fprintf(stderr, "sluice-sim: %s\n", s.message().c_str());
        return kExitUsage;
      }
      fleet.reboots.push_back(reboot);
    }
    fleet.duration_s = duration_s;
    fleet.qos = qos;
    fleet.seed = seed_opt->count() > 0 ? seed : std::random_device{}();
    fleet.progress_interval = Millis(progress_s);
    fleet.connect_timeout = Millis(connect_timeout_s);
    fleet.flush_timeout = Millis(flush_timeout_s);
    // One Paho connect attempt never outlasts the start-up budget.
    link.connect_timeout =
        std::chrono::seconds(std::clamp<int64_t>(static_cast<int64_t>(connect_timeout_s), 1, 10));

    // Signals are taken synchronously by one thread; every other thread (Paho's included)
    // inherits the mask, so none of them is interrupted.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    signal(SIGPIPE, SIG_IGN);

    auto logger = std::make_shared<spdlog::logger>(
        "sluice-sim", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    logger->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
    logger->flush_on(spdlog::level::info);

    sluice::SystemClock clock;
    std::unique_ptr<Fleet> sim;
    Status s = Fleet::Open(fleet, PahoDeviceLink::Factory(link), &clock, logger, &sim);
    if (!s.ok()) {
      std::fprintf(stderr, "sluice-sim: %s\n", s.message().c_str());
      return s.code() == Status::Code::kInvalidArgument ? kExitUsage : kExitFailure;
    }
    logger->info("{} devices ({}) -> {}; {:.2f} events/s in all; seed {}", fleet.devices,
                 fleet.mix.ToString(), link.url, sim->target_rate(), fleet.seed);

    std::atomic<bool> finished{false};
    std::thread signal_thread([&] {
      while (!finished.load()) {
        timespec tick{0, 200 * 1000 * 1000};
        const int sig = sigtimedwait(&signals, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
          logger->info("received {}: stopping (again to skip the flush)",
                       sig == SIGINT ? "SIGINT" : "SIGTERM");
          sim->RequestStop();
        }
      }
    });
    s = sim->Run([&](const FleetProgress& p) {
      if (quiet) return;
      std::printf("%s\n", p.ToLine().c_str());
      std::fflush(stdout);
    });
    finished = true;
    signal_thread.join();

    if (!s.ok()) {
      // Nothing ran: there is no summary to report.
      std::fprintf(stderr, "sluice-sim: %s\n", s.message().c_str());
      return kExitFailure;
    }
    const FleetSummary summary = sim->Summary();
    if (!quiet) std::printf("\n%s", summary.Table().c_str());
    std::printf("%s\n", summary.TotalsLine().c_str());
    std::fflush(stdout);
    int rc = kExitOk;
    if (!summary_json.empty()) {
      Status w = summary.WriteJsonFile(summary_json);
      if (!w.ok()) {
        std::fprintf(stderr, "sluice-sim: %s\n", w.message().c_str());
        rc = kExitFailure;
      }
    }
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-sim: %s\n", e.what());
    return kExitFailure;
  }
}
