// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/fleet.h"

#include <doctest/doctest.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::sim {
namespace {

using namespace std::chrono_literals;
using sluice::testing::ManualClock;
using sluice::testing::NullLogger;

struct Published {
  std::string client_id;
  std::string topic;
  std::string payload;
  int qos;
  bool retained;
};

class FakeLink;

// A broker the fake links talk to: it can be up or down, acknowledges at once or holds the
// acknowledgements, and records every message published to it.
struct FakeBroker {
  bool up = true;
  bool auto_ack = true;
  std::vector<Published> published;
  std::vector<FakeLink*> links;

  void GoDown();
  void AckAll();
  std::vector<DeviceEvent> Events() const {
    std::vector<DeviceEvent> out;
    for (const Published& p : published) {
      DeviceEvent e;
      if (p.topic.ends_with("/status")) continue;
      REQUIRE(DeviceEvent::Decode(p.payload, &e).ok());
      out.push_back(e);
    }
    return out;
  }
  std::vector<std::string> Statuses(const std::string& device) const {
    std::vector<std::string> out;
    for (const Published& p : published) {
      if (p.topic == "devices/" + device + "/status") out.push_back(p.payload);
    }
    return out;
  }
};

// Calls its listener synchronously, from inside the call, as the contract allows.
class FakeLink final : public DeviceLink {
 public:
  FakeLink(FakeBroker* broker, LinkSpec spec, Listener* listener)
      : broker_(broker), spec_(std::move(spec)), listener_(listener) {
    broker_->links.push_back(this);
  }
  ~FakeLink() override { std::erase(broker_->links, this); }

  Status Connect() override {
    if (!broker_->up) {
      listener_->OnConnectFailed("connection refused");
      return Status::Ok();
    }
    connected_ = true;
    listener_->OnConnected();
    return Status::Ok();
  }
  Status Publish(const std::string& topic, const std::string& payload, int qos, bool retained,
                 uint64_t tag) override {
    if (!connected_) return Status::Unavailable("not connected");
    broker_->published.push_back({spec_.client_id, topic, payload, qos, retained});
    if (broker_->auto_ack) {
      listener_->OnPublished(tag);
    } else {
      pending_.push_back(tag);
    }
    return Status::Ok();
  }
  Status Disconnect(std::chrono::milliseconds) override {
    connected_ = false;
    pending_.clear();
    listener_->OnDisconnected();
    return Status::Ok();
  }

  void Lose() {
    if (!connected_) return;
    connected_ = false;
    pending_.clear();  // a clean session forgets them, and Paho may never report them
    listener_->OnConnectionLost("broker went away");
  }
  void AckAll() {
    for (uint64_t tag : pending_) listener_->OnPublished(tag);
    pending_.clear();
  }

