// SPDX-License-Identifier: Apache-2.0

// Limits and bad input against real brokers: a full disk, storage.max_bytes during a long Kafka
// outage under each overflow policy, payloads and topics of every shape, and a Kafka topic that
// does not exist on a broker that creates none. Each scenario prints one line
// `scenario=<name> sent=.. arrived=.. lost=.. duplicates=.. dropped=..` for the record.

#include <doctest/doctest.h>
#include <mqtt/async_client.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "storage/sqlite_event_log.h"
#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// Stops the shared Kafka broker and starts it again at the latest when the scope ends, so that an
// assertion failing mid-outage cannot leave the broker down for the tests after this one.
class KafkaOutage {
 public:
  explicit KafkaOutage(const Env& env)
      : script_(env.scripts_dir + "/kafka.sh"),
        start_(script_ + " start --dir " + env.kafka_dir + " --port " +
               std::to_string(env.kafka_port)) {
    REQUIRE(Shell(script_ + " stop --dir " + env.kafka_dir) == 0);
  }
  ~KafkaOutage() {
    if (!ended_) Shell(start_);
  }
  void End() {
    ended_ = true;
    REQUIRE(Shell(start_) == 0);
  }

 private:
  std::string script_;
  std::string start_;
  bool ended_ = false;
};

// `sluice status --json` for the log, as the operator would run it.
nlohmann::json StatusJson(const Env& env, const std::string& config_path) {
  const std::string cmd = env.sluice_bin + " status --json --config " + config_path;
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  REQUIRE_MESSAGE(rc == 0, cmd);
  return nlohmann::json::parse(out);
}

std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  std::string result = "cannot open " + path;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return result;
}

struct SeqRange {
  uint64_t first;
  uint64_t last;
};

// The ranges sluice logged as dropped ("... dropped the N oldest events, seq A..B, ...").
std::vector<SeqRange> DroppedRanges(const std::string& log) {
  static const std::regex re("dropped the ([0-9]+) oldest events, seq ([0-9]+)\\.\\.([0-9]+)");
  std::vector<SeqRange> out;
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) {
    out.push_back({std::stoull((*it)[2]), std::stoull((*it)[3])});
  }
  return out;
}

void Scenario(const std::string& name, size_t sent, size_t arrived, size_t lost, size_t duplicates,
              size_t dropped) {
  std::printf("scenario=%s sent=%zu arrived=%zu lost=%zu duplicates=%zu dropped=%zu\n",
              name.c_str(), sent, arrived, lost, duplicates, dropped);
  std::fflush(stdout);
}

// A size-limited tmpfs of its own, unmounted at the end; empty path() when mounting is not
// permitted here.
class SmallDisk {
 public:
  SmallDisk(const std::string& dir, const std::string& size) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    const std::string opts = "size=" + size + ",mode=0755";
    if (mount("sluice-limits", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0) {
      mounted_ = true;
    } else {
      error_ = std::strerror(errno);
    }
  }
  ~SmallDisk() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  // Fills the disk with a file, leaving about `leave` bytes free.
  void Fill(uint64_t leave) {
    const auto space = std::filesystem::space(dir_);
    const uint64_t n = space.available > leave ? space.available - leave : 0;
    std::ofstream out(Filler(), std::ios::binary);
    std::string chunk(64 * 1024, 'f');
    for (uint64_t done = 0; done < n; done += chunk.size()) {
      out.write(chunk.data(),
                static_cast<std::streamsize>(std::min<uint64_t>(chunk.size(), n - done)));
    }
  }
  void Free() { std::filesystem::remove(Filler()); }
  uint64_t Available() const { return std::filesystem::space(dir_).available; }

