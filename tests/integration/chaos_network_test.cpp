// SPDX-License-Identifier: Apache-2.0

// Outages that behave like real networks, and MQTT broker failures, against real brokers:
// - Kafka in its own network namespace behind a veth pair (tests/integration/chaos_net.sh): the
//   link goes down, or a partition swallows every packet, so that sluice's TCP connections hang
//   instead of being refused; or the line turns slow and lossy.
// - Mosquitto restarted (SIGTERM) or killed (SIGKILL) while devices publish and sluice forwards.
// Each test prints `scenario=... sent=... arrived=... lost=... duplicates=... reordered=...`.

#include <doctest/doctest.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/link_fault.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// A port that nothing listens on right now, for sluice's metrics endpoint.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  const bool ok = fd >= 0 && bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (fd >= 0) close(fd);
  if (!ok) throw std::runtime_error("no free port: " + std::string(strerror(errno)));
  return ntohs(addr.sin_port);
}

size_t CountOf(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

// --- Kafka behind a veth pair --------------------------------------------------------------

// sluice's librdkafka gives up on a silent connection after socket.timeout.ms (default 60 s) and
// on a connection attempt after socket.connection.setup.timeout.ms (default 30 s). Shorter
// values let a test see sluice notice a partition within seconds; the behaviour is the same.
constexpr const char* kFastTimeouts =
    "[kafka.properties]\n"
    "\"socket.timeout.ms\" = 5000\n"
    "\"socket.connection.setup.timeout.ms\" = 5000\n";

// Events before, during and after a cut of the link to Kafka: sluice buffers into its log while
// the link is cut, notices the cut, and drains in order once the link returns.
void PartitionScenario(const std::string& scenario, const std::string& fault,
                       bool exactly_once = false) {
  if (NetnsUnavailable()) return;
  SluiceFixture f("chaos", scenario);
  // Keys of [kafka] itself before the [kafka.properties] table that kFastTimeouts opens.
  f.cfg.extra_kafka =
      std::string(exactly_once ? "delivery = \"exactly-once\"\n" : "") + kFastTimeouts;
  f.StartSluice();
  const auto devices = Devices(4);
  constexpr int kBefore = 500, kDuring = 1000, kAfter = 500;  // per device
  constexpr int kPerDevice = kBefore + kDuring + kAfter;
  const uint64_t before_total = kBefore * devices.size();
  const uint64_t total = kPerDevice * devices.size();

  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, kBefore, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= before_total; }, 60s, 20ms), f.Log());

  LinkFault link;
  const size_t warnings_before = CountOf(f.Log(), "retrying with backoff");
  const auto t_cut = std::chrono::steady_clock::now();
  link.Apply(fault);
  pub.Publish(f.cfg.mqtt_prefix, devices, kBefore + 1, kDuring, 1);
  // Every event published during the cut is in sluice's log (the broker acknowledged each one
  // only after sluice committed it)...
  REQUIRE_MESSAGE(WaitFor([&] { return f.LastSeq() >= before_total + kDuring * 4; }, 60s, 20ms),
                  f.Log());
  // ...sluice notices that Kafka is unreachable...
  REQUIRE_MESSAGE(
      WaitFor([&] { return CountOf(f.Log(), "retrying with backoff") > warnings_before; }, 90s,
              50ms),
      f.Log());
  const double noticed_s = Seconds(std::chrono::steady_clock::now() - t_cut);
  {
    const std::string log = f.Log();
    size_t at = log.find("retrying with backoff");
    for (size_t i = 0; i < warnings_before; ++i) at = log.find("retrying with backoff", at + 1);
    std::printf("  sluice noticed: %s\n", LineAt(log, at).c_str());
  }
  // ...and nothing past the cut was confirmed: the events are held, not dropped.
  auto held = f.MaybeStats();
  REQUIRE(held);
  CHECK(held->cursor == before_total);
  CHECK(held->events >= kDuring * devices.size());

  link.Heal();
  const auto t_heal = std::chrono::steady_clock::now();
  std::thread live([&] {
    Publisher after(f.env.mqtt_url, "live-" + f.cfg.gateway_id);
    after.Publish(f.cfg.mqtt_prefix, devices, kBefore + kDuring + 1, kAfter, 1);
  });
  const bool drained = WaitFor([&] { return f.Cursor() >= total; }, 180s, 20ms);
  live.join();
  REQUIRE_MESSAGE(drained, f.Log());
  const double drain_s = Seconds(std::chrono::steady_clock::now() - t_heal);

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, total, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  char extra[160];
  std::snprintf(extra, sizeof extra, " held=%llu noticed_after_s=%.1f drained_after_heal_s=%.1f",
                static_cast<unsigned long long>(held->events), noticed_s, drain_s);
  ReportScenario(scenario, total, v, extra);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  if (exactly_once) CHECK(v.duplicates == 0);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("partition: Kafka's link goes down mid-stream; sluice buffers and drains in order") {
  PartitionScenario("partition_link_down", "link-down");
}

