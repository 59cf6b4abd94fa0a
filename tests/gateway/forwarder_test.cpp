// SPDX-License-Identifier: Apache-2.0

#include "gateway/forwarder.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include "storage/sqlite_event_log.h"
#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using connectors::Delivery;
using sluice::testing::ManualClock;
using sluice::testing::NullLogger;
using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// A sink that confirms every event at the next poll and remembers what it confirmed.
class ConfirmingSink final : public connectors::Sink {
 public:
  Status Send(const storage::Event& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (reject_seq_ == event.seq) return Status::InvalidArgument("refused for the test");
    if (unavailable_) return Status::Unavailable("unavailable for the test");
    pending_.push_back(event.seq);
    return Status::Ok();
  }
  void Poll(std::chrono::milliseconds, std::vector<connectors::Delivery>* out) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (unavailable_) {
      // As KafkaSink reports a producer it rebuilt (e.g. after an authorization failure).
      out->push_back({0, connectors::Delivery::Outcome::kRetry, "rebuilt for the test"});
      retries_++;
    }
    for (uint64_t seq : pending_) {
      out->push_back({seq, connectors::Delivery::Outcome::kDelivered, ""});
      delivered_.push_back(seq);
    }
    pending_.clear();
  }
  size_t InFlight() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return pending_.size();
  }
  bool Connected() const override { return true; }
  std::string HoldReason() const override { return {}; }
  const std::string& name() const override { return name_; }

  std::vector<uint64_t> Delivered() const {
    std::lock_guard<std::mutex> lock(mu_);
    return delivered_;
  }
  void SetUnavailable(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    unavailable_ = on;
  }
  int Retries() const {
    std::lock_guard<std::mutex> lock(mu_);
    return retries_;
  }
  void RejectSeq(uint64_t seq) {
    std::lock_guard<std::mutex> lock(mu_);
    reject_seq_ = seq;
  }

 private:
  mutable std::mutex mu_;
  std::vector<uint64_t> pending_;    // GUARDED_BY(mu_)
  std::vector<uint64_t> delivered_;  // GUARDED_BY(mu_)
  uint64_t reject_seq_ = 0;          // GUARDED_BY(mu_)
  bool unavailable_ = false;         // GUARDED_BY(mu_)
  int retries_ = 0;                  // GUARDED_BY(mu_)
  const std::string name_ = "test sink";
};

// Passes every call to the real log; the test logs below override what they hook.
class ForwardingLog : public storage::EventLog {
 public:
  explicit ForwardingLog(storage::EventLog* log) : log_(log) {}
  Status Append(std::span<storage::Event> events, size_t* appended) override {
    return log_->Append(events, appended);
  }
  Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
              std::vector<storage::Event>* out) override {
    return log_->Read(after_seq, max_events, max_bytes, out);
  }
  Status Acknowledge(std::string_view cursor, uint64_t through_seq) override {
    return log_->Acknowledge(cursor, through_seq);
  }
  Status CursorPosition(std::string_view cursor, uint64_t* seq) const override {
    return log_->CursorPosition(cursor, seq);
  }
  Status DeadLetter(std::string_view cursor, const storage::Event& event,
                    std::string_view error) override {
    return log_->DeadLetter(cursor, event, error);
  }
  bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) override {
    return log_->WaitForEventsAfter(after_seq, timeout);
  }
  Status PendingReplays(std::vector<storage::ReplayRequest>* out) override {
    return log_->PendingReplays(out);
  }
  Status AdvanceReplay(int64_t id, uint64_t position, bool done) override {
    return log_->AdvanceReplay(id, position, done);
  }
  Status Sync() override { return log_->Sync(); }
  uint64_t SyncedIngress() const override { return log_->SyncedIngress(); }
  storage::LogStats Stats() const override { return log_->Stats(); }

 protected:
  storage::EventLog* const log_;
};

