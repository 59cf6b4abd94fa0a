// SPDX-License-Identifier: Apache-2.0

// The MQTT upstream against a real "cloud" Mosquitto with TLS and passwords
// (tests/integration/cloud_broker.sh, started by a CTest fixture). Label "integration".
#include "connectors/mqtt_sink.h"

#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/sinks/stdout_sinks.h>

#include "tests/integration/mqtt_reader.h"
#include "tests/test_util.h"

using namespace std::chrono_literals;
using sluice::Status;
using sluice::connectors::Delivery;
using sluice::connectors::KeyPattern;
using sluice::connectors::MqttConnection;
using sluice::connectors::MqttProtocol;
using sluice::connectors::MqttSink;
using sluice::connectors::MqttSinkOptions;
using sluice::connectors::Route;
using sluice::connectors::Router;
using sluice::storage::Event;
using sluice::testing::MqttReader;
using sluice::testing::WaitFor;

namespace {

std::string EnvOr(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr)
    FAIL("environment variable " << std::string(name) << " is not set (run through ctest)");
  return v;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "cannot read " << path);
  std::string s;
  std::getline(in, s);
  return s;
}

// The cloud broker of the CTest fixture: where it listens and the files it made.
struct Cloud {
  std::string dir = EnvOr("SLUICE_CLOUD_DIR");
  int port = std::stoi(EnvOr("SLUICE_CLOUD_PORT"));
  std::string script = EnvOr("SLUICE_CLOUD_SCRIPT");

  std::string Tls(const std::string& file) const { return dir + "/tls/" + file; }

  MqttConnection Connection(const std::string& user, MqttProtocol protocol,
                            const std::string& client_id) const {
    MqttConnection c;
    c.url = "ssl://127.0.0.1:" + std::to_string(port);
    c.protocol = protocol;
    c.client_id = client_id;
    c.username = user;
    c.password = ReadFile(dir + "/" + user + ".password");
    c.tls = true;
    c.ca_file = Tls("ca.pem");
    c.cert_file = Tls("client.pem");
    c.key_file = Tls("client.key");
    c.keepalive = 5s;
    c.reconnect_min = 50ms;
    c.reconnect_max = 500ms;
    c.connect_timeout = 5s;
    return c;
  }

  void Stop(bool kill) const {
    const std::string cmd = script + " stop --dir " + dir + (kill ? " --kill" : "");
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  pid_t Pid() const { return static_cast<pid_t>(std::stol(ReadFile(dir + "/mosquitto.pid"))); }
  void Start() const {
    const std::string cmd = script + " start --dir " + dir + " --port " + std::to_string(port) +
                            " --persistence --max-packet " + std::to_string(kMaxPacket);
    REQUIRE(std::system(cmd.c_str()) == 0);
  }

  // The fixture starts the broker with this max_packet_size (tests/CMakeLists.txt).
  static constexpr int kMaxPacket = 65536;
};

Route MakeRoute(const std::string& filter, const std::string& target, const std::string& key = "",
                bool forward_retain = false) {
  Route r;
  r.mqtt_filter = filter;
  r.upstream_topic = target;
  REQUIRE(KeyPattern::Parse(key, &r.key).ok());
  r.forward_retain = forward_retain;
  return r;
}

Router MakeRouter() {
  return Router({MakeRoute("devices/+/telemetry", "site/{gateway}/{device}/telemetry",
                           "devices/{device}/#", /*forward_retain=*/true),
                 MakeRoute("plain/#", "cloud/{mqtt_topic}"),
                 MakeRoute("denied/#", "denied/{gateway}/{mqtt_topic}"),
                 MakeRoute("kafka-only/#", "")});
}

MqttSinkOptions SinkOptions(const Cloud& cloud, MqttProtocol protocol, const std::string& id,
                            size_t max_in_flight = 100) {
  MqttSinkOptions o;
  o.name = "cloud";
  o.connection = cloud.Connection("sluice", protocol, id);
  o.max_in_flight = max_in_flight;
  o.gateway_id = "gw-test";
  o.log_id = "log-0123";
  return o;
}

Event MakeEvent(uint64_t seq, const std::string& topic, size_t bytes = 0) {
  Event e;
  e.seq = seq;
  e.received_ms = 1700000000000 + static_cast<int64_t>(seq);
  e.qos = 1;
  e.topic = topic;
  // The payload names the seq, so that 3.1.1 readers (no user properties) can check order too.
  e.payload = std::to_string(seq);
  if (bytes > e.payload.size()) e.payload += std::string(bytes - e.payload.size(), 'x');
  return e;
}

// Sends events through a sink as the forwarder does: in order, within the sink's window; after a
// kRetry or kHold, once nothing is in flight, again from the first unconfirmed event.
class Driver {
 public:
  Driver(MqttSink& sink, std::vector<Event> events) : sink_(sink), events_(std::move(events)) {
    for (size_t i = 0; i < events_.size(); ++i) index_[events_[i].seq] = i;
    done_.assign(events_.size(), false);
  }