TEST_CASE("exactly-once: Kafka's link goes down mid-stream; nothing lost or duplicated") {
  PartitionScenario("partition_link_down_exactly_once", "link-down", /*exactly_once=*/true);
}

TEST_CASE(
    "partition: every packet to Kafka vanishes (TCP hangs); sluice buffers, drains in order") {
  PartitionScenario("partition_blackhole", "blackhole");
}

TEST_CASE("slow lossy link to Kafka: every event arrives, in order") {
  if (NetnsUnavailable()) return;
  SluiceFixture f("chaos", "lossy_link");
  f.cfg.extra_kafka = kFastTimeouts;
  f.StartSluice();
  const auto devices = Devices(4);
  constexpr int kPerDevice = 1500;
  const uint64_t total = kPerDevice * devices.size();
  Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
  pub.Publish(f.cfg.mqtt_prefix, devices, 1, 50, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= 200; }, 60s, 20ms), f.Log());

  LinkFault link;
  link.Apply("impair");
  const auto t0 = std::chrono::steady_clock::now();
  pub.Publish(f.cfg.mqtt_prefix, devices, 51, kPerDevice - 50, 1);
  REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= total; }, 240s, 20ms), f.Log());
  const double secs = Seconds(std::chrono::steady_clock::now() - t0);
  link.Heal();

  auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, total, 20s);
  Verdict v = Verify(records, devices, kPerDevice);
  char extra[120];
  std::snprintf(extra, sizeof extra, " forwarded_over_impaired_link_s=%.1f events_per_s=%.0f", secs,
                (total - 200) / secs);
  ReportScenario("lossy_link", total, v, extra);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(f.process->Terminate() == 0);
}

// --- Mosquitto restarted or killed -----------------------------------------------------------

// A device that rides out broker restarts: QoS 1 with a window of unacknowledged publishes. When
// the connection breaks it connects again (clean session, as a small device would) and publishes
// the unacknowledged events again, in order: at least once, as MQTT promises. Every event counted
// in `acked` was acknowledged by the broker.
class ResilientPublisher {
 public:
  ResilientPublisher(std::string url, std::string client_id)
      : url_(std::move(url)), client_id_(std::move(client_id)) {
    Connect();
  }
  ~ResilientPublisher() {
    try {
      if (client_ && client_->is_connected()) client_->disconnect()->wait_for(2s);
    } catch (const std::exception&) {
      // The broker may be gone already.
    }
  }
  ResilientPublisher(const ResilientPublisher&) = delete;
  ResilientPublisher& operator=(const ResilientPublisher&) = delete;

  void Publish(const std::string& prefix, const std::vector<std::string>& devices, int first,
               int count, std::atomic<int>* acked) {
    struct Pending {
      std::string topic;
      std::string payload;
      mqtt::delivery_token_ptr token;
    };
    std::deque<Pending> window;
    constexpr size_t kWindow = 64;
    auto send = [&](Pending& p) {
      try {
        p.token = client_->publish(mqtt::make_message(p.topic, p.payload, 1, false));
      } catch (const mqtt::exception&) {
        p.token = nullptr;  // settled below by a reconnect
      }
    };
    auto settle_front = [&] {
      for (;;) {
        Pending& p = window.front();
        bool done = false;
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        try {
          while (p.token && !done && std::chrono::steady_clock::now() < deadline &&
                 client_->is_connected()) {
            done = p.token->wait_for(200ms) && p.token->get_return_code() == 0;
          }
        } catch (const mqtt::exception&) {
          done = false;
        }
        if (done) {
          window.pop_front();
          acked->fetch_add(1);
          return;
        }
        Connect();
        for (auto& q : window) send(q);
        for (const Pending& q : window) resent_.insert(q.payload);
      }
    };
    for (int n = first; n < first + count; ++n) {
      for (const auto& d : devices) {
        window.push_back({prefix + "/" + d + "/data", PayloadFor(d, n, 64), nullptr});
        send(window.back());
        if (window.size() >= kWindow) settle_front();
      }
    }
    while (!window.empty()) settle_front();
  }

