// SPDX-License-Identifier: Apache-2.0

// KafkaSink with delivery = exactly-once against librdkafka's mock cluster.
//
// What the mock (librdkafka 2.0.2) cannot serve, and how these tests live with it:
// - CreateTopics: the checkpoint topic is created with rd_kafka_mock_topic_create first (the sink
//   then finds it by metadata). Creating it compacted is tested against a real broker.
// - Transaction markers: EndTxn writes no control record and a read_committed fetch also returns
//   what an abort left behind. So an aborted transaction is made here by a produce request the
//   mock refuses as a whole (it appends nothing of it), never by a failed EndTxn after the
//   checkpoint was written, which the mock would show to the checkpoint reader as committed. What
//   read_committed readers see is tested against a real broker (tests/integration/exactly_once).

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "connectors/kafka_checkpoint.h"
#include "connectors/kafka_sink.h"
#include "gateway/forwarder.h"
#include "storage/sqlite_event_log.h"
#include "tests/connectors/kafka_sink_test_util.h"
#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::testing {
namespace {

using connectors::Checkpoint;
using connectors::KafkaDelivery;
using Outcome = Delivery::Outcome;

constexpr const char* kCheckpointTopic = "sluice.checkpoints";
constexpr const char* kCheckpointKey = "gw-test/kafka";

// An exactly-once sink on the mock cluster, with the checkpoint topic the mock cannot create.
struct EosFixture {
  explicit EosFixture(const Clock* sink_clock = nullptr) : clock(sink_clock) {
    rd_kafka_mock_topic_create(mc.get(), "t", 1, 1);
    rd_kafka_mock_topic_create(mc.get(), kCheckpointTopic, 1, 1);
    options = Options(mc.bootstraps());
    options.delivery = KafkaDelivery::kExactlyOnce;
    options.transaction_timeout_ms = 10000;
  }

  void Create() {
    Status s = KafkaSink::Create(options, &router, clock, NullLogger(), &sink);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }

  // Polls until the sink took its first event (seq `e.seq`): transactions are set up and the
  // checkpoint was read back. With a still clock, time is moved on between tries so that the
  // sink's backoff lets a failed setup call be made again.
  void SendFirst(const storage::Event& e, ManualClock* still_clock = nullptr) {
    std::vector<Delivery> none;
    REQUIRE(WaitFor(
        [&] {
          Status s = sink->Send(e);
          if (s.ok()) return true;
          CHECK_MESSAGE(s.code() == Status::Code::kUnavailable, s.ToString());
          sink->Poll(20ms, &none);
          if (still_clock != nullptr) still_clock->Advance(1s);
          return false;
        },
        30s, 1ms));
    CHECK(none.empty());
  }

  // Writes a committed checkpoint record as an earlier run (or an earlier transaction) would have.
  void SeedCheckpoint(const Checkpoint& c) {
    const std::string value = connectors::EncodeCheckpoint(c);
    Produce(kCheckpointTopic, kCheckpointKey, value);
  }

  void Produce(const std::string& topic, const std::string& key, const std::string& value) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", mc.bootstraps(), err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    REQUIRE(p);
    REQUIRE(p->produce(topic, 0, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                       value.size(), key.data(), key.size(), 0, nullptr) == RdKafka::ERR_NO_ERROR);
    REQUIRE(p->flush(10000) == RdKafka::ERR_NO_ERROR);
  }

