// SPDX-License-Identifier: Apache-2.0

// One log, several upstreams, at the level of the daemon: a real `sluice run` reads a real local
// Mosquitto (the brokers fixture), logs every event and forwards the log to two upstreams at
// once, each over its own cursor: "central", the fixture's Kafka, and "cloud", a second Mosquitto
// with TLS, a client certificate and a password (cloud_broker.sh), spoken to with MQTT 5 so that
// every record carries sluice.seq. A simulated fleet (sluice-sim) publishes; the verifier reads
// back: sluice-verify on Kafka, and on the cloud a persistent-session subscriber that stays
// connected (tests/integration/mqtt_reader.h) fed into the verifier library, plus sluice-verify
// --source mqtt where the test is about what an operator would run.
//
// The cases stop, kill and restart the cloud broker and sluice; they wait only on conditions
// (log cursors, metrics, /readyz, what the readers got) with deadlines. The last cases run
// `sluice check-config --probe` against the same brokers (and against ports that never answer).

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "connectors/mqtt_connection.h"
#include "firmware-sim/verifier.h"
#include "firmware-sim/verify_expectation.h"
#include "tests/integration/harness.h"
#include "tests/integration/mqtt_reader.h"
#include "tests/integration/upstream_site.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::MqttReader;
using sluice::testing::ReceivedMessage;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// Single quotes for /bin/sh; none of the test's arguments holds one.
std::string Quote(const std::string& s) {
  return "'" + s + "'";
}

// --- The cloud broker of the cloud_broker fixture -------------------------------------------

struct Cloud {
  std::string script;
  std::string dir;
  int port = 0;

  static Cloud FromEnvironment() {
    return {MustEnv("SLUICE_CLOUD_SCRIPT"), MustEnv("SLUICE_CLOUD_DIR"),
            std::stoi(MustEnv("SLUICE_CLOUD_PORT"))};
  }
  std::string Url() const { return "ssl://127.0.0.1:" + std::to_string(port); }
  std::string Tls(const char* file) const { return dir + "/tls/" + file; }
  // The fixture's own start arguments (tests/CMakeLists.txt), so a restart is the same broker.
  int Start() const {
    return Shell(script + " start --dir " + dir + " --port " + std::to_string(port) +
                 " --persistence --max-packet 65536 >/dev/null");
  }
  int Stop(bool kill) const {
    return Shell(script + " stop --dir " + dir + (kill ? " --kill" : "") + " >/dev/null");
  }
  bool Running() const { return Shell(script + " status --dir " + dir + " >/dev/null") == 0; }
  pid_t Pid() const { return static_cast<pid_t>(std::stol(ReadFile(dir + "/mosquitto.pid"))); }

  connectors::MqttConnection Reader(const std::string& client_id) const {
    connectors::MqttConnection c;
    c.url = Url();
    c.protocol = connectors::MqttProtocol::kV5;
    c.client_id = client_id;
    c.username = "reader";
    c.password = ReadFile(dir + "/reader.password");
    while (!c.password.empty() && c.password.back() == '\n') c.password.pop_back();
    c.tls = true;
    c.ca_file = Tls("ca.pem");
    c.cert_file = Tls("client.pem");
    c.key_file = Tls("client.key");
    c.keepalive = 5s;
    c.connect_timeout = 5s;
    return c;
  }
};

// Brings the shared cloud broker back when an assertion left a case with it stopped or frozen.
struct CloudBack {
  const Cloud& cloud;
  ~CloudBack() {
    if (cloud.Running()) {
      ::kill(cloud.Pid(), SIGCONT);
    } else {
      cloud.Start();
    }
  }
};

// --- Verification ---------------------------------------------------------------------------

// Feeds what the cloud reader got, in arrival order, to the verifier library (as sluice-verify
// --source mqtt would): messages under `gap_prefix` are gap records, the rest device events, with
// sluice.seq and sluice.log from their MQTT 5 user properties.
Figures VerifyCloud(const std::vector<ReceivedMessage>& messages, const std::string& expect_path,
                    const std::string& gap_prefix, bool fail_on_duplicates = false) {
  sim::VerifyExpectation expectation;
  Status s = sim::VerifyExpectation::LoadFile(expect_path, &expectation);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  sim::Verifier verifier(std::move(expectation));
  int64_t index = 0;
  for (const ReceivedMessage& m : messages) {
    sim::RecordOrigin origin;
    origin.offset = index++;
    auto seq = m.user_properties.find("sluice.seq");
    if (seq != m.user_properties.end()) origin.log_seq = std::stoull(seq->second);
    auto log = m.user_properties.find("sluice.log");
    if (log != m.user_properties.end()) origin.log_id = log->second;
    if (m.topic.rfind(gap_prefix, 0) == 0) {
      verifier.AddGapPayload(m.payload, origin);
    } else {
      verifier.AddPayload(m.payload, origin);
    }
  }
  const sim::VerifyReport report = verifier.Finish();
  sim::VerifyReport::Policy policy;
  policy.fail_on_duplicates = fail_on_duplicates;
  Figures f = FiguresFromReport(report.ToJson(policy));
  f.rc = report.Passed(policy) ? 0 : 1;
  f.text = report.FormatTable(policy, 8);
  return f;
}

// --- One test's site: sluice with a Kafka and an MQTT upstream ------------------------------

struct SiteOptions {
  std::string storage;  // extra [storage] lines
  std::string central;  // extra [upstream.central] lines
  std::string cloud;    // extra [upstream.cloud] lines
  std::string routes;   // the [[route]] blocks; empty: one route feeding both
};

class Site : public UpstreamSite {
 public:
  explicit Site(const std::string& name)
      : UpstreamSite("ups", name, name), cloud(Cloud::FromEnvironment()) {
    kafka_topic = f.cfg.kafka_topic;
    kafka_gap_topic = kafka_topic + "-gaps";
    cloud_prefix = "site/" + gateway + "/";
    cloud_gap_topic = "sluice/" + gateway + "/gaps";
  }

  // The route of most cases: every telemetry event to both upstreams.
  std::string BothRoute() const {
    return "[[route]]\nmqtt = \"devices/+/telemetry\"\nkey = \"devices/{device}/#\"\n"
           "to = { central = \"" +
           kafka_topic + "\", cloud = \"site/{gateway}/{device}/telemetry\" }\n";
  }

