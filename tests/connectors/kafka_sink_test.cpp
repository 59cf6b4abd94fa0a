// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_sink.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "connectors/kafka_error_model.h"
#include "tests/connectors/kafka_sink_test_util.h"
#include "tests/test_util.h"

using namespace std::chrono_literals;
using sluice::Status;
using sluice::connectors::Delivery;
using sluice::connectors::KafkaSink;
using sluice::connectors::KafkaSinkOptions;
using sluice::connectors::Route;
using sluice::connectors::Router;
using sluice::testing::WaitFor;
using namespace sluice::testing;  // the sink tests' mock cluster and helpers

namespace {

// Sends `e` as the forwarder does for a held event: again after every refusal, until delivered.
bool SendUntilDelivered(KafkaSink& sink, const sluice::storage::Event& e,
                        std::vector<Delivery>* all) {
  bool in_flight = false;
  return WaitFor(
      [&] {
        if (!in_flight) in_flight = sink.Send(e).ok();
        std::vector<Delivery> got;
        sink.Poll(20ms, &got);
        bool delivered = false;
        for (const Delivery& d : got) {
          if (d.seq != e.seq) continue;
          if (d.outcome == Delivery::Outcome::kDelivered) delivered = true;
          in_flight = false;
        }
        all->insert(all->end(), got.begin(), got.end());
        return delivered;
      },
      20s, 1ms);
}

struct Record {
  std::string key;
  std::string payload;
  std::map<std::string, std::string> headers;
};

// Reads `count` records of partition 0 of `topic` from the start.
std::vector<Record> Consume(const std::string& brokers, const std::string& topic, size_t count) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, err);
  std::unique_ptr<RdKafka::Consumer> consumer(RdKafka::Consumer::create(conf.get(), err));
  REQUIRE(consumer);
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(consumer.get(), topic, nullptr, err));
  REQUIRE(t);
  REQUIRE(consumer->start(t.get(), 0, RdKafka::Topic::OFFSET_BEGINNING) == RdKafka::ERR_NO_ERROR);
  std::vector<Record> out;
  WaitFor(
      [&] {
        std::unique_ptr<RdKafka::Message> m(consumer->consume(t.get(), 0, 50));
        if (m && m->err() == RdKafka::ERR_NO_ERROR) {
          Record r;
          r.payload.assign(static_cast<const char*>(m->payload()), m->len());
          if (m->key() != nullptr) r.key = *m->key();
          if (RdKafka::Headers* h = m->headers()) {
            for (const auto& hd : h->get_all()) {
              r.headers[hd.key()] =
                  std::string(static_cast<const char*>(hd.value()), hd.value_size());
            }
          }
          out.push_back(std::move(r));
        }
        return out.size() >= count;
      },
      20s, 1ms);
  consumer->stop(t.get(), 0);
  return out;
}

}  // namespace

TEST_CASE("Kafka error model: each code once, and docs/kafka-records.md lists the same classes") {
  using sluice::connectors::KafkaErrorClassName;
  std::map<std::string, std::string> code_table;
  for (const auto& rule : sluice::connectors::KafkaErrorModel()) {
    CHECK_MESSAGE(code_table.count(rule.name) == 0, rule.name);
    code_table[rule.name] = KafkaErrorClassName(rule.cls);
    CHECK(std::string(sluice::connectors::ClassifyKafkaError(rule.code).name) == rule.name);
  }
  const auto& def = sluice::connectors::KafkaDefaultErrorRule();
  code_table[def.name] = KafkaErrorClassName(def.cls);
  // Never dead-letter on a guess.
  CHECK(def.cls == sluice::connectors::KafkaErrorClass::kHold);
  CHECK(sluice::connectors::ClassifyKafkaError(RdKafka::ERR_UNKNOWN_TOPIC_OR_PART).cls ==
        sluice::connectors::KafkaErrorClass::kHold);

  std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/docs/kafka-records.md");
  REQUIRE(in);
  std::string line;
  bool in_section = false;
  std::map<std::string, std::string> doc_table;
  // Rows of the section's table: | `ERR_A`, `ERR_B` | class | ... |
  const std::regex row(R"(^\| *([^|]*?) *\| *(transient|hold|rejected|too large) *\|)");
  const std::regex code(R"(`([A-Z_]+|\(any other\))`)");
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) in_section = line == "## Error model";
    std::smatch m;
    if (!in_section || !std::regex_search(line, m, row)) continue;
    const std::string codes = m[1].str();
    const std::string cls = m[2].str();
    for (auto it = std::sregex_iterator(codes.begin(), codes.end(), code);
         it != std::sregex_iterator(); ++it) {
      const std::string name = (*it)[1].str();
      CHECK_MESSAGE(doc_table.count(name) == 0, name);
      doc_table[name] = cls;
    }
  }
  CHECK(doc_table == code_table);
}

