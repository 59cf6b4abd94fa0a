// SPDX-License-Identifier: Apache-2.0

// End-to-end tests of the forwarding path against a real Mosquitto and a real Kafka broker:
// Paho publisher -> Mosquitto -> sluice (child process) -> Kafka -> librdkafka consumer.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "storage/ingress_journal.h"
#include "storage/sqlite_event_log.h"
#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

void ReportVerdict(const char* name, const Verdict& v) {
  std::printf(
      "[%s] records %zu lost %zu duplicates %zu (resent by sluice %zu, redelivered by the "
      "broker %zu) reordered %zu corrupted %zu %s\n",
      name, v.records, v.lost, v.duplicates, v.resent_by_sluice, v.redelivered_by_broker,
      v.reordered, v.corrupted, v.first_problem.c_str());
}

TEST_CASE("10000 events from 4 devices arrive in order per device, byte-identical, once") {
  SluiceFixture f("itest", "inorder");
  f.StartSluice();
  const auto devices = Devices(4);
  constexpr int kPerDevice = 2500;
  const auto t0 = std::chrono::steady_clock::now();
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, kPerDevice, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 10000; }, 120s, 20ms), f.Log());
  const double secs = Seconds(std::chrono::steady_clock::now() - t0);
  std::printf("[inorder] 10000 events published and confirmed by Kafka in %.2f s: %.0f events/s\n",
              secs, 10000 / secs);

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 10000, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  ReportVerdict("inorder", v);
  CHECK(v.records == 10000);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  REQUIRE(!records.empty());
  const auto& h = records.front().headers;
  CHECK(h.at("mqtt.topic").rfind(f.cfg.mqtt_prefix + "/dev", 0) == 0);
  CHECK(h.at("mqtt.qos") == "1");
  CHECK(h.at("sluice.gateway") == f.cfg.gateway_id);
  CHECK(std::stoull(h.at("sluice.seq")) >= 1);
  CHECK(std::stoll(h.at("sluice.received_ms")) > 1600000000000LL);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("Kafka down while 10000 events arrive: the backlog drains in order, nothing lost") {
  SluiceFixture f("itest", "outage");
  f.StartSluice();
  const auto devices = Devices(4);
  const std::string kafka = f.env.scripts_dir + "/kafka.sh";
  const std::string kdir = " --dir " + f.env.kafka_dir;
  // Prime the topic so that the broker knows it before the outage.
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 4; }, 60s, 20ms), f.Log());

  REQUIRE(Shell(kafka + " stop" + kdir) == 0);
  struct Restart {  // the shared broker comes back even if an assertion below fails
    std::string cmd;
    bool done = false;
    ~Restart() {
      if (!done) Shell(cmd);
    }
  } restart{kafka + " start" + kdir + " --port " + std::to_string(f.env.kafka_port)};

  pub.Publish(f.cfg.mqtt_prefix, devices, 2, 2500, 1);
  // Every event is in sluice's log while Kafka is away.
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto st = f.MaybeStats();
                        return st && st->last_seq >= 10004;
                      },
                      60s, 20ms),
                  f.Log());
  auto backlog = f.MaybeStats();
  REQUIRE(backlog);
  CHECK(backlog->events >= 10000);
  std::printf("[outage] backlog during outage: %llu events, %llu bytes\n",
              static_cast<unsigned long long>(backlog->events),
              static_cast<unsigned long long>(backlog->bytes));

  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(Shell(restart.cmd) == 0);
  restart.done = true;
  const auto t_up = std::chrono::steady_clock::now();
  // New events keep arriving behind the backlog while it drains.
  std::thread live([&] {
    Publisher live_pub(f.env.mqtt_url, "live-" + f.cfg.gateway_id);
    live_pub.Publish(f.cfg.mqtt_prefix, devices, 2502, 500, 1);
  });
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 12004; }, 180s, 20ms), f.Log());
  live.join();
  const auto t_done = std::chrono::steady_clock::now();
  std::printf(
      "[outage] Kafka restart took %.2f s; 10000 backlog + 2000 live events drained in "
      "%.2f s after it answered: %.0f events/s\n",
      Seconds(t_up - t0), Seconds(t_done - t_up), 12000 / Seconds(t_done - t_up));

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 12004, 20s);
  Verdict v = Verify(records, devices, 3001);
  ReportVerdict("outage", v);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(f.Log().find("retrying with backoff") != std::string::npos);
  CHECK(f.process->Terminate() == 0);
}