  std::string ConfigText(const SiteOptions& o) const {
    std::ostringstream c;
    c << "[gateway]\nid = \"" << gateway << "\"\n"
      << "[storage]\npath = \"" << f.LogPath() << "\"\n"
      << o.storage << "\n"
      << "[mqtt]\nurl = \"" << f.env.mqtt_url << "\"\nclient_id = \"sluice-" << gateway
      << "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
      << "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" << metrics_port << "\"\n"
      << "[upstream.central]\nkind = \"kafka\"\nbrokers = \"" << f.env.kafka_brokers
      << "\"\nreconnect_max_ms = 1000\ngap_topic = \"" << kafka_gap_topic << "\"\n"
      << o.central << "\n"
      << "[upstream.cloud]\nkind = \"mqtt\"\nurl = \"" << cloud.Url() << "\"\nprotocol = \"5\"\n"
      << "username = \"sluice\"\npassword_file = \"" << cloud.dir << "/sluice.password\"\n"
      << "keepalive_s = 5\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
      << o.cloud << "\n"
      << "[upstream.cloud.tls]\nca_file = \"" << cloud.Tls("ca.pem") << "\"\ncert_file = \""
      << cloud.Tls("client.pem") << "\"\nkey_file = \"" << cloud.Tls("client.key") << "\"\n"
      << (o.routes.empty() ? BothRoute() : o.routes);
    return c.str();
  }
  // Writes the configuration that the next (re)start runs.
  void Configure(const SiteOptions& o) { std::ofstream(ConfigPath()) << ConfigText(o); }

  // A reader of everything sluice publishes to the cloud for this site, connected from now on.
  std::unique_ptr<MqttReader> CloudReader() const {
    auto r =
        std::make_unique<MqttReader>(cloud.Reader("reader-" + gateway),
                                     std::vector<std::string>{cloud_prefix + "#", cloud_gap_topic});
    Status s = r->Start();
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    return r;
  }

  // A fleet of `devices` telemetry devices (or the given profile mix) publishing `events` events
  // in all at `rate` events/s, QoS 1, into the local broker; its summary goes to Summary().
  std::unique_ptr<ChildProcess> StartFleet(uint64_t events, int rate,
                                           const std::string& profiles = "telemetry:4",
                                           size_t payload_bytes = 0) {
    return LaunchFleet({profiles, events, rate, events * 31 + rate, true, payload_bytes});
  }

  // Both cursors at the end of a log whose last seq is at least `last`: every upstream confirmed
  // everything.
  bool Drained(uint64_t last) const { return AllDrained(last, 2); }

  // sluice-verify on the Kafka topic (with the site's gap topic) against the fleet's summary.
  Figures VerifyKafka(const std::string& extra_args, const std::string& expect = "") const {
    return RunVerify(" --brokers " + f.env.kafka_brokers + " --topic " + kafka_topic +
                         " --gap-topic " + kafka_gap_topic + " --expect " +
                         (expect.empty() ? Summary() : expect) +
                         " --idle-timeout 5 --max-ranges 8 " + extra_args,
                     "verify-kafka");
  }

  // sluice-verify --source mqtt: its persistent session first (--subscribe-only), then the read.
  std::string MqttVerifyArgs() const {
    return " --source mqtt --url " + cloud.Url() + " --client-id " + Quote("verify-" + gateway) +
           " --username reader --password-file " + cloud.dir + "/reader.password --ca-file " +
           cloud.Tls("ca.pem") + " --cert-file " + cloud.Tls("client.pem") + " --key-file " +
           cloud.Tls("client.key") + " --topic " + Quote(cloud_prefix + "#") + " --gap-topic " +
           Quote(cloud_gap_topic);
  }
  void SubscribeMqttVerifier() const {
    REQUIRE(Shell(verify_bin + MqttVerifyArgs() + " --subscribe-only >" +
                  f.dir.File("verify-mqtt-subscribe.txt") + " 2>&1") == 0);
  }
  Figures VerifyMqtt(const std::string& extra_args) const {
    return RunVerify(MqttVerifyArgs() + " --expect " + Summary() +
                         " --idle-timeout 5 --max-ranges 8 " + extra_args,
                     "verify-mqtt");
  }

  std::string Diagnostics() const { return f.Log(); }

  Cloud cloud;
  std::string kafka_topic;
  std::string kafka_gap_topic;
  std::string cloud_prefix;
  std::string cloud_gap_topic;
};

// Distinct sluice.seq values of the device events (not gap records) the reader got.
std::set<uint64_t> CloudSeqs(const std::vector<ReceivedMessage>& messages,
                             const std::string& gap_prefix) {
  std::set<uint64_t> seqs;
  for (const auto& m : messages) {
    if (m.topic.rfind(gap_prefix, 0) == 0) continue;
    auto it = m.user_properties.find("sluice.seq");
    if (it != m.user_properties.end()) seqs.insert(std::stoull(it->second));
  }
  return seqs;
}

void RequireCloudUp(const Site& site) {
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_upstream_connected", "cloud") == 1; }, 30s, 20ms),
      site.Diagnostics());
}

// --- Cases ----------------------------------------------------------------------------------