TEST_CASE("KafkaSink delivers through transient broker errors, in order, with its headers") {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
  mc.PushProduceErrors(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, 3);
  mc.PushProduceErrors(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 2);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  constexpr uint64_t kEvents = 50;
  for (uint64_t seq = 1; seq <= kEvents; ++seq) {
    auto e = MakeEvent(seq, "dev/t/x");
    e.retained = seq % 2 == 0;
    REQUIRE(sink->Send(e).ok());
  }
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*sink, &ds, [&](const auto& v) { return v.size() >= kEvents; }));
  CHECK(Count(ds, Delivery::Outcome::kDelivered) == kEvents);
  for (size_t i = 0; i < ds.size(); ++i) CHECK(ds[i].seq == i + 1);  // one partition: in order
  CHECK(sink->HoldReason().empty());
  CHECK(sink->InFlight() == 0);

  const auto records = Consume(mc.bootstraps(), "t", kEvents);
  REQUIRE(records.size() == kEvents);
  for (size_t i = 0; i < records.size(); ++i) {
    const uint64_t seq = i + 1;
    const auto want = MakeEvent(seq, "dev/t/x");
    CHECK(records[i].key == "dev/t/x");  // the route's key pattern has no capture
    CHECK(records[i].payload == want.payload);
    CHECK(records[i].headers.size() == (seq % 2 == 0 ? 7u : 6u));
    CHECK(records[i].headers.at(sluice::connectors::kHeaderMqttTopic) == "dev/t/x");
    CHECK(records[i].headers.at(sluice::connectors::kHeaderMqttQos) == "1");
    CHECK(records[i].headers.at(sluice::connectors::kHeaderGateway) == "gw-test");
    CHECK(records[i].headers.at(sluice::connectors::kHeaderReceivedMs) ==
          std::to_string(want.received_ms));
    CHECK(records[i].headers.at(sluice::connectors::kHeaderSeq) == std::to_string(seq));
    CHECK(records[i].headers.at(sluice::connectors::kHeaderLogId) == "log-0123");
    CHECK(records[i].headers.count(sluice::connectors::kHeaderMqttRetain) ==
          (seq % 2 == 0 ? 1 : 0));
    if (seq % 2 == 0) CHECK(records[i].headers.at(sluice::connectors::kHeaderMqttRetain) == "1");
  }
}

TEST_CASE("KafkaSink holds a missing topic, says what to do, and delivers once it is created") {
  MockCluster mc(1);
  // The mock cluster creates any topic asked for; its metadata answer is what a cluster without
  // the topic (and without automatic creation) gives.
  rd_kafka_mock_topic_set_error(mc.get(), "missing", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  const auto e = MakeEvent(1, "dev/missing/x");
  // Refused at Send once librdkafka knows the topic is missing, or in a report before that.
  std::vector<Delivery> ds;
  bool held = false;
  REQUIRE(WaitFor(
      [&] {
        Status s = sink->Send(e);
        if (!s.ok()) {
          CHECK(s.code() == Status::Code::kUnavailable);  // never InvalidArgument: no dead letter
          held = true;
        }
        sink->Poll(20ms, &ds);
        held = held || Count(ds, Delivery::Outcome::kHold) > 0;
        return held;
      },
      20s, 1ms));
  CHECK(Count(ds, Delivery::Outcome::kRejected) == 0);
  const std::string reason = sink->HoldReason();
  CHECK(reason.find("'missing'") != std::string::npos);
  CHECK(reason.find("create the topic") != std::string::npos);
  CHECK(sink->Holds() == 1);
  PollUntil(*sink, &ds, [&](const auto&) { return sink->InFlight() == 0; });

  rd_kafka_mock_topic_set_error(mc.get(), "missing", RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Delivery> after;
  CHECK(SendUntilDelivered(*sink, e, &after));
  CHECK(sink->HoldReason().empty());
  CHECK(Count(after, Delivery::Outcome::kRejected) == 0);
}

TEST_CASE("KafkaSink holds on an authorization refusal and delivers once it is lifted") {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "acl", 1, 1);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  // Let the producer get its id first, so that the refusal is the produce request's.
  std::vector<Delivery> ds;
  CHECK(SendUntilDelivered(*sink, MakeEvent(1, "dev/acl/x"), &ds));
  mc.PushProduceErrors(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 1);
  REQUIRE(sink->Send(MakeEvent(2, "dev/acl/x")).ok());
  ds.clear();
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return !v.empty(); }));
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].seq == 2);
  CHECK(ds[0].outcome == Delivery::Outcome::kHold);
  CHECK(ds[0].error.find("'acl'") != std::string::npos);
  CHECK(ds[0].error.find("WRITE and DESCRIBE") != std::string::npos);
  CHECK(sink->HoldReason() == ds[0].error);
  CHECK(sink->Holds() == 1);

  std::vector<Delivery> after;
  CHECK(SendUntilDelivered(*sink, MakeEvent(2, "dev/acl/x"), &after));
  CHECK(sink->HoldReason().empty());
}