// The real log, except that while `disk_full` is set, storing the cursor or a dead letter fails
// the way SQLite does on a full disk.
class DiskFullLog final : public ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;
  Status Acknowledge(std::string_view cursor, uint64_t through_seq) override {
    if (disk_full) {
      refused++;
      return Status::Full("database or disk is full");
    }
    return log_->Acknowledge(cursor, through_seq);
  }
  Status DeadLetter(std::string_view cursor, const storage::Event& event,
                    std::string_view error) override {
    if (disk_full) {
      refused++;
      return Status::Full("database or disk is full");
    }
    return log_->DeadLetter(cursor, event, error);
  }

  std::atomic<bool> disk_full{false};
  std::atomic<int> refused{0};
};

// An upstream whose answers the test scripts. At each Poll a rule decides, for every event in
// flight, what becomes of it; the sink records every Send (with what was in flight then) and the
// order in which the upstream took events.
class ScriptedSink final : public connectors::Sink {
 public:
  enum class Reply { kDeliver, kKeep, kRetry, kRetryAll, kHold, kTooLarge, kReject };
  struct Attempt {
    uint64_t seq;
    int attempt;                         // 1 for the first Send of this seq
    int polls;                           // polls since this attempt was sent
    const std::vector<uint64_t>& batch;  // every seq in flight at this poll
  };
  using Rule = std::function<Reply(const Attempt&)>;
  struct Sent {
    uint64_t seq;
    size_t in_flight_before;  // events in flight when it was sent
  };
  static constexpr const char* kHoldError = "topic 't' does not exist: create it";