  int reconnects() const { return connects_ - 1; }
  // Messages published again after a reconnect: their first copy may have reached the broker, so
  // each may reach sluice twice, as two messages (the device's resend, not a redelivery).
  const std::set<std::string>& resent() const { return resent_; }

 private:
  void Connect() {
    // A broken client is kept, not destroyed: Paho may still complete its old tokens.
    if (client_) retired_.push_back(std::move(client_));
    auto opts = mqtt::connect_options_builder().clean_session(true).max_inflight(1000).finalize();
    const bool connected = WaitFor(
        [&] {
          try {
            client_ = std::make_unique<mqtt::async_client>(url_, client_id_);
            if (client_->connect(opts)->wait_for(2s)) return true;
          } catch (const mqtt::exception&) {
            // The broker is still restarting.
          }
          if (client_) retired_.push_back(std::move(client_));
          return false;
        },
        60s, 100ms);
    if (!connected) throw std::runtime_error("publisher: MQTT broker " + url_ + " did not return");
    connects_++;
  }

  std::string url_;
  std::string client_id_;
  std::unique_ptr<mqtt::async_client> client_;
  std::vector<std::unique_ptr<mqtt::async_client>> retired_;
  int connects_ = 0;
  std::set<std::string> resent_;
};

// sluice.seq values that sluice committed (1..last_seq) but that are missing in Kafka.
size_t MissingSeqs(const std::vector<Record>& records, uint64_t last_seq) {
  std::set<uint64_t> seen;
  for (const auto& r : records) {
    auto it = r.headers.find("sluice.seq");
    if (it != r.headers.end()) seen.insert(std::stoull(it->second));
  }
  size_t missing = 0;
  for (uint64_t s = 1; s <= last_seq; ++s) missing += seen.count(s) == 0 ? 1 : 0;
  return missing;
}