  // Records in partition 0 of `topic` (the mock writes no transaction markers, so its high
  // watermark is the number of records).
  int64_t Records(const std::string& topic) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", mc.bootstraps(), err);
    std::unique_ptr<RdKafka::Producer> p(RdKafka::Producer::create(conf.get(), err));
    REQUIRE(p);
    int64_t low = 0;
    int64_t high = -1;
    REQUIRE(p->query_watermark_offsets(topic, 0, &low, &high, 10000) == RdKafka::ERR_NO_ERROR);
    return high;
  }

  // The value of the last record keyed as this upstream's checkpoint, read from the start of the
  // checkpoint topic apart from the sink's own reader.
  std::optional<Checkpoint> LastCheckpoint() {
    const int64_t end = Records(kCheckpointTopic);
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    conf->set("bootstrap.servers", mc.bootstraps(), err);
    std::unique_ptr<RdKafka::Consumer> consumer(RdKafka::Consumer::create(conf.get(), err));
    REQUIRE(consumer);
    std::unique_ptr<RdKafka::Topic> t(
        RdKafka::Topic::create(consumer.get(), kCheckpointTopic, nullptr, err));
    REQUIRE(t);
    REQUIRE(consumer->start(t.get(), 0, RdKafka::Topic::OFFSET_BEGINNING) == RdKafka::ERR_NO_ERROR);
    std::optional<Checkpoint> last;
    int64_t next = 0;
    REQUIRE(WaitFor(
        [&] {
          std::unique_ptr<RdKafka::Message> m(consumer->consume(t.get(), 0, 50));
          if (m && m->err() == RdKafka::ERR_NO_ERROR) {
            next = m->offset() + 1;
            Checkpoint c;
            if (m->key() != nullptr && *m->key() == kCheckpointKey &&
                connectors::DecodeCheckpoint(
                    std::string_view(static_cast<const char*>(m->payload()), m->len()), &c)) {
              last = c;
            }
          }
          return next >= end;
        },
        20s, 1ms));
    consumer->stop(t.get(), 0);
    return last;
  }

  MockCluster mc{1};
  const Router router = MakeRouter();
  const Clock* clock;
  KafkaSinkOptions options;
  std::unique_ptr<KafkaSink> sink;
};

std::map<uint64_t, std::vector<Outcome>> BySeq(const std::vector<Delivery>& ds) {
  std::map<uint64_t, std::vector<Outcome>> out;
  for (const Delivery& d : ds) out[d.seq].push_back(d.outcome);
  return out;
}

std::vector<uint64_t> Seqs(const std::vector<Delivery>& ds, Outcome o) {
  std::vector<uint64_t> out;
  for (const Delivery& d : ds) {
    if (d.outcome == o) out.push_back(d.seq);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t seq = first; seq <= last; ++seq) v.push_back(seq);
  return v;
}

TEST_CASE("KafkaSink exactly-once reports events delivered only at the commit, all in one batch") {
  ManualClock clock;  // still: the transaction commits when the test moves time on
  EosFixture f(&clock);
  f.options.transaction_interval_ms = 1000;
  f.Create();
  f.SendFirst(MakeEvent(1, "dev/t/x"), &clock);
  for (uint64_t seq = 2; seq <= 10; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());

  // Kafka holds every record of the open transaction, acknowledged to the producer; the sink
  // still reports none of them.
  std::vector<Delivery> ds;
  REQUIRE(WaitFor(
      [&] {
        f.sink->Poll(20ms, &ds);
        return f.Records("t") == 10;
      },
      20s, 1ms));
  for (int i = 0; i < 20; ++i) f.sink->Poll(5ms, &ds);
  CHECK(ds.empty());
  CHECK(f.sink->InFlight() == 10);
  CHECK_FALSE(f.LastCheckpoint().has_value());

  // The interval has passed: the next poll commits and reports the whole transaction at once.
  clock.Advance(1s);
  f.sink->Poll(20ms, &ds);
  CHECK(Seqs(ds, Outcome::kDelivered) == Range(1, 10));
  CHECK(ds.size() == 10);
  CHECK(f.sink->InFlight() == 0);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->log_id == "log-0123");
  CHECK(checkpoint->seq == 10);
  CHECK(f.sink->error().ok());
}

TEST_CASE("KafkaSink exactly-once commits once the transaction holds transaction_max_events") {
  ManualClock clock;  // still: only the size bound can end the transaction
  EosFixture f(&clock);
  f.options.transaction_max_events = 5;
  f.options.transaction_interval_ms = 60000;
  f.Create();
  f.SendFirst(MakeEvent(1, "dev/t/x"), &clock);
  for (uint64_t seq = 2; seq <= 5; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());
  const Status full = f.sink->Send(MakeEvent(6, "dev/t/x"));
  CHECK(full.code() == Status::Code::kFull);
  CHECK(f.sink->InFlight() == 5);

  std::vector<Delivery> ds;
  f.sink->Poll(20ms, &ds);
  CHECK(Seqs(ds, Outcome::kDelivered) == Range(1, 5));
  CHECK(ds.size() == 5);
  REQUIRE(f.sink->Send(MakeEvent(6, "dev/t/x")).ok());  // a new transaction
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == 5);
  CHECK(f.Records("t") >= 5);
}

