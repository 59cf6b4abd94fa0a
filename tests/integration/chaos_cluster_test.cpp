// SPDX-License-Identifier: Apache-2.0

// Kafka broker failures and maintenance in a real three-node cluster (KRaft; every topic
// replicated three times, min.insync.replicas 2; scripts/kafka-cluster.sh): the partition leader
// is killed with SIGKILL while sluice forwards, and started again later; and a rolling restart,
// each broker stopped and started in turn, while a large backlog drains. Prints
// `scenario=... sent=... arrived=...`.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// With exactly-once delivery the transaction coordinator and the checkpoint partition may be on
// the killed node too: their leadership moves like the events' partition.
void LeaderKill(bool exactly_once) {
  const std::string scenario =
      exactly_once ? "cluster_leader_sigkill_exactly_once" : "cluster_leader_sigkill";
  SluiceFixture f("chaos", exactly_once ? "leader_kill_eos" : "leader_kill");
  const std::string node_dir_prefix = f.env.kafka_dir + "/node";  // the cluster's DIR/nodeI
  if (exactly_once) f.cfg.extra_kafka = "delivery = \"exactly-once\"\n";
  f.StartSluice();
  const auto devices = Devices(4);
  constexpr int kFirst = 50, kPerDevice = 4000;
  const uint64_t total = kPerDevice * devices.size();

  Publisher first(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  first.Publish(f.cfg.mqtt_prefix, devices, 1, kFirst, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= kFirst * devices.size(); }, 60s, 20ms),
                  f.Log());
  // The topic was created by sluice's first produce, with the cluster's defaults.
  std::optional<PartitionInfo> before;
  REQUIRE(WaitFor(
      [&] {
        before = ReadPartitionInfo(f.env.kafka_brokers, f.cfg.kafka_topic, 0);
        return before && before->leader > 0 && before->isrs.size() == 3;
      },
      30s, 100ms));
  CHECK(before->replicas.size() == 3);
  const int32_t leader = before->leader;

  std::thread producer([&] {
    Publisher pub(f.env.mqtt_url, "live-" + f.cfg.gateway_id);
    pub.Publish(f.cfg.mqtt_prefix, devices, kFirst + 1, kPerDevice - kFirst, 1);
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{producer};
  struct Restart {  // the killed node comes back even when an assertion fails
    std::string cmd;
    bool done = false;
    ~Restart() {
      if (!done) Shell(cmd);
    }
  } restart{f.env.scripts_dir + "/kafka-cluster.sh start-node --dir " + f.env.kafka_dir +
            " --node " + std::to_string(leader)};

  REQUIRE(WaitFor([&] { return f.Cursor() >= total / 4; }, 60s, 5ms));
  const uint64_t cursor_at_kill = f.Cursor();
  const auto t_kill = std::chrono::steady_clock::now();
  REQUIRE(Shell(f.env.scripts_dir + "/kafka.sh stop --kill --dir " + node_dir_prefix +
                std::to_string(leader)) == 0);
  // The cluster fences the dead broker and elects a leader among the in-sync survivors.
  std::optional<PartitionInfo> after;
  REQUIRE(WaitFor(
      [&] {
        after = ReadPartitionInfo(f.env.kafka_brokers, f.cfg.kafka_topic, 0);
        return after && after->leader > 0 && after->leader != leader;
      },
      60s, 100ms));
  const double elected_s = Seconds(std::chrono::steady_clock::now() - t_kill);
  // Two of three replicas are enough for acks=all with min.insync.replicas 2: forwarding goes on
  // without the dead node.
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total * 3 / 4; }, 120s, 20ms), f.Log());
  const double progress_s = Seconds(std::chrono::steady_clock::now() - t_kill);

  const auto t_restart = std::chrono::steady_clock::now();
  REQUIRE(Shell(restart.cmd) == 0);
  restart.done = true;
  const double restart_s = Seconds(std::chrono::steady_clock::now() - t_restart);
  producer.join();
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total; }, 120s, 20ms), f.Log());
  // The restarted node catches up and is in sync again.
  CHECK(WaitFor(
      [&] {
        auto p = ReadPartitionInfo(f.env.kafka_brokers, f.cfg.kafka_topic, 0);
        return p && p->isrs.size() == 3;
      },
      60s, 200ms));

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, total, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  char extra[256];
  std::snprintf(extra, sizeof extra,
                " killed_leader=%d new_leader=%d cursor_at_kill=%llu new_leader_after_s=%.1f "
                "75pct_forwarded_after_s=%.1f node_restart_s=%.1f",
                leader, after->leader, static_cast<unsigned long long>(cursor_at_kill), elected_s,
                progress_s, restart_s);
  ReportScenario(scenario, total, v, extra);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  if (exactly_once) CHECK(v.duplicates == 0);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE(
    "the partition leader of a three-node Kafka cluster is SIGKILLed mid-stream: nothing "
    "lost, order kept") {
  LeaderKill(/*exactly_once=*/false);
}