  void Step(std::chrono::milliseconds poll = 5ms) {
    std::vector<Delivery> ds;
    sink_.Poll(poll, &ds);
    for (const Delivery& d : ds) {
      outcomes_[d.outcome]++;
      if (d.outcome == Delivery::Outcome::kRetry || d.outcome == Delivery::Outcome::kHold) {
        if (d.seq == 0) {
          lost_reports_++;
        } else {
          retried_events_++;
        }
        if (!d.error.empty()) last_error_ = d.error;
        rewind_ = true;
        continue;
      }
      REQUIRE(index_.count(d.seq) == 1);
      const size_t i = index_[d.seq];
      CHECK_MESSAGE(!done_[i], "seq " << d.seq << " reported twice");
      done_[i] = true;
      reported_[d.seq] = d.outcome;
      if (!d.error.empty()) last_error_ = d.error;
    }
    if (rewind_) {
      if (sink_.InFlight() > 0) return;
      rewind_ = false;
      next_ = 0;
    }
    while (next_ < events_.size()) {
      if (done_[next_]) {
        next_++;
        continue;
      }
      const Status s = sink_.Send(events_[next_]);
      if (s.ok()) {
        sent_++;
        max_in_flight_ = std::max(max_in_flight_, sink_.InFlight());
        next_++;
        continue;
      }
      if (s.IsFull()) {
        full_++;
      } else {
        REQUIRE_MESSAGE(s.code() == Status::Code::kUnavailable, s.ToString());
        last_unavailable_ = s.message();
      }
      break;
    }
  }

  bool AllDone() const {
    return std::all_of(done_.begin(), done_.end(), [](bool d) { return d; });
  }
  size_t Done() const { return static_cast<size_t>(std::count(done_.begin(), done_.end(), true)); }

  bool RunUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
    return WaitFor(
        [&] {
          Step();
          return cond();
        },
        timeout, 0ms);
  }

  MqttSink& sink_;
  std::vector<Event> events_;
  std::map<uint64_t, size_t> index_;
  std::vector<bool> done_;
  std::map<uint64_t, Delivery::Outcome> reported_;
  std::map<Delivery::Outcome, size_t> outcomes_;
  size_t next_ = 0;
  bool rewind_ = false;
  size_t sent_ = 0;
  size_t full_ = 0;
  size_t lost_reports_ = 0;    // "everything in flight was lost"
  size_t retried_events_ = 0;  // one event to send again
  size_t max_in_flight_ = 0;
  std::string last_error_;
  std::string last_unavailable_;
};

// Per topic, the seqs (from the payload) in arrival order: every expected seq seen, and each
// first copy after every earlier one (duplicates allowed, counted).
struct OrderCheck {
  size_t duplicates = 0;
  size_t out_of_order = 0;
  size_t missing = 0;
  std::set<uint64_t> missing_seqs;
};