TEST_CASE("KafkaSink exactly-once settles events up to the checkpoint without producing them") {
  EosFixture f;
  f.options.transaction_interval_ms = 20;
  f.SeedCheckpoint({"log-0123", 5});
  f.Create();
  f.SendFirst(MakeEvent(1, "dev/t/x"));
  for (uint64_t seq = 2; seq <= 8; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*f.sink, &ds, [](const auto& v) { return v.size() >= 8; }));
  CHECK(ds.size() == 8);
  CHECK(Seqs(ds, Outcome::kDelivered) == Range(1, 8));
  // Only 6..8 were produced: 1..5 are in Kafka from the earlier run.
  CHECK(f.Records("t") == 3);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == 8);
}

TEST_CASE("KafkaSink exactly-once does not apply the checkpoint of another log") {
  EosFixture f;
  f.options.transaction_interval_ms = 20;
  // A log re-created on this gateway (a new identity) starts its sequence numbers again.
  f.SeedCheckpoint({"log-old-9999", 50});
  f.Create();
  f.SendFirst(MakeEvent(1, "dev/t/x"));
  for (uint64_t seq = 2; seq <= 8; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());
  std::vector<Delivery> ds;
  REQUIRE(PollUntil(*f.sink, &ds, [](const auto& v) { return v.size() >= 8; }));
  CHECK(Seqs(ds, Outcome::kDelivered) == Range(1, 8));
  CHECK(f.Records("t") == 8);  // none skipped
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->log_id == "log-0123");
  CHECK(checkpoint->seq == 8);
}

TEST_CASE(
    "KafkaSink exactly-once settles the transaction in doubt after a rebuild by the checkpoint") {
  ManualClock clock;
  EosFixture f(&clock);
  f.options.transaction_interval_ms = 1000;
  f.Create();
  f.SendFirst(MakeEvent(1, "dev/t/x"), &clock);
  for (uint64_t seq = 2; seq <= 6; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());
  std::vector<Delivery> ds;
  REQUIRE(WaitFor(
      [&] {
        f.sink->Poll(20ms, &ds);
        return f.Records("t") == 6;
      },
      20s, 1ms));
  REQUIRE(ds.empty());
  // What the checkpoint says when the transaction's commit got through although the producer
  // failed before it learnt so: committed through 4 (here written beside the sink).
  f.SeedCheckpoint({"log-0123", 4});

  f.sink->InjectFatalErrorForTesting();
  REQUIRE(WaitFor(
      [&] {
        f.sink->Poll(20ms, &ds);
        clock.Advance(1s);  // lets a setup call that failed be tried again
        return ds.size() >= 6;
      },
      30s, 1ms));
  CHECK(ds.size() == 6);
  const auto by_seq = BySeq(ds);
  for (uint64_t seq = 1; seq <= 6; ++seq) {
    REQUIRE(by_seq.count(seq) == 1);
    CHECK_MESSAGE(
        by_seq.at(seq) == std::vector<Outcome>{seq <= 4 ? Outcome::kDelivered : Outcome::kRetry},
        "seq ", seq);
  }
  CHECK(f.sink->InFlight() == 0);
  CHECK(f.sink->error().ok());

  // An event up to the checkpoint sent again is settled without a record; the others go out.
  const int64_t before = f.Records("t");
  ds.clear();
  for (uint64_t seq = 3; seq <= 6; ++seq) REQUIRE(f.sink->Send(MakeEvent(seq, "dev/t/x")).ok());
  clock.Advance(1s);
  REQUIRE(PollUntil(*f.sink, &ds, [](const auto& v) { return v.size() >= 4; }));
  CHECK(Seqs(ds, Outcome::kDelivered) == Range(3, 6));
  CHECK(f.Records("t") == before + 2);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == 6);
}