TEST_CASE("Kafka and a TLS cloud MQTT broker fed from one log both get every event in order") {
  Site site("both");
  CloudBack back{site.cloud};
  site.Configure({});
  auto reader = site.CloudReader();
  site.SubscribeMqttVerifier();
  site.Start();
  RequireCloudUp(site);
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);

  const auto t0 = std::chrono::steady_clock::now();
  auto fleet = site.StartFleet(6000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 6000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  std::printf("scenario=both %llu events logged and confirmed by both upstreams in %.2f s\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t0));
  CHECK(site.f.LastSeq() == sent);
  CHECK(site.Metric("sluice_events_forwarded_total", "central") == sent);
  CHECK(site.Metric("sluice_events_forwarded_total", "cloud") == sent);
  CHECK(site.Metric("sluice_upstream_backlog_events", "central") == 0);
  CHECK(site.Metric("sluice_upstream_backlog_events", "cloud") == 0);

  const Figures kafka = site.VerifyKafka("--fail-on-duplicates --count " + std::to_string(sent));
  PrintFigures("both", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.records == sent);
  CHECK(kafka.unique == sent);
  CHECK(kafka.lost == 0);
  CHECK(kafka.duplicates == 0);
  CHECK(kafka.reordered == 0);

  // Confirmed by PUBACK means queued for the reader's session: it gets them all without waiting
  // on anything else.
  REQUIRE(reader->WaitForCount(sent, 30s));
  const auto messages = reader->Messages();
  const Figures cloud = VerifyCloud(messages, site.Summary(), site.cloud_gap_topic, true);
  PrintFigures("both", "cloud", cloud);
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.records == sent);
  CHECK(cloud.lost == 0);
  CHECK(cloud.duplicates == 0);
  CHECK(cloud.reordered == 0);
  // MQTT 5: every record names its log position and gateway, in log order.
  uint64_t previous = 0;
  size_t with_seq = 0;
  size_t in_log_order = 0;
  size_t with_gateway = 0;
  for (const auto& m : messages) {
    auto seq = m.user_properties.find("sluice.seq");
    if (seq == m.user_properties.end()) continue;
    with_seq++;
    const uint64_t n = std::stoull(seq->second);
    if (n > previous) in_log_order++;
    previous = n;
    with_gateway += m.user_properties.count("sluice.gateway");
  }
  std::printf("scenario=both cloud messages=%zu with_sluice_seq=%zu in_log_order=%zu\n",
              messages.size(), with_seq, in_log_order);
  CHECK(with_seq == messages.size());
  CHECK(with_gateway == messages.size());
  CHECK(in_log_order == messages.size());
  CHECK(CloudSeqs(messages, site.cloud_gap_topic).size() == sent);
  REQUIRE(!messages.empty());
  CHECK(messages.front().user_properties.at("sluice.gateway") == site.gateway);
  CHECK(messages.front().qos == 1);

  // The operator's tool agrees, through a session of its own.
  const Figures cli = site.VerifyMqtt("--fail-on-duplicates --count " + std::to_string(sent));
  PrintFigures("both", "cloud(sluice-verify)", cli);
  CHECK_MESSAGE(cli.rc == 0, cli.text);
  CHECK(cli.records == sent);
  CHECK(cli.lost == 0);
  CHECK(cli.duplicates == 0);
  CHECK(cli.reordered == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("the cloud broker down never stops Kafka; back, the cloud drains its backlog in order") {
  Site site("cloud-down");
  CloudBack back{site.cloud};
  site.Configure({});
  auto reader = site.CloudReader();
  site.Start();
  RequireCloudUp(site);

  REQUIRE(site.cloud.Stop(false) == 0);
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_upstream_connected", "cloud") == 0; }, 30s, 20ms),
      site.Diagnostics());
  const auto t0 = std::chrono::steady_clock::now();
  auto fleet = site.StartFleet(5000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 5000);
  // Kafka gets everything while the cloud is away.
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor("central").cursor == sent; }, 60s, 20ms),
                  site.Diagnostics());
  const double kafka_s = Seconds(std::chrono::steady_clock::now() - t0);
  const Figures kafka = site.VerifyKafka("--fail-on-duplicates --count " + std::to_string(sent));
  PrintFigures("cloud-down", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.unique == sent);
  CHECK(kafka.lost == 0);
  CHECK(kafka.duplicates == 0);
  CHECK(kafka.reordered == 0);
  // The cloud's backlog holds every event, and readiness names the cloud alone.
  const double backlog = site.Metric("sluice_upstream_backlog_events", "cloud");
  const HttpResponse ready = HttpGet(site.metrics_port, "/readyz");
  std::printf(
      "scenario=cloud-down kafka_confirmed_all_s=%.2f cloud_backlog=%.0f central_backlog=%.0f "
      "readyz=%d %s\n",
      kafka_s, backlog, site.Metric("sluice_upstream_backlog_events", "central"), ready.status,
      ready.body.c_str());
  CHECK(backlog == sent);
  CHECK(site.Cursor("cloud").cursor == 0);
  CHECK(site.Cursor("cloud").events == sent);
  CHECK(site.Metric("sluice_upstream_backlog_events", "central") == 0);
  CHECK(ready.status == 503);
  CHECK_MESSAGE(ready.body.find("upstream cloud:") != std::string::npos, ready.body);
  CHECK_MESSAGE(ready.body.find("upstream central") == std::string::npos, ready.body);
  CHECK(reader->Count() == 0);

  const auto t1 = std::chrono::steady_clock::now();
  REQUIRE(site.cloud.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  std::printf("scenario=cloud-down the cloud drained %llu events in %.2f s after its restart\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t1));
  CHECK(site.Metric("sluice_upstream_backlog_events", "cloud") == 0);
  CHECK(WaitFor([&] { return HttpGet(site.metrics_port, "/readyz").status == 200; }, 30s, 20ms));
  REQUIRE(
      WaitFor([&] { return CloudSeqs(reader->Messages(), site.cloud_gap_topic).size() >= sent; },
              30s, 20ms));
  const Figures cloud = VerifyCloud(reader->Messages(), site.Summary(), site.cloud_gap_topic);
  PrintFigures("cloud-down", "cloud", cloud);
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.unique == sent);
  CHECK(cloud.lost == 0);
  CHECK(cloud.reordered == 0);
  CHECK(cloud.gap_records == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "sluice killed with SIGKILL while both upstreams drain a backlog loses nothing at either") {
  Site site("sigkill");
  CloudBack back{site.cloud};
  // Narrow windows keep both upstreams behind the broker's redelivery, so the kill finds both
  // in the middle of their backlogs.
  SiteOptions slow;
  slow.central = "max_in_flight_events = 20\nlinger_ms = 20\n";
  slow.cloud = "max_in_flight = 2\n";
  site.Configure(slow);
  auto reader = site.CloudReader();
  site.Start();
  RequireCloudUp(site);
  // The backlog: the fleet publishes while sluice is away; the broker queues it for sluice's
  // session.
  CHECK(site.f.process->Terminate() == 0);
  auto fleet = site.StartFleet(16000, 4000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 16000);
  // The topic exists before sluice starts, so that Kafka drains from the first moment as the
  // cloud does (the cloud still drains several times faster).
  REQUIRE(CreateTopic(site.f.env.kafka_brokers, site.kafka_topic, 1, 1) == "");
  site.Start();

  storage::CursorStats central, cloud;
  uint64_t last = 0;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto st = site.f.MaybeStats();
                        if (!st) return false;
                        last = st->last_seq;
                        central = site.Cursor("central");
                        cloud = site.Cursor("cloud");
                        return central.cursor >= 500 && cloud.cursor >= 500 &&
                               central.events >= 500 && cloud.events >= 500;
                      },
                      60s, 5ms),
                  "last_seq " << last << " central " << central.cursor << "+" << central.events
                              << " cloud " << cloud.cursor << "+" << cloud.events << "\n"
                              << site.Diagnostics());
  site.f.process->Kill();
  std::printf(
      "scenario=sigkill killed at last_seq=%llu central cursor=%llu backlog=%llu, cloud "
      "cursor=%llu backlog=%llu\n",
      static_cast<unsigned long long>(last), static_cast<unsigned long long>(central.cursor),
      static_cast<unsigned long long>(central.events),
      static_cast<unsigned long long>(cloud.cursor), static_cast<unsigned long long>(cloud.events));

  // Back with the default windows. A marker published after the fleet sits behind every fleet
  // event in sluice's session queue; once both cursors reach the end of a log holding it, both
  // upstreams have everything.
  site.Configure({});
  site.Start();
  const std::string marker_device = "zz-marker-" + site.gateway;
  REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " +
                site.f.env.mqtt_url.substr(site.f.env.mqtt_url.rfind(':') + 1) + " -t " +
                Quote("devices/" + marker_device + "/telemetry") + " -m end") == 0);
  const std::string marker_topic = site.cloud_prefix + marker_device + "/telemetry";
  auto has_marker = [&] {
    for (const auto& m : reader->Messages()) {
      if (m.topic == marker_topic) return true;
    }
    return false;
  };
  REQUIRE_MESSAGE(WaitFor([&] { return has_marker() && site.Drained(sent); }, 90s, 20ms),
                  site.Diagnostics());
  std::printf(
      "scenario=sigkill after restart: log last_seq=%llu (%llu events redelivered by the "
      "local broker or the marker)\n",
      static_cast<unsigned long long>(site.f.LastSeq()),
      static_cast<unsigned long long>(site.f.LastSeq() - sent));

  const Figures kafka = site.VerifyKafka("");
  PrintFigures("sigkill", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.unique == sent);
  CHECK(kafka.lost == 0);
  CHECK(kafka.reordered == 0);
  const Figures cloud_v = VerifyCloud(reader->Messages(), site.Summary(), site.cloud_gap_topic);
  PrintFigures("sigkill", "cloud", cloud_v);
  CHECK_MESSAGE(cloud_v.rc == 0, cloud_v.text);
  CHECK(cloud_v.unique == sent);
  CHECK(cloud_v.lost == 0);
  CHECK(cloud_v.reordered == 0);
  CHECK(site.f.process->Terminate() == 0);
}

