// SPDX-License-Identifier: Apache-2.0

// The metrics endpoint of a real sluice against a real Mosquitto and a real Kafka broker: the
// counters match what was published, and during a Kafka outage the gauges and /readyz say so.

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <map>
#include <sstream>

#include "sluice/version.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// One scrape: "name{labels}" -> value; the HELP and TYPE lines by name.
struct Scrape {
  std::map<std::string, double> values;
  std::map<std::string, std::string> types;
  std::map<std::string, std::string> helps;
  bool ok = false;

  double operator[](const std::string& series) const {
    auto it = values.find(series);
    return it == values.end() ? -1 : it->second;
  }
};

Scrape ScrapeMetrics(int port) {
  Scrape s;
  HttpResponse r = HttpGet(port, "/metrics");
  if (r.status != 200) return s;
  std::istringstream in(r.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0 || line.rfind("# HELP ", 0) == 0) {
      const auto name_end = line.find(' ', 7);
      auto& map = line[2] == 'T' ? s.types : s.helps;
      map[line.substr(7, name_end - 7)] = line.substr(name_end + 1);
      continue;
    }
    const auto space = line.rfind(' ');
    if (line.empty() || space == std::string::npos) continue;
    s.values[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  s.ok = true;
  return s;
}

// The test's own names and log under `dir`, with the metrics server on `port`.
TestConfig MetricsConfig(const std::string& dir, const std::string& name, int port) {
  const std::string suffix = UniqueSuffix();
  TestConfig cfg;
  cfg.dir = dir;
  cfg.gateway_id = name + "-" + suffix;
  cfg.mqtt_prefix = "itest/" + name + "-" + suffix;
  cfg.kafka_topic = "itest-" + name + "-" + suffix;
  cfg.extra_sections =
      "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  return cfg;
}

TEST_CASE("metrics and health of a running sluice follow the events and a Kafka outage") {
  const Env env = Env::FromEnvironment();
  const int port = MetricsPortFromEnvironment();
  TempDir dir;
  const TestConfig cfg = MetricsConfig(dir.path().string(), "metrics", port);
  SluiceProcess sluice(env.sluice_bin, cfg.Write(env), cfg.dir);
  sluice.Start();
  auto log = [&] { return sluice.LogText(); };

  // Ready with nothing sent yet: subscribed, and the idle sink found Kafka by itself.
  REQUIRE_MESSAGE(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 60s, 50ms),
                  log());
  CHECK(HttpGet(port, "/healthz").status == 200);
  Scrape s = ScrapeMetrics(port);
  REQUIRE(s.ok);
  CHECK(s["sluice_upstream_connected{upstream=\"kafka\"}"] == 1);
  CHECK(s["sluice_mqtt_connected"] == 1);
  CHECK(s["sluice_events_received_total"] == 0);
  CHECK(s[std::string("sluice_build_info{version=\"") + kVersion + "\"}"] == 1);

  // A second daemon on the same metrics port refuses to start, and says why.
  {
    TempDir dir2;
    TestConfig cfg2 = cfg;
    cfg2.dir = dir2.path().string();
    cfg2.gateway_id += "-second";
    SluiceProcess second(env.sluice_bin, cfg2.Write(env), cfg2.dir);
    second.Start();
    auto status = second.WaitExit(30s);
    REQUIRE_MESSAGE(status.has_value(), second.LogText());
    CHECK(*status == 1);
    CHECK_MESSAGE(
        second.LogText().find("metrics.listen: cannot listen on 127.0.0.1:" + std::to_string(port) +
                              ": Address already in use") != std::string::npos,
        second.LogText());
  }

  const auto devices = Devices(4);
  constexpr int kFirst = 250;  // per device, before the outage
  Publisher pub(env.mqtt_url, "pub-" + cfg.gateway_id);
  pub.Publish(cfg.mqtt_prefix, devices, 1, kFirst, 1);
  const double sent1 = 4 * kFirst;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        s = ScrapeMetrics(port);
                        return s["sluice_events_forwarded_total{upstream=\"kafka\"}"] == sent1 &&
                               s["sluice_backlog_events"] == 0;
                      },
                      60s, 50ms),
                  log());
  CHECK(s["sluice_events_received_total"] == sent1);
  CHECK(s["sluice_events_committed_total"] == sent1);
  CHECK(s["sluice_events_refused_total{reason=\"too_large\"}"] == 0);
  CHECK(s["sluice_events_upstream_rejected_total{upstream=\"kafka\"}"] == 0);
  CHECK(s["sluice_events_dropped_total"] == 0);
  CHECK(s["sluice_dead_letters"] == 0);
  CHECK(s["sluice_backlog_bytes"] == 0);
  CHECK(s["sluice_backlog_oldest_age_seconds"] == 0);
  CHECK(s["sluice_forward_latency_seconds_count{upstream=\"kafka\"}"] == sent1);
  CHECK(s["sluice_forward_latency_seconds_bucket{upstream=\"kafka\",le=\"+Inf\"}"] == sent1);
  // Every QoS 1 event is its own append transaction, each one timed.
  CHECK(s["sluice_log_commit_duration_seconds_count"] == s["sluice_log_commits_total"]);
  CHECK(s["sluice_log_commits_total"] >= 1);
  for (const char* name : {"sluice_events_received_total", "sluice_events_forwarded_total",
                           "sluice_events_refused_total", "sluice_mqtt_reconnects_total"}) {
    CHECK_MESSAGE(s.types[name] == "counter", name);
    CHECK_MESSAGE(!s.helps[name].empty(), name);
  }
  for (const char* name : {"sluice_backlog_events", "sluice_upstream_connected"}) {
    CHECK_MESSAGE(s.types[name] == "gauge", name);
  }
  CHECK(s.types["sluice_forward_latency_seconds"] == "histogram");
  CHECK(s.types["sluice_log_commit_duration_seconds"] == "histogram");

  // Kafka goes away.
  const std::string kafka = env.scripts_dir + "/kafka.sh";
  const std::string kdir = " --dir " + env.kafka_dir;
  REQUIRE(Shell(kafka + " stop" + kdir) == 0);
  struct Restart {  // the shared broker comes back even if an assertion below fails
    std::string cmd;
    bool done = false;
    ~Restart() {
      if (!done) Shell(cmd);
    }
  } restart{kafka + " start" + kdir + " --port " + std::to_string(env.kafka_port)};

  REQUIRE_MESSAGE(
      WaitFor(
          [&] { return ScrapeMetrics(port)["sluice_upstream_connected{upstream=\"kafka\"}"] == 0; },
          60s, 50ms),
      log());
  constexpr int kDuring = 125;  // per device, while Kafka is down
  const double sent2 = 4 * kDuring;
  pub.Publish(cfg.mqtt_prefix, devices, kFirst + 1, kDuring, 1);
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        // The backlog is read from the log, the counters are bumped by the
                        // source once its write returned: a scrape may fall between the two.
                        s = ScrapeMetrics(port);
                        return s["sluice_backlog_events"] == sent2 &&
                               s["sluice_events_committed_total"] >= sent1 + sent2;
                      },
                      60s, 50ms),
                  log());
  CHECK(s["sluice_events_received_total"] == sent1 + sent2);
  CHECK(s["sluice_events_committed_total"] == sent1 + sent2);
  CHECK(s["sluice_events_forwarded_total{upstream=\"kafka\"}"] == sent1);
  CHECK(s["sluice_backlog_bytes"] > sent2 * 64);
  CHECK(s["sluice_upstream_connected{upstream=\"kafka\"}"] == 0);
  CHECK(s["sluice_mqtt_connected"] == 1);
  // The oldest waiting event ages while Kafka is away.
  CHECK(WaitFor([&] { return ScrapeMetrics(port)["sluice_backlog_oldest_age_seconds"] >= 1.0; },
                30s, 50ms));
  const HttpResponse ready = HttpGet(port, "/readyz");
  CHECK(ready.status == 503);
  // The reason names the upstream and its cluster: either as unreachable or as the hold that
  // says so.
  CHECK_MESSAGE(ready.body.rfind("not ready: upstream kafka: ", 0) == 0, ready.body);
  CHECK_MESSAGE(ready.body.find(env.kafka_brokers) != std::string::npos, ready.body);
  const HttpResponse health = HttpGet(port, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  std::printf("[metrics] during the outage: backlog %.0f events, %.0f bytes, /readyz %d '%s'\n",
              s["sluice_backlog_events"], s["sluice_backlog_bytes"], ready.status,
              ready.body.substr(0, ready.body.size() - 1).c_str());

  // Kafka returns: the backlog drains, and the counters add up.
  REQUIRE(Shell(restart.cmd) == 0);
  restart.done = true;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        s = ScrapeMetrics(port);
                        return s["sluice_backlog_events"] == 0 &&
                               s["sluice_events_forwarded_total{upstream=\"kafka\"}"] ==
                                   sent1 + sent2;
                      },
                      180s, 100ms),
                  log());
  CHECK(s["sluice_events_received_total"] == sent1 + sent2);
  CHECK(s["sluice_events_committed_total"] == sent1 + sent2);
  CHECK(s["sluice_forward_latency_seconds_count{upstream=\"kafka\"}"] == sent1 + sent2);
  // The events that waited out the outage took over a second from MQTT to Kafka.
  CHECK(s["sluice_forward_latency_seconds_bucket{upstream=\"kafka\",le=\"1\"}"] <= sent1);
  CHECK(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 60s, 50ms));

  auto records = ReadTopic(env.kafka_brokers, cfg.kafka_topic, 4 * (kFirst + kDuring), 20s);
  Verdict v = Verify(records, devices, kFirst + kDuring);
  std::printf(
      "[metrics] published %.0f, forwarded_total %.0f, Kafka records %zu, lost %zu, "
      "duplicates %zu, reordered %zu\n",
      sent1 + sent2, s["sluice_events_forwarded_total{upstream=\"kafka\"}"], v.records, v.lost,
      v.duplicates, v.reordered);
  CHECK(v.records == static_cast<size_t>(sent1 + sent2));
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(sluice.Terminate() == 0);
  // Stopped with the daemon.
  CHECK(HttpGet(port, "/healthz").status == 0);
}