TEST_CASE("KafkaSink rejects a record the broker refuses as invalid") {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  std::vector<Delivery> ds;
  CHECK(SendUntilDelivered(*sink, MakeEvent(1, "dev/t/x"), &ds));
  mc.PushProduceErrors(RD_KAFKA_RESP_ERR_INVALID_RECORD, 1);
  REQUIRE(sink->Send(MakeEvent(2, "dev/t/x")).ok());
  ds.clear();
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return !v.empty(); }));
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].seq == 2);
  CHECK(ds[0].outcome == Delivery::Outcome::kRejected);
  CHECK(sink->HoldReason().empty());
}

TEST_CASE("KafkaSink reports a too-large batch as kTooLarge and refuses an event too large alone") {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
  const Router router = MakeRouter();
  auto options = Options(mc.bootstraps());
  options.properties["message.max.bytes"] = "4096";
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(options, &router, nullptr, sluice::testing::NullLogger(), &sink).ok());
  std::vector<Delivery> ds;
  CHECK(SendUntilDelivered(*sink, MakeEvent(1, "dev/t/x"), &ds));

  mc.PushProduceErrors(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 1);
  REQUIRE(sink->Send(MakeEvent(2, "dev/t/x")).ok());
  ds.clear();
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return !v.empty(); }));
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].outcome == Delivery::Outcome::kTooLarge);

  // librdkafka's own check of the one record: too large on its own, refused before sending.
  Status s = sink->Send(MakeEvent(3, "dev/t/x", 8192));
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(sink->InFlight() == 0);
}

TEST_CASE("KafkaSink reports per-event failures in a batch, out of order across partitions") {
  MockCluster mc(2);
  rd_kafka_mock_topic_create(mc.get(), "good", 1, 1);
  rd_kafka_mock_topic_create(mc.get(), "bad", 1, 1);
  rd_kafka_mock_partition_set_leader(mc.get(), "good", 0, 1);
  rd_kafka_mock_partition_set_leader(mc.get(), "bad", 0, 2);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  std::vector<Delivery> ds;
  CHECK(SendUntilDelivered(*sink, MakeEvent(1, "dev/good/x"), &ds));
  CHECK(SendUntilDelivered(*sink, MakeEvent(2, "dev/bad/x"), &ds));

  // Broker 2 (partition "bad") refuses every record at once; broker 1 answers slowly.
  for (int i = 0; i < 50; ++i) {
    rd_kafka_mock_broker_push_request_error_rtts(mc.get(), 2, kProduceApi, 1,
                                                 RD_KAFKA_RESP_ERR_INVALID_RECORD, 0);
  }
  rd_kafka_mock_broker_set_rtt(mc.get(), 1, 300);
  constexpr uint64_t kFirst = 3, kLast = 42;
  for (uint64_t seq = kFirst; seq <= kLast; ++seq) {
    REQUIRE(sink->Send(MakeEvent(seq, seq % 2 == 1 ? "dev/good/x" : "dev/bad/x")).ok());
  }
  ds.clear();
  REQUIRE(PollUntil(*sink, &ds, [&](const auto& v) { return v.size() >= kLast - kFirst + 1; }));
  std::set<uint64_t> seen;
  for (const Delivery& d : ds) {
    CHECK(seen.insert(d.seq).second);  // each reported exactly once
    CHECK(d.outcome ==
          (d.seq % 2 == 1 ? Delivery::Outcome::kDelivered : Delivery::Outcome::kRejected));
  }
  CHECK(seen.size() == kLast - kFirst + 1);
  std::vector<uint64_t> order;
  for (const Delivery& d : ds) order.push_back(d.seq);
  CHECK_FALSE(std::is_sorted(order.begin(), order.end()));
  // Within one partition the reports keep the sequence order.
  std::vector<uint64_t> good;
  for (uint64_t s : order) {
    if (s % 2 == 1) good.push_back(s);
  }
  CHECK(std::is_sorted(good.begin(), good.end()));
}