TEST_CASE(
    "exactly-once: the partition leader of a three-node Kafka cluster is SIGKILLed mid-stream: "
    "nothing lost or duplicated, order kept") {
  LeaderKill(/*exactly_once=*/true);
}

// Operators restart brokers one at a time for upgrades. While a partition moves, librdkafka
// reports it unknown for a moment (UNKNOWN_TOPIC_OR_PART): that must hold events, never
// dead-letter them.
TEST_CASE("a rolling restart of a three-node Kafka cluster while a 100000-event backlog drains") {
  SluiceFixture f("chaos", "rolling");
  const auto devices = Devices(4);
  constexpr int kBacklogPerDevice = 25000;
  WriteBacklog(f.LogPath(), f.cfg.mqtt_prefix, devices, kBacklogPerDevice);
  f.StartSluice();

  // Live events keep arriving through the restarts, numbered after the backlog, in chunks that
  // wait for the forwarder to keep up so the test does not pile up more than it drains.
  std::atomic<bool> stop_live{false};
  std::atomic<int> live_next{kBacklogPerDevice + 1};
  std::thread live([&] {
    Publisher pub(f.env.mqtt_url, "live-" + f.cfg.gateway_id);
    constexpr int kChunk = 50;
    while (!stop_live.load()) {
      const int first = live_next.load();
      pub.Publish(f.cfg.mqtt_prefix, devices, first, kChunk, 1);
      live_next = first + kChunk;
      const uint64_t stored = static_cast<uint64_t>(first + kChunk - 1) * devices.size();
      WaitFor([&] { return stop_live.load() || f.Cursor() + 2000 >= stored; }, 120s, 20ms);
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

  const std::string cluster = f.env.scripts_dir + "/kafka-cluster.sh";
  const std::string node_dir_prefix = f.env.kafka_dir + "/node";
  std::string restarts;
  const auto t0 = std::chrono::steady_clock::now();
  for (int node = 1; node <= 3; ++node) {
    struct Restart {  // the node comes back even when an assertion fails
      std::string cmd;
      bool done = false;
      ~Restart() {
        if (!done) Shell(cmd);
      }
    } restart{cluster + " start-node --dir " + f.env.kafka_dir + " --node " + std::to_string(node)};
    const uint64_t cursor_at_stop = f.Cursor();
    REQUIRE(Shell(f.env.scripts_dir + "/kafka.sh stop --dir " + node_dir_prefix +
                  std::to_string(node)) == 0);
    REQUIRE(Shell(restart.cmd) == 0);
    restart.done = true;
    // The next node goes down only once this one is back in sync, as an operator's runbook says.
    REQUIRE_MESSAGE(WaitFor(
                        [&] {
                          auto p = ReadPartitionInfo(f.env.kafka_brokers, f.cfg.kafka_topic, 0);
                          return p && p->isrs.size() == 3;
                        },
                        120s, 200ms),
                    f.Log());
    restarts +=
        " node" + std::to_string(node) + "_cursor_at_stop=" + std::to_string(cursor_at_stop);
  }
  const double rolling_s = Seconds(std::chrono::steady_clock::now() - t0);
  stop_live = true;
  live.join();
  const int per_device = live_next.load() - 1;
  const uint64_t total = static_cast<uint64_t>(per_device) * devices.size();
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total; }, 180s, 20ms), f.Log());

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, total, 20s);
  Verdict v = Verify(records, devices, per_device);
  const auto st = f.Stats();
  char extra[128];
  std::snprintf(extra, sizeof extra, " backlog=%d rolling_restart_s=%.1f dead_letters=%llu",
                kBacklogPerDevice * static_cast<int>(devices.size()), rolling_s,
                static_cast<unsigned long long>(st.dead_letters));
  ReportScenario("cluster_rolling_restart", total, v, extra + restarts);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(st.dead_letters == 0);
  CHECK(f.process->Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
