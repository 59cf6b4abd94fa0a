// SPDX-License-Identifier: Apache-2.0

// The MQTT source alone, against the real Mosquitto of the integration fixture, writing through a
// fake EventWriter: what it builds from each message. (That a QoS 1 message is acknowledged only
// once written is proven with the real log by the failpoint tests around the commit.)

#include <dirent.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "connectors/mqtt_source.h"
#include "storage/event_writer.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using namespace std::chrono_literals;
using sluice::testing::NullLogger;
using sluice::testing::WaitFor;

// Keeps what it is given.
class FakeEventWriter final : public storage::EventWriter {
 public:
  Status Write(storage::Event event, bool durable) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back({std::move(event), durable});
    return Status::Ok();
  }
  struct Written {
    storage::Event event;
    bool durable;
  };
  std::vector<Written> Events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Written> events_;  // GUARDED_BY(mu_)
};

connectors::MqttSourceOptions SourceOptions(const Env& env, const std::string& id,
                                            const std::string& filter) {
  connectors::MqttSourceOptions o;
  o.connection.url = env.mqtt_url;
  o.connection.client_id = id;
  o.connection.reconnect_min = 100ms;
  o.connection.reconnect_max = 500ms;
  o.subscriptions.push_back({filter, 1, true});
  return o;
}

TEST_CASE("MqttSource writes each message through its EventWriter, QoS 1 durably") {
  const Env env = Env::FromEnvironment();
  const std::string prefix = "src-" + UniqueSuffix();
  SystemClock clock;
  FakeEventWriter writer;
  connectors::MqttSource source(SourceOptions(env, "sluice-src-" + prefix, prefix + "/#"), &writer,
                                &clock, NullLogger());
  REQUIRE(source.Start().ok());
  REQUIRE(WaitFor([&] { return source.Ready(); }, 20s));
  Publisher pub(env.mqtt_url, "pub-" + prefix);
  pub.Publish(prefix, {"d1", "d2"}, 1, 50, 1);
  REQUIRE(WaitFor([&] { return writer.Events().size() == 100; }, 20s));
  source.Stop();
  const auto events = writer.Events();
  for (const auto& w : events) {
    CHECK(w.durable);  // QoS 1: the PUBACK waits for the write
    CHECK(w.event.qos == 1);
    CHECK(w.event.topic.rfind(prefix + "/", 0) == 0);
    CHECK(!w.event.payload.empty());
    CHECK(w.event.received_ms > 0);
    CHECK(w.event.seq == 0);  // numbering is the log's job
  }
  CHECK(source.Stats().written == 100);
}

// Keeps what it is given, like FakeEventWriter, but holds the n-th durable write until released:
// the event is then "committed" while its callback has not returned, so the broker has no PUBACK.
class HoldingEventWriter final : public storage::EventWriter {
 public:
  explicit HoldingEventWriter(size_t hold_at) : hold_at_(hold_at) {}
  Status Write(storage::Event event, bool durable) override {
    std::unique_lock<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    if (durable && ++durable_ == hold_at_) {
      holding_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    return Status::Ok();
  }
  bool Holding() const {
    std::lock_guard<std::mutex> lock(mu_);
    return holding_;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // How often each payload was written.
  std::map<std::string, int> Payloads() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int> out;
    for (const auto& e : events_) ++out[e.payload];
    return out;
  }
  std::vector<storage::Event> Events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  const size_t hold_at_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<storage::Event> events_;  // GUARDED_BY(mu_)
  size_t durable_ = 0;                  // GUARDED_BY(mu_)
  bool holding_ = false;                // GUARDED_BY(mu_)
  bool released_ = false;               // GUARDED_BY(mu_)
};

// Shuts down (both ways) every socket of this process connected to 127.0.0.1:port: the
// connection breaks as a cable pull or a broker crash would break it, under Paho's feet.
int CutConnectionsTo(int port) {
  int cut = 0;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (dirent* ent = readdir(dir)) {
    const int fd = std::atoi(ent->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (fd <= 2 || getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
    if (peer.sin_family != AF_INET || ntohs(peer.sin_port) != port) continue;
    if (shutdown(fd, SHUT_RDWR) == 0) ++cut;
  }
  closedir(dir);
  return cut;
}

TEST_CASE("MqttSource: a connection cut while QoS 1 events are in flight stores none twice") {
  const Env env = Env::FromEnvironment();
  const std::string prefix = "src-cut-" + UniqueSuffix();
  SystemClock clock;
  HoldingEventWriter writer(20);
  connectors::MqttSource source(SourceOptions(env, "sluice-src-" + prefix, prefix + "/#"), &writer,
                                &clock, NullLogger());
  REQUIRE(source.Start().ok());
  REQUIRE(WaitFor([&] { return source.Ready(); }, 20s));
  // Published from another process: Paho C runs one receive thread for every client of a
  // process, and the held callback blocks it, so a publisher in this process would never see its
  // PUBACKs. mosquitto_pub -l sends each line as a QoS 1 message and exits once all are
  // acknowledged; afterwards the source's is the only connection to the broker in this process.
  const int port = std::atoi(env.mqtt_url.substr(env.mqtt_url.rfind(':') + 1).c_str());
  REQUIRE(Shell("seq -f 'event %g' 1 60 | mosquitto_pub -h 127.0.0.1 -p " + std::to_string(port) +
                " -q 1 -i pub-" + prefix + " -t " + prefix + "/d1/data -l") == 0);
  // The 20th event is written and its callback has not returned: the broker holds it (and the
  // ones behind it, up to its in-flight window) unacknowledged.
  REQUIRE(WaitFor([&] { return writer.Holding(); }, 20s));
  REQUIRE(CutConnectionsTo(port) >= 1);
  // The write completes on a dead connection: its PUBACK cannot reach the broker, which sends
  // the event again, with DUP, on the next connection. (Paho notices the loss only once the
  // callback returns: it runs on the thread that reads the socket.)
  writer.Release();
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        return writer.Payloads().size() == 60 &&
                               source.Stats().redeliveries_skipped >= 1 && source.Ready();
                      },
                      30s),
                  "payloads " << writer.Payloads().size() << ", skipped "
                              << source.Stats().redeliveries_skipped);
  source.Stop();
  size_t twice = 0;
  for (const auto& [payload, n] : writer.Payloads()) twice += n > 1 ? 1 : 0;
  CHECK(twice == 0);
  const auto events = writer.Events();
  CHECK(events.size() == 60);
  for (const auto& e : events) CHECK(e.packet_id != 0);  // QoS 1: the broker's packet id
  const connectors::MqttSourceStats st = source.Stats();
  CHECK(st.connects >= 2);
  CHECK(st.connection_losses >= 1);
  CHECK(st.redeliveries_skipped >= 1);
  MESSAGE("redeliveries skipped: " << st.redeliveries_skipped << ", received " << st.received);
}

}  // namespace
}  // namespace sluice::itest