 private:
  std::string Filler() const { return dir_ + "/filler"; }
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Kafka records carry sluice's sequence number; returns seq -> how often it arrived.
std::map<uint64_t, int> SeqCounts(const std::vector<Record>& records) {
  std::map<uint64_t, int> out;
  for (const auto& r : records) out[std::stoull(r.headers.at("sluice.seq"))]++;
  return out;
}

// --- a full disk ------------------------------------------------------------------------------

// The log lives on a small tmpfs; Kafka is down so the backlog grows until the disk is full.
void DiskFull(bool drop_oldest) {
  const char* name = drop_oldest ? "disk-full-drop-oldest" : "disk-full-reject-new";
  SluiceFixture f("limits", drop_oldest ? "diskfulldrop" : "diskfullreject");
  // Room for the whole WAL of the events that arrive after the space is freed: a WAL that filled
  // the disk while the forwarder kept reading cannot be checkpointed (see guarantees (f)).
  SmallDisk disk(f.cfg.dir + "/disk", "64m");
  if (!disk.mounted()) {
    MESSAGE("SKIPPED " << name << ": cannot mount a tmpfs here (" << disk.error()
                       << "); this scenario needs root");
    return;
  }
  f.log_path = f.cfg.dir + "/disk/events.db";
  const std::string config_path = f.cfg.dir + "/sluice.toml";
  std::string config;
  {
    f.cfg.extra_storage =
        std::string("overflow = \"") + (drop_oldest ? "drop-oldest" : "reject-new") + "\"\n";
    f.cfg.Write(f.env);
    std::ifstream in(config_path);
    std::stringstream ss;
    ss << in.rdbuf();
    config = std::regex_replace(ss.str(), std::regex("path = \"[^\"]*\""),
                                "path = \"" + f.log_path + "\"");
  }
  f.StartSluice({}, config);
  const auto devices = Devices(1);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1, 1, nullptr, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().cursor >= 1; }, 60s, 20ms), f.Log());

  KafkaOutage outage(f.env);
  // The WAL, the log and its index need room to start with; the rest of the disk is taken.
  disk.Fill(2 << 20);
  constexpr int kEvents = 6000;  // about 6 MB of payload: more than the 2 MB left
  std::atomic<int> published{0};
  std::thread producer([&] {
    Publisher p(f.env.mqtt_url, "pub2-" + f.cfg.gateway_id);
    p.Publish(f.cfg.mqtt_prefix, devices, 2, kEvents, 1, &published, 1000);
  });
  // Either policy first meets the full disk as an append SQLite refuses with SQLITE_FULL.
  REQUIRE_MESSAGE(
      WaitFor([&] { return f.Log().find("disk holding event log") != std::string::npos; }, 120s,
              50ms),
      f.Log());
  producer.join();  // the broker took every event, whether sluice has it or not
  CHECK(f.process->Running());
  const auto during = StatusJson(f.env, config_path);
  std::printf("[%s] with the disk full: %s\n", name, during.dump().c_str());
  // Not everything fits: sluice holds back and the broker keeps the rest for its session. (In
  // WAL mode a delete needs room in the WAL too, so on a disk with no byte left even drop-oldest
  // can only wait; see the guarantees in docs/ARCHITECTURE.md (f).)
  CHECK(during["last_seq"].get<uint64_t>() < kEvents + 1);
  CHECK(f.Log().find("holding back new events") != std::string::npos);
  CHECK(f.process->Running());

  // Kafka returns while the disk is still full: forwarding resumes.
  outage.End();
  // Everything in the log by now, less what drop-oldest may have dropped, reaches Kafka.
  const auto held = f.Stats();
  const uint64_t before_free = held.last_seq - held.dropped_events;
  const auto forwarded = ReadTopicUntil(
      f.env.kafka_brokers, f.cfg.kafka_topic,
      [&](const std::vector<Record>& r) { return r.size() >= before_free; }, 120s);
  std::printf("[%s] Kafka back, disk still full: %zu of the %llu events in the log arrived\n", name,
              forwarded.size(), static_cast<unsigned long long>(before_free));
  CHECK(forwarded.size() >= before_free);
  CHECK(f.process->Running());
  // Space comes back: the rest flows and the log drains.
  disk.Free();
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto st = f.Stats();
                        return st.last_seq >= kEvents + 1 - 0 && st.events == 0 &&
                               st.cursor >= st.last_seq;
                      },
                      180s, 50ms),
                  f.Log());
  CHECK(f.process->Terminate() == 0);
  CHECK(IntegrityCheck(f.log_path) == "ok");

  const auto after = StatusJson(f.env, config_path);
  const uint64_t dropped = after["dropped_events"].get<uint64_t>();
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, kEvents + 1, 15s);
  auto counts = SeqCounts(records);
  size_t dup = 0;
  for (auto& [seq, c] : counts) dup += c - 1;
  const uint64_t last_seq = after["last_seq"].get<uint64_t>();
  size_t lost = 0;
  if (drop_oldest) {
    // Every sequence number either arrived or lies in a range logged as dropped.
    auto ranges = DroppedRanges(f.Log());
    uint64_t in_ranges = 0;
    for (const auto& r : ranges) in_ranges += r.last - r.first + 1;
    CHECK(in_ranges == dropped);
    for (uint64_t s = 1; s <= last_seq; ++s) {
      bool was_dropped = false;
      for (const auto& r : ranges) was_dropped |= s >= r.first && s <= r.last;
      if (!was_dropped && counts.count(s) == 0) lost++;
    }
    CHECK(counts.count(last_seq) == 1);
  } else {
    Verdict v = Verify(records, devices, kEvents + 1, 1000);
    lost = v.lost;
    CHECK(v.reordered == 0);
    CHECK(v.corrupted == 0);
    CHECK(dropped == 0);
  }
  Scenario(name, kEvents + 1, records.size(), lost, dup, dropped);
  CHECK(lost == 0);
}