// Publishes in the background and stops sluice once `at` events were acknowledged by the broker.
void InterruptMidStream(SluiceFixture& f, bool kill, int per_device, const char* name) {
  const auto devices = Devices(4);
  f.StartSluice();
  std::atomic<int> published{0};
  std::thread producer([&] {
    Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
    pub.Publish(f.cfg.mqtt_prefix, devices, 1, per_device, 1, &published);
  });
  const int total = per_device * 4;
  REQUIRE(WaitFor([&] { return published.load() >= total / 3; }, 60s, 1ms));
  if (kill) {
    f.process->Kill();
  } else {
    CHECK(f.process->Terminate() == 0);
  }
  // While sluice is away the broker queues for its persistent session.
  CHECK(WaitFor([&] { return published.load() >= total * 2 / 3; }, 60s, 1ms));
  f.StartSluice();
  producer.join();
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto st = f.MaybeStats();
                        return st && st->events == 0 && st->cursor >= static_cast<uint64_t>(total);
                      },
                      120s, 20ms),
                  f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, total * 2, 15s);
  Verdict v = Verify(records, devices, per_device);
  ReportVerdict(name, v);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  if (!kill) {
    INFO(f.Log());
    CHECK(v.duplicates == 0);
  } else {
    std::printf("[%s] duplicates after SIGKILL: %zu of %zu records\n", name, v.duplicates,
                v.records);
  }
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("sluice stopped with SIGTERM mid-stream and restarted: nothing lost or duplicated") {
  SluiceFixture f("itest", "sigterm");
  InterruptMidStream(f, false, 2500, "sigterm");
}

TEST_CASE("sluice killed with SIGKILL mid-stream and restarted: nothing lost") {
  SluiceFixture f("itest", "sigkill");
  InterruptMidStream(f, true, 2500, "sigkill");
}

// Kills sluice with SIGKILL at a failpoint around the commit of the 100th QoS 1 event, restarts it,
// waits until every event is confirmed, and checks that all 200 arrive; returns Kafka's verdict.
Verdict KillAtCommit(SluiceFixture& f, const char* point, const char* name) {
  const auto devices = Devices(1);
  f.StartSluice({std::string("SLUICE_FAILPOINT=") + point + ":100"});
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 200, 1);
  auto status = f.process->WaitExit(60s);
  REQUIRE_MESSAGE(status.has_value(), f.Log());
  CHECK(*status == -SIGKILL);
  auto st = f.MaybeStats();
  REQUIRE(st);
  // The 100th event was (after_commit) or was not (before_commit) durable when sluice died: in
  // the log, or in the ingress journal that a restart moves into the log first.
  std::vector<storage::Event> journaled;
  REQUIRE(storage::IngressJournal::Peek(f.LogPath() + storage::IngressJournal::kPathSuffix, "",
                                        st->ingress_applied, &journaled)
              .ok());
  CHECK(st->last_seq + journaled.size() ==
        (std::string(point) == "mqtt.after_commit" ? 100u : 99u));

  f.StartSluice();
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto s2 = f.MaybeStats();
                        return s2 && s2->last_seq >= 200 && s2->events == 0;
                      },
                      60s, 20ms),
                  f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 400, 10s);
  Verdict v = Verify(records, devices, 200);
  ReportVerdict(name, v);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  return v;
}