OrderCheck CheckOrder(const std::vector<sluice::testing::ReceivedMessage>& msgs,
                      const std::map<std::string, std::vector<uint64_t>>& expected) {
  OrderCheck r;
  std::map<std::string, std::set<uint64_t>> seen;
  std::map<std::string, uint64_t> highest;
  for (const auto& m : msgs) {
    const uint64_t seq = std::stoull(m.payload);
    auto& s = seen[m.topic];
    if (!s.insert(seq).second) {
      r.duplicates++;
      continue;
    }
    if (seq < highest[m.topic]) r.out_of_order++;
    highest[m.topic] = std::max(highest[m.topic], seq);
  }
  for (const auto& [topic, seqs] : expected) {
    for (uint64_t seq : seqs) {
      if (seen[topic].count(seq) != 0) continue;
      r.missing++;
      r.missing_seqs.insert(seq);
    }
  }
  return r;
}

// SLUICE_TEST_VERBOSE=1 shows the sink's log lines on stderr.
std::shared_ptr<spdlog::logger> Logger() {
  if (std::getenv("SLUICE_TEST_VERBOSE") == nullptr) return sluice::testing::NullLogger();
  return std::make_shared<spdlog::logger>("mqtt-sink",
                                          std::make_shared<spdlog::sinks::stderr_sink_mt>());
}

std::string UniqueId(const std::string& base) {
  static int n = 0;
  return base + "-" + std::to_string(getpid()) + "-" + std::to_string(++n);
}

}  // namespace

TEST_CASE("MqttSink MQTT 5: events arrive in order, topics expanded, headers as user properties") {
  const Cloud cloud;
  const Router router = MakeRouter();
  MqttReader reader(cloud.Connection("reader", MqttProtocol::kV5, UniqueId("reader")),
                    {"site/#", "cloud/#", "sluice/#"});
  REQUIRE(reader.Start().ok());

  std::unique_ptr<MqttSink> sink;
  constexpr size_t kWindow = 16;
  REQUIRE(MqttSink::Create(SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink"), kWindow),
                           &router, nullptr, Logger(), &sink)
              .ok());
  // Not fed by this upstream, or by no route at all: refused for good, before any connection.
  CHECK(sink->Send(MakeEvent(1, "kafka-only/x")).code() == Status::Code::kInvalidArgument);
  CHECK(sink->Send(MakeEvent(1, "nowhere/x")).code() == Status::Code::kInvalidArgument);

  std::vector<Event> events;
  std::map<std::string, std::vector<uint64_t>> expected;
  uint64_t seq = 100;
  for (int i = 0; i < 400; ++i) {
    const int device = i % 4;
    Event e = MakeEvent(++seq, "devices/dev" + std::to_string(device) + "/telemetry");
    e.retained = i % 50 == 7;
    expected["site/gw-test/dev" + std::to_string(device) + "/telemetry"].push_back(e.seq);
    events.push_back(e);
    if (i % 40 == 0) {
      Event p = MakeEvent(++seq, "plain/a/b");
      p.retained = true;  // the route does not forward RETAIN
      expected["cloud/plain/a/b"].push_back(p.seq);
      events.push_back(p);
    }
  }
  Event gap;
  gap.seq = ++seq;
  gap.kind = sluice::storage::EventKind::kGap;
  gap.gap = {3, 9, 5, 1700000000003, 1700000000009};
  events.push_back(gap);

  Driver driver(*sink, events);
  REQUIRE(driver.RunUntil([&] { return driver.AllDone(); }, 30s));
  CHECK(driver.outcomes_[Delivery::Outcome::kDelivered] == events.size());
  CHECK(driver.max_in_flight_ <= kWindow);
  CHECK(driver.full_ > 0);  // the window was the limit at some point
  CHECK(sink->Connected());
  CHECK(sink->HoldReason().empty());
  CHECK(sink->Connects() == 1);

  REQUIRE(reader.WaitForCount(events.size(), 20s));
  const auto msgs = reader.Messages();
  std::vector<sluice::testing::ReceivedMessage> data;
  const sluice::testing::ReceivedMessage* gap_msg = nullptr;
  for (const auto& m : msgs) {
    if (m.topic == "sluice/gw-test/gaps") {
      gap_msg = &m;
    } else {
      data.push_back(m);
    }
  }
  const OrderCheck check = CheckOrder(data, expected);
  CHECK(check.missing == 0);
  CHECK(check.out_of_order == 0);
  CHECK(check.duplicates == 0);  // no connection was lost

  // Headers of one retained telemetry event, and of an event whose route keeps RETAIN off.
  for (const auto& m : data) {
    const Event& e = events[driver.index_.at(std::stoull(m.payload))];
    CHECK(m.qos == 1);
    CHECK(m.user_properties.at("mqtt.topic") == e.topic);
    CHECK(m.user_properties.at("mqtt.qos") == "1");
    CHECK(m.user_properties.at("sluice.gateway") == "gw-test");
    CHECK(m.user_properties.at("sluice.seq") == std::to_string(e.seq));
    CHECK(m.user_properties.at("sluice.received_ms") == std::to_string(e.received_ms));
    CHECK(m.user_properties.at("sluice.log") == "log-0123");
    CHECK(m.user_properties.count("mqtt.retain") == (e.retained ? 1 : 0));
    const bool forwarded = e.topic.rfind("devices/", 0) == 0;
    CHECK_MESSAGE(m.retained == (e.retained && forwarded), m.topic << " seq " << e.seq);
  }
  REQUIRE(gap_msg != nullptr);
  CHECK(gap_msg->payload ==
        R"({"type":"gap","gateway":"gw-test","log":"log-0123","first_seq":3,"last_seq":9,)"
        R"("count":5,"first_received_ms":1700000000003,"last_received_ms":1700000000009})");
  CHECK(gap_msg->user_properties.at("sluice.gap") == "1");
  CHECK(gap_msg->user_properties.at("sluice.seq") == "9");
}