// Publishes while Mosquitto is stopped (SIGTERM) or killed (SIGKILL) and started again. sluice
// must come back on its persistent session and lose nothing that it committed. What the broker
// itself lost (acknowledged to the publisher, never delivered to sluice) is reported apart.
void MosquittoScenario(const std::string& scenario, bool kill, bool exactly_once = false) {
  SluiceFixture f("chaos", scenario);
  if (exactly_once) f.cfg.extra_kafka = "delivery = \"exactly-once\"\n";
  const std::string mqtt_port = MustEnv("SLUICE_CHAOS_MQTT_RESTART_PORT");
  const std::string mosquitto = f.env.scripts_dir + "/mosquitto.sh";
  const std::string mdir = f.dir.File("mosquitto");
  const std::string start =
      mosquitto + " start --dir " + mdir + " --port " + mqtt_port + " --persistence";
  struct StopBroker {  // the broker goes even when an assertion fails
    std::string cmd;
    ~StopBroker() { Shell(cmd); }
  } stop_broker{mosquitto + " stop --dir " + mdir};
  REQUIRE(Shell(start) == 0);
  f.env.mqtt_url = "tcp://127.0.0.1:" + mqtt_port;
  const int metrics_port = FreePort();
  f.cfg.extra_sections =
      "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) + "\"\n";
  f.StartSluice();
  // The broker has saved sluice's session at least once (autosave every second), so the session
  // survives even a kill.
  REQUIRE(WaitFor([&] { return std::filesystem::exists(mdir + "/mosquitto.db"); }, 10s, 20ms));

  const auto devices = Devices(4);
  constexpr int kPerDevice = 2000;
  const int total = kPerDevice * static_cast<int>(devices.size());
  std::atomic<int> acked{0};
  std::atomic<int> publisher_reconnects{0};
  std::set<std::string> publisher_resent;  // written by the producer thread before it ends
  std::string publisher_error;
  std::thread producer([&] {
    try {
      ResilientPublisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
      pub.Publish(f.cfg.mqtt_prefix, devices, 1, kPerDevice, &acked);
      publisher_reconnects = pub.reconnects();
      publisher_resent = pub.resent();
    } catch (const std::exception& e) {
      publisher_error = e.what();
    }
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{producer};

  REQUIRE(WaitFor([&] { return acked.load() >= total / 3; }, 60s, 1ms));
  const int acked_at_fault = acked.load();
  const auto t_fault = std::chrono::steady_clock::now();
  REQUIRE(Shell(mosquitto + " stop --dir " + mdir + (kill ? " --kill" : "")) == 0);
  REQUIRE(Shell(start) == 0);
  const double down_s = Seconds(std::chrono::steady_clock::now() - t_fault);
  // sluice reconnects and the broker resumes its session: subscribed again, as the endpoint says.
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        return MetricValue(metrics_port, "sluice_mqtt_reconnects_total") >= 1 &&
                               MetricValue(metrics_port, "sluice_mqtt_connected") == 1;
                      },
                      60s, 20ms),
                  f.Log());
  const double reconnect_s = Seconds(std::chrono::steady_clock::now() - t_fault);
  producer.join();
  REQUIRE_MESSAGE(publisher_error.empty(), publisher_error);
  CHECK(f.Log().find("session resumed") != std::string::npos);

  // Done when the last event of every device (published after the restart) is in Kafka and
  // every event sluice committed is there too.
  auto records = ReadTopicUntil(
      f.env.kafka_brokers, f.cfg.kafka_topic,
      [&](const std::vector<Record>& rs) {
        auto st = f.MaybeStats();
        if (!st || st->cursor < st->last_seq) return false;
        std::set<std::string> last_seen;
        std::set<uint64_t> seqs;
        for (const auto& r : rs) {
          for (const auto& d : devices) {
            if (r.value == PayloadFor(d, kPerDevice, 64)) last_seen.insert(d);
          }
          auto it = r.headers.find("sluice.seq");
          if (it != r.headers.end()) seqs.insert(std::stoull(it->second));
        }
        return last_seen.size() == devices.size() && seqs.size() >= st->last_seq;
      },
      120s);
  const uint64_t last_seq = f.LastSeq();
  CHECK(f.Cursor() == last_seq);
  Verdict v = Verify(records, devices, kPerDevice);
  const size_t sluice_lost = MissingSeqs(records, last_seq);
  // Copies beyond the first of an event the publisher did not publish twice itself: only these
  // can be sluice's (a redelivery stored again). Its own resends after the reconnect are new MQTT
  // messages that a broker passes on as such.
  size_t duplicates_not_resent = 0;
  {
    std::map<std::string, size_t> copies;
    for (const auto& r : records) copies[r.value]++;
    for (const auto& [payload, n] : copies) {
      if (n > 1 && publisher_resent.count(payload) == 0) duplicates_not_resent += n - 1;
    }
  }
  const size_t broker_lost = v.lost >= sluice_lost ? v.lost - sluice_lost : 0;
  char extra[320];
  std::snprintf(extra, sizeof extra,
                " sluice_lost=%zu broker_lost=%zu committed=%llu acked_at_fault=%d "
                "broker_down_s=%.1f sluice_reconnected_s=%.1f publisher_reconnects=%d "
                "publisher_resent=%zu duplicates_from_mqtt=%zu duplicates_not_resent=%zu "
                "redeliveries_skipped=%.0f",
                sluice_lost, broker_lost, static_cast<unsigned long long>(last_seq), acked_at_fault,
                down_s, reconnect_s, publisher_reconnects.load(), publisher_resent.size(),
                v.redelivered_by_broker, duplicates_not_resent,
                MetricValue(metrics_port, "sluice_mqtt_redeliveries_skipped_total"));
  ReportScenario(scenario, static_cast<size_t>(total), v, extra);
  // sluice's own guarantee holds whatever the broker did.
  CHECK(sluice_lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.corrupted == 0);
  CHECK(v.resent_by_sluice == 0);
  if (!kill) {
    // A broker stopped cleanly saves every message it acknowledged.
    CHECK(v.lost == 0);
  }
  // Redeliveries of events sluice had stored are recognised, and Kafka gets each event once;
  // what the publisher itself sent twice is two events to sluice (docs/guarantees.md, section 8).
  if (exactly_once) CHECK(duplicates_not_resent == 0);
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("Mosquitto restarted (SIGTERM) mid-stream: sluice resumes its session, nothing lost") {
  MosquittoScenario("mosquitto_sigterm", false);
}

TEST_CASE("Mosquitto killed (SIGKILL) mid-stream: sluice loses nothing it committed") {
  MosquittoScenario("mosquitto_sigkill", true);
}

TEST_CASE("exactly-once: Mosquitto restarted (SIGTERM) mid-stream; nothing lost or duplicated") {
  MosquittoScenario("mosquitto_sigterm_exactly_once", false, /*exactly_once=*/true);
}

}  // namespace
}  // namespace sluice::itest