 private:
  FakeBroker* const broker_;
  const LinkSpec spec_;
  Listener* const listener_;
  bool connected_ = false;
  std::vector<uint64_t> pending_;
};

void FakeBroker::GoDown() {
  up = false;
  for (FakeLink* l : links) l->Lose();
}

void FakeBroker::AckAll() {
  for (FakeLink* l : links) l->AckAll();
}

DeviceLinkFactory FakeFactory(FakeBroker* broker) {
  return [broker](const LinkSpec& spec, DeviceLink::Listener* listener,
                  std::unique_ptr<DeviceLink>* out) {
    *out = std::make_unique<FakeLink>(broker, spec, listener);
    return Status::Ok();
  };
}

FleetOptions OneTelemetryDevice(double rate) {
  FleetOptions o;
  o.devices = 1;
  o.mix = ProfileMix::Default(1);
  o.rate = rate;
  o.seed = 5;
  o.reconnect_min = 100ms;
  o.reconnect_max = 400ms;
  return o;
}

std::unique_ptr<Fleet> OpenFleet(const FleetOptions& o, FakeBroker* broker, ManualClock* clock) {
  std::unique_ptr<Fleet> fleet;
  Status s = Fleet::Open(o, FakeFactory(broker), clock, NullLogger(), &fleet);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return fleet;
}

// Starts the fleet and lets it connect: the schedule's time zero is the clock's time now.
void StartAndConnect(Fleet& fleet) {
  fleet.Start();
  fleet.Tick();
  REQUIRE(fleet.phase() == Fleet::Phase::kRunning);
}

void Advance(ManualClock& clock, Fleet& fleet, std::chrono::nanoseconds total,
             std::chrono::nanoseconds step) {
  for (std::chrono::nanoseconds t{0}; t < total; t += step) {
    clock.Advance(step);
    fleet.Tick();
  }
  // A tick takes the acknowledgements of the previous tick's publishes and may publish more
  // (the window refills); a few more ticks at the same time settle that.
  for (int i = 0; i < 10; ++i) fleet.Tick();
}

void StopAndFinish(ManualClock& clock, Fleet& fleet) {
  fleet.RequestStop();
  for (int i = 0; i < 1000 && fleet.phase() != Fleet::Phase::kDone; ++i) {
    clock.Advance(10ms);
    fleet.Tick();
  }
  REQUIRE(fleet.phase() == Fleet::Phase::kDone);
}

// What a verifier does: every seq of every boot up to last_seq was published or is listed as
// dropped by the device.
void CheckEverySeqAccountedFor(const FleetSummary& summary, const std::vector<DeviceEvent>& seen) {
  std::map<std::pair<std::string, uint32_t>, std::set<uint64_t>> got;
  for (const DeviceEvent& e : seen) got[{e.device, e.boot}].insert(e.seq);
  for (const DeviceSummary& d : summary.devices) {
    for (const BootSummary& b : d.boots) {
      const auto& seqs = got[{d.device, b.boot}];
      for (uint64_t s = b.first_seq; s <= b.last_seq; ++s) {
        bool dropped = false;
        for (const auto& [first, last] : b.dropped) dropped = dropped || (first <= s && s <= last);
        CAPTURE(d.device);
        CAPTURE(b.boot);
        CAPTURE(s);
        CHECK((seqs.count(s) == 1) != dropped);
      }
      // Nothing beyond last_seq was published.
      CHECK((seqs.empty() || *seqs.rbegin() <= b.last_seq));
    }
  }
}

TEST_CASE("Fleet paces events from the schedule, however coarse or fine the ticks") {
  FakeBroker fine_broker;
  ManualClock fine_clock;
  auto fine = OpenFleet(OneTelemetryDevice(10), &fine_broker, &fine_clock);
  StartAndConnect(*fine);
  Advance(fine_clock, *fine, 1s, 7ms);
  // Ten events due in the first second (the first falls somewhere in the first 100 ms).
  CHECK(fine_broker.Events().size() == 10);
  Advance(fine_clock, *fine, 9s, 13ms);
  CHECK(fine_broker.Events().size() == 100);

  FakeBroker coarse_broker;
  ManualClock coarse_clock;
  auto coarse = OpenFleet(OneTelemetryDevice(10), &coarse_broker, &coarse_clock);
  StartAndConnect(*coarse);
  Advance(coarse_clock, *coarse, 10s, 10s);  // a scheduler that could not run for 10 s
  CHECK(coarse_broker.Events().size() == 100);
  CHECK(coarse->Progress().sent == 100);
}

TEST_CASE("Fleet derives the per-device rate from --total-rate and the mix") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o;
  o.devices = 20;
  o.mix = ProfileMix::Default(20);
  o.total_rate = 90;
  auto fleet = OpenFleet(o, &broker, &clock);
  CHECK(fleet->target_rate() == doctest::Approx(90));
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 20s, 50ms);
  // Alarms and doors fall at random points of their periods, so allow one per device.
  CHECK(broker.Events().size() == doctest::Approx(1800).epsilon(0.02));
}

TEST_CASE("Fleet stops after --events, cut in due order, and says offline") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.devices = 3;
  o.mix = ProfileMix::Default(3);
  o.max_events = 25;
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 5s, 10ms);
  CHECK(fleet->phase() == Fleet::Phase::kDone);
  const FleetSummary summary = fleet->Summary();
  CHECK(summary.generated() == 25);
  CHECK(summary.sent() == 25);
  CHECK(broker.Events().size() == 25);
  uint64_t last_seqs = 0;
  for (const DeviceSummary& d : summary.devices) last_seqs += d.boots.back().last_seq;
  CHECK(last_seqs == 25);
  for (const std::string& id : fleet->device_ids()) {
    CHECK(broker.Statuses(id) == std::vector<std::string>{"online", "offline"});
  }
}