TEST_CASE("disk full under reject-new: holds back, keeps forwarding, recovers, loses nothing") {
  DiskFull(false);
}

TEST_CASE("disk full under drop-oldest: drops the oldest, keeps forwarding, recovers") {
  DiskFull(true);
}

// --- storage.max_bytes during a long outage ---------------------------------------------------

TEST_CASE("max_bytes under drop-oldest during an outage: the newest arrive, the logged oldest go") {
  SluiceFixture f("limits", "maxdrop");
  // Few events in flight: those the forwarder handed to the producer before they were dropped
  // still arrive (docs/ARCHITECTURE.md (f)); this keeps that set small and checkable.
  f.cfg.extra_storage = "max_bytes = 1048576\noverflow = \"drop-oldest\"";
  f.cfg.extra_kafka = "max_in_flight_events = 50";
  f.StartSluice();
  const auto devices = Devices(1);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1, 1, nullptr, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().cursor >= 1; }, 60s, 20ms), f.Log());

  KafkaOutage outage(f.env);
  constexpr int kEvents = 3000;  // about 3.2 MB accounted against 1 MiB
  pub.Publish(f.cfg.mqtt_prefix, devices, 2, kEvents, 1, nullptr, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().last_seq >= kEvents + 1; }, 60s, 20ms), f.Log());
  const auto during = f.Stats();
  CHECK(during.bytes <= 1048576);
  CHECK(during.dropped_events > 0);
  // Every event from seq 2 on that is gone from the log was dropped, the oldest first; the gap
  // marker that tells Kafka so stands at the place of the last one.
  const uint64_t next = 2 + during.dropped_events;
  CHECK(during.first_seq == next - 1);

  outage.End();
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().cursor >= kEvents + 1; }, 120s, 20ms), f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, kEvents + 1, 15s);
  auto counts = SeqCounts(records);
  // Events arrive with seq == n (one device, published in order): every record is the event its
  // sequence number says, byte for byte.
  size_t corrupted = 0;
  for (const auto& r : records) {
    const int seq = std::stoi(r.headers.at("sluice.seq"));
    if (r.value != PayloadFor(devices[0], seq, 1000) || r.key != devices[0]) corrupted++;
  }
  CHECK(corrupted == 0);
  size_t lost = 0;
  size_t dropped_but_arrived = 0;
  for (uint64_t s = 1; s <= kEvents + 1; ++s) {
    const bool dropped = s >= 2 && s < next;
    if (!dropped && counts.count(s) == 0) lost++;
    if (dropped && counts.count(s) != 0) dropped_but_arrived++;
  }
  // Only events already handed to the producer when they were dropped can arrive from the
  // dropped range: at most max_in_flight_events of them.
  CHECK(dropped_but_arrived <= 50);
  size_t dup = 0;
  for (auto& [seq, c] : counts) dup += c - 1;
  std::printf("[maxdrop] dropped seq 2..%llu; of them %zu were in flight and arrived\n",
              static_cast<unsigned long long>(next - 1), dropped_but_arrived);
  Scenario("max-bytes-drop-oldest", kEvents + 1, records.size(), lost, dup, next - 2);
  CHECK(lost == 0);
  CHECK(dup == 0);
  CHECK(f.process->Terminate() == 0);
  // The log names exactly the dropped ranges: contiguous from seq 2, adding up to the counter, in
  // a few merged lines rather than a line per event.
  const auto ranges = DroppedRanges(f.Log());
  REQUIRE(!ranges.empty());
  uint64_t expect_first = 2;
  for (const auto& r : ranges) {
    CHECK(r.first == expect_first);
    expect_first = r.last + 1;
  }
  CHECK(expect_first == next);
  CHECK(ranges.size() <= 10);
  std::printf("[maxdrop] the log reported the drops in %zu line(s)\n", ranges.size());
}