TEST_CASE("SIGKILL just before a QoS 1 event's commit: the broker redelivers it, nothing lost") {
  SluiceFixture f("itest", "killbefore");
  KillAtCommit(f, "mqtt.before_commit", "killbefore");
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("SIGKILL just after a QoS 1 event's commit: nothing lost") {
  SluiceFixture f("itest", "killafter");
  KillAtCommit(f, "mqtt.after_commit", "killafter");
  CHECK(f.process->Terminate() == 0);
}

// Runs `sql` on the log, read-only; the first column of the first row.
int64_t LogQuery(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK,
                  sqlite3_errmsg(db));
  const int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

TEST_CASE("redelivery after a SIGKILL just after a commit: the event is stored once, counted") {
  SluiceFixture f("itest", "redeliver");
  const int port = MetricsPortFromEnvironment();
  f.cfg.extra_sections =
      "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n";
  // Dies after the 100th commit, before its callback returns: the broker never gets its PUBACK
  // and sends the event again, with DUP, to the restarted sluice.
  const Verdict v = KillAtCommit(f, "mqtt.after_commit", "redeliver");
  CHECK(v.duplicates == 0);
  // The 200 events are all among the newest rows with a packet id, which the log keeps after
  // Kafka confirmed them: each is there exactly once, and nothing else was numbered.
  const std::string log = f.LogPath();
  CHECK(f.LastSeq() == 200u);
  CHECK(LogQuery(log, "SELECT count(*) FROM events") == 200);
  CHECK(LogQuery(log, "SELECT count(DISTINCT payload) FROM events") == 200);
  CHECK(LogQuery(log, "SELECT count(*) FROM events WHERE packet_id = 0") == 0);
  CHECK(MetricValue(port, "sluice_mqtt_redeliveries_skipped_total") >= 1);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("QoS 0 events are group-committed and forwarded in order") {
  SluiceFixture f("itest", "qos0", 0);
  f.StartSluice();
  const auto devices = Devices(2);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 2000, 0);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 4000; }, 60s, 20ms), f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 4000, 10s);
  Verdict v = Verify(records, devices, 2000);
  ReportVerdict("qos0", v);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(records.front().headers.at("mqtt.qos") == "0");
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("a QoS 2 route is subscribed at QoS 1: QoS 2 publishes arrive once, in order") {
  SluiceFixture f("itest", "qos2", 2);
  f.StartSluice();
  CHECK(f.Log().find("qos 2 is subscribed as qos 1") != std::string::npos);
  const auto devices = Devices(2);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1000, 2);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 2000; }, 60s, 20ms), f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 2000, 10s);
  Verdict v = Verify(records, devices, 1000);
  ReportVerdict("qos2", v);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  // The broker downgrades delivery to the granted QoS 1; the header says what sluice received.
  CHECK(records.front().headers.at("mqtt.qos") == "1");
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("an event Kafka refuses for good goes to the dead-letter table and forwarding goes on") {
  SluiceFixture f("itest", "deadletter");
  f.cfg.extra_storage = "max_event_bytes = 4194304";
  f.StartSluice();
  const auto devices = Devices(1);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 10, 1);
  // 2 MB is over librdkafka's message.max.bytes (1 MB default): refused before it is sent.
  pub.Publish(f.cfg.mqtt_prefix, devices, 11, 1, 1, nullptr, 2 << 20);
  pub.Publish(f.cfg.mqtt_prefix, devices, 12, 9, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 20; }, 60s, 20ms), f.Log());
  auto st = f.MaybeStats();
  REQUIRE(st);
  CHECK(st->dead_letters == 1);
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 19, 15s);
  CHECK(records.size() == 19);
  CHECK(f.Log().find("dead-letter") != std::string::npos);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("an event over max_event_bytes is refused, counted and logged; the rest flows") {
  SluiceFixture f("itest", "toolarge");
  f.cfg.extra_storage = "max_event_bytes = 1000";
  f.StartSluice();
  const auto devices = Devices(1);
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 1, 1, nullptr, 1000);  // at the limit: taken
  pub.Publish(f.cfg.mqtt_prefix, devices, 2, 1, 1, nullptr, 1001);  // over: refused
  pub.Publish(f.cfg.mqtt_prefix, devices, 3, 1, 1, nullptr, 10);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 2; }, 60s, 20ms), f.Log());
  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, 2, 10s);
  REQUIRE(records.size() == 2);
  CHECK(records[0].value.size() == 1000);
  CHECK(records[1].value.size() == 10);
  CHECK(f.Log().find("refused an event of 1001 bytes") != std::string::npos);
  CHECK(f.process->Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
