// SPDX-License-Identifier: Apache-2.0

// delivery = "exactly-once" against real Kafka (label "integration"): what a consumer reading
// read_committed sees when a second sluice takes over a gateway id, when the log is re-created
// under the same gateway id, and when Kafka stays away longer than a transaction may last.
//
// The shared brokers serve the first two cases; the outage case stops a Kafka of its own
// (scripts/kafka.sh) on SLUICE_EOS_KAFKA_PORT and the next port, so that the shared broker keeps
// serving while it is away.

#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "connectors/record_headers.h"
#include "tests/integration/harness.h"
#include "tests/integration/notify_listener.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// One exactly-once sluice: its config (upstream "kafka", one route per MQTT filter, all to
// `topic`), log, notify socket and process.
struct EosDaemon {
  EosDaemon(const Env& environment, const TempDir& dir, const std::string& name)
      : env(environment),
        config(dir.File(name + ".toml")),
        db(dir.File(name + ".db")),
        notify(dir.File(name + ".sock")),
        process(environment.sluice_bin, config, (dir.path() / name).string()) {
    std::filesystem::create_directories(dir.path() / name);
  }

  // `filters`: MQTT filter -> key template, each routed to `topic`.
  void Write(const std::string& gateway_id, const std::string& client_id,
             const std::vector<std::pair<std::string, std::string>>& filters,
             const std::string& topic, const std::string& extra_upstream = "",
             const std::string& brokers = "") {
    std::ofstream out(config);
    out << "[gateway]\nid = \"" << gateway_id << "\"\n"
        << "[storage]\npath = \"" << db << "\"\n"
        << "[mqtt]\nurl = \"" << env.mqtt_url << "\"\nclient_id = \"" << client_id
        << "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
        << "[upstream.kafka]\nkind = \"kafka\"\nbrokers = \""
        << (brokers.empty() ? env.kafka_brokers : brokers) << "\"\nreconnect_max_ms = 1000\n"
        << "delivery = \"exactly-once\"\n"
        << extra_upstream << "\n";
    for (const auto& [filter, key] : filters) {
      out << "[[route]]\nmqtt = \"" << filter << "\"\nkey = \"" << key << "\"\nqos = 1\n"
          << "to = { kafka = \"" << topic << "\" }\n";
    }
  }

  // Starts (or restarts) the daemon and waits for this run's READY=1: it has opened its log and
  // subscribed.
  void Start() {
    const size_t readies = notify.Count("READY=1");
    process.Start({notify.Env()});
    REQUIRE_MESSAGE(WaitFor([&] { return notify.Count("READY=1") > readies; }, 60s, 5ms),
                    process.LogText());
  }

  storage::LogStats Stats() const {
    auto st = ReadLogStats(db);
    return st ? *st : storage::LogStats{};
  }

  const Env& env;
  const std::string config;
  const std::string db;
  NotifyListener notify;
  SluiceProcess process;
};

std::string Header(const Record& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

bool TopicStartsWith(const Record& r, const std::string& prefix) {
  return Header(r, connectors::kHeaderMqttTopic).rfind(prefix, 0) == 0;
}

std::vector<Record> Only(const std::vector<Record>& records, const std::string& mqtt_prefix) {
  std::vector<Record> out;
  for (const Record& r : records) {
    if (TopicStartsWith(r, mqtt_prefix)) out.push_back(r);
  }
  return out;
}

// Reads `topic` read_committed until `count` records of `mqtt_prefix` are there.
std::vector<Record> ReadCommitted(const std::string& brokers, const std::string& topic,
                                  const std::string& mqtt_prefix, size_t count,
                                  std::chrono::seconds timeout = 120s) {
  return ReadTopicUntil(
      brokers, topic, [&](const auto& rs) { return Only(rs, mqtt_prefix).size() >= count; },
      timeout, Isolation::kReadCommitted);
}

void PublishMarker(const Env& env, const std::string& topic, const std::string& payload) {
  // mosquitto_pub -q 1 exits once the broker acknowledged the message.
  REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " +
                env.mqtt_url.substr(env.mqtt_url.rfind(':') + 1) + " -t " + topic + " -m " +
                payload) == 0);
}