TEST_CASE("MqttSink MQTT 3.1.1: events arrive in order per topic") {
  const Cloud cloud;
  const Router router = MakeRouter();
  MqttReader reader(cloud.Connection("reader", MqttProtocol::kV311, UniqueId("reader")),
                    {"site/#"});
  REQUIRE(reader.Start().ok());
  std::unique_ptr<MqttSink> sink;
  REQUIRE(MqttSink::Create(SinkOptions(cloud, MqttProtocol::kV311, UniqueId("sink"), 50), &router,
                           nullptr, Logger(), &sink)
              .ok());
  std::vector<Event> events;
  std::map<std::string, std::vector<uint64_t>> expected;
  for (uint64_t seq = 1; seq <= 300; ++seq) {
    const std::string dev = "d" + std::to_string(seq % 3);
    events.push_back(MakeEvent(seq, "devices/" + dev + "/telemetry"));
    expected["site/gw-test/" + dev + "/telemetry"].push_back(seq);
  }
  Driver driver(*sink, events);
  REQUIRE(driver.RunUntil([&] { return sink->Connected(); }, 30s));
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(driver.RunUntil([&] { return driver.AllDone(); }, 30s));
  MESSAGE("300 events confirmed in " << std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - t0)
                                            .count()
                                     << " ms");
  CHECK(driver.max_in_flight_ <= 50);
  // Waits for this case's events, not for a count: the shared broker also hands the reader what
  // the MQTT 5 case left retained under site/gw-test/ (one message on each of four topics), and a
  // count reached with those once ended the wait before the last four events had arrived.
  REQUIRE(WaitFor([&] { return CheckOrder(reader.Messages(), expected).missing == 0; }, 20s));
  const OrderCheck check = CheckOrder(reader.Messages(), expected);
  CHECK(check.missing == 0);
  CHECK(check.out_of_order == 0);
  CHECK(reader.Messages().front().user_properties.empty());
}

