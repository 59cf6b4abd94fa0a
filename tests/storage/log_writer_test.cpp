#include "storage/log_writer.h"

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// An in-memory EventLog that records each Append call; `room` bounds how many events it takes
// (reject-new), and `fail` makes appends fail with an I/O error.
class RecordingLog final : public EventLog {
 public:
  Status Append(std::span<Event> events, size_t* appended) override {
    std::lock_guard<std::mutex> lock(mu);
    *appended = 0;
    if (fail) return Status::IoError("disk on fire");
    batches.push_back(events.size());
    for (Event& e : events) {
      if (room == 0) return Status::Full("no room");
      --room;
      e.seq = ++last;
      stored.push_back(e);
      ++*appended;
    }
    return Status::Ok();
  }
  Status Read(uint64_t, size_t, size_t, std::vector<Event>*) override { return Status::Ok(); }
  Status Acknowledge(std::string_view, uint64_t) override { return Status::Ok(); }
  Status CursorPosition(std::string_view, uint64_t* seq) const override {
    *seq = 0;
    return Status::Ok();
  }
  Status DeadLetter(std::string_view, const Event&, std::string_view) override {
    return Status::Ok();
  }
  Status PendingReplays(std::vector<ReplayRequest>* out) override {
    out->clear();
    return Status::Ok();
  }
  Status AdvanceReplay(int64_t, uint64_t, bool) override { return Status::Ok(); }
  bool WaitForEventsAfter(uint64_t, std::chrono::milliseconds) override { return false; }
  LogStats Stats() const override { return {}; }

  size_t StoredCount() {
    std::lock_guard<std::mutex> lock(mu);
    return stored.size();
  }

  std::mutex mu;
  std::vector<size_t> batches;
  std::vector<Event> stored;
  size_t room = SIZE_MAX;
  bool fail = false;
  uint64_t last = 0;
};

Event Ev(const std::string& payload) {
  Event e;
  e.topic = "t";
  e.payload = payload;
  return e;
}

TEST_CASE("LogWriter commits queued events together with the durable write behind them") {
  RecordingLog log;
  LogWriterOptions o;
  o.commit_interval = std::chrono::hours(1);  // only the durable write may trigger the commit
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  for (int i = 0; i < 5; ++i) REQUIRE(writer.Write(Ev("q0-" + std::to_string(i)), false).ok());
  CHECK(log.StoredCount() == 0);
  REQUIRE(writer.Write(Ev("q1"), true).ok());
  // The durable write returned: it and everything queued before it are in the log, in one
  // transaction, in arrival order.
  REQUIRE(log.StoredCount() == 6);
  CHECK(log.batches.size() == 1);
  CHECK(log.batches[0] == 6);
  CHECK(log.stored[0].payload == "q0-0");
  CHECK(log.stored[5].payload == "q1");
  writer.Stop();
}

TEST_CASE("LogWriter flushes non-durable events within the commit interval") {
  RecordingLog log;
  LogWriterOptions o;
  o.commit_interval = 5ms;
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  for (int i = 0; i < 100; ++i) REQUIRE(writer.Write(Ev(std::to_string(i)), false).ok());
  CHECK(WaitFor([&] { return log.StoredCount() == 100; }, 10s));
  writer.Stop();
  CHECK(writer.Stats().written == 100);
}

TEST_CASE("LogWriter keeps arrival order across many threads and flushes everything on Stop") {
  RecordingLog log;
  LogWriterOptions o;
  o.commit_max_events = 64;
  o.queue_capacity = 128;
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = writer.Write(Ev(std::to_string(t) + ":" + std::to_string(i)), i % 7 == 0);
        CHECK(s.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  writer.Stop();
  REQUIRE(log.StoredCount() == kThreads * kPerThread);
  // Each thread's own events must appear in the order that thread wrote them.
  std::vector<int> next(kThreads, 0);
  for (const Event& e : log.stored) {
    const auto colon = e.payload.find(':');
    const int t = std::stoi(e.payload.substr(0, colon));
    const int i = std::stoi(e.payload.substr(colon + 1));
    CHECK(i == next[t]);
    next[t] = i + 1;
  }
  for (size_t b : log.batches) CHECK(b <= 64);
}

TEST_CASE(
    "LogWriter holds a durable write while the log is full and completes it once room appears") {
  RecordingLog log;
  log.room = 0;
  LogWriterOptions o;
  o.full_retry_min = 1ms;
  o.full_retry_max = 5ms;
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  std::atomic<bool> done{false};
  Status result;
  std::thread source([&] {
    result = writer.Write(Ev("held"), true);
    done = true;
  });
  CHECK(WaitFor([&] { return writer.Stats().full_waits >= 2; }, 10s));
  CHECK_FALSE(done.load());
  {
    std::lock_guard<std::mutex> lock(log.mu);
    log.room = 10;
  }
  CHECK(WaitFor([&] { return done.load(); }, 10s));
  source.join();
  CHECK(result.ok());
  CHECK(log.StoredCount() == 1);
  writer.Stop();
}

TEST_CASE("LogWriter stopping while the log stays full reports the durable write as not written") {
  RecordingLog log;
  log.room = 0;
  LogWriterOptions o;
  o.full_retry_min = 1ms;
  o.full_retry_max = 5ms;
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  Status result = Status::Ok();
  std::atomic<bool> done{false};
  std::thread source([&] {
    result = writer.Write(Ev("never"), true);
    done = true;
  });
  CHECK(WaitFor([&] { return writer.Stats().full_waits >= 1; }, 10s));
  writer.Stop(10ms);
  source.join();
  CHECK(result.IsShutdown());
  CHECK(log.StoredCount() == 0);
  CHECK(writer.Write(Ev("late"), true).IsShutdown());
}

TEST_CASE("LogWriter fails every later write once the log fails") {
  RecordingLog log;
  log.fail = true;
  LogWriter writer(&log, LogWriterOptions{}, NullLogger());
  writer.Start();
  Status s = writer.Write(Ev("x"), true);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK(writer.Write(Ev("y"), false).code() == Status::Code::kIoError);
  writer.Stop();
}

}  // namespace
}  // namespace sluice::storage