TEST_CASE("exactly-once: a second sluice with the same gateway id fences the first") {
  const Env env = Env::FromEnvironment();
  const std::string sim_bin = MustEnv("SLUICE_SIM_BIN");
  const std::string verify_bin = MustEnv("SLUICE_VERIFY_BIN");
  TempDir dir;
  const std::string suffix = UniqueSuffix();
  const std::string topic = "eos-fence-" + suffix;
  const std::string gateway = "eos-fence-" + suffix;
  REQUIRE(CreateTopic(env.kafka_brokers, topic, 1, 1).empty());

  // Fleet A: sluice-sim devices (devices/dev-NNN/...), checked by sluice-verify. Fleet B: the
  // harness publisher on a prefix of its own; sluice-verify counts its records as foreign.
  const std::string b_prefix = "eosb-" + suffix;
  const std::vector<std::pair<std::string, std::string>> a_routes = {
      {"devices/+/telemetry", "devices/{device}/#"}, {"devices/+/events", "devices/{device}/#"}};
  EosDaemon a(env, dir, "a");
  EosDaemon b(env, dir, "b");
  a.Write(gateway, "sluice-eos-a-" + suffix, a_routes, topic);
  b.Write(gateway, "sluice-eos-b-" + suffix, {{b_prefix + "/+/data", b_prefix + "/{device}/#"}},
          topic);
  a.Start();

  const std::string summary = dir.File("fleet-a.json");
  ChildProcess fleet(
      sim_bin,
      {"--url", env.mqtt_url, "--devices", "8", "--total-rate", "100", "--seed", "11",
       "--client-prefix", "eosa-" + suffix, "--qos-vibration", "1", "--summary-json", summary,
       "--progress-interval", "5", "--flush-timeout", "30"},
      dir.File("sim.log"));
  REQUIRE_MESSAGE(WaitFor([&] { return a.Stats().cursor >= 100; }, 60s, 20ms), a.process.LogText());

  // B initialises the same transactional.id: A's open transaction is aborted and A is fenced.
  const auto t_b = std::chrono::steady_clock::now();
  b.Start();
  const auto a_exit = a.process.WaitExit(60s);
  const double fenced_after_s = Seconds(std::chrono::steady_clock::now() - t_b);
  REQUIRE_MESSAGE(a_exit.has_value(), a.process.LogText());
  CHECK(*a_exit == 3);
  CHECK_MESSAGE(a.process.LogText().find("took over") != std::string::npos, a.process.LogText());
  // What A had not forwarded stays in its log (at the least the events of the aborted
  // transaction, whose failure told A that it was fenced).
  const storage::LogStats a_left = a.Stats();
  CHECK(a_left.last_seq > a_left.cursor);
  CHECK(a_left.events > 0);

  // B forwards on.
  const auto b_devices = Devices(4);
  constexpr int kPerDevice = 150;
  {
    Publisher pub(env.mqtt_url, "pub-" + b_prefix);
    pub.Publish(b_prefix, b_devices, 1, kPerDevice, 1);
  }
  const size_t b_total = b_devices.size() * kPerDevice;
  std::vector<Record> records = ReadCommitted(env.kafka_brokers, topic, b_prefix, b_total);
  CHECK(b.process.Running());

  // In offset order, nothing of A's log after the first record of B's: once B had taken over, no
  // transaction of A's committed.
  std::set<std::string> a_logs;
  std::set<std::string> b_logs;
  size_t first_b = records.size();
  size_t a_after_b = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const bool from_b = TopicStartsWith(records[i], b_prefix);
    (from_b ? b_logs : a_logs).insert(Header(records[i], connectors::kHeaderLogId));
    if (from_b && first_b == records.size()) first_b = i;
    if (!from_b && first_b < i) a_after_b++;
  }
  REQUIRE(a_logs.size() == 1);
  REQUIRE(b_logs.size() == 1);
  CHECK(*a_logs.begin() != *b_logs.begin());
  CHECK(first_b > 0);
  CHECK(a_after_b == 0);
  const Verdict vb = Verify(Only(records, b_prefix), b_devices, kPerDevice);
  CHECK_MESSAGE(vb.lost == 0, vb.first_problem);
  CHECK(vb.duplicates == 0);
  CHECK(vb.reordered == 0);
  CHECK(vb.corrupted == 0);

  // The fleet stops; A comes back with a gateway id of its own and drains its log and what its
  // MQTT session queued meanwhile.
  const auto fleet_status = fleet.Wait(90s, SIGTERM);
  REQUIRE(fleet_status.has_value());
  CHECK(*fleet_status == 0);
  const auto totals = nlohmann::json::parse(ReadFile(summary))["totals"];
  const uint64_t sent = totals["sent"].get<uint64_t>();
  a.Write(gateway + "-a", "sluice-eos-a-" + suffix, a_routes, topic);
  a.Start();
  const std::string marker = "eos-fence-end-" + suffix;
  PublishMarker(env, "devices/eos-marker/events", marker);
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        for (const Record& r :
                             ReadCommitted(env.kafka_brokers, topic, "devices/eos-marker", 1, 5s)) {
                          if (r.value == marker) return true;
                        }
                        return false;
                      },
                      180s, 500ms),
                  a.process.RunLogText());

  const std::string report = dir.File("verify.json");
  const int verify_rc =
      Shell(verify_bin + " --brokers " + env.kafka_brokers + " --topic " + topic + " --expect " +
            summary + " --fail-on-duplicates -X isolation.level=read_committed" +
            " --idle-timeout 5 --max-ranges 8 --json " + report + " > " + dir.File("verify.txt") +
            " 2>&1");
  std::printf("%s", ReadFile(dir.File("verify.txt")).c_str());
  const auto v = nlohmann::json::parse(ReadFile(report))["totals"];
  std::printf(
      "scenario=eos-fencing fenced_after_s=%.1f a_left_in_log=%llu sent=%llu arrived=%llu "
      "lost=%llu duplicates=%llu reordered=%llu b_records=%zu\n",
      fenced_after_s, static_cast<unsigned long long>(a_left.events),
      static_cast<unsigned long long>(sent),
      static_cast<unsigned long long>(v["unique"].get<uint64_t>()),
      static_cast<unsigned long long>(v["lost"].get<uint64_t>()),
      static_cast<unsigned long long>(v["duplicates"].get<uint64_t>()),
      static_cast<unsigned long long>(v["reordered"].get<uint64_t>()),
      Only(records, b_prefix).size());
  CHECK(verify_rc == 0);
  CHECK(v["lost"].get<uint64_t>() == 0);
  CHECK(v["duplicates"].get<uint64_t>() == 0);
  CHECK(v["reordered"].get<uint64_t>() == 0);
  CHECK(v["unique"].get<uint64_t>() >= sent);
  CHECK(a.process.Terminate() == 0);
  CHECK(b.process.Terminate() == 0);
}