TEST_CASE("MqttSink TLS: a broker certificate from an untrusted CA is a hold that says so") {
  const Cloud cloud;
  const Router router = MakeRouter();
  auto options = SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink"));
  options.connection.ca_file = cloud.Tls("other-ca.pem");
  std::unique_ptr<MqttSink> sink;
  REQUIRE(MqttSink::Create(options, &router, nullptr, Logger(), &sink).ok());
  std::vector<Delivery> ds;
  REQUIRE(WaitFor(
      [&] {
        sink->Poll(10ms, &ds);
        return !sink->HoldReason().empty();
      },
      20s, 0ms));
  const std::string reason = sink->HoldReason();
  MESSAGE(reason);
  CHECK(reason.find("TLS") != std::string::npos);
  CHECK(reason.find("tls.ca_file") != std::string::npos);
  // OpenSSL's words for a chain that ends in a CA not in ca_file.
  CHECK(reason.find("does not verify for host '127.0.0.1'") != std::string::npos);
  CHECK((reason.find("self-signed certificate in certificate chain") != std::string::npos ||
         reason.find("unable to get local issuer certificate") != std::string::npos));
  CHECK_FALSE(sink->Connected());
  const Status s = sink->Send(MakeEvent(1, "plain/x"));
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message() == reason);
  CHECK(ds.empty());
}

TEST_CASE(
    "MqttSink TLS: a host name the certificate does not name is refused unless verify is off") {
  const Cloud cloud;
  const Router router = MakeRouter();
  auto options = SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink"));
  // The second listener: same certificate, whose names do not include 127.0.0.2.
  options.connection.url = "ssl://127.0.0.2:" + std::to_string(cloud.port + 1);
  std::unique_ptr<MqttSink> sink;
  REQUIRE(MqttSink::Create(options, &router, nullptr, Logger(), &sink).ok());
  std::vector<Delivery> ds;
  REQUIRE(WaitFor(
      [&] {
        sink->Poll(10ms, &ds);
        return !sink->HoldReason().empty();
      },
      20s, 0ms));
  const std::string reason = sink->HoldReason();
  MESSAGE(reason);
  CHECK(reason.find("host '127.0.0.2'") != std::string::npos);
  CHECK(reason.find("IP address mismatch") != std::string::npos);
  CHECK(reason.find("host-name verification is on") != std::string::npos);
  CHECK_FALSE(sink->Connected());

  // With verification off the same broker is accepted (and the configuration said so).
  options.connection.tls_verify = false;
  options.connection.client_id = UniqueId("sink");
  REQUIRE(MqttSink::Create(options, &router, nullptr, Logger(), &sink).ok());
  Driver driver(*sink, {MakeEvent(1, "plain/x")});
  CHECK(driver.RunUntil([&] { return driver.AllDone(); }, 20s));
  CHECK(sink->HoldReason().empty());
}

TEST_CASE("MqttSink: a wrong password is a hold naming the user and the fix") {
  const Cloud cloud;
  const Router router = MakeRouter();
  for (const MqttProtocol protocol : {MqttProtocol::kV5, MqttProtocol::kV311}) {
    CAPTURE(protocol == MqttProtocol::kV5);
    auto options = SinkOptions(cloud, protocol, UniqueId("sink"));
    options.connection.password = "not-the-password";
    std::unique_ptr<MqttSink> sink;
    REQUIRE(MqttSink::Create(options, &router, nullptr, Logger(), &sink).ok());
    std::vector<Delivery> ds;
    REQUIRE(WaitFor(
        [&] {
          sink->Poll(10ms, &ds);
          return !sink->HoldReason().empty();
        },
        20s, 0ms));
    const std::string reason = sink->HoldReason();
    MESSAGE(reason);
    CHECK(reason.find("user 'sluice'") != std::string::npos);
    CHECK(reason.find("password") != std::string::npos);
    CHECK(reason.find("[upstream.cloud]") != std::string::npos);
    CHECK(reason.find("not-the-password") == std::string::npos);
    CHECK(sink->Send(MakeEvent(1, "plain/x")).code() == Status::Code::kUnavailable);
  }
}