// SIGSTOPs the cloud broker and SIGKILLs it once everything it confirmed to sluice has reached the
// reader: a Mosquitto killed with messages queued for a subscriber loses them (it saves its state
// once a second), which would be the broker's loss, not sluice's. Sluice's window is full of
// events the broker will never confirm when the kill comes.
void KillCloudInFlight(Site& site, const MqttReader& reader) {
  const pid_t pid = site.cloud.Pid();
  for (int attempt = 1;; ++attempt) {
    REQUIRE(::kill(pid, SIGSTOP) == 0);
    // Frozen, the broker confirms nothing: sluice's window fills with unconfirmed events (the
    // broker's receive maximum, 20, bounds it), and every confirmation that was on its way has
    // been read.
    REQUIRE_MESSAGE(
        WaitFor([&] { return site.Metric("sluice_forwarder_window_events", "cloud") >= 10; }, 30s,
                20ms),
        site.Diagnostics());
    // The cursor is stored at most every 200 ms: confirmations read just before the freeze reach
    // it only then. Once it has not moved for a second it covers every event the broker confirmed.
    uint64_t confirmed = site.Cursor("cloud").cursor;
    auto unchanged_since = std::chrono::steady_clock::now();
    REQUIRE(WaitFor(
        [&] {
          const uint64_t c = site.Cursor("cloud").cursor;
          const auto now = std::chrono::steady_clock::now();
          if (c != confirmed) {
            confirmed = c;
            unchanged_since = now;
            return false;
          }
          return now - unchanged_since >= 1s;
        },
        30s, 20ms));
    const auto seqs = CloudSeqs(reader.Messages(), site.cloud_gap_topic);
    const uint64_t have =
        static_cast<uint64_t>(std::distance(seqs.begin(), seqs.upper_bound(confirmed)));
    if (have == confirmed) {
      std::printf(
          "scenario=cloud-restart SIGKILL with cloud cursor %llu, window %.0f (attempt %d)\n",
          static_cast<unsigned long long>(confirmed),
          site.Metric("sluice_forwarder_window_events", "cloud"), attempt);
      REQUIRE(site.cloud.Stop(true) == 0);
      return;
    }
    // The broker still held confirmed events for the reader: let it deliver them and try again.
    REQUIRE(::kill(pid, SIGCONT) == 0);
    REQUIRE(attempt < 20);
    REQUIRE(WaitFor(
        [&] {
          const auto s = CloudSeqs(reader.Messages(), site.cloud_gap_topic);
          return static_cast<uint64_t>(std::distance(s.begin(), s.upper_bound(confirmed))) ==
                 confirmed;
        },
        30s, 5ms));
  }
}