TEST_CASE(
    "exactly-once: a re-created log is forwarded from seq 1, the old checkpoint not applied") {
  const Env env = Env::FromEnvironment();
  TempDir dir;
  const std::string suffix = UniqueSuffix();
  const std::string topic = "eos-recreated-" + suffix;
  const std::string prefix = "eosr-" + suffix;
  EosDaemon d(env, dir, "gw");
  d.Write("eos-recreated-" + suffix, "sluice-eos-r-" + suffix,
          {{prefix + "/+/data", prefix + "/{device}/#"}}, topic);
  d.Start();
  const std::vector<std::string> before = {"old0", "old1"};
  constexpr int kBefore = 100;
  {
    Publisher pub(env.mqtt_url, "pub-" + prefix);
    pub.Publish(prefix, before, 1, kBefore, 1);
  }
  REQUIRE_MESSAGE(WaitFor([&] { return d.Stats().cursor >= 2 * kBefore; }, 60s, 20ms),
                  d.process.LogText());
  CHECK(d.process.Terminate() == 0);

  // The operator swaps the disk: the log is gone, its identity with it.
  for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(d.db + ext);
  d.Start();
  const std::vector<std::string> after = {"new0", "new1", "new2"};
  constexpr int kAfter = 50;  // fewer than before: every new seq is below the old checkpoint
  {
    Publisher pub(env.mqtt_url, "pub2-" + prefix);
    pub.Publish(prefix, after, 1, kAfter, 1);
  }
  const auto records = ReadTopicUntil(
      env.kafka_brokers, topic,
      [&](const auto& rs) { return rs.size() >= 2 * kBefore + after.size() * kAfter; }, 120s,
      Isolation::kReadCommitted);
  REQUIRE(records.size() >= 2 * kBefore);
  std::vector<Record> old_records(records.begin(), records.begin() + 2 * kBefore);
  std::vector<Record> new_records(records.begin() + 2 * kBefore, records.end());
  const Verdict v_old = Verify(old_records, before, kBefore);
  const Verdict v_new = Verify(new_records, after, kAfter);
  CHECK_MESSAGE(v_old.lost == 0, v_old.first_problem);
  CHECK(v_old.duplicates == 0);
  // Every event of the new log arrived although its seqs are at or below the old checkpoint.
  CHECK_MESSAGE(v_new.lost == 0, v_new.first_problem);
  CHECK(v_new.duplicates == 0);
  CHECK(v_new.reordered == 0);
  CHECK(new_records.size() == after.size() * kAfter);
  std::set<uint64_t> new_seqs;
  std::set<std::string> logs;
  for (const Record& r : new_records) {
    new_seqs.insert(std::stoull(Header(r, connectors::kHeaderSeq)));
    logs.insert(Header(r, connectors::kHeaderLogId));
  }
  CHECK(logs.size() == 1);
  CHECK(*logs.begin() != Header(old_records.front(), connectors::kHeaderLogId));
  REQUIRE_FALSE(new_seqs.empty());
  CHECK(*new_seqs.begin() == 1);
  CHECK(*new_seqs.rbegin() == after.size() * kAfter);
  // The mock cluster of the unit tests cannot create topics: the sink's own topic, here.
  CHECK(TopicConfig(env.kafka_brokers, "sluice.checkpoints", "cleanup.policy") == "compact");
  const std::string run_log = d.process.RunLogText();
  CHECK_MESSAGE(run_log.find("not applied") != std::string::npos, run_log);
  ReportScenario("eos-recreated-log", after.size() * kAfter, v_new,
                 " old=" + std::to_string(old_records.size()));
  CHECK(d.process.Terminate() == 0);
}