  Status Send(const storage::Event& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    send_calls_++;
    if (!send_status_.ok()) return send_status_;
    for (const Flight& f : in_flight_) {
      if (f.seq == event.seq) overlaps_++;  // sent again while the original is in flight
    }
    sent_.push_back({event.seq, in_flight_.size()});
    in_flight_.push_back({event.seq, ++attempts_[event.seq], 0});
    cv_.notify_all();
    return Status::Ok();
  }
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override {
    std::unique_lock<std::mutex> lock(mu_);
    polls_++;
    // Like librdkafka: waits up to `timeout` for the first report.
    if (!Answer(out) && timeout.count() > 0) {
      cv_.wait_for(lock, timeout);
      Answer(out);
    }
  }
  size_t InFlight() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_.size();
  }
  bool Connected() const override { return true; }
  std::string HoldReason() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return hold_reason_;
  }
  Status error() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  const std::string& name() const override { return name_; }

  void SetRule(Rule rule) {
    std::lock_guard<std::mutex> lock(mu_);
    rule_ = std::move(rule);
    cv_.notify_all();
  }
  void SetSendStatus(Status s, std::string hold_reason) {
    std::lock_guard<std::mutex> lock(mu_);
    send_status_ = std::move(s);
    hold_reason_ = std::move(hold_reason);
  }
  void SetError(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(s);
  }
  std::vector<Sent> SentLog() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  std::vector<uint64_t> SentSeqs() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> seqs;
    for (const Sent& s : sent_) seqs.push_back(s.seq);
    return seqs;
  }
  std::vector<uint64_t> Upstream() const {
    std::lock_guard<std::mutex> lock(mu_);
    return upstream_;
  }
  // True if the upstream took every event from `first` through `last`.
  bool TookAllThrough(uint64_t first, uint64_t last) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t seq = first; seq <= last; ++seq) {
      if (taken_.count(seq) == 0) return false;
    }
    return true;
  }
  int overlaps() const {
    std::lock_guard<std::mutex> lock(mu_);
    return overlaps_;
  }
  int polls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return polls_;
  }
  int send_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return send_calls_;
  }

 private:
  struct Flight {
    uint64_t seq;
    int attempt;
    int polls;
  };

  bool Answer(std::vector<Delivery>* out) {  // REQUIRES: mu_ held
    std::vector<uint64_t> batch;
    for (const Flight& f : in_flight_) batch.push_back(f.seq);
    const size_t before = out->size();
    std::vector<Flight> kept;
    for (size_t i = 0; i < in_flight_.size(); ++i) {
      Flight f = in_flight_[i];
      f.polls++;
      const Reply r = rule_ ? rule_({f.seq, f.attempt, f.polls, batch}) : Reply::kDeliver;
      switch (r) {
        case Reply::kKeep:
          kept.push_back(f);
          break;
        case Reply::kDeliver:
          out->push_back({f.seq, Delivery::Outcome::kDelivered, ""});
          upstream_.push_back(f.seq);
          taken_.insert(f.seq);
          break;
        case Reply::kRetry:
          out->push_back({f.seq, Delivery::Outcome::kRetry, "retriable for the test"});
          break;
        case Reply::kRetryAll:
          // As KafkaSink reports a rebuilt producer: everything in flight is lost.
          out->push_back({0, Delivery::Outcome::kRetry, "producer rebuilt for the test"});
          in_flight_.clear();
          return true;
        case Reply::kHold:
          out->push_back({f.seq, Delivery::Outcome::kHold, kHoldError});
          break;
        case Reply::kTooLarge:
          out->push_back({f.seq, Delivery::Outcome::kTooLarge, "message too large"});
          break;
        case Reply::kReject:
          out->push_back({f.seq, Delivery::Outcome::kRejected, "rejected for the test"});
          break;
      }
    }
    in_flight_ = std::move(kept);
    return out->size() > before;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Rule rule_;                         // GUARDED_BY(mu_)
  std::vector<Flight> in_flight_;     // GUARDED_BY(mu_)
  std::map<uint64_t, int> attempts_;  // GUARDED_BY(mu_)
  std::vector<Sent> sent_;            // GUARDED_BY(mu_)
  std::vector<uint64_t> upstream_;    // GUARDED_BY(mu_)
  std::set<uint64_t> taken_;          // GUARDED_BY(mu_)
  Status send_status_;                // GUARDED_BY(mu_)
  std::string hold_reason_;           // GUARDED_BY(mu_)
  Status error_;                      // GUARDED_BY(mu_)
  int overlaps_ = 0;                  // GUARDED_BY(mu_)
  int polls_ = 0;                     // GUARDED_BY(mu_)
  int send_calls_ = 0;                // GUARDED_BY(mu_)
  const std::string name_ = "scripted sink";
};

// The real log with hooks on Read and Acknowledge (called on the forwarder's thread).
class HookedLog final : public ForwardingLog {
 public:
  using ForwardingLog::ForwardingLog;
  Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
              std::vector<storage::Event>* out) override {
    if (on_read) on_read();
    return log_->Read(after_seq, max_events, max_bytes, out);
  }
  Status Acknowledge(std::string_view cursor, uint64_t through_seq) override {
    if (on_ack) on_ack(through_seq);
    return log_->Acknowledge(cursor, through_seq);
  }

  // Set before the forwarder starts.
  std::function<void()> on_read;
  std::function<void(uint64_t)> on_ack;
};

std::unique_ptr<storage::SqliteEventLog> OpenLog(
    const TempDir& dir, uint64_t max_bytes = storage::SqliteEventLogOptions{}.max_bytes,
    storage::Overflow overflow = storage::SqliteEventLogOptions{}.overflow) {
  storage::SqliteEventLogOptions o;
  o.path = dir.File("events.db");
  o.max_bytes = max_bytes;
  o.overflow = overflow;
  o.logger = NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = storage::SqliteEventLog::Open(o, &log);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return log;
}

void AppendEvents(storage::EventLog* log, int n) {
  std::vector<storage::Event> events(n);
  for (auto& e : events) {
    e.topic = "t";
    e.payload = "p";
    e.qos = 1;
  }
  size_t appended = 0;
  REQUIRE(log->Append(events, &appended).ok());
  REQUIRE(appended == events.size());
}