TEST_CASE("MqttSink MQTT 5: a topic the broker's ACL refuses is a hold naming it; others flow") {
  const Cloud cloud;
  const Router router = MakeRouter();
  std::unique_ptr<MqttSink> sink;
  REQUIRE(MqttSink::Create(SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink")), &router,
                           nullptr, Logger(), &sink)
              .ok());
  Driver driver(*sink, {MakeEvent(1, "plain/ok")});
  REQUIRE(driver.RunUntil([&] { return driver.AllDone(); }, 20s));

  REQUIRE(sink->Send(MakeEvent(2, "denied/x")).ok());
  std::vector<Delivery> ds;
  REQUIRE(WaitFor(
      [&] {
        sink->Poll(10ms, &ds);
        return !ds.empty();
      },
      20s, 0ms));
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].seq == 2);
  CHECK(ds[0].outcome == Delivery::Outcome::kHold);
  CHECK(ds[0].error.find("'denied/gw-test/denied/x'") != std::string::npos);
  CHECK(ds[0].error.find("ACL") != std::string::npos);
  CHECK(ds[0].error.find("user 'sluice'") != std::string::npos);
  CHECK(sink->HoldReason() == ds[0].error);
  CHECK(sink->Holds() == 1);

  // Mosquitto 2.0.11 also closes the connection after refusing; events on other topics are
  // delivered (after a reconnect if need be), and the topic's hold stays until it takes one.
  Driver after(*sink, {MakeEvent(3, "plain/ok"), MakeEvent(4, "plain/ok")});
  REQUIRE(after.RunUntil([&] { return after.AllDone(); }, 20s));
  CHECK(after.reported_.at(3) == Delivery::Outcome::kDelivered);
  CHECK(after.reported_.at(4) == Delivery::Outcome::kDelivered);
  CHECK(sink->HoldReason() == ds[0].error);
}

TEST_CASE("MqttSink MQTT 5: a message over the broker's maximum packet size is rejected alone") {
  const Cloud cloud;
  const Router router = MakeRouter();
  std::unique_ptr<MqttSink> sink;
  REQUIRE(MqttSink::Create(SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink")), &router,
                           nullptr, Logger(), &sink)
              .ok());
  Driver driver(*sink, {MakeEvent(1, "plain/a"), MakeEvent(2, "plain/a", Cloud::kMaxPacket + 10),
                        MakeEvent(3, "plain/a", Cloud::kMaxPacket - 1000)});
  REQUIRE(driver.RunUntil([&] { return driver.AllDone(); }, 20s));
  CHECK(driver.reported_.at(1) == Delivery::Outcome::kDelivered);
  CHECK(driver.reported_.at(2) == Delivery::Outcome::kRejected);
  CHECK(driver.reported_.at(3) == Delivery::Outcome::kDelivered);
  CHECK(driver.last_error_.find("maximum packet size") != std::string::npos);
  CHECK(sink->Connects() == 1);  // the broker never saw the large one, so never disconnected
}