// A Kafka of the test's own, stopped and started by it; stopped for good when the object goes.
class PrivateKafka {
 public:
  PrivateKafka(const Env& env, const std::string& dir, int port)
      : script_(env.scripts_dir + "/kafka.sh"), dir_(dir), port_(port) {}
  ~PrivateKafka() { Shell(script_ + " stop --dir " + dir_); }
  PrivateKafka(const PrivateKafka&) = delete;
  PrivateKafka& operator=(const PrivateKafka&) = delete;

  bool Start() {
    return Shell(script_ + " start --dir " + dir_ + " --port " + std::to_string(port_) +
                 " --controller-port " + std::to_string(port_ + 1)) == 0;
  }
  bool Stop() { return Shell(script_ + " stop --dir " + dir_) == 0; }
  std::string brokers() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string script_;
  std::string dir_;
  int port_;
};

TEST_CASE("exactly-once: Kafka away longer than transaction_timeout_ms, nothing lost or doubled") {
  const Env env = Env::FromEnvironment();
  const int port = std::stoi(MustEnv("SLUICE_EOS_KAFKA_PORT"));
  TempDir dir;
  PrivateKafka kafka(env, dir.File("kafka"), port);
  REQUIRE(kafka.Start());
  const std::string suffix = UniqueSuffix();
  const std::string topic = "eos-outage-" + suffix;
  const std::string prefix = "eoso-" + suffix;
  REQUIRE(CreateTopic(kafka.brokers(), topic, 1, 1).empty());
  EosDaemon d(env, dir, "gw");
  constexpr int kTxnTimeoutMs = 5000;
  d.Write("eos-outage-" + suffix, "sluice-eos-o-" + suffix,
          {{prefix + "/+/data", prefix + "/{device}/#"}}, topic,
          "transaction_timeout_ms = " + std::to_string(kTxnTimeoutMs) + "\n", kafka.brokers());
  d.Start();
  const auto devices = Devices(4);
  constexpr int kPerDevice = 200;
  Publisher pub(env.mqtt_url, "pub-" + prefix);
  pub.Publish(prefix, devices, 1, 50, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return d.Stats().cursor >= 200; }, 60s, 20ms), d.process.LogText());

  // Kafka goes away while events keep arriving, so that a transaction is open and outlives its
  // timeout; the outage lasts twice the timeout (the scenario's length, not a synchronisation).
  REQUIRE(kafka.Stop());
  const auto t_down = std::chrono::steady_clock::now();
  pub.Publish(prefix, devices, 51, 100, 1);
  REQUIRE(WaitFor([&] { return d.Stats().last_seq >= 600; }, 60s, 20ms));
  const uint64_t cursor_down = d.Stats().cursor;
  WaitFor([&] { return std::chrono::steady_clock::now() - t_down >= 2 * kTxnTimeoutMs * 1ms; }, 60s,
          100ms);
  const double down_s = Seconds(std::chrono::steady_clock::now() - t_down);
  CHECK(d.process.Running());
  REQUIRE(kafka.Start());
  pub.Publish(prefix, devices, 151, 50, 1);

  const auto records = ReadTopicUntil(
      kafka.brokers(), topic,
      [&](const auto& rs) { return rs.size() >= devices.size() * kPerDevice; }, 180s,
      Isolation::kReadCommitted);
  REQUIRE_MESSAGE(
      WaitFor([&] { return d.Stats().cursor >= devices.size() * kPerDevice; }, 60s, 20ms),
      d.process.RunLogText());
  // Whatever is still to come would be a duplicate: read again once nothing is in flight.
  const auto settled = ReadTopicUntil(
      kafka.brokers(), topic, [&](const auto&) { return false; }, 5s, Isolation::kReadCommitted);
  const Verdict v = Verify(settled, devices, kPerDevice);
  ReportScenario(
      "eos-outage", devices.size() * kPerDevice, v,
      " down_s=" + std::to_string(down_s) + " cursor_at_outage=" + std::to_string(cursor_down));
  CHECK_MESSAGE(v.lost == 0, v.first_problem);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(records.size() >= devices.size() * kPerDevice);
  CHECK_MESSAGE(d.process.Running(), d.process.LogText());
  CHECK(d.process.LogText().find("took over") == std::string::npos);
  CHECK(d.process.Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