TEST_CASE(
    "cloud broker restarted by SIGTERM and then SIGKILL while events flow: nothing lost or "
    "reordered") {
  Site site("cloud-restart");
  CloudBack back{site.cloud};
  site.Configure({});
  auto reader = site.CloudReader();
  site.Start();
  RequireCloudUp(site);
  auto fleet = site.StartFleet(16000, 1000);

  for (const bool kill : {false, true}) {
    const uint64_t at = site.Cursor("cloud").cursor;
    REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor("cloud").cursor >= at + 2000; }, 60s, 20ms),
                    site.Diagnostics());
    const auto t0 = std::chrono::steady_clock::now();
    if (kill) {
      KillCloudInFlight(site, *reader);
    } else {
      REQUIRE(site.cloud.Stop(false) == 0);
    }
    REQUIRE(
        WaitFor([&] { return site.Metric("sluice_upstream_connected", "cloud") == 0; }, 30s, 20ms));
    // Events keep arriving while the cloud is away: its backlog grows.
    const double backlog = site.Metric("sluice_upstream_backlog_events", "cloud");
    REQUIRE(WaitFor(
        [&] { return site.Metric("sluice_upstream_backlog_events", "cloud") >= backlog + 200; },
        30s, 20ms));
    REQUIRE(site.cloud.Start() == 0);
    RequireCloudUp(site);
    std::printf("scenario=cloud-restart %s: cloud away %.2f s, backlog then %.0f\n",
                kill ? "SIGKILL" : "SIGTERM", Seconds(std::chrono::steady_clock::now() - t0),
                site.Metric("sluice_upstream_backlog_events", "cloud"));
  }
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 16000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  CHECK(site.f.LastSeq() == sent);
  REQUIRE(
      WaitFor([&] { return CloudSeqs(reader->Messages(), site.cloud_gap_topic).size() >= sent; },
              30s, 20ms));
  const Figures cloud = VerifyCloud(reader->Messages(), site.Summary(), site.cloud_gap_topic);
  PrintFigures("cloud-restart", "cloud", cloud);
  std::printf("scenario=cloud-restart resent by sluice: %.0f\n",
              site.Metric("sluice_events_resent_total", "cloud"));
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.unique == sent);
  CHECK(cloud.lost == 0);
  CHECK(cloud.reordered == 0);
  const Figures kafka = site.VerifyKafka("--fail-on-duplicates --count " + std::to_string(sent));
  PrintFigures("cloud-restart", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.unique == sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "drop-oldest with the cloud down: a gap record at the place of the hole, Kafka complete") {
  Site site("gap");
  CloudBack back{site.cloud};
  SiteOptions o;
  o.storage = "max_bytes = \"2MiB\"\noverflow = \"drop-oldest\"\n";
  site.Configure(o);
  auto reader = site.CloudReader();
  site.SubscribeMqttVerifier();
  // Kafka keeps up from the first event: its topic exists (auto-creation would hold the first
  // events for a second, long enough to fill this small log; see the next case).
  REQUIRE(CreateTopic(site.f.env.kafka_brokers, site.kafka_topic, 1, 1) == "");
  site.Start();
  RequireCloudUp(site);
  // ~1 KiB events: the log holds about two thousand, two seconds of the fleet, which is Kafka's
  // slack to confirm before drop-oldest reaches its events (a loaded CI machine once took more
  // than the one second of a 1 MiB log); the outage brings about five thousand.
  auto fleet = site.StartFleet(6000, 1000, "telemetry:4", 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor("cloud").cursor >= 1000; }, 60s, 20ms),
                  site.Diagnostics());
  REQUIRE(site.cloud.Stop(false) == 0);
  const uint64_t cloud_cursor_at_stop = site.Cursor("cloud").cursor;
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 6000);
  // Kafka keeps up throughout: it confirms every event while the cloud is away.
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor("central").cursor == sent; }, 60s, 20ms),
                  site.Diagnostics());
  const storage::CursorStats down = site.Cursor("cloud");
  std::printf(
      "scenario=gap cloud stopped at its cursor %llu; while down: %llu dropped for the "
      "cloud in %llu gap markers, backlog %llu events / %llu bytes\n",
      static_cast<unsigned long long>(cloud_cursor_at_stop),
      static_cast<unsigned long long>(down.dropped_events),
      static_cast<unsigned long long>(down.gap_markers),
      static_cast<unsigned long long>(down.events), static_cast<unsigned long long>(down.bytes));
  REQUIRE(down.dropped_events > 0);
  // Kafka confirmed every event long before drop-oldest reached it: nothing was dropped for it.
  CHECK_MESSAGE(site.Cursor("central").dropped_events == 0, site.Diagnostics());

  REQUIRE(site.cloud.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  const double dropped_metric = site.Metric("sluice_upstream_dropped_total", "cloud");
  const double gap_metric = site.Metric("sluice_gap_records_total", "cloud");
  std::printf(
      "scenario=gap sluice_upstream_dropped_total{cloud}=%.0f {central}=%.0f "
      "sluice_gap_records_total{cloud}=%.0f {central}=%.0f\n",
      dropped_metric, site.Metric("sluice_upstream_dropped_total", "central"), gap_metric,
      site.Metric("sluice_gap_records_total", "central"));
  CHECK(dropped_metric == static_cast<double>(site.Cursor("cloud").dropped_events));
  CHECK(site.Metric("sluice_upstream_dropped_total", "central") == 0);
  CHECK(site.Metric("sluice_gap_records_total", "central") == 0);
  CHECK(gap_metric >= 1);

  const Figures kafka = site.VerifyKafka("--fail-on-duplicates --count " + std::to_string(sent));
  PrintFigures("gap", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.unique == sent);
  CHECK(kafka.lost == 0);
  CHECK(kafka.dropped_reported == 0);
  CHECK(kafka.gap_records == 0);

  // The cloud: what arrived plus what the gap records account for is every event. Events sent
  // to the cloud and unconfirmed when it stopped may have reached the reader and still be reported
  // dropped: sluice cannot know.
  const uint64_t dropped = static_cast<uint64_t>(dropped_metric);
  const uint64_t arrived = sent - dropped;
  REQUIRE(WaitFor(
      [&] {
        const auto messages = reader->Messages();
        size_t gaps = 0;
        for (const auto& m : messages) gaps += m.topic == site.cloud_gap_topic ? 1 : 0;
        return CloudSeqs(messages, site.cloud_gap_topic).size() >= arrived &&
               gaps >= static_cast<size_t>(gap_metric);
      },
      30s, 20ms));
  const auto messages = reader->Messages();
  const Figures cloud = VerifyCloud(messages, site.Summary(), site.cloud_gap_topic);
  PrintFigures("gap", "cloud", cloud);
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.unique + cloud.dropped_reported == sent);
  CHECK(cloud.lost == 0);
  CHECK(cloud.reordered == 0);
  CHECK(cloud.dropped_reported <= dropped);
  CHECK(cloud.gap_events == dropped);

  // In arrival order, each gap record sits where its hole was: every event before it has a lower
  // sluice.seq than its first_seq, every event after it a higher one than its last_seq; but the
  // events that were in flight when the cloud stopped, at the start of the range.
  size_t in_flight_all = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].topic != site.cloud_gap_topic) continue;
    const auto gap = nlohmann::json::parse(messages[i].payload);
    std::printf("scenario=gap gap record at arrival %zu of %zu: %s\n", i, messages.size(),
                messages[i].payload.c_str());
    CHECK(gap["type"] == "gap");
    CHECK(gap["gateway"] == site.gateway);
    const uint64_t first = gap["first_seq"].get<uint64_t>();
    const uint64_t last = gap["last_seq"].get<uint64_t>();
    CHECK(first > cloud_cursor_at_stop);
    size_t before_bad = 0, after_bad = 0, in_flight = 0;
    for (size_t j = 0; j < messages.size(); ++j) {
      auto seq = messages[j].user_properties.find("sluice.seq");
      if (j == i || messages[j].topic == site.cloud_gap_topic ||
          seq == messages[j].user_properties.end()) {
        continue;
      }
      const uint64_t n = std::stoull(seq->second);
      // Sent before the cloud stopped, and never confirmed: inside the hole.
      if (j < i && n >= first && n <= last) {
        in_flight++;
        // Within the sink's window (max_in_flight, default 1000) of the range's start.
        CHECK(n < first + 1000);
      }
      if (j < i && n > last) before_bad++;
      if (j > i && n <= last) after_bad++;
    }
    std::printf(
        "scenario=gap events before the gap record inside its range (in flight at the "
        "stop): %zu\n",
        in_flight);
    CHECK(before_bad == 0);
    CHECK(after_bad == 0);
    in_flight_all += in_flight;
  }

  CHECK(cloud.unique == arrived + in_flight_all);

  // The operator's tool, through a session of its own, counts the same; it reads until nothing
  // more comes, since the broker may or may not have kept the in-flight events for an offline
  // session.
  const Figures cli = site.VerifyMqtt("");
  PrintFigures("gap", "cloud(sluice-verify)", cli);
  CHECK_MESSAGE(cli.rc == 0, cli.text);
  CHECK(cli.lost == 0);
  CHECK(cli.unique + cli.dropped_reported == sent);
  CHECK(cli.dropped_reported <= dropped);
  CHECK(site.f.process->Terminate() == 0);
}