// Passes every call to a KafkaSink and keeps each report, for a test that drives a forwarder.
class RecordingSink final : public connectors::Sink {
 public:
  explicit RecordingSink(connectors::Sink* sink) : sink_(sink) {}
  Status Send(const storage::Event& event) override { return sink_->Send(event); }
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override {
    const size_t before = out->size();
    sink_->Poll(timeout, out);
    std::lock_guard<std::mutex> lock(mu_);
    reports_.insert(reports_.end(), out->begin() + static_cast<std::ptrdiff_t>(before), out->end());
  }
  size_t InFlight() const override { return sink_->InFlight(); }
  bool Connected() const override { return sink_->Connected(); }
  std::string HoldReason() const override { return sink_->HoldReason(); }
  Status error() const override { return sink_->error(); }
  const std::string& name() const override { return sink_->name(); }

  std::vector<Delivery> Reports() const {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }

 private:
  connectors::Sink* const sink_;  // borrowed; outlives this
  mutable std::mutex mu_;
  std::vector<Delivery> reports_;  // GUARDED_BY(mu_)
};

// A log at `dir`, `max_bytes` large, that drops its oldest events when full if `drop_oldest`.
std::unique_ptr<storage::SqliteEventLog> OpenLog(const TempDir& dir,
                                                 uint64_t max_bytes = uint64_t{1} << 30,
                                                 bool drop_oldest = false) {
  storage::SqliteEventLogOptions lo;
  lo.path = dir.File("events.db");
  lo.logger = NullLogger();
  lo.max_bytes = max_bytes;
  lo.overflow = drop_oldest ? storage::Overflow::kDropOldest : storage::Overflow::kRejectNew;
  std::unique_ptr<storage::SqliteEventLog> log;
  REQUIRE(storage::SqliteEventLog::Open(lo, &log).ok());
  return log;
}

// Appends `n` QoS 1 events on the MQTT `topic`, each with a payload of `bytes`.
void AppendEvents(storage::SqliteEventLog* log, int n, const std::string& topic = "dev/t/x",
                  size_t bytes = 1) {
  std::vector<storage::Event> events(static_cast<size_t>(n));
  for (auto& e : events) {
    e.topic = topic;
    e.payload = std::string(bytes, 'p');
    e.qos = 1;
  }
  size_t appended = 0;
  REQUIRE(log->Append(events, &appended).ok());
  REQUIRE(appended == events.size());
}

// A log at `dir` holding `n` QoS 1 events on the route's topic.
std::unique_ptr<storage::SqliteEventLog> LogWithEvents(const TempDir& dir, int n) {
  std::unique_ptr<storage::SqliteEventLog> log = OpenLog(dir);
  AppendEvents(log.get(), n);
  return log;
}

// A forwarder that acknowledges, waits and backs off from a hold briefly, for tests of seconds.
gateway::ForwarderOptions QuickForwarding() {
  gateway::ForwarderOptions fo;
  fo.ack_interval = 10ms;
  fo.idle_wait = 10ms;
  fo.hold_backoff_min = 20ms;
  fo.hold_backoff_max = 200ms;
  return fo;
}

// Checks that each of `seqs` was reported delivered exactly once and never refused for good.
void CheckDeliveredOnce(const std::vector<Delivery>& reports, const std::vector<uint64_t>& seqs) {
  const auto by_seq = BySeq(reports);
  for (uint64_t seq : seqs) {
    const auto it = by_seq.find(seq);
    REQUIRE_MESSAGE(it != by_seq.end(), "seq ", seq, " never reported");
    const auto& outcomes = it->second;
    CHECK_MESSAGE(std::count(outcomes.begin(), outcomes.end(), Outcome::kDelivered) == 1, "seq ",
                  seq);
    CHECK_MESSAGE(outcomes.back() == Outcome::kDelivered, "seq ", seq);
    CHECK_MESSAGE(std::count(outcomes.begin(), outcomes.end(), Outcome::kRejected) == 0, "seq ",
                  seq);
    CHECK_MESSAGE(std::count(outcomes.begin(), outcomes.end(), Outcome::kTooLarge) == 0, "seq ",
                  seq);
  }
}