TEST_CASE("Fleet publishes each profile on its topic with its QoS, overrides included") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o;
  o.devices = 4;
  REQUIRE(ProfileMix::Parse("telemetry:1,vibration:1,alarm:1,door:1", &o.mix).ok());
  o.rate = 20;
  o.qos[static_cast<size_t>(ProfileKind::kVibration)] = 2;
  o.qos[static_cast<size_t>(ProfileKind::kDoor)] = 0;
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 3s, 10ms);
  std::map<std::string, std::set<std::pair<std::string, int>>> by_device;
  for (const Published& p : broker.published) {
    if (p.topic.ends_with("/status")) {
      CHECK(p.retained);
      CHECK(p.qos == 1);
      continue;
    }
    CHECK_FALSE(p.retained);
    by_device[p.client_id].insert({p.topic, p.qos});
  }
  using Set = std::set<std::pair<std::string, int>>;
  CHECK(by_device["sluice-sim-dev-001"] == Set{{"devices/dev-001/telemetry", 1}});
  CHECK(by_device["sluice-sim-dev-002"] == Set{{"devices/dev-002/telemetry", 2}});
  CHECK(by_device["sluice-sim-dev-003"] == Set{{"devices/dev-003/events", 1}});
  CHECK(by_device["sluice-sim-dev-004"] == Set{{"devices/dev-004/events", 0}});
}

TEST_CASE("Fleet queues while the broker is down, drops the oldest, sends the rest after") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.queue_capacity = 5;
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 1s, 10ms);
  REQUIRE(broker.Events().size() == 10);

  broker.GoDown();
  Advance(clock, *fleet, 2s, 10ms);
  FleetProgress p = fleet->Progress();
  CHECK(p.connected == 0);
  CHECK(p.waiting == 5);
  CHECK(p.dropped == 15);
  CHECK(broker.Events().size() == 10);

  broker.up = true;
  Advance(clock, *fleet, 2s, 10ms);
  p = fleet->Progress();
  CHECK(p.connected == 1);
  CHECK(p.waiting == 0);
  StopAndFinish(clock, *fleet);

  const FleetSummary summary = fleet->Summary();
  REQUIRE(summary.devices.size() == 1);
  const DeviceSummary& d = summary.devices[0];
  REQUIRE(d.boots.size() == 1);
  // One gap, from the first event generated offline to the oldest one the queue kept.
  REQUIRE(d.boots[0].dropped.size() == 1);
  CHECK(d.boots[0].dropped[0].first == 11);
  CHECK(d.dropped_overflow == d.dropped);
  CHECK(d.sent + d.dropped == d.generated);
  CHECK(d.boots[0].last_seq == d.generated);
  CheckEverySeqAccountedFor(summary, broker.Events());
  // Reconnected: a second "online".
  CHECK(broker.Statuses("dev-001") == std::vector<std::string>{"online", "online", "offline"});
}

TEST_CASE("Fleet resends unconfirmed publishes after a connection loss") {
  FakeBroker broker;
  broker.auto_ack = false;
  ManualClock clock;
  auto fleet = OpenFleet(OneTelemetryDevice(10), &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 500ms, 10ms);
  const size_t unconfirmed = broker.Events().size();
  REQUIRE(unconfirmed == 5);
  CHECK(fleet->Progress().in_flight == 5);
  CHECK(fleet->Progress().sent == 0);

  broker.GoDown();
  broker.up = true;
  Advance(clock, *fleet, 1s, 10ms);
  broker.AckAll();
  Advance(clock, *fleet, 10ms, 10ms);
  const std::vector<DeviceEvent> events = broker.Events();
  // Seqs 1-5 twice (at-least-once), then the later ones once each, in order.
  REQUIRE(events.size() == 20);
  for (size_t i = 0; i < 5; ++i) CHECK(events[i].seq == i + 1);
  for (size_t i = 5; i < 20; ++i) CHECK(events[i].seq == i - 4);
  CHECK(fleet->Progress().sent == 15);
  CHECK(fleet->Progress().dropped == 0);
}