TEST_CASE("KafkaSink holds while no broker answers") {
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  // A port nothing listens on: connections are refused at once.
  REQUIRE(KafkaSink::Create(Options("127.0.0.1:1"), &router, nullptr, sluice::testing::NullLogger(),
                            &sink)
              .ok());
  REQUIRE(sink->Send(MakeEvent(1, "dev/t/x")).ok());
  std::vector<Delivery> ds;
  CHECK(PollUntil(*sink, &ds, [&](const auto&) { return !sink->HoldReason().empty(); }));
  CHECK(sink->HoldReason().find("no broker answers") != std::string::npos);
  CHECK(ds.empty());
}

TEST_CASE(
    "KafkaSink fails through error() when a producer rebuild fails, never on a null producer") {
  sluice::testing::TempDir dir;
  const std::string ca = dir.File("rotated-ca.pem");
  std::filesystem::copy_file("/etc/ssl/certs/ca-certificates.crt", ca);
  const Router router = MakeRouter();
  auto options = Options("127.0.0.1:1");
  options.properties["security.protocol"] = "ssl";
  options.properties["ssl.ca.location"] = ca;
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(options, &router, nullptr, sluice::testing::NullLogger(), &sink).ok());
  CHECK(sink->error().ok());

  // The CA file goes away (a botched rotation), then the producer must be rebuilt.
  std::filesystem::remove(ca);
  sink->InjectFatalErrorForTesting();
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*sink, &ds, [&](const auto&) { return !sink->error().ok(); }));
  const std::string msg(sink->error().message());
  CHECK(msg.find(ca) == std::string::npos);  // no property value in the error
  CHECK_MESSAGE(msg.find("rebuild") != std::string::npos, msg);
  CHECK_MESSAGE(msg.find("ssl.ca.location") != std::string::npos, msg);  // names the key
  CHECK(Count(ds, Delivery::Outcome::kRetry) == 1);

  // Every method stays safe without a producer.
  CHECK_FALSE(sink->Send(MakeEvent(1, "dev/t/x")).ok());
  ds.clear();
  sink->Poll(10ms, &ds);
  sink->Drain(10ms, &ds);
  CHECK(ds.empty());
  CHECK(sink->InFlight() == 0);
  CHECK_FALSE(sink->Connected());
}

TEST_CASE("KafkaSink::Create names the key, never the value, when librdkafka refuses a property") {
  sluice::testing::TempDir dir;
  const std::string secret_path = dir.File("no-such-ca-s3cr3t.pem");
  const Router router = MakeRouter();
  auto options = Options("127.0.0.1:1");
  options.properties["security.protocol"] = "ssl";
  options.properties["ssl.ca.location"] = secret_path;  // librdkafka reads it at creation
  std::unique_ptr<KafkaSink> sink;
  const Status s =
      KafkaSink::Create(options, &router, nullptr, sluice::testing::NullLogger(), &sink);
  REQUIRE_FALSE(s.ok());
  const std::string msg(s.message());
  CHECK_MESSAGE(msg.find(secret_path) == std::string::npos, msg);
  CHECK_MESSAGE(msg.find("s3cr3t") == std::string::npos, msg);
  CHECK_MESSAGE(msg.find("ssl.ca.location") != std::string::npos, msg);
}