TEST_CASE("KafkaSink exactly-once aborts on a failed record: all retried, then delivered once") {
  constexpr int kEvents = 20;
  TempDir dir;
  std::unique_ptr<storage::SqliteEventLog> log = LogWithEvents(dir, kEvents);

  EosFixture f;
  f.options.transaction_interval_ms = 50;
  f.options.log_id = log->LogId();
  f.Create();
  // Setting up transactions and reading the checkpoint back produce nothing: the first produce
  // request is the first transaction's. It fails as a whole, which makes the transaction
  // abortable.
  f.mc.PushProduceErrors(RD_KAFKA_RESP_ERR_UNKNOWN_PRODUCER_ID, 1);

  RecordingSink recording(f.sink.get());
  gateway::ForwarderOptions fo = QuickForwarding();
  gateway::Forwarder fwd(log.get(), &recording, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return log->Stats().cursor == kEvents; }, 30s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(log->Stats().dead_letters == 0);

  const auto reports = recording.Reports();
  const auto by_seq = BySeq(reports);
  size_t retried = 0;
  for (uint64_t seq = 1; seq <= kEvents; ++seq) {
    REQUIRE(by_seq.count(seq) == 1);
    const auto& outcomes = by_seq.at(seq);
    // Delivered exactly once, last; before that only retries (the aborted transaction).
    CHECK_MESSAGE(std::count(outcomes.begin(), outcomes.end(), Outcome::kDelivered) == 1, "seq ",
                  seq);
    CHECK(outcomes.back() == Outcome::kDelivered);
    if (outcomes.size() > 1) retried++;
    for (size_t i = 0; i + 1 < outcomes.size(); ++i) CHECK(outcomes[i] == Outcome::kRetry);
  }
  CHECK(retried >= 1);  // the aborted transaction's events came back as kRetry
  CHECK(fwd.Stats().resent >= retried);
  // An aborted transaction's events are retried together: the retried seqs are a prefix.
  for (uint64_t seq = 1; seq <= retried; ++seq) CHECK(by_seq.at(seq).size() == 2);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->log_id == log->LogId());
  CHECK(checkpoint->seq == kEvents);
}

