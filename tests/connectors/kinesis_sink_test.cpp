// SPDX-License-Identifier: Apache-2.0

// KinesisSink against a scripted transport (no network): what each PutRecords request carries,
// how partial failures keep the order per partition key, and how each error is mapped. The record
// frame is read back with the verifier's own decoder (firmware-sim/verify_kinesis_reader.h).

#include "connectors/kinesis_sink.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>

#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base64.h"
#include "connectors/kinesis_record.h"
#include "firmware-sim/verify_kinesis_reader.h"
#include "tests/manual_clock.h"

namespace sluice::connectors {
namespace {

using namespace std::chrono_literals;
using Outcome = Delivery::Outcome;

// One request as the sink sent it: the stream and, per record, partition key and decoded data.
struct SentRequest {
  std::string action;
  std::string stream;
  std::vector<std::string> keys;
  std::vector<std::string> data;
};

// Answers each call with the next scripted answer; PutRecords without a script accepts all.
class FakeTransport final : public AwsJsonTransport {
 public:
  struct Shared {
    std::vector<SentRequest> sent;
    // Each: a whole answer, or per-record error codes ("" = accepted) of a 200 answer.
    std::deque<AwsResponse> answers;
    std::deque<std::vector<std::string>> record_errors;
  };
  explicit FakeTransport(Shared* shared) : shared_(shared) {}

  AwsResponse Call(std::string_view action, const std::string& body) override {
    SentRequest req;
    req.action = std::string(action);
    const nlohmann::json j = nlohmann::json::parse(body);
    if (action == "PutRecords") {
      req.stream = j.at("StreamName").get<std::string>();
      for (const auto& r : j.at("Records")) {
        req.keys.push_back(r.at("PartitionKey").get<std::string>());
        std::string data;
        REQUIRE(Base64Decode(r.at("Data").get<std::string>(), &data));
        req.data.push_back(std::move(data));
      }
    }
    shared_->sent.push_back(req);
    if (!shared_->answers.empty()) {
      AwsResponse r = shared_->answers.front();
      shared_->answers.pop_front();
      return r;
    }
    AwsResponse r;
    r.http_status = 200;
    if (action != "PutRecords") {
      r.body = "{}";
      return r;
    }
    std::vector<std::string> errors(req.keys.size());
    if (!shared_->record_errors.empty()) {
      errors = shared_->record_errors.front();
      shared_->record_errors.pop_front();
      REQUIRE(errors.size() == req.keys.size());
    }
    nlohmann::json records = nlohmann::json::array();
    int failed = 0;
    for (const std::string& e : errors) {
      if (e.empty()) {
        records.push_back({{"SequenceNumber", "1"}, {"ShardId", "shardId-000000000000"}});
      } else {
        failed++;
        records.push_back({{"ErrorCode", e}, {"ErrorMessage", "scripted"}});
      }
    }
    r.body = nlohmann::json{{"FailedRecordCount", failed}, {"Records", records}}.dump();
    return r;
  }
  const std::string& endpoint() const override { return endpoint_; }

 private:
  Shared* shared_;
  const std::string endpoint_ = "https://kinesis.test";
};

AwsResponse ErrorAnswer(long status, const std::string& type) {
  AwsResponse r;
  r.http_status = status;
  r.error_type = type;
  r.error_message = "scripted " + type;
  return r;
}

struct Harness {
  testing::ManualClock clock;
  FakeTransport::Shared shared;
  Router router{MakeRoutes()};
  std::unique_ptr<KinesisSink> sink;

  static std::vector<Route> MakeRoutes() {
    Route r;
    r.mqtt_filter = "devices/+/telemetry";
    r.upstream_topic = "telemetry";
    REQUIRE(KeyPattern::Parse("devices/{device}/#", &r.key).ok());
    return {r};
  }

  explicit Harness(size_t batch_records = 500) {
    KinesisSinkOptions o;
    o.name = "stream";
    o.region = "eu-west-1";
    o.gateway_id = "gw-1";
    o.log_id = "log-1";
    o.batch_records = batch_records;
    o.max_pending = std::max<size_t>(batch_records, 100);
    o.retry_min = 100ms;
    o.retry_max = 100ms;
    auto logger =
        std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
    REQUIRE(KinesisSink::Create(o, &router, &clock, logger,
                                std::make_unique<FakeTransport>(&shared), &sink)
                .ok());
  }