TEST_CASE("KafkaSink sends a gap marker as a gap record on the gap topic, in order with events") {
  MockCluster mc(1);
  rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
  rd_kafka_mock_topic_create(mc.get(), "sluice.gaps", 1, 1);
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options(mc.bootstraps()), &router, nullptr,
                            sluice::testing::NullLogger(), &sink)
              .ok());
  sluice::storage::Event gap;
  gap.seq = 20;  // the marker row's seq: what the cursor passes once the record is confirmed
  gap.kind = sluice::storage::EventKind::kGap;
  gap.gap = {2, 19, 17, 1700000000002, 1700000000019};
  REQUIRE(sink->Send(MakeEvent(1, "dev/t/x")).ok());
  REQUIRE(sink->Send(gap).ok());
  REQUIRE(sink->Send(MakeEvent(21, "dev/t/x")).ok());
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return v.size() >= 3; }));
  CHECK(Count(ds, Delivery::Outcome::kDelivered) == 3);
  std::set<uint64_t> seqs;
  for (const Delivery& d : ds) seqs.insert(d.seq);
  CHECK(seqs == std::set<uint64_t>{1, 20, 21});

  const auto records = Consume(mc.bootstraps(), "sluice.gaps", 1);
  REQUIRE(records.size() == 1);
  CHECK(records[0].key == "gw-test");
  CHECK(records[0].payload ==
        R"({"type":"gap","gateway":"gw-test","log":"log-0123","first_seq":2,"last_seq":19,)"
        R"("count":17,"first_received_ms":1700000000002,"last_received_ms":1700000000019})");
  const std::map<std::string, std::string> headers = {{"sluice.gap", "1"},
                                                      {"sluice.gateway", "gw-test"},
                                                      {"sluice.log", "log-0123"},
                                                      {"sluice.seq", "19"}};
  CHECK(records[0].headers == headers);
  CHECK(Consume(mc.bootstraps(), "t", 2).size() == 2);
}

TEST_CASE("KafkaSink holds a gap record whose gap topic is missing, naming that topic") {
  MockCluster mc(1);
  rd_kafka_mock_topic_set_error(mc.get(), "no.gaps", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  const Router router = MakeRouter();
  auto options = Options(mc.bootstraps());
  options.gap_topic = "no.gaps";
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(options, &router, nullptr, sluice::testing::NullLogger(), &sink).ok());
  sluice::storage::Event gap;
  gap.seq = 5;
  gap.kind = sluice::storage::EventKind::kGap;
  gap.gap = {1, 4, 4, 1, 4};
  std::vector<Delivery> ds;
  bool held = false;
  REQUIRE(WaitFor(
      [&] {
        Status s = sink->Send(gap);
        if (!s.ok()) {
          CHECK(s.code() == Status::Code::kUnavailable);
          held = true;
        }
        sink->Poll(20ms, &ds);
        held = held || Count(ds, Delivery::Outcome::kHold) > 0;
        return held;
      },
      20s, 1ms));
  CHECK(Count(ds, Delivery::Outcome::kRejected) == 0);
  CHECK(sink->HoldReason().find("'no.gaps'") != std::string::npos);
  PollUntil(*sink, &ds, [&](const auto&) { return sink->InFlight() == 0; });

  rd_kafka_mock_topic_set_error(mc.get(), "no.gaps", RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Delivery> after;
  CHECK(SendUntilDelivered(*sink, gap, &after));
  CHECK(sink->HoldReason().empty());
}

namespace {
class ManualClock final : public sluice::Clock {
 public:
  int64_t NowUnixMillis() const override { return 1700000000000; }
  std::chrono::steady_clock::time_point Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(std::chrono::milliseconds d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};
}  // namespace

TEST_CASE("KafkaSink spaces producer rebuilds by its backoff on the injected clock") {
  ManualClock clock;
  const Router router = MakeRouter();
  std::unique_ptr<KafkaSink> sink;
  REQUIRE(KafkaSink::Create(Options("127.0.0.1:1"), &router, &clock, sluice::testing::NullLogger(),
                            &sink)
              .ok());
  sink->InjectFatalErrorForTesting();
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return !v.empty(); }));
  CHECK(Count(ds, Delivery::Outcome::kRetry) == 1);  // the first rebuild is at once

  // A second fatal error at the same (frozen) time waits for the backoff: no rebuild however
  // often the forwarder polls, until the clock passes the backoff's ceiling.
  sink->InjectFatalErrorForTesting();
  ds.clear();
  for (int i = 0; i < 20; ++i) sink->Poll(5ms, &ds);
  CHECK(ds.empty());
  clock.Advance(std::chrono::seconds(31));
  REQUIRE(PollUntil(*sink, &ds, [](const auto& v) { return !v.empty(); }));
  CHECK(Count(ds, Delivery::Outcome::kRetry) == 1);
  CHECK(sink->error().ok());
}