// A broker too slow for every request with transactions under way: the open transaction fails and
// aborts once Kafka answers again, and every event is then sent and committed once.
TEST_CASE(
    "KafkaSink exactly-once: a broker too slow to answer aborts the transaction, then all is "
    "resent once") {
  constexpr int kEvents = 2000;
  TempDir dir;
  std::unique_ptr<storage::SqliteEventLog> log = LogWithEvents(dir, kEvents);

  EosFixture f;
  f.options.transaction_interval_ms = 50;
  f.options.transaction_timeout_ms = 1000;
  f.options.log_id = log->LogId();
  f.Create();

  gateway::ForwarderOptions fo = QuickForwarding();
  fo.max_in_flight = 100;  // several transactions, so that one is open when the broker goes
  gateway::Forwarder fwd(log.get(), f.sink.get(), fo, NullLogger());
  fwd.Start();
  // Transactions are set up before the broker turns slow.
  REQUIRE(WaitFor([&] { return fwd.Stats().sent > 0; }, 30s));
  // Slower than every request's timeout: records and commit time out.
  rd_kafka_mock_broker_set_rtt(f.mc.get(), 1, 3000);
  REQUIRE(WaitFor([&] { return !f.sink->Connected(); }, 30s));
  rd_kafka_mock_broker_set_rtt(f.mc.get(), 1, 0);
  REQUIRE(WaitFor([&] { return log->Stats().cursor == kEvents; }, 60s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(f.sink->TransactionsCommitted() >= 1);
  CHECK(f.sink->TransactionsAborted() >= 1);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == kEvents);
}

// Waits until the forwarder's loop completed a whole pass, a poll of its sink included, that began
// after this call.
void WaitForPass(const gateway::Forwarder& fwd) {
  // Each pass stamps its end: the second stamp after this call is of a pass begun after the first.
  for (int i = 0; i < 2; ++i) {
    const int64_t last = fwd.Stats().last_progress_ms;
    REQUIRE(WaitFor([&] { return fwd.Stats().last_progress_ms != last; }, 10s));
  }
}

// The route's topic does not exist and the cluster creates none by itself: the forwarder holds its
// events, naming the topic, also past the end of a transaction's interval; once the topic is
// created every event is committed once.
TEST_CASE("KafkaSink exactly-once holds a missing topic, then delivers every event once") {
  constexpr int kEvents = 10;
  TempDir dir;
  std::unique_ptr<storage::SqliteEventLog> log = OpenLog(dir);
  AppendEvents(log.get(), kEvents, "dev/missing/x");

  // The sink's time runs with real time, and ahead of it when the test moves it on.
  ManualClock clock(ManualClock::Mode::kRealTime);
  EosFixture f(&clock);
  // The mock cluster creates any topic asked for (with partitions of its own choosing): a topic of
  // one partition, whose metadata answer is what a cluster without it gives.
  rd_kafka_mock_topic_create(f.mc.get(), "missing", 1, 1);
  rd_kafka_mock_topic_set_error(f.mc.get(), "missing", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  // Long enough that a refused record dooms its transaction before the checkpoint record is
  // written: the mock would show that record of an aborted transaction to the checkpoint reader.
  f.options.transaction_interval_ms = 1000;
  f.options.log_id = log->LogId();
  f.Create();
  RecordingSink recording(f.sink.get());
  gateway::Forwarder fwd(log.get(), &recording, QuickForwarding(), NullLogger());
  fwd.Start();
  REQUIRE(
      WaitFor([&] { return fwd.Stats().hold_reason.find("'missing'") != std::string::npos; }, 15s));
  REQUIRE(WaitFor([&] { return fwd.Stats().holds >= 3; }, 15s));
  // Offered again and again while a transaction's interval passes: still nothing is delivered.
  clock.Advance(2s);
  WaitForPass(fwd);
  WaitForPass(fwd);
  CHECK(fwd.Stats().hold_reason.find("'missing'") != std::string::npos);
  CHECK(log->Stats().cursor == 0);
  CHECK(log->Stats().dead_letters == 0);
  CHECK(Seqs(recording.Reports(), Outcome::kDelivered).empty());
  CHECK_FALSE(f.LastCheckpoint().has_value());
  CHECK(f.sink->error().ok());

  // Created.
  rd_kafka_mock_topic_set_error(f.mc.get(), "missing", RD_KAFKA_RESP_ERR_NO_ERROR);
  REQUIRE(WaitFor(
      [&] {
        clock.Advance(50ms);  // each transaction ends after a few polls
        return log->Stats().cursor == kEvents;
      },
      15s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(fwd.Stats().hold_reason.empty());
  CHECK(log->Stats().dead_letters == 0);
  CHECK(fwd.Stats().rejected == 0);
  CheckDeliveredOnce(recording.Reports(), Range(1, kEvents));
  CHECK(f.Records("missing") == kEvents);
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->log_id == log->LogId());
  CHECK(checkpoint->seq == kEvents);
}

// An event larger than message.max.bytes is refused by the producer itself and goes to the
// dead-letter table; every other event is committed once. It comes alone after a commit, so that
// it is the first of a transaction, and nothing follows it for longer than the transaction's
// interval.
TEST_CASE("KafkaSink exactly-once dead-letters an event too large alone, the rest once") {
  constexpr uint64_t kLarge = 8;
  constexpr uint64_t kEvents = 20;
  TempDir dir;
  std::unique_ptr<storage::SqliteEventLog> log = OpenLog(dir);
  AppendEvents(log.get(), kLarge - 1);

  ManualClock clock(ManualClock::Mode::kRealTime);
  EosFixture f(&clock);
  f.options.transaction_interval_ms = 1000;
  f.options.log_id = log->LogId();
  f.options.properties["message.max.bytes"] = "4096";
  f.Create();
  RecordingSink recording(f.sink.get());
  gateway::Forwarder fwd(log.get(), &recording, QuickForwarding(), NullLogger());
  fwd.Start();
  auto settled_through = [&](uint64_t seq) {
    return WaitFor(
        [&] {
          clock.Advance(50ms);  // each transaction ends after a few polls
          return log->Stats().cursor == seq;
        },
        15s);
  };
  REQUIRE(settled_through(kLarge - 1));
  AppendEvents(log.get(), 1, "dev/t/x", 8192);
  REQUIRE(settled_through(kLarge));
  CHECK(log->Stats().dead_letters == 1);
  clock.Advance(2s);
  WaitForPass(fwd);
  AppendEvents(log.get(), static_cast<int>(kEvents - kLarge));
  REQUIRE(settled_through(kEvents));
  fwd.Stop();
  CHECK(fwd.error().ok());

  CHECK(log->Stats().dead_letters == 1);
  CHECK(fwd.Stats().rejected == 1);
  std::vector<storage::DeadLetterRow> dead;
  REQUIRE(log->ReadDeadLetters(0, 10, &dead).ok());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].event.seq == kLarge);
  CHECK(dead[0].upstream == "kafka");

  const auto reports = recording.Reports();
  CHECK(BySeq(reports).count(kLarge) == 0);  // refused at Send: never in a transaction
  std::vector<uint64_t> others = Range(1, kEvents);
  others.erase(others.begin() + static_cast<std::ptrdiff_t>(kLarge - 1));
  CheckDeliveredOnce(reports, others);
  CHECK(Seqs(reports, Outcome::kDelivered) == others);
  CHECK(f.Records("t") == static_cast<int64_t>(kEvents - 1));
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == kEvents);
}