// drop-oldest deletes events Kafka has in flight (Kafka holds the first events for about a second
// while it auto-creates the topic, and they fill a 1 MiB log). The per-upstream drop count is an
// upper bound (docs/log-format.md, "Gap markers"): events the forwarder already had in flight are
// still delivered, and it never reaches the marker behind its read position. What must hold: Kafka
// loses nothing that no gap record names.
TEST_CASE("drop-oldest while Kafka creates its topic: nothing is lost without a gap record") {
  Site site("gap-kafka");
  CloudBack back{site.cloud};
  SiteOptions o;
  o.storage = "max_bytes = \"1MiB\"\noverflow = \"drop-oldest\"\n";
  site.Configure(o);
  site.Start();
  RequireCloudUp(site);
  auto fleet = site.StartFleet(3000, 1000, "telemetry:4", 1000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 3000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  const double dropped = site.Metric("sluice_upstream_dropped_total", "central");
  const double gaps = site.Metric("sluice_gap_records_total", "central");
  const Figures kafka = site.VerifyKafka("");
  PrintFigures("gap-kafka", "central", kafka);
  std::printf(
      "scenario=gap-kafka sluice_upstream_dropped_total{central}=%.0f "
      "sluice_gap_records_total{central}=%.0f\n",
      dropped, gaps);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.lost == 0);
  CHECK(kafka.unique + kafka.dropped_reported == sent);
  CHECK(kafka.dropped_reported <= kafka.gap_events);
  CHECK(static_cast<uint64_t>(dropped) >= kafka.dropped_reported);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("sluice replay sends a retained range to Kafka again while live forwarding goes on") {
  Site site("replay");
  CloudBack back{site.cloud};
  SiteOptions o;
  o.storage = "retain_bytes = \"64MiB\"\n";
  // A narrow window stretches the replay, so that live events visibly pass by meanwhile.
  o.central = "max_in_flight_events = 200\n";
  o.routes = site.BothRoute() +
             "[[route]]\nmqtt = \"devices/+/data\"\nkey = \"devices/{device}/#\"\n"
             "to = { central = \"" +
             site.kafka_topic + "\", cloud = \"site/{gateway}/{device}/data\" }\n";
  site.Configure(o);
  auto reader = site.CloudReader();
  site.Start();
  RequireCloudUp(site);
  auto fleet = site.StartFleet(8000, 4000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 8000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  auto st = site.f.Stats();
  std::printf("scenario=replay retained %llu events from seq %llu\n",
              static_cast<unsigned long long>(st.retained_events),
              static_cast<unsigned long long>(st.first_retained_seq));
  CHECK(st.retained_events == sent);
  CHECK(st.first_retained_seq == 1);

  // Live events on other devices, published from before the request until after the replay.
  const std::vector<std::string> live_devices = {"live0-" + site.gateway, "live1-" + site.gateway};
  std::atomic<bool> stop_live{false};
  std::atomic<int> live_per_device{0};
  std::thread live([&] {
    Publisher pub(site.f.env.mqtt_url, "live-" + site.gateway);
    while (!stop_live.load()) {
      pub.Publish("devices", live_devices, live_per_device.load() + 1, 5, 1);
      live_per_device += 5;
      // Pacing, not synchronisation: a steady trickle of about a thousand events a second.
      std::this_thread::sleep_for(10ms);
    }
  });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop_live, live};
  REQUIRE(WaitFor([&] { return live_per_device.load() >= 50; }, 30s, 5ms));

  const std::string out = site.f.dir.File("replay.txt");
  REQUIRE(Shell(site.f.env.sluice_bin + " replay -c " + site.ConfigPath() +
                " --upstream central --from 1 >" + out + " 2>&1") == 0);
  std::printf("scenario=replay %s", ReadFile(out).c_str());
  bool seen_running = false;
  bool live_during_replay = false;
  uint64_t central_at_start = 0;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        const double running = site.Metric("sluice_replay_running", "central");
                        if (running == 1) {
                          const uint64_t c = site.Cursor("central").cursor;
                          if (!seen_running) central_at_start = c;
                          seen_running = true;
                          // The live cursor moves on while the replay runs.
                          if (c > central_at_start) live_during_replay = true;
                        }
                        return seen_running && running == 0;
                      },
                      60s, 10ms),
                  site.Diagnostics());
  stop_live = true;
  live.join();
  const int live_count = live_per_device.load();
  const uint64_t live_total = static_cast<uint64_t>(live_count) * live_devices.size();
  std::printf(
      "scenario=replay live events published: %llu (%d per device); live cursor moved "
      "during the replay: %s\n",
      static_cast<unsigned long long>(live_total), live_count, live_during_replay ? "yes" : "no");
  CHECK(live_during_replay);

  const std::string status_out = site.f.dir.File("status.json");
  REQUIRE(Shell(site.f.env.sluice_bin + " status --json -c " + site.ConfigPath() + " >" +
                status_out + " 2>&1") == 0);
  const auto status = nlohmann::json::parse(ReadFile(status_out));
  REQUIRE(status["replays"].size() == 1);
  const auto& replay = status["replays"][0];
  std::printf("scenario=replay status: %s\n", replay.dump().c_str());
  CHECK(replay["upstream"] == "central");
  CHECK(replay["from_seq"] == 1);
  // Through the cursor when it was asked for: the fleet's events and the live ones before it.
  const uint64_t through = replay["through_seq"].get<uint64_t>();
  CHECK(through >= sent);
  CHECK(through < sent + live_total);
  CHECK(replay["position"] == through);
  const uint64_t replayed_live = through - sent;
  CHECK(replay["done"] == true);
  CHECK(site.Metric("sluice_replay_running", "central") == 0);
  CHECK(site.Metric("sluice_replay_running", "cloud") == 0);

  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent + live_total); }, 60s, 20ms),
                  site.Diagnostics());
  // The range arrived twice, nothing lost; the live events are foreign to the fleet's verifier.
  const uint64_t kafka_total = 2 * sent + live_total + replayed_live;
  const Figures kafka = site.VerifyKafka("--count " + std::to_string(kafka_total));
  PrintFigures("replay", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.unique == sent);
  CHECK(kafka.records == 2 * sent);
  CHECK(kafka.duplicates == sent);
  CHECK(kafka.lost == 0);
  CHECK(kafka.reordered == 0);
  CHECK(kafka.foreign == live_total + replayed_live);
  // The live events: each once, in order, and those inside the range once more.
  std::vector<Record> live_records;
  for (const Record& r : ReadTopic(site.f.env.kafka_brokers, site.kafka_topic, kafka_total, 10s)) {
    if (r.key.rfind("live", 0) == 0) live_records.push_back(r);
  }
  const Verdict lv = Verify(live_records, live_devices, live_count);
  ReportScenario("replay-live-central", live_total, lv);
  CHECK(lv.records == live_total + replayed_live);
  CHECK(lv.lost == 0);
  CHECK(lv.duplicates == replayed_live);
  CHECK(lv.reordered == 0);
  // The cloud was not asked for a replay: every fleet event once.
  REQUIRE(WaitFor([&] { return reader->Count() >= sent + live_total; }, 30s, 20ms));
  const Figures cloud = VerifyCloud(reader->Messages(), site.Summary(), site.cloud_gap_topic, true);
  PrintFigures("replay", "cloud", cloud);
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.duplicates == 0);
  CHECK(cloud.unique == sent);
  CHECK(site.f.process->Terminate() == 0);
}

