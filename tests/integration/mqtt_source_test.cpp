// The MQTT source alone, against the real Mosquitto of the integration fixture, writing through a
// fake EventWriter: what it builds from each message. (That a QoS 1 message is acknowledged only
// once written is proven with the real log by the failpoint tests around the commit.)

#include <doctest/doctest.h>

#include <chrono>
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

}  // namespace
}  // namespace sluice::itest