TEST_CASE("max_bytes under reject-new during an outage: the broker queues, then all arrive") {
  SluiceFixture f("limits", "maxreject");
  f.cfg.extra_storage = "max_bytes = 1048576\noverflow = \"reject-new\"";
  f.StartSluice();
  const auto devices = Devices(2);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1, 1, nullptr, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().cursor >= 2; }, 60s, 20ms), f.Log());

  KafkaOutage outage(f.env);
  constexpr int kPerDevice = 1500;  // 3000 events, about 3.2 MB accounted against 1 MiB
  pub.Publish(f.cfg.mqtt_prefix, devices, 2, kPerDevice - 1, 1, nullptr, 1000);
  REQUIRE_MESSAGE(
      WaitFor([&] { return f.Log().find("holding back new events") != std::string::npos; }, 60s,
              20ms),
      f.Log());
  const auto during = StatusJson(f.env, f.cfg.dir + "/sluice.toml");
  std::printf("[maxreject] while full: %s\n", during.dump().c_str());
  CHECK(during["backlog_bytes"].get<uint64_t>() <= 1048576);
  CHECK(during["max_bytes"].get<uint64_t>() == 1048576);
  CHECK(during["dropped_events"].get<uint64_t>() == 0);
  CHECK(during["last_seq"].get<uint64_t>() < 2u * kPerDevice);
  CHECK(f.process->Running());

  outage.End();
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto st = f.Stats();
                        return st.cursor >= 2u * kPerDevice && st.events == 0;
                      },
                      180s, 20ms),
                  f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 2 * kPerDevice, 15s);
  Verdict v = Verify(records, devices, kPerDevice, 1000);
  Scenario("max-bytes-reject-new", 2 * kPerDevice, records.size(), v.lost, v.duplicates, 0);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(f.process->Terminate() == 0);
}

// --- payloads and topics ----------------------------------------------------------------------

std::string RouteConfig(const SluiceFixture& f, const std::string& brokers,
                        const std::string& extra) {
  return "[gateway]\nid = \"" + f.cfg.gateway_id + "\"\n[storage]\npath = \"" + f.cfg.LogPath() +
         "\"\n[mqtt]\nurl = \"" + f.env.mqtt_url + "\"\nclient_id = \"sluice-" + f.cfg.gateway_id +
         "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 2000\n[kafka]\n" + "brokers = \"" +
         brokers + "\"\nreconnect_max_ms = 1000\n" + extra + "\n[[route]]\nmqtt = \"" +
         f.cfg.mqtt_prefix + "/#\"\nkafka_topic = \"" + f.cfg.kafka_topic + "\"\nkey = \"" +
         f.cfg.mqtt_prefix + "/{device}/#\"\nqos = 1\n";
}

struct Message {
  std::string topic;
  std::string payload;
  std::string key;  // expected Kafka key
};

void PublishAll(const std::string& url, const std::string& client_id,
                const std::vector<Message>& msgs) {
  mqtt::async_client client(url, client_id);
  client.connect(mqtt::connect_options_builder().clean_session(true).finalize())->wait();
  for (const auto& m : msgs)
    client.publish(mqtt::make_message(m.topic, m.payload, 1, false))->wait();
  client.disconnect()->wait();
}

