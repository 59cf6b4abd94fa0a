#include "gateway/forwarder.h"

#include <doctest/doctest.h>

#include <atomic>
#include <mutex>

#include "storage/sqlite_event_log.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

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

// The real log, except that while `disk_full` is set, storing the cursor or a dead letter fails
// the way SQLite does on a full disk.
class DiskFullLog final : public storage::EventLog {
 public:
  explicit DiskFullLog(storage::EventLog* log) : log_(log) {}
  Status Append(std::span<storage::Event> events, size_t* appended) override {
    return log_->Append(events, appended);
  }
  Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
              std::vector<storage::Event>* out) override {
    return log_->Read(after_seq, max_events, max_bytes, out);
  }
  Status Acknowledge(uint64_t through_seq) override {
    if (disk_full) {
      refused++;
      return Status::Full("database or disk is full");
    }
    return log_->Acknowledge(through_seq);
  }
  Status DeadLetter(const storage::Event& event, std::string_view error) override {
    if (disk_full) {
      refused++;
      return Status::Full("database or disk is full");
    }
    return log_->DeadLetter(event, error);
  }
  bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) override {
    return log_->WaitForEventsAfter(after_seq, timeout);
  }
  storage::LogStats Stats() const override { return log_->Stats(); }

  std::atomic<bool> disk_full{false};
  std::atomic<int> refused{0};

 private:
  storage::EventLog* log_;
};

std::unique_ptr<storage::SqliteEventLog> OpenLog(const TempDir& dir) {
  storage::SqliteEventLogOptions o;
  o.path = dir.File("events.db");
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

}  // namespace
}  // namespace sluice::gateway