TEST_CASE("Fleet reboot: offline, boot + 1, seq from 1 again, online") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.reboots.push_back({"dev-001", 1.05});
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 3s, 10ms);
  StopAndFinish(clock, *fleet);

  CHECK(broker.Statuses("dev-001") ==
        std::vector<std::string>{"online", "offline", "online", "offline"});
  const std::vector<DeviceEvent> events = broker.Events();
  REQUIRE(events.size() == 30);
  uint32_t boot = 1;
  uint64_t expect = 1;
  size_t boot1 = 0;
  for (const DeviceEvent& e : events) {
    if (e.boot != boot) {
      CHECK(e.boot == boot + 1);
      boot = e.boot;
      expect = 1;
    }
    if (boot == 1) ++boot1;
    CHECK(e.seq == expect++);
  }
  CHECK(boot == 2);
  CHECK((boot1 == 10 || boot1 == 11));  // events due by 1.05 s, depending on the phase

  const FleetSummary summary = fleet->Summary();
  CHECK(summary.reboots == 1);
  const DeviceSummary& d = summary.devices[0];
  REQUIRE(d.boots.size() == 2);
  CHECK(d.boots[0].boot == 1);
  CHECK(d.boots[0].last_seq == boot1);
  CHECK(d.boots[1].boot == 2);
  CHECK(d.boots[1].first_seq == 1);
  CHECK(d.boots[1].last_seq == 30 - boot1);
  CheckEverySeqAccountedFor(summary, events);
}

TEST_CASE("Fleet reboot waits for publishes in flight before disconnecting, up to a limit") {
  for (const bool acked : {true, false}) {
    CAPTURE(acked);
    FakeBroker broker;
    broker.auto_ack = false;
    ManualClock clock;
    FleetOptions o = OneTelemetryDevice(10);
    o.reboots.push_back({"dev-001", 0.5});
    o.disconnect_timeout = 1s;
    auto fleet = OpenFleet(o, &broker, &clock);
    StartAndConnect(*fleet);
    Advance(clock, *fleet, 600ms, 10ms);
    // Five events of boot 1 in flight; the device said "offline" and waits for them.
    CHECK(broker.Statuses("dev-001") == std::vector<std::string>{"online", "offline"});
    CHECK(fleet->Progress().in_flight == 5);
    CHECK(fleet->Progress().connected == 0);
    if (acked) broker.AckAll();
    Advance(clock, *fleet, 1500ms, 10ms);
    CHECK(broker.Statuses("dev-001") == std::vector<std::string>{"online", "offline", "online"});
    broker.AckAll();
    StopAndFinish(clock, *fleet);
    const DeviceSummary d = fleet->Summary().devices[0];
    REQUIRE(d.boots.size() == 2);
    CHECK(d.boots[0].last_seq == 5);
    if (acked) {
      CHECK(d.boots[0].dropped.empty());
    } else {
      // Never confirmed, and the new boot cannot resend them.
      CHECK(d.boots[0].dropped == std::vector<std::pair<uint64_t, uint64_t>>{{1, 5}});
    }
    CHECK(d.boots[1].dropped.empty());
    CHECK(d.sent + d.dropped == d.generated);
  }
}

TEST_CASE("Fleet reboot loses the events still waiting, and reports them") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.reboots.push_back({"dev-001", 2.5});
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 1s, 10ms);
  broker.GoDown();                   // events wait in the outbox ...
  Advance(clock, *fleet, 2s, 10ms);  // ... and the reboot at 2.5 s loses them
  broker.up = true;
  Advance(clock, *fleet, 2s, 10ms);
  StopAndFinish(clock, *fleet);

  const FleetSummary summary = fleet->Summary();
  const DeviceSummary& d = summary.devices[0];
  REQUIRE(d.boots.size() == 2);
  REQUIRE(d.boots[0].dropped.size() == 1);
  CHECK(d.boots[0].dropped[0] == std::make_pair(uint64_t{11}, d.boots[0].last_seq));
  CHECK(d.boots[1].dropped.empty());
  CHECK(d.dropped_overflow == 0);
  CheckEverySeqAccountedFor(summary, broker.Events());
}