ForwarderOptions FastOptions() {
  ForwarderOptions fo;
  fo.ack_interval = 10ms;
  fo.idle_wait = 10ms;
  return fo;
}

TEST_CASE("Forwarder keeps forwarding while the disk is too full to store the cursor") {
  TempDir dir;
  auto real = OpenLog(dir);
  DiskFullLog log(real.get());
  ConfirmingSink sink;
  log.disk_full = true;
  AppendEvents(&log, 100);
  Forwarder fwd(&log, &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.Delivered().size() == 100 && log.refused >= 3; }, 10s));
  // Several attempts failed; the forwarder is not failed, and the stored cursor did not move.
  CHECK(fwd.error().ok());
  CHECK(real->Stats().cursor == 0);
  AppendEvents(&log, 50);
  REQUIRE(WaitFor([&] { return sink.Delivered().size() == 150; }, 10s));
  CHECK(fwd.error().ok());

  log.disk_full = false;
  REQUIRE(WaitFor([&] { return real->Stats().cursor == 150; }, 10s));
  CHECK(real->Stats().events == 0);
  fwd.Stop();
  CHECK(fwd.error().ok());
  const auto delivered = sink.Delivered();
  REQUIRE(delivered.size() == 150);
  for (size_t i = 0; i < delivered.size(); ++i) CHECK(delivered[i] == i + 1);
}