TEST_CASE("binary and empty payloads and unusual topics arrive byte-identical with the right key") {
  SluiceFixture f("limits", "shapes");
  f.StartSluice({}, RouteConfig(f, f.env.kafka_brokers, ""));
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  const std::string p = f.cfg.mqtt_prefix;
  const std::string long_device(20000, 'd');
  const std::vector<Message> msgs = {
      {p + "/bin/data", all_bytes, "bin"},
      {p + "/empty/data", "", "empty"},
      {p + "/nuls/data", std::string(1000, '\0'), "nuls"},
      {p + "/dév ice/ü/€", "utf8 topic \xe2\x82\xac", "dév ice"},
      {p + "/ /x", "a space as the device", " "},
      {p + "/" + long_device + "/data", "a 20000-byte device level", long_device},
      {p + "/nested/deeper/and/deeper", std::string(1, '\xff'), "nested"},
  };
  PublishAll(f.env.mqtt_url, "pub-" + f.cfg.gateway_id, msgs);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Stats().cursor >= msgs.size(); }, 60s, 20ms), f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, msgs.size(), 10s);
  REQUIRE(records.size() == msgs.size());
  size_t mismatched = 0;
  for (size_t i = 0; i < msgs.size(); ++i) {
    CAPTURE(i);
    CHECK(records[i].value == msgs[i].payload);
    CHECK(records[i].key == msgs[i].key);
    CHECK(records[i].headers.at("mqtt.topic") == msgs[i].topic);
    if (records[i].value != msgs[i].payload || records[i].key != msgs[i].key) mismatched++;
  }
  CHECK(f.Stats().dead_letters == 0);
  Scenario("payload-and-topic-shapes", msgs.size(), records.size(), mismatched, 0, 0);
  CHECK(f.process->Terminate() == 0);
}

// --- a Kafka broker that creates no topics ----------------------------------------------------

// The config of a test against the Kafka that creates no topics, with the metrics server on so
// that the test can read /readyz as an operator's probe would.
std::string NoAutoCreateConfig(const SluiceFixture& f, const std::string& brokers, int port,
                               const std::string& kafka_keys = "") {
  // librdkafka fails messages for a topic the cluster does not know after this long (default
  // 30 s); shortened so that the hold is reached, and reported, early in the test.
  return RouteConfig(
             f, brokers,
             kafka_keys + "[kafka.properties]\n\"topic.metadata.propagation.max.ms\" = 2000\n") +
         "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n";
}

const char* LimitsBrokers() {
  const char* brokers = std::getenv("SLUICE_LIMITS_KAFKA_BROKERS");
  REQUIRE_MESSAGE(brokers != nullptr, "needs SLUICE_LIMITS_KAFKA_BROKERS (limits_brokers.sh)");
  return brokers;
}

// `sluice check-config --probe` before that roll-out: the missing topic fails the probe, naming
// it and why the broker will not create it; once the topic exists, the probe passes. The probe
// itself never creates the topic (it asks with auto-creation off).
TEST_CASE("probe: a Kafka topic missing on a broker that creates none fails until it is created") {
  SluiceFixture f("limits", "probe-topic");
  const std::string brokers = LimitsBrokers();
  const std::string path = f.cfg.dir + "/sluice.toml";
  std::ofstream(path) << RouteConfig(f, brokers, "");

  const ProbeRun missing = RunProbe(f.env.sluice_bin, path, 5, f.cfg.dir);
  std::printf("scenario=probe-missing-topic rc=%d seconds=%.2f\n%s", missing.rc, missing.seconds,
              missing.output.c_str());
  INFO(missing.output);
  CHECK(missing.rc == 4);
  CHECK_FALSE(missing
                  .Line("FAIL", "upstream kafka (kafka): topic '" + f.cfg.kafka_topic +
                                    "' does not exist (auto-create is off)")
                  .empty());
  CHECK(missing.Count("FAIL") == 1);
  CHECK(TopicExists(brokers, f.cfg.kafka_topic) == false);

  REQUIRE(CreateTopic(brokers, f.cfg.kafka_topic, 1, 1).empty());
  const ProbeRun created = RunProbe(f.env.sluice_bin, path, 5, f.cfg.dir);
  INFO(created.output);
  CHECK(created.rc == 0);
  CHECK_FALSE(created
                  .Line("ok", "upstream kafka (kafka): topic '" + f.cfg.kafka_topic +
                                  "' exists (1 partition(s))")
                  .empty());
  CHECK(created.Count("FAIL") == 0);
}