TEST_CASE("Fleet with the same seed publishes the same fleet; another seed does not") {
  auto run = [](uint64_t seed) {
    FakeBroker broker;
    ManualClock clock;
    FleetOptions o;
    o.devices = 10;
    o.mix = ProfileMix::Default(10);
    o.rate = 5;
    o.seed = seed;
    o.reboot_probability = 0.2;
    o.payload_bytes = 200;
    auto fleet = OpenFleet(o, &broker, &clock);
    StartAndConnect(*fleet);
    Advance(clock, *fleet, 5s, 10ms);
    StopAndFinish(clock, *fleet);
    std::vector<std::string> out;
    for (const Published& p : broker.published) out.push_back(p.topic + " " + p.payload);
    return std::make_pair(out, fleet->Summary().reboots);
  };
  const auto a = run(11);
  const auto b = run(11);
  const auto c = run(12);
  CHECK(a.first.size() > 100);
  CHECK(a.second > 0);  // 10 devices x 5 s x 0.2/s: about 10 reboots
  CHECK(a == b);
  CHECK(a.first != c.first);
}

TEST_CASE("Fleet fails to start when no device reaches the broker within the connect timeout") {
  FakeBroker broker;
  broker.up = false;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.connect_timeout = 2s;
  auto fleet = OpenFleet(o, &broker, &clock);
  fleet->Start();
  Status failed;
  std::chrono::milliseconds waited{0};
  while (failed.ok() && waited < 10s) {
    clock.Advance(100ms);
    waited += 100ms;
    failed = fleet->Tick();
  }
  CHECK(failed.code() == Status::Code::kUnavailable);
  CHECK(failed.message().find("connection refused") != std::string::npos);
  CHECK(waited >= 2s);
  CHECK(waited < 3s);
  StopAndFinish(clock, *fleet);
  CHECK(broker.Events().empty());
}

// Delivers link callbacks on its own thread, as Paho does, in the order they were queued.
class CallbackThread {
 public:
  CallbackThread() : thread_([this] { Loop(); }) {}
  ~CallbackThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return done_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  bool done_ = false;                        // GUARDED_BY(mu_)
  std::thread thread_;                       // last: starts once the rest is built
};

// A link that always works and reports every outcome from the callback thread.
class ThreadedLink final : public DeviceLink {
 public:
  ThreadedLink(CallbackThread* cb, Listener* listener, std::atomic<uint64_t>* published)
      : cb_(cb), listener_(listener), published_(published) {}
  Status Connect() override {
    cb_->Post([l = listener_] { l->OnConnected(); });
    return Status::Ok();
  }
  Status Publish(const std::string& topic, const std::string&, int, bool, uint64_t tag) override {
    if (!topic.ends_with("/status")) published_->fetch_add(1);
    cb_->Post([l = listener_, tag] { l->OnPublished(tag); });
    return Status::Ok();
  }
  Status Disconnect(std::chrono::milliseconds) override {
    cb_->Post([l = listener_] { l->OnDisconnected(); });
    return Status::Ok();
  }

 private:
  CallbackThread* const cb_;
  Listener* const listener_;
  std::atomic<uint64_t>* const published_;
};