TEST_CASE("Forwarder retries a dead letter it could not record on a full disk") {
  TempDir dir;
  auto real = OpenLog(dir);
  DiskFullLog log(real.get());
  ConfirmingSink sink;
  sink.RejectSeq(5);
  log.disk_full = true;
  AppendEvents(&log, 10);
  Forwarder fwd(&log, &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return log.refused >= 3; }, 10s));
  // The refused event holds the line: the events before it went out, the cursor cannot pass it.
  CHECK(fwd.error().ok());
  CHECK(sink.Delivered() == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(real->Stats().dead_letters == 0);

  log.disk_full = false;
  REQUIRE(WaitFor([&] { return real->Stats().cursor == 10; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(real->Stats().dead_letters == 1);
  CHECK(sink.Delivered() == std::vector<uint64_t>{1, 2, 3, 4, 6, 7, 8, 9, 10});
}

TEST_CASE("Forwarder keeps events it read but could not send when the sink asks for a resend") {
  // The first Send is refused as unavailable and the next poll reports a rebuilt producer, with
  // nothing in flight: the events read ahead must be read again, not skipped and acknowledged.
  TempDir dir;
  auto log = OpenLog(dir);
  ConfirmingSink sink;
  sink.SetUnavailable(true);
  AppendEvents(log.get(), 10);
  Forwarder fwd(log.get(), &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.Retries() >= 3; }, 10s));
  CHECK(log->Stats().cursor == 0);
  CHECK(log->Stats().events == 10);

  sink.SetUnavailable(false);
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 10; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(log->Stats().dead_letters == 0);
  CHECK(sink.Delivered() == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
}

using Reply = ScriptedSink::Reply;
using Attempt = ScriptedSink::Attempt;

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> v;
  for (uint64_t seq = first; seq <= last; ++seq) v.push_back(seq);
  return v;
}

TEST_CASE("Forwarder lets the cursor pass open events that drop-oldest deleted") {
  // The producer is rebuilt again and again (every event in flight lost) while the log fills up
  // and drops the oldest events, which the forwarder still holds as unconfirmed.
  TempDir dir;
  constexpr uint64_t kEventBytes = 2 + storage::Event::kRowOverheadBytes;  // topic "t", payload "p"
  auto real = OpenLog(dir, 30 * kEventBytes, storage::Overflow::kDropOldest);
  HookedLog log(real.get());
  ScriptedSink sink;
  std::atomic<bool> broken{true};
  sink.SetRule([&](const Attempt&) { return broken ? Reply::kRetryAll : Reply::kDeliver; });
  // The cursor may pass only events the upstream took or the log dropped (drop-oldest deletes
  // the oldest waiting events, and the cursor stays at 0 until the end: seqs 1..dropped).
  std::atomic<int> bad_acks{0};
  log.on_ack = [&](uint64_t through) {
    const uint64_t dropped = real->Stats().dropped_events;
    for (uint64_t seq = dropped + 1; seq <= through; ++seq) {
      if (!sink.TookAllThrough(seq, seq)) bad_acks++;
    }
  };
  AppendEvents(&log, 20);
  ForwarderOptions fo = FastOptions();
  fo.max_in_flight = 100;
  Forwarder fwd(&log, &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.SentSeqs().size() >= 60; }, 10s));
  CHECK(real->Stats().cursor == 0);
  for (int i = 0; i < 4; ++i) AppendEvents(&log, 10);
  // 30 events make room for the 40 appended, and a few more for the gap marker that stands in
  // the log at the place of the last dropped one.
  const uint64_t dropped = real->Stats().dropped_events;
  REQUIRE(dropped >= 30);
  REQUIRE(dropped < 40);
  // A resend of event 60 comes from a read of the log after the drops, which found the events the
  // forwarder still held open gone.
  REQUIRE(WaitFor(
      [&] {
        const auto sent = sink.SentSeqs();
        return std::find(sent.begin(), sent.end(), 60) != sent.end();
      },
      10s));
  CHECK(fwd.Stats().dropped_unsent >= 20);

  broken = false;
  REQUIRE(WaitFor([&] { return real->Stats().cursor == 60; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(bad_acks == 0);
  CHECK(fwd.Stats().dropped_unsent <= dropped);
  CHECK(fwd.Stats().window <= 1);
  CHECK(sink.overlaps() == 0);
  // First the gap record naming what was dropped, then every event after the hole, in order.
  const std::vector<uint64_t> upstream = sink.Upstream();
  REQUIRE(!upstream.empty());
  CHECK(upstream.front() == dropped);
  CHECK(std::vector<uint64_t>(upstream.begin() + 1, upstream.end()) == Range(dropped + 1, 60));
  CHECK(fwd.Stats().gap_records == 1);
}

TEST_CASE("Forwarder bounds its window while the first event stays open") {
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  std::atomic<bool> keep_first{true};
  sink.SetRule(
      [&](const Attempt& a) { return a.seq == 1 && keep_first ? Reply::kKeep : Reply::kDeliver; });
  AppendEvents(log.get(), 200);
  ForwarderOptions fo = FastOptions();
  fo.max_in_flight = 4;
  fo.read_batch = 4;
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.polls() >= 50; }, 10s));
  // Event 1 is in flight and events 2..8 are confirmed behind it; nothing more is sent until
  // event 1 settles.
  CHECK(sink.SentSeqs() == Range(1, 8));
  CHECK(fwd.Stats().window == 8);
  CHECK(log->Stats().cursor == 0);

  keep_first = false;
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 200; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(sink.SentSeqs() == Range(1, 200));
  CHECK(sink.overlaps() == 0);
}