// The fleet summary with only the devices of `profile`: what one route's upstream should get.
std::string WriteExpectation(const std::string& summary, const std::string& profile,
                             const std::string& path) {
  auto j = nlohmann::json::parse(ReadFile(summary));
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& d : j["devices"]) {
    if (d["profile"] == profile) kept.push_back(d);
  }
  j["devices"] = kept;
  std::ofstream(path) << j.dump();
  return path;
}

TEST_CASE("routes that feed one upstream each: each gets exactly its route's events") {
  Site site("routes");
  CloudBack back{site.cloud};
  SiteOptions o;
  o.routes =
      "[[route]]\nmqtt = \"devices/+/telemetry\"\nkey = \"devices/{device}/#\"\n"
      "to = { central = \"" +
      site.kafka_topic +
      "\" }\n"
      "[[route]]\nmqtt = \"devices/+/events\"\nkey = \"devices/{device}/#\"\n"
      "to = { cloud = \"site/{gateway}/{device}/events\" }\n";
  site.Configure(o);
  auto reader = site.CloudReader();
  site.Start();
  RequireCloudUp(site);
  // Door devices publish a fifth of a telemetry device's rate, on devices/<id>/events.
  auto fleet = site.StartFleet(3000, 1500, "telemetry:2,door:2");
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent == 3000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.Diagnostics());
  const auto summary = nlohmann::json::parse(ReadFile(site.Summary()));
  uint64_t telemetry = 0, door = 0;
  for (const auto& d : summary["devices"]) {
    (d["profile"] == "telemetry" ? telemetry : door) += d["sent"].get<uint64_t>();
  }
  std::printf(
      "scenario=routes telemetry=%llu door=%llu; forwarded central=%.0f cloud=%.0f; "
      "backlog central=%.0f cloud=%.0f\n",
      static_cast<unsigned long long>(telemetry), static_cast<unsigned long long>(door),
      site.Metric("sluice_events_forwarded_total", "central"),
      site.Metric("sluice_events_forwarded_total", "cloud"),
      site.Metric("sluice_upstream_backlog_events", "central"),
      site.Metric("sluice_upstream_backlog_events", "cloud"));
  REQUIRE(telemetry > 0);
  REQUIRE(door > 0);
  CHECK(site.Metric("sluice_events_forwarded_total", "central") == telemetry);
  CHECK(site.Metric("sluice_events_forwarded_total", "cloud") == door);
  CHECK(site.Metric("sluice_upstream_backlog_events", "central") == 0);
  CHECK(site.Metric("sluice_upstream_backlog_events", "cloud") == 0);
  CHECK(site.Cursor("central").cursor == sent);
  CHECK(site.Cursor("cloud").cursor == sent);
  CHECK(site.f.Stats().events == 0);

  // --strict: a record of the other route's devices is "unexpected" and fails the run.
  const Figures kafka = site.VerifyKafka(
      "--strict --fail-on-duplicates --count " + std::to_string(telemetry),
      WriteExpectation(site.Summary(), "telemetry", site.f.dir.File("expect-telemetry.json")));
  PrintFigures("routes", "central", kafka);
  CHECK_MESSAGE(kafka.rc == 0, kafka.text);
  CHECK(kafka.records == telemetry);
  CHECK(kafka.unique == telemetry);
  CHECK(kafka.lost == 0);
  CHECK(kafka.unexpected == 0);
  CHECK(kafka.foreign == 0);

  REQUIRE(reader->WaitForCount(door, 30s));
  const Figures cloud =
      VerifyCloud(reader->Messages(),
                  WriteExpectation(site.Summary(), "door", site.f.dir.File("expect-door.json")),
                  site.cloud_gap_topic, true);
  PrintFigures("routes", "cloud", cloud);
  CHECK_MESSAGE(cloud.rc == 0, cloud.text);
  CHECK(cloud.records == door);
  CHECK(cloud.unique == door);
  CHECK(cloud.lost == 0);
  CHECK(cloud.unexpected == 0);
  CHECK(cloud.foreign == 0);
  CHECK(reader->Count() == door);
  CHECK(site.f.process->Terminate() == 0);
}

// --- sluice check-config --probe -------------------------------------------------------------
//
// The probe against the same brokers: the shared Mosquitto, the shared Kafka (which creates
// missing topics) and the TLS cloud broker. Each case asserts the exit code and the line that
// names what works or fails.

constexpr int kProbeTimeoutSeconds = 5;

// A route from the fixture's own MQTT filter (the Publisher's topics) to both upstreams.
std::string ProbeRoute(const Site& site) {
  const std::string& prefix = site.f.cfg.mqtt_prefix;
  return "[[route]]\nmqtt = \"" + prefix + "/+/data\"\nkey = \"" + prefix +
         "/{device}/#\"\nto = { central = \"" + site.kafka_topic +
         "\", cloud = \"site/{gateway}/{device}/data\" }\n";
}

// The site's configuration with `from` replaced by `to` (a wrong password file, another URL).
void ConfigureWith(Site& site, const SiteOptions& o, const std::string& from,
                   const std::string& to) {
  std::string text = site.ConfigText(o);
  const size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
  std::ofstream(site.ConfigPath()) << text;
}