  static storage::Event Event(uint64_t seq, const std::string& device,
                              const std::string& payload = "") {
    storage::Event e;
    e.seq = seq;
    e.topic = "devices/" + device + "/telemetry";
    e.payload = payload.empty() ? "p" + std::to_string(seq) : payload;
    e.qos = 1;
    e.received_ms = 1000 + static_cast<int64_t>(seq);
    return e;
  }

  // One Poll after the backoff: what it reported.
  std::vector<Delivery> Poll() {
    clock.Advance(200ms);
    std::vector<Delivery> out;
    sink->Poll(0ms, &out);
    return out;
  }

  // The seqs of the records one PutRecords carried, from their sluice.seq headers.
  static std::vector<uint64_t> Seqs(const SentRequest& r) {
    std::vector<uint64_t> seqs;
    for (const std::string& d : r.data) {
      sim::KinesisRecordData decoded;
      REQUIRE(sim::DecodeKinesisRecordData(d, &decoded));
      REQUIRE(decoded.log_seq.has_value());
      seqs.push_back(*decoded.log_seq);
    }
    return seqs;
  }
  std::vector<SentRequest> Puts() const {
    std::vector<SentRequest> puts;
    for (const SentRequest& r : shared.sent) {
      if (r.action == "PutRecords") puts.push_back(r);
    }
    return puts;
  }
};

std::vector<uint64_t> DeliveredSeqs(const std::vector<Delivery>& ds) {
  std::vector<uint64_t> seqs;
  for (const Delivery& d : ds) {
    if (d.outcome == Outcome::kDelivered) seqs.push_back(d.seq);
  }
  return seqs;
}

TEST_CASE("KinesisSink sends one record per partition key in a request, in seq order") {
  Harness h;
  const char* devices[] = {"a", "a", "b", "c", "b", "a"};
  for (uint64_t seq = 1; seq <= 6; ++seq)
    REQUIRE(h.sink->Send(Harness::Event(seq, devices[seq - 1])).ok());
  CHECK(h.sink->InFlight() == 6);
  std::vector<Delivery> all;
  for (int i = 0; i < 3; ++i) {
    auto got = h.Poll();
    all.insert(all.end(), got.begin(), got.end());
  }
  const auto puts = h.Puts();
  REQUIRE(puts.size() == 3);
  CHECK(Harness::Seqs(puts[0]) == std::vector<uint64_t>{1, 3, 4});
  // The partition key is the capture of the route's key pattern.
  CHECK(puts[0].keys == std::vector<std::string>{"a", "b", "c"});
  CHECK(Harness::Seqs(puts[1]) == std::vector<uint64_t>{2, 5});
  CHECK(Harness::Seqs(puts[2]) == std::vector<uint64_t>{6});
  CHECK(puts[0].stream == "telemetry");
  CHECK(DeliveredSeqs(all) == std::vector<uint64_t>{1, 3, 4, 2, 5, 6});
  CHECK(h.sink->InFlight() == 0);
  CHECK(h.sink->Connected());
}

TEST_CASE("KinesisSink sends a throttled record again before any later record of its key") {
  Harness h;
  // a1 b1 a2 b2: the first request carries a1 and b1; Kinesis throttles a1 and stores b1.
  const char* devices[] = {"a", "b", "a", "b"};
  for (uint64_t seq = 1; seq <= 4; ++seq)
    REQUIRE(h.sink->Send(Harness::Event(seq, devices[seq - 1])).ok());
  h.shared.record_errors.push_back({"ProvisionedThroughputExceededException", ""});
  auto first = h.Poll();
  CHECK(DeliveredSeqs(first) == std::vector<uint64_t>{2});
  CHECK(h.sink->Throttled() == 1);
  // Backing off: a Poll before the backoff ends sends nothing.
  std::vector<Delivery> none;
  h.sink->Poll(0ms, &none);
  CHECK(none.empty());
  CHECK(h.Puts().size() == 1);
  // Next: a1 again (not a2, which must wait for it) and b2.
  auto second = h.Poll();
  auto puts = h.Puts();
  REQUIRE(puts.size() == 2);
  CHECK(Harness::Seqs(puts[1]) == std::vector<uint64_t>{1, 4});
  CHECK(DeliveredSeqs(second) == std::vector<uint64_t>{1, 4});
  auto third = h.Poll();
  puts = h.Puts();
  REQUIRE(puts.size() == 3);
  CHECK(Harness::Seqs(puts[2]) == std::vector<uint64_t>{3});
  CHECK(DeliveredSeqs(third) == std::vector<uint64_t>{3});
  CHECK(h.sink->HoldReason().empty());
}

TEST_CASE("KinesisSink: throttling and InternalFailure for whole requests are retried in order") {
  Harness h;
  for (uint64_t seq = 1; seq <= 3; ++seq) REQUIRE(h.sink->Send(Harness::Event(seq, "a")).ok());
  h.shared.answers.push_back(ErrorAnswer(400, "ProvisionedThroughputExceededException"));
  h.shared.answers.push_back(ErrorAnswer(500, "InternalFailure"));
  CHECK(h.Poll().empty());
  CHECK(h.sink->Throttled() == 1);
  CHECK(h.sink->Connected());
  CHECK(h.Poll().empty());
  CHECK_FALSE(h.sink->Connected());
  std::vector<uint64_t> delivered;
  for (int i = 0; i < 3; ++i) {
    for (uint64_t s : DeliveredSeqs(h.Poll())) delivered.push_back(s);
  }
  CHECK(delivered == std::vector<uint64_t>{1, 2, 3});
  CHECK(h.sink->Connected());
  for (const SentRequest& r : h.Puts()) CHECK(r.keys.size() == 1);
}

TEST_CASE("KinesisSink: no answer at all is retried and the upstream shows as not connected") {
  Harness h;
  REQUIRE(h.sink->Send(Harness::Event(1, "a")).ok());
  AwsResponse none;
  none.http_status = 0;
  none.transport_error = "Connection refused";
  h.shared.answers.push_back(none);
  CHECK(h.Poll().empty());
  CHECK_FALSE(h.sink->Connected());
  CHECK(h.sink->InFlight() == 1);
  CHECK(DeliveredSeqs(h.Poll()) == std::vector<uint64_t>{1});
  CHECK(h.sink->Connected());
}

TEST_CASE(
    "KinesisSink holds every pending event on a missing stream, refused credentials or an "
    "unknown error") {
  struct Case {
    AwsResponse answer;
    std::string says;
  };
  const Case cases[] = {
      {ErrorAnswer(400, "ResourceNotFoundException"), "create it"},
      {ErrorAnswer(400, "UnrecognizedClientException"), "credentials_file"},
      {ErrorAnswer(403, "AccessDeniedException"), "kinesis:PutRecords"},
      {ErrorAnswer(400, "InvalidSignatureException"), "credentials_file"},
      {ErrorAnswer(400, "KMSDisabledException"), "KMS"},
      {ErrorAnswer(400, "SomethingNewException"), "does not know this error"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.answer.error_type);
    Harness h;
    REQUIRE(h.sink->Send(Harness::Event(1, "a")).ok());
    REQUIRE(h.sink->Send(Harness::Event(2, "b")).ok());
    h.shared.answers.push_back(c.answer);
    const auto got = h.Poll();
    REQUIRE(got.size() == 1);
    CHECK(got[0].seq == 0);
    CHECK(got[0].outcome == Outcome::kHold);
    CHECK(got[0].error.find(c.says) != std::string::npos);
    CHECK(h.sink->HoldReason() == got[0].error);
    CHECK(h.sink->Holds() == 1);
    CHECK(h.sink->InFlight() == 0);
    // The forwarder offers the first event again; accepted, the hold ends.
    REQUIRE(h.sink->Send(Harness::Event(1, "a")).ok());
    CHECK(DeliveredSeqs(h.Poll()) == std::vector<uint64_t>{1});
    CHECK(h.sink->HoldReason().empty());
  }
}

TEST_CASE(
    "KinesisSink: an unknown per-record error holds; the records stored with it are "
    "reported delivered") {
  Harness h;
  REQUIRE(h.sink->Send(Harness::Event(1, "a")).ok());
  REQUIRE(h.sink->Send(Harness::Event(2, "b")).ok());
  h.shared.record_errors.push_back({"", "KMSThrottlingException"});
  const auto got = h.Poll();
  REQUIRE(got.size() == 2);
  CHECK(got[0].seq == 1);
  CHECK(got[0].outcome == Outcome::kDelivered);
  CHECK(got[1].seq == 0);
  CHECK(got[1].outcome == Outcome::kHold);
  CHECK(h.sink->InFlight() == 0);
}

TEST_CASE("KinesisSink dead-letters a record over 1 MiB before sending it") {
  Harness h;
  REQUIRE(h.sink->Send(Harness::Event(1, "a", std::string(1024 * 1024, 'x'))).ok());
  REQUIRE(h.sink->Send(Harness::Event(2, "a")).ok());
  std::vector<Delivery> got;
  h.sink->Poll(0ms, &got);
  REQUIRE(got.size() == 2);
  CHECK(got[0].seq == 1);
  CHECK(got[0].outcome == Outcome::kRejected);
  CHECK(got[0].error.find("1048576") != std::string::npos);
  CHECK(got[1].seq == 2);
  CHECK(got[1].outcome == Outcome::kDelivered);
  // Only the second was sent.
  REQUIRE(h.Puts().size() == 1);
  CHECK(Harness::Seqs(h.Puts()[0]) == std::vector<uint64_t>{2});
  // Below the limit with the frame and the key, a large record goes.
  REQUIRE(h.sink->Send(Harness::Event(3, "a", std::string(1024 * 1024 - 512, 'y'))).ok());
  CHECK(DeliveredSeqs(h.Poll()) == std::vector<uint64_t>{3});
}

TEST_CASE("KinesisSink frames sluice's headers in front of the payload, byte for byte") {
  Harness h;
  const std::string payload("\x00\x01binary\xff\n", 10);
  REQUIRE(h.sink->Send(Harness::Event(7, "dev-9", payload)).ok());
  h.Poll();
  const auto puts = h.Puts();
  REQUIRE(puts.size() == 1);
  const std::string& data = puts[0].data[0];
  CHECK(data.substr(0, 4) == kKinesisRecordMagic);
  sim::KinesisRecordData d;
  REQUIRE(sim::DecodeKinesisRecordData(data, &d));
  CHECK(d.payload == payload);
  CHECK(d.log_seq == 7u);
  CHECK(d.log_id == "log-1");
  CHECK_FALSE(d.gap);
  const uint32_t n = static_cast<unsigned char>(data[4]) << 24 |
                     static_cast<unsigned char>(data[5]) << 16 |
                     static_cast<unsigned char>(data[6]) << 8 | static_cast<unsigned char>(data[7]);
  const auto headers = nlohmann::json::parse(data.substr(8, n));
  CHECK(headers.at("mqtt.topic") == "devices/dev-9/telemetry");
  CHECK(headers.at("sluice.gateway") == "gw-1");
  CHECK(headers.at("sluice.received_ms") == "1007");
  CHECK(puts[0].keys[0] == "dev-9");
  CHECK_FALSE(sim::DecodeKinesisRecordData("not a frame", &d));
}

TEST_CASE("KinesisSink sends gap records to the gap stream, keyed by the gateway id") {
  Harness h;
  storage::Event gap;
  gap.seq = 12;
  gap.kind = storage::EventKind::kGap;
  gap.gap = {5, 12, 8, 100, 200};
  REQUIRE(h.sink->Send(gap).ok());
  CHECK(DeliveredSeqs(h.Poll()) == std::vector<uint64_t>{12});
  const auto puts = h.Puts();
  REQUIRE(puts.size() == 1);
  CHECK(puts[0].stream == "sluice-gaps");
  CHECK(puts[0].keys[0] == "gw-1");
  sim::KinesisRecordData d;
  REQUIRE(sim::DecodeKinesisRecordData(puts[0].data[0], &d));
  CHECK(d.gap);
  CHECK(d.log_seq == 12u);
  const auto value = nlohmann::json::parse(d.payload);
  CHECK(value.at("first_seq") == 5);
  CHECK(value.at("count") == 8);
}

TEST_CASE("KinesisSink probes the endpoint while idle, so that Connected() is true before events") {
  Harness h;
  CHECK_FALSE(h.sink->Connected());
  std::vector<Delivery> got;
  h.sink->Poll(0ms, &got);
  CHECK(h.sink->Connected());
  REQUIRE(h.shared.sent.size() == 1);
  CHECK(h.shared.sent[0].action == "ListStreams");
  // Once reached, an idle sink sends nothing.
  h.sink->Poll(0ms, &got);
  CHECK(h.shared.sent.size() == 1);
}

TEST_CASE("KinesisSink: Send says Full beyond max_pending and a request takes batch_records") {
  Harness h(2);
  for (uint64_t seq = 1; seq <= 100; ++seq) {
    REQUIRE(h.sink->Send(Harness::Event(seq, "d" + std::to_string(seq))).ok());
  }
  CHECK(h.sink->Send(Harness::Event(101, "x")).code() == Status::Code::kFull);
  h.Poll();
  REQUIRE(h.Puts().size() == 1);
  CHECK(h.Puts()[0].keys.size() == 2);
}

}  // namespace
}  // namespace sluice::connectors