TEST_CASE("Fleet::Run paces in real time with callbacks from another thread, and stops") {
  CallbackThread callbacks;
  std::atomic<uint64_t> published{0};
  SystemClock clock;
  FleetOptions o;
  o.devices = 3;
  REQUIRE(ProfileMix::Parse("telemetry:3", &o.mix).ok());
  o.rate = 50;
  o.progress_interval = 100ms;
  std::unique_ptr<Fleet> fleet;
  Status s = Fleet::Open(
      o,
      [&](const LinkSpec&, DeviceLink::Listener* listener, std::unique_ptr<DeviceLink>* out) {
        *out = std::make_unique<ThreadedLink>(&callbacks, listener, &published);
        return Status::Ok();
      },
      &clock, NullLogger(), &fleet);
  REQUIRE(s.ok());
  // Stop from another thread once the fleet has published for a while (no --duration, no
  // --events: only the stop request ends this run).
  std::thread stopper([&] {
    // CHECK, not REQUIRE: an exception must not leave this thread; stop in any case.
    CHECK(sluice::testing::WaitFor([&] { return published.load() >= 60; }, 10s));
    fleet->RequestStop();
  });
  int progress_lines = 0;
  s = fleet->Run([&](const FleetProgress&) { ++progress_lines; });
  stopper.join();
  CHECK(s.ok());
  CHECK(fleet->phase() == Fleet::Phase::kDone);
  const FleetSummary summary = fleet->Summary();
  CHECK(summary.interrupted);
  CHECK(summary.generated() >= 60);
  CHECK(summary.sent() == summary.generated());
  CHECK(summary.sent() == published.load());
  CHECK(progress_lines >= 1);  // 60 events at 150/s take 400 ms, 4 progress intervals
  // Real-time pacing: generated at the target rate, within what scheduling jitter allows.
  CHECK(summary.generating_s > 0.3);
  CHECK(static_cast<double>(summary.generated()) / summary.generating_s ==
        doctest::Approx(150).epsilon(0.25));
}

TEST_CASE("Fleet refuses bad options, naming them") {
  FakeBroker broker;
  ManualClock clock;
  std::unique_ptr<Fleet> fleet;
  FleetOptions o = OneTelemetryDevice(10);
  o.devices = 3;  // the mix has 1
  Status s = Fleet::Open(o, FakeFactory(&broker), &clock, NullLogger(), &fleet);
  CHECK(s.message().find("--devices") != std::string::npos);

  o = OneTelemetryDevice(10);
  o.reboots.push_back({"dev-042", 1});
  s = Fleet::Open(o, FakeFactory(&broker), &clock, NullLogger(), &fleet);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("dev-042") != std::string::npos);

  o = OneTelemetryDevice(10);
  o.qos[0] = 3;
  s = Fleet::Open(o, FakeFactory(&broker), &clock, NullLogger(), &fleet);
  CHECK(s.message().find("--qos-telemetry") != std::string::npos);
}

TEST_CASE("Fleet summary JSON has the schema the verifier reads") {
  FakeBroker broker;
  ManualClock clock;
  FleetOptions o = OneTelemetryDevice(10);
  o.queue_capacity = 3;
  o.reboots.push_back({"dev-001", 2.0});
  auto fleet = OpenFleet(o, &broker, &clock);
  StartAndConnect(*fleet);
  Advance(clock, *fleet, 1s, 10ms);
  broker.GoDown();
  Advance(clock, *fleet, 500ms, 10ms);
  broker.up = true;
  Advance(clock, *fleet, 2s, 10ms);
  StopAndFinish(clock, *fleet);

  const auto j = nlohmann::json::parse(fleet->Summary().ToJson());
  CHECK(j.at("seed") == 5);
  REQUIRE(j.at("devices").size() == 1);
  const auto& d = j.at("devices")[0];
  CHECK(d.at("device") == "dev-001");
  CHECK(d.at("profile") == "telemetry");
  CHECK(d.at("sent").is_number_unsigned());
  REQUIRE(d.at("boots").size() == 2);
  const auto& b1 = d.at("boots")[0];
  CHECK(b1.at("boot") == 1);
  CHECK(b1.at("first_seq") == 1);
  CHECK(b1.at("last_seq").get<uint64_t>() >= 10);
  REQUIRE(b1.at("dropped_by_device").size() == 1);  // the overflow while offline
  const auto& range = b1.at("dropped_by_device")[0];
  REQUIRE(range.is_array());
  REQUIRE(range.size() == 2);
  CHECK(range[0] == 11);
  CHECK(range[0].get<uint64_t>() <= range[1].get<uint64_t>());
  CHECK(d.at("boots")[1].at("boot") == 2);
  CHECK(j.at("totals").at("sent") == d.at("sent"));
  CHECK(j.at("totals").at("reboots") == 1);
}

}  // namespace
}  // namespace sluice::sim