ProbeRun Probe(const Site& site, const std::string& scenario) {
  ProbeRun r =
      RunProbe(site.f.env.sluice_bin, site.ConfigPath(), kProbeTimeoutSeconds, site.f.cfg.dir);
  std::printf("scenario=%s rc=%d seconds=%.2f\n%s", scenario.c_str(), r.rc, r.seconds,
              r.output.c_str());
  std::fflush(stdout);
  return r;
}

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST_CASE("probe: every check passes against the brokers, and a running sluice is not disturbed") {
  Site site("probe-ok");
  CloudBack back{site.cloud};
  REQUIRE(CreateTopic(site.f.env.kafka_brokers, site.kafka_topic, 2, 1).empty());
  SiteOptions o;
  // drop-oldest makes gap records, so the probe asks about the gap topic too: missing on a broker
  // that creates topics, which is a warning, not a failure.
  o.storage = "overflow = \"drop-oldest\"\n";
  o.central = "delivery = \"exactly-once\"\n";
  o.routes = ProbeRoute(site);
  site.Configure(o);
  site.Start();
  RequireCloudUp(site);
  // Events through both upstreams first: the daemon's transactional producer is initialised and
  // its MQTT connections are up, so that a probe taking their ids would fence or kick them.
  Publisher pub(site.f.env.mqtt_url, "pub-" + site.gateway);
  pub.Publish(site.f.cfg.mqtt_prefix, Devices(2), 1, 5, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(10); }, 60s, 20ms), site.Diagnostics());

  const ProbeRun probe = Probe(site, "probe-all-ok");
  const std::string password = ReadFile(site.cloud.dir + "/sluice.password");
  {
    INFO(probe.output);
    CHECK(probe.rc == 0);
    CHECK(probe.Count("FAIL") == 0);
    CHECK_FALSE(probe
                    .Line("ok", "mqtt: connected to " + site.f.env.mqtt_url + " as 'sluice-" +
                                    site.gateway + "-probe' (MQTT 3.1.1)")
                    .empty());
    CHECK_FALSE(probe
                    .Line("ok", "mqtt: subscribe to '" + site.f.cfg.mqtt_prefix +
                                    "/+/data' allowed (QoS 1)")
                    .empty());
    CHECK_FALSE(
        probe.Line("ok", "upstream central (kafka): connected to " + site.f.env.kafka_brokers)
            .empty());
    CHECK_FALSE(probe
                    .Line("ok", "upstream central (kafka): topic '" + site.kafka_topic +
                                    "' exists (2 partition(s))")
                    .empty());
    CHECK_FALSE(probe
                    .Line("warn", "upstream central (kafka): topic '" + site.kafka_gap_topic +
                                      "' does not exist yet")
                    .empty());
    CHECK_FALSE(probe
                    .Line("ok",
                          "upstream central (kafka): transactions initialised under the probe's "
                          "own transactional id 'sluice-" +
                              site.gateway + "-central.probe'")
                    .empty());
    CHECK_FALSE(
        probe.Line("ok", "upstream central (kafka): checkpoint topic 'sluice.checkpoints' exists")
            .empty());
    CHECK_FALSE(probe
                    .Line("ok", "upstream cloud (mqtt): connected to " + site.cloud.Url() +
                                    " as 'sluice-" + site.gateway +
                                    "-cloud-probe' (MQTT 5, user 'sluice', TLS, certificate and "
                                    "host name verified, client certificate accepted)")
                    .empty());
    REQUIRE(password.size() > 8);
    CHECK(probe.output.find(password.substr(0, password.find('\n'))) == std::string::npos);
  }
  // The probe asked about the gap topic without creating it.
  CHECK(TopicExists(site.f.env.kafka_brokers, site.kafka_gap_topic) == false);

  // The running sluice was neither fenced nor disconnected, and forwards on to both upstreams.
  pub.Publish(site.f.cfg.mqtt_prefix, Devices(2), 6, 5, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(20); }, 60s, 20ms), site.Diagnostics());
  CHECK(site.f.process->Running());
  const std::string log = site.Diagnostics();
  CHECK_MESSAGE(log.find("took over") == std::string::npos, log);
  CHECK_MESSAGE(Occurrences(log, "connected to MQTT broker ") == 1, log);
  CHECK_MESSAGE(Occurrences(log, "MQTT upstream 'cloud': connected to") == 1, log);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("probe: a wrong password for the cloud broker fails its connection, never showing it") {
  Site site("probe-pw");
  const std::string wrong = "not-the-cloud-password-4711";
  const std::string wrong_file = site.f.dir.File("wrong.password");
  std::ofstream(wrong_file) << wrong << "\n";
  SiteOptions o;
  o.routes = ProbeRoute(site);
  ConfigureWith(site, o, site.cloud.dir + "/sluice.password", wrong_file);

  const ProbeRun probe = Probe(site, "probe-mqtt-wrong-password");
  INFO(probe.output);
  CHECK(probe.rc == 4);
  const std::string line =
      probe.Line("FAIL", "upstream cloud (mqtt): MQTT broker " + site.cloud.Url());
  CHECK_FALSE(line.empty());
  CHECK(line.find("user 'sluice'") != std::string::npos);
  CHECK(line.find("check username and password (or password_file) in [upstream.cloud]") !=
        std::string::npos);
  // Only the cloud fails: the local broker and Kafka answer as ever.
  CHECK(probe.Count("FAIL") == 1);
  CHECK_FALSE(probe.Line("ok", "mqtt: connected to").empty());
  CHECK(probe.output.find(wrong) == std::string::npos);
}

TEST_CASE("probe: a certificate that does not name the host fails the TLS check, naming the host") {
  Site site("probe-tls");
  SiteOptions o;
  o.routes = ProbeRoute(site);
  // The cloud broker's second listener: 127.0.0.2, which its certificate does not name.
  const std::string url = "ssl://127.0.0.2:" + std::to_string(site.cloud.port + 1);
  ConfigureWith(site, o, site.cloud.Url(), url);

  const ProbeRun probe = Probe(site, "probe-tls-host-name");
  INFO(probe.output);
  CHECK(probe.rc == 4);
  CHECK_FALSE(probe
                  .Line("FAIL", "upstream cloud (mqtt): TLS connection to MQTT broker " + url +
                                    " failed: the broker's certificate does not verify for host "
                                    "'127.0.0.2'")
                  .empty());
  CHECK(probe.Count("FAIL") == 1);
}

// No fixture: two ports that accept connections and never answer, one as the MQTT broker, one as
// Kafka. Each check gives up after --probe-timeout and says so; the whole run takes about that
// long, since the brokers are probed at once.
TEST_CASE("probe: brokers that never answer time out within --probe-timeout, saying so") {
  sluice::testing::TempDir dir;
  SilentListener mqtt_port;
  SilentListener kafka_port;
  const std::string mqtt_url = "tcp://127.0.0.1:" + std::to_string(mqtt_port.port());
  const std::string brokers = "127.0.0.1:" + std::to_string(kafka_port.port());
  const std::string path = dir.File("sluice.toml");
  std::ofstream(path) << "[gateway]\nid = \"probe-silent\"\n[storage]\npath = \""
                      << dir.File("events.db") << "\"\n[mqtt]\nurl = \"" << mqtt_url
                      << "\"\n[upstream.central]\nkind = \"kafka\"\nbrokers = \"" << brokers
                      << "\"\n[[route]]\nmqtt = \"probe/+/data\"\nto = { central = \"probe\" }\n";
  constexpr int kTimeout = 2;
  const ProbeRun probe = RunProbe(MustEnv("SLUICE_BIN"), path, kTimeout, dir.path().string());
  std::printf("scenario=probe-unreachable rc=%d seconds=%.2f\n%s", probe.rc, probe.seconds,
              probe.output.c_str());
  INFO(probe.output);
  CHECK(probe.rc == 4);
  CHECK_FALSE(
      probe.Line("FAIL", "mqtt: no answer from " + mqtt_url + " within 2 s (connect timed out")
          .empty());
  CHECK_FALSE(probe
                  .Line("FAIL", "upstream central (kafka): no broker of " + brokers +
                                    " answered within 2 s (connect timed out")
                  .empty());
  CHECK(probe.Count("FAIL") == 2);
  // It waited for the timeout (nothing refused it sooner), and not much longer.
  CHECK(probe.seconds >= kTimeout);
  CHECK(probe.seconds < kTimeout + 2);
}

}  // namespace
}  // namespace sluice::itest