// A connection to 127.0.0.1:port that sends `first` (maybe nothing) and then stays silent.
struct SilentClient {
  int fd = -1;
  SilentClient(int port, const std::string& first) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    if (!first.empty()) REQUIRE(send(fd, first.data(), first.size(), MSG_NOSIGNAL) > 0);
  }
  ~SilentClient() { close(fd); }
  SilentClient(const SilentClient&) = delete;
  SilentClient& operator=(const SilentClient&) = delete;
};

size_t DescriptorsOf(pid_t pid) {
  const std::filesystem::directory_iterator fds("/proc/" + std::to_string(pid) + "/fd");
  return static_cast<size_t>(std::distance(fds, std::filesystem::directory_iterator()));
}

TEST_CASE("events keep flowing and /healthz answers while idle and slow clients hold /metrics") {
  const Env env = Env::FromEnvironment();
  const int port = MetricsPortFromEnvironment();
  TempDir dir;
  const TestConfig cfg = MetricsConfig(dir.path().string(), "metrics-load", port);
  SluiceProcess sluice(env.sluice_bin, cfg.Write(env), cfg.dir);
  sluice.Start();
  REQUIRE_MESSAGE(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 60s, 50ms),
                  sluice.LogText());
  const size_t before = DescriptorsOf(sluice.Pid());

  // 500 idle connections, then 10 that send a partial request line and nothing more.
  std::vector<std::unique_ptr<SilentClient>> load;
  for (int i = 0; i < 500; ++i) load.push_back(std::make_unique<SilentClient>(port, ""));
  for (int i = 0; i < 10; ++i) load.push_back(std::make_unique<SilentClient>(port, "GET /met"));

  const auto t0 = std::chrono::steady_clock::now();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1s);
  client.set_read_timeout(1s);
  auto health = client.Get("/healthz");
  const double took_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // Taken after the answer: sluice accepted every connection queued before the health check.
  const size_t during = DescriptorsOf(sluice.Pid());
  std::printf(
      "[metrics] beside 510 held connections: /healthz %.1f ms, sluice descriptors %zu "
      "before, %zu under load\n",
      took_ms, before, during);
  REQUIRE_MESSAGE(health, sluice.LogText());
  CHECK(health->status == 200);
  CHECK(took_ms < 1000);
  // The endpoint holds at most 64 connections, whatever the clients hold (+4: the connectors'
  // own sockets may come and go meanwhile).
  CHECK(during <= before + 64 + 4);

  // With the connections still open on the client side, events flow from MQTT to Kafka.
  const auto devices = Devices(4);
  constexpr int kPerDevice = 250;
  Publisher pub(env.mqtt_url, "pub-" + cfg.gateway_id);
  pub.Publish(cfg.mqtt_prefix, devices, 1, kPerDevice, 1);
  auto records = ReadTopic(env.kafka_brokers, cfg.kafka_topic, devices.size() * kPerDevice, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  std::printf("[metrics] under connection load: Kafka records %zu, lost %zu, duplicates %zu\n",
              v.records, v.lost, v.duplicates);
  CHECK(v.records == devices.size() * kPerDevice);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  load.clear();
  CHECK(HttpGet(port, "/readyz").status == 200);
  CHECK(sluice.Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