TEST_CASE("Forwarder resends only once nothing is in flight, so a resend never overtakes") {
  // Event 1 fails with a retriable error while 2..4, sent with it, are still in flight and are
  // confirmed later (out of order). Resending 1..4 at once would put 2..4 upstream twice,
  // interleaved with their originals (B, A, B).
  TempDir dir;
  auto real = OpenLog(dir);
  HookedLog log(real.get());
  ScriptedSink sink;
  sink.SetRule([](const Attempt& a) {
    if (a.attempt > 1) return Reply::kDeliver;
    if (a.seq == 1) return Reply::kRetry;
    return a.polls < 5 ? Reply::kKeep : Reply::kDeliver;
  });
  std::atomic<int> bad_acks{0};
  log.on_ack = [&](uint64_t through) {
    if (!sink.TookAllThrough(1, through)) bad_acks++;
  };
  AppendEvents(&log, 4);
  Forwarder fwd(&log, &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return real->Stats().cursor == 4; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(bad_acks == 0);
  CHECK(sink.overlaps() == 0);
  CHECK(sink.SentSeqs() == std::vector<uint64_t>{1, 2, 3, 4, 1});
  CHECK(sink.SentLog().back().in_flight_before == 0);
  CHECK(sink.Upstream() == std::vector<uint64_t>{2, 3, 4, 1});
  CHECK(fwd.Stats().resent == 1);
}

TEST_CASE("Forwarder returns to its loop during a long rewind") {
  // Event 1 stays in flight while 2..1000 are confirmed, then comes back for a resend: the
  // rewind reads the log again from event 1, in batches of 10, skipping 999 confirmed events.
  // Each read takes a (simulated) second; the heartbeat must keep up with them.
  TempDir dir;
  auto real = OpenLog(dir);
  HookedLog log(real.get());
  ScriptedSink sink;
  ManualClock clock(ManualClock::Mode::kRealTime);
  std::atomic<bool> release{false};
  std::atomic<bool> finish{false};
  sink.SetRule([&](const Attempt& a) {
    if (a.seq != 1) return Reply::kDeliver;
    if (a.attempt == 1) return release ? Reply::kRetry : Reply::kKeep;
    return finish ? Reply::kDeliver : Reply::kKeep;  // the resend stays open through the rewind
  });
  Forwarder* fwd_ptr = nullptr;
  std::atomic<int64_t> max_lag_ms{0};
  std::atomic<int> reads_after_release{0};
  log.on_read = [&] {
    clock.Advance(1s);
    const int64_t lag = clock.NowMillis() - fwd_ptr->Stats().last_progress_ms;
    if (lag > max_lag_ms) max_lag_ms = lag;
    if (release) reads_after_release++;
  };
  AppendEvents(&log, 1000);
  ForwarderOptions fo = FastOptions();
  fo.clock = &clock;
  fo.max_in_flight = 5000;
  fo.read_batch = 10;
  Forwarder fwd(&log, &sink, fo, NullLogger());
  fwd_ptr = &fwd;
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.Upstream().size() == 999; }, 20s));
  release = true;
  REQUIRE(WaitFor([&] { return reads_after_release >= 100; }, 20s));
  CHECK(log.Stats().cursor == 0);
  finish = true;
  REQUIRE(WaitFor([&] { return real->Stats().cursor == 1000; }, 20s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(max_lag_ms < 5000);
  CHECK(sink.SentSeqs().size() == 1001);
}

TEST_CASE("Forwarder holds the log while the upstream holds events, and probes after a backoff") {
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  ManualClock clock(ManualClock::Mode::kRealTime);
  std::atomic<bool> holding{true};
  sink.SetRule([&](const Attempt&) { return holding ? Reply::kHold : Reply::kDeliver; });
  AppendEvents(log.get(), 20);
  ForwarderOptions fo = FastOptions();
  fo.clock = &clock;
  fo.hold_backoff_min = 1h;
  fo.hold_backoff_max = 2h;
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return fwd.Stats().holds == 1; }, 10s));
  const int polls = sink.polls();
  REQUIRE(WaitFor([&] { return sink.polls() >= polls + 20; }, 10s));
  // The loop goes on (it polls), but nothing is sent again before the backoff ends, nothing is
  // dead-lettered and the cursor stays.
  CHECK(sink.SentSeqs() == Range(1, 20));
  CHECK(fwd.Stats().hold_reason == ScriptedSink::kHoldError);
  CHECK(log->Stats().cursor == 0);
  CHECK(log->Stats().events == 20);

  // After the backoff only the first event is offered, alone; still held, so a longer backoff.
  clock.Advance(3h);
  REQUIRE(WaitFor([&] { return fwd.Stats().holds == 2; }, 10s));
  REQUIRE(WaitFor([&] { return sink.polls() >= polls + 40; }, 10s));
  CHECK(sink.SentLog().size() == 21);
  CHECK(sink.SentLog().back().seq == 1);
  CHECK(sink.SentLog().back().in_flight_before == 0);

  // The operator acted: the probe is taken, then everything at full speed, in order.
  holding = false;
  clock.Advance(3h);
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 20; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  const ForwarderStats st = fwd.Stats();
  CHECK(st.holds == 2);
  CHECK(st.hold_reason.empty());
  CHECK(st.rejected == 0);
  CHECK(log->Stats().dead_letters == 0);
  CHECK(sink.Upstream() == Range(1, 20));
  CHECK(sink.overlaps() == 0);
  const auto sent = sink.SentLog();
  REQUIRE(sent.size() == 41);
  CHECK(sent[21].seq == 1);
  CHECK(sent[21].in_flight_before == 0);
  CHECK(std::any_of(sent.begin() + 22, sent.end(),
                    [](const ScriptedSink::Sent& s) { return s.in_flight_before > 0; }));
}