// A fleet rolled out before the central team created its topic: the events wait in the log, the
// probe says why, and once the topic exists every event arrives, in order, none dead-lettered.
TEST_CASE("a Kafka topic created after sluice started: events held, then all arrive in order") {
  const std::string brokers = LimitsBrokers();
  const int port = MetricsPortFromEnvironment();
  SluiceFixture f("limits", "latetopic");
  f.StartSluice({}, NoAutoCreateConfig(f, brokers, port));
  const auto devices = Devices(4);
  constexpr int kPerDevice = 500;
  const uint64_t total = kPerDevice * devices.size();
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, kPerDevice, 1);

  // Held: stored, not forwarded, not dead-lettered, and /readyz names the topic.
  HttpResponse ready;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        ready = HttpGet(port, "/readyz");
                        return ready.status == 503 &&
                               ready.body.find(f.cfg.kafka_topic) != std::string::npos;
                      },
                      60s, 50ms),
                  (ready.body + "\n" + f.Log()));
  std::printf("[latetopic] /readyz while the topic is missing: %s\n", ready.body.c_str());
  REQUIRE(WaitFor([&] { return f.LastSeq() >= total; }, 60s, 20ms));
  auto held = f.Stats();
  CHECK(held.dead_letters == 0);
  CHECK(held.cursor == 0);
  CHECK(f.Log().find(f.cfg.kafka_topic) != std::string::npos);  // the log line names it too

  REQUIRE(CreateTopic(brokers, f.cfg.kafka_topic, 2, 1) == "");
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total; }, 120s, 20ms), f.Log());
  CHECK(WaitFor([&] { return HttpGet(port, "/readyz").status == 200; }, 30s, 50ms));
  auto records = ReadTopic(brokers, f.cfg.kafka_topic, total, 15s);
  Verdict v = Verify(records, devices, kPerDevice);
  ReportScenario("topic_created_late", total, v,
                 " dead_letters=" + std::to_string(f.Stats().dead_letters));
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(f.Stats().dead_letters == 0);
  CHECK(f.process->Terminate() == 0);
}

// MESSAGE_TOO_LARGE answers for a whole batch: a topic whose max.message.bytes is below
// kafka.batch_bytes must still receive every event that fits on its own; only an event too large
// by itself becomes a dead letter.
// As docs/configuration.md tells the operator of such a topic: batch_bytes below its
// max.message.bytes. A batch the topic refuses as a whole cannot keep the order: the idempotent
// producer delivers the batches in flight behind it before sluice can send its events again.
TEST_CASE("a topic with max.message.bytes 64 KiB: every 10 KiB event arrives, in order") {
  const std::string brokers = LimitsBrokers();
  const int port = MetricsPortFromEnvironment();
  SluiceFixture f("limits", "smalltopic");
  REQUIRE(CreateTopic(brokers, f.cfg.kafka_topic, 1, 1, {{"max.message.bytes", "65536"}}) == "");
  f.StartSluice({}, NoAutoCreateConfig(f, brokers, port, "batch_bytes = 61440\n"));
  const auto devices = Devices(3);
  constexpr int kPerDevice = 100;
  constexpr size_t kBytes = 10 * 1024;
  const uint64_t total = kPerDevice * devices.size();
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, kPerDevice, 1, nullptr, kBytes);
  // One event that no batch can carry: 100 KiB on a device of its own, incompressible like the
  // others (the sink compresses with lz4, and the topic's limit applies to compressed batches).
  PublishAll(f.env.mqtt_url, "big-" + f.cfg.gateway_id,
             {{f.cfg.mqtt_prefix + "/huge/data", PayloadFor("huge", 1, 100 * 1024), "huge"}});
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total + 1; }, 180s, 20ms), f.Log());
  auto records = ReadTopic(brokers, f.cfg.kafka_topic, total, 15s);
  Verdict v = Verify(records, devices, kPerDevice, kBytes);
  const auto st = f.Stats();
  ReportScenario("topic_max_message_bytes_64k", total, v,
                 " dead_letters=" + std::to_string(st.dead_letters));
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(st.dead_letters == 1);  // the 100 KiB event, and only it
  CHECK(f.process->Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