// The log dropped its oldest events before Kafka took any: the gap marker in their place goes out
// as one gap record, in a transaction with the events after it.
TEST_CASE("KafkaSink exactly-once sends a gap marker once as a gap record") {
  constexpr int kEvents = 30;
  // "dev/t/x" with payload "p"; room for 10 of them and the gap marker the drop leaves.
  constexpr uint64_t kEventBytes = 8 + storage::Event::kRowOverheadBytes;
  TempDir dir;
  std::unique_ptr<storage::SqliteEventLog> log =
      OpenLog(dir, 10 * kEventBytes + 200, /*drop_oldest=*/true);
  for (int i = 0; i < kEvents; ++i) AppendEvents(log.get(), 1);
  const storage::LogStats before = log->Stats();
  REQUIRE(before.last_seq == kEvents);
  REQUIRE(before.dropped_events > 0);
  REQUIRE(before.cursor == 0);
  std::vector<storage::Event> head;
  REQUIRE(log->Read(0, 1, SIZE_MAX, &head).ok());
  REQUIRE(head.size() == 1);
  REQUIRE(head[0].kind == storage::EventKind::kGap);
  const uint64_t marker = head[0].seq;  // the highest dropped seq

  EosFixture f;
  rd_kafka_mock_topic_create(f.mc.get(), f.options.gap_topic.c_str(), 1, 1);
  f.options.transaction_interval_ms = 50;
  f.options.log_id = log->LogId();
  f.Create();
  RecordingSink recording(f.sink.get());
  gateway::Forwarder fwd(log.get(), &recording, QuickForwarding(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return log->Stats().cursor == kEvents; }, 15s));
  fwd.Stop();
  CHECK(fwd.error().ok());

  CHECK(fwd.Stats().gap_records == 1);
  CHECK(fwd.Stats().delivered == kEvents - marker);
  CHECK(log->Stats().dead_letters == 0);
  CHECK(f.Records(f.options.gap_topic) == 1);
  CHECK(f.Records("t") == static_cast<int64_t>(kEvents - marker));
  const auto reports = recording.Reports();
  CHECK(Seqs(reports, Outcome::kDelivered) == Range(marker, kEvents));
  CheckDeliveredOnce(reports, Range(marker, kEvents));
  const auto checkpoint = f.LastCheckpoint();
  REQUIRE(checkpoint.has_value());
  CHECK(checkpoint->seq == kEvents);
}

}  // namespace
}  // namespace sluice::testing