TEST_CASE("Forwarder backs off when the sink refuses to send while an operator must act") {
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  ManualClock clock(ManualClock::Mode::kRealTime);
  const std::string reason = "not authorized to write to 't': grant WRITE on the topic";
  sink.SetSendStatus(Status::Unavailable("topic authorization failed"), reason);
  AppendEvents(log.get(), 5);
  ForwarderOptions fo = FastOptions();
  fo.clock = &clock;
  fo.hold_backoff_min = 1h;
  fo.hold_backoff_max = 2h;
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.polls() >= 30; }, 10s));
  CHECK(sink.send_calls() == 1);
  CHECK(fwd.Stats().holds == 1);
  CHECK(fwd.Stats().hold_reason == reason);

  clock.Advance(3h);
  REQUIRE(WaitFor([&] { return sink.send_calls() == 2; }, 10s));
  CHECK(fwd.Stats().holds == 2);

  sink.SetSendStatus(Status::Ok(), "");
  clock.Advance(3h);
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 5; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(sink.Upstream() == Range(1, 5));
  CHECK(fwd.Stats().hold_reason.empty());
  CHECK(log->Stats().dead_letters == 0);
}

TEST_CASE("Forwarder resends a too-large batch one event at a time and dead-letters only one") {
  // Event 5 is too large on its own; any batch holding it is refused as too large.
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  sink.SetRule([](const Attempt& a) {
    const bool big_inside = std::find(a.batch.begin(), a.batch.end(), 5) != a.batch.end();
    return big_inside ? Reply::kTooLarge : Reply::kDeliver;
  });
  AppendEvents(log.get(), 10);
  Forwarder fwd(log.get(), &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 10; }, 10s));
  auto sent = sink.SentLog();
  REQUIRE(sent.size() == 20);
  for (size_t i = 10; i < sent.size(); ++i) {
    CHECK(sent[i].seq == i - 9);
    CHECK(sent[i].in_flight_before == 0);
  }
  CHECK(log->Stats().dead_letters == 1);
  CHECK(fwd.Stats().rejected == 1);

  // Every event that was open is settled: full speed again.
  AppendEvents(log.get(), 10);
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 20; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  sent = sink.SentLog();
  REQUIRE(sent.size() == 30);
  CHECK(std::any_of(sent.begin() + 20, sent.end(),
                    [](const ScriptedSink::Sent& s) { return s.in_flight_before > 0; }));
  std::vector<uint64_t> expected = Range(1, 20);
  expected.erase(expected.begin() + 4);
  CHECK(sink.Upstream() == expected);
  CHECK(log->Stats().dead_letters == 1);
}