TEST_CASE("MqttSink: cloud broker restarts (SIGTERM, SIGKILL) with events in flight lose nothing") {
  const Cloud cloud;
  const Router router = MakeRouter();
  MqttReader reader(cloud.Connection("reader", MqttProtocol::kV5, UniqueId("reader")), {"site/#"});
  REQUIRE(reader.Start().ok());
  std::unique_ptr<MqttSink> sink;
  constexpr size_t kWindow = 200;
  REQUIRE(MqttSink::Create(SinkOptions(cloud, MqttProtocol::kV5, UniqueId("sink"), kWindow),
                           &router, nullptr, Logger(), &sink)
              .ok());
  std::vector<Event> events;
  std::map<std::string, std::vector<uint64_t>> expected;
  constexpr uint64_t kEvents = 6000;
  for (uint64_t seq = 1; seq <= kEvents; ++seq) {
    const std::string dev = "r" + std::to_string(seq % 5);
    events.push_back(MakeEvent(seq, "devices/" + dev + "/telemetry", 200));
    expected["site/gw-test/" + dev + "/telemetry"].push_back(seq);
  }
  Driver driver(*sink, events);
  std::set<uint64_t> confirmed_before_kill;
  for (const bool kill : {false, true}) {
    CAPTURE(kill);
    const size_t done_before = driver.Done();
    REQUIRE(driver.RunUntil(
        [&] { return driver.Done() >= done_before + 1000 && sink->InFlight() >= 10; }, 30s));
    const size_t lost_before = driver.lost_reports_;
    if (kill) {
      // Frozen first, so that the events then sent stay unconfirmed: the window fills with events
      // the broker never acknowledges, and SIGKILL takes them with it.
      const pid_t pid = cloud.Pid();
      REQUIRE(::kill(pid, SIGSTOP) == 0);
      // Frozen, it acknowledges nothing more: once the window stays full through many refusals
      // (each after a Poll), every event in it is one the broker will never confirm.
      const size_t full_at_stop = driver.full_;
      REQUIRE(driver.RunUntil(
          [&] { return driver.full_ >= full_at_stop + 50 && sink->InFlight() >= 10; }, 30s));
      const size_t in_flight = sink->InFlight();
      cloud.Stop(/*kill=*/true);
      // Mosquitto saves its state once a second: what it acknowledged since may die with it (and
      // a reader's connection reset by the kill drops what the kernel still held for it). Those
      // events were confirmed, so no client can send them again; the sink answers only for the
      // ones it was not told were taken.
      for (const auto& [seq, outcome] : driver.reported_) {
        if (outcome == Delivery::Outcome::kDelivered) confirmed_before_kill.insert(seq);
      }
      // The sink reports what was in flight as lost (all at once, or one by one as Paho fails
      // them) and is disconnected.
      const size_t retried_before = driver.retried_events_;
      REQUIRE(driver.RunUntil(
          [&] {
            return driver.lost_reports_ > lost_before ||
                   driver.retried_events_ >= retried_before + in_flight;
          },
          30s));
      MESSAGE(in_flight << " events in flight at SIGKILL reported lost ("
                        << driver.lost_reports_ - lost_before << " at once, "
                        << driver.retried_events_ - retried_before << " one by one)");
    } else {
      // A clean stop may still confirm what it read: every event in flight is either confirmed
      // or reported lost.
      cloud.Stop(/*kill=*/false);
      REQUIRE(driver.RunUntil([&] { return !sink->Connected() && sink->InFlight() == 0; }, 30s));
    }
    CHECK(sink->InFlight() == 0);
    CHECK_FALSE(sink->Connected());
    // Meanwhile Send refuses: nothing is taken that could not be sent.
    driver.Step();
    CHECK(sink->InFlight() == 0);
    CHECK_FALSE(driver.last_unavailable_.empty());
    cloud.Start();
  }
  REQUIRE(driver.RunUntil([&] { return driver.AllDone(); }, 60s));
  CHECK(driver.max_in_flight_ <= kWindow);
  CHECK(sink->Connects() == 3);
  CHECK(driver.outcomes_[Delivery::Outcome::kDelivered] == kEvents);

  // Duplicates may arrive before the last original: wait for every seq the broker can still
  // have, not for a count.
  auto lost_by_sink = [&](const OrderCheck& c) {
    size_t n = 0;
    for (uint64_t seq : c.missing_seqs) n += confirmed_before_kill.count(seq) == 0 ? 1 : 0;
    return n;
  };
  OrderCheck check;
  CHECK(WaitFor(
      [&] {
        check = CheckOrder(reader.Messages(), expected);
        return lost_by_sink(check) == 0;
      },
      30s, 20ms));
  MESSAGE("duplicates after two broker restarts: "
          << check.duplicates
          << "; confirmed by the broker and then lost in its SIGKILL: " << check.missing);
  CHECK(lost_by_sink(check) == 0);
  CHECK(check.out_of_order == 0);
}