TEST_CASE("Forwarder stops when the sink failed for good, keeping what was confirmed") {
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  AppendEvents(log.get(), 10);
  ForwarderOptions fo = FastOptions();
  fo.ack_interval = 1h;  // only the final acknowledgement stores the cursor
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return sink.Upstream().size() == 10; }, 10s));
  sink.SetError(Status::IoError("cannot rebuild the producer: ssl.ca.location unreadable"));
  REQUIRE(WaitFor([&] { return !fwd.error().ok(); }, 10s));
  CHECK(fwd.error().message().find("ssl.ca.location") != std::string::npos);
  fwd.Stop();
  CHECK(log->Stats().cursor == 10);
}

TEST_CASE("Forwarder stops on an error Send may not return") {
  TempDir dir;
  auto log = OpenLog(dir);
  ScriptedSink sink;
  sink.SetSendStatus(Status::IoError("producer is gone"), "");
  AppendEvents(log.get(), 3);
  Forwarder fwd(log.get(), &sink, FastOptions(), NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return !fwd.error().ok(); }, 10s));
  CHECK(fwd.error().code() == Status::Code::kIoError);
  fwd.Stop();
  CHECK(log->Stats().cursor == 0);
}

TEST_CASE("Forwarder passes by the events its upstream does not take, and its cursor passes them") {
  TempDir dir;
  auto log = OpenLog(dir);
  std::vector<storage::Event> events(20);
  for (size_t i = 0; i < events.size(); ++i) {
    events[i].topic = i % 3 == 0 ? "mine" : "other";
    events[i].payload = "p";
  }
  size_t appended = 0;
  REQUIRE(log->Append(events, &appended).ok());
  ConfirmingSink sink;
  ForwarderOptions fo = FastOptions();
  fo.takes = [](const storage::Event& e) { return e.topic == "mine"; };
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return log->Stats().cursor == 20; }, 10s));
  fwd.Stop();
  std::vector<uint64_t> mine;
  for (const storage::Event& e : events) {
    if (e.topic == "mine") mine.push_back(e.seq);
  }
  CHECK(sink.Delivered() == mine);
  CHECK(fwd.Stats().skipped == 20 - mine.size());
  CHECK(fwd.Stats().delivered == mine.size());
}

TEST_CASE("Forwarder replays a retained range through a position of its own") {
  TempDir dir;
  storage::SqliteEventLogOptions o;
  o.path = dir.File("events.db");
  o.retain_bytes = 1 << 20;
  o.logger = NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  REQUIRE(storage::SqliteEventLog::Open(o, &log).ok());
  AppendEvents(log.get(), 10);
  REQUIRE(log->Acknowledge("kafka", 10).ok());
  REQUIRE(log->Stats().retained_events == 10);

  storage::ReplayRequestOptions ro;
  ro.path = o.path;
  ro.upstream = "kafka";
  ro.from_seq = 4;
  storage::ReplayRequest request;
  Status s = storage::SqliteEventLog::RequestReplay(ro, &request);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(request.through_seq == 10);
  AppendEvents(log.get(), 5);  // live events after the range: not part of the replay

  ConfirmingSink sink;
  ForwarderOptions fo = FastOptions();
  fo.replay = {request.id, request.from_seq, request.through_seq, request.position};
  Forwarder fwd(log.get(), &sink, fo, NullLogger());
  fwd.Start();
  REQUIRE(WaitFor([&] { return fwd.Stats().finished; }, 10s));
  fwd.Stop();
  CHECK(fwd.error().ok());
  CHECK(sink.Delivered() == Range(4, 10));
  std::vector<storage::ReplayRequest> pending;
  REQUIRE(log->PendingReplays(&pending).ok());
  CHECK(pending.empty());
  // The live cursor is the upstream's own: the replay never moved it.
  uint64_t cursor = 0;
  REQUIRE(log->CursorPosition("kafka", &cursor).ok());
  CHECK(cursor == 10);
}

}  // namespace
}  // namespace sluice::gateway
