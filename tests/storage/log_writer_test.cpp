// SPDX-License-Identifier: Apache-2.0

#include "storage/log_writer.h"

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "storage/ingress_journal.h"
#include "storage/sqlite_event_log.h"
#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::ManualClock;
using sluice::testing::NullLogger;
using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// An in-memory EventLog that records each Append call; `room` bounds how many events it takes
// (reject-new), `fail` makes appends fail with an I/O error, and `blocked` holds every Append
// until Unblock().
class RecordingLog final : public EventLog {
 public:
  Status Append(std::span<Event> events, size_t* appended) override {
    std::unique_lock<std::mutex> lock(mu);
    unblocked.wait(lock, [&] { return !blocked; });
    *appended = 0;
    if (fail) return Status::IoError("disk on fire");
    batches.push_back(events.size());
    for (Event& e : events) {
      if (room == 0) return Status::Full("no room");
      --room;
      e.seq = ++last;
      ingress = std::max(ingress, e.ingress);
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
  Status Sync() override { return Status::Ok(); }
  uint64_t SyncedIngress() const override {
    std::lock_guard<std::mutex> lock(mu);
    return ingress;
  }
  LogStats Stats() const override { return {}; }

  size_t StoredCount() {
    std::lock_guard<std::mutex> lock(mu);
    return stored.size();
  }
  void Unblock() {
    std::lock_guard<std::mutex> lock(mu);
    blocked = false;
    unblocked.notify_all();
  }
  void SetRoom(size_t n) {
    std::lock_guard<std::mutex> lock(mu);
    room = n;
  }

  mutable std::mutex mu;
  std::condition_variable unblocked;
  bool blocked = false;
  std::vector<size_t> batches;
  std::vector<Event> stored;
  size_t room = SIZE_MAX;
  bool fail = false;
  uint64_t last = 0;
  uint64_t ingress = 0;  // the highest journal record stored
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

TEST_CASE("LogWriter times its commits on the injected clock") {
  RecordingLog log;
  ManualClock clock;
  LogWriterOptions o;
  o.commit_interval = std::chrono::hours(1);
  o.clock = &clock;
  LogWriter writer(&log, o, NullLogger());
  writer.Start();
  for (int i = 0; i < 3; ++i) REQUIRE(writer.Write(Ev(std::to_string(i)), false).ok());
  CHECK(log.StoredCount() == 0);
  // An hour on the writer's clock, none on the real one: the commit is due now.
  clock.Advance(std::chrono::hours(1));
  CHECK(WaitFor([&] { return log.StoredCount() == 3; }, 10s));
  writer.Stop();
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

// --- with an ingress journal ------------------------------------------------------------------

// Beside a log file, as the daemon has it: the unix VFS gives a file opened as
// SQLITE_OPEN_MAIN_JOURNAL the permissions of the database its name leads to, which must exist.
std::string JournalPath(const TempDir& dir) {
  const std::string db = dir.File("events.db");
  std::ofstream touch(db, std::ios::app);
  return db + IngressJournal::kPathSuffix;
}

std::unique_ptr<IngressJournal> OpenJournal(const std::string& path, std::string_view log_id,
                                            uint64_t applied, std::vector<Event>* pending,
                                            uint64_t capacity = IngressJournal::kMinCapacityBytes,
                                            bool sync_each_record = false) {
  IngressJournalOptions jo;
  jo.path = path;
  jo.capacity_bytes = capacity;
  jo.sync_each_record = sync_each_record;
  jo.logger = NullLogger();
  std::unique_ptr<IngressJournal> j;
  const Status s = IngressJournal::Open(jo, log_id, applied, &j, pending);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return j;
}

Event Durable(const std::string& payload, size_t size = 0) {
  Event e = Ev(payload);
  e.qos = 1;
  while (e.payload.size() < size) e.payload.push_back('.');
  return e;
}

// "t:i" from Durable(std::to_string(t) + ":" + std::to_string(i)), payload padded with dots.
std::pair<int, int> ThreadAndIndex(const std::string& payload) {
  const auto colon = payload.find(':');
  return {std::stoi(payload.substr(0, colon)), std::stoi(payload.substr(colon + 1))};
}

TEST_CASE("LogWriter with a journal acknowledges a durable write before the log commits it") {
  TempDir dir;
  RecordingLog log;
  log.blocked = true;
  std::vector<Event> pending;
  auto journal = OpenJournal(JournalPath(dir), "id", 0, &pending);
  LogWriterOptions o;
  o.commit_interval = 1ms;
  LogWriter writer(&log, o, NullLogger(), journal.get());
  writer.Start();
  for (int i = 0; i < 3; ++i) REQUIRE(writer.Write(Durable("d" + std::to_string(i)), true).ok());
  // Acknowledged with the log's Append held: only the journal has them.
  CHECK(log.StoredCount() == 0);
  CHECK(writer.Stats().journaled == 3);
  CHECK(writer.Stats().written == 0);
  CHECK(journal->last_number() == 3);
  CHECK(journal->applied() == 0);
  log.Unblock();
  CHECK(WaitFor([&] { return journal->applied() == 3; }, 10s));
  REQUIRE(log.StoredCount() == 3);
  for (int i = 0; i < 3; ++i) {
    CHECK(log.stored[i].payload == "d" + std::to_string(i));
    CHECK(log.stored[i].ingress == static_cast<uint64_t>(i + 1));
  }
  writer.Stop();
  // A clean stop leaves nothing to recover.
  journal.reset();
  OpenJournal(JournalPath(dir), "id", 0, &pending);
  CHECK(pending.empty());
}

TEST_CASE("LogWriter with a journal commits recovered events first, then new ones") {
  TempDir dir;
  std::vector<Event> pending;
  {
    auto journal = OpenJournal(JournalPath(dir), "id", 0, &pending);
    for (int i = 0; i < 4; ++i) {
      Event e = Durable("old" + std::to_string(i));
      REQUIRE(journal->Append(&e).ok());
    }
  }
  auto journal = OpenJournal(JournalPath(dir), "id", 1, &pending);
  REQUIRE(pending.size() == 3);
  RecordingLog log;
  LogWriterOptions o;
  o.commit_interval = 1ms;
  LogWriter writer(&log, o, NullLogger(), journal.get());
  writer.Start(pending);
  REQUIRE(writer.Write(Durable("new"), true).ok());
  writer.Stop();
  REQUIRE(log.StoredCount() == 4);
  CHECK(log.stored[0].payload == "old1");
  CHECK(log.stored[2].payload == "old3");
  CHECK(log.stored[3].payload == "new");
  CHECK(log.stored[3].ingress == 5);
  CHECK(journal->applied() == 5);
}

// Under sync = "full" the log commits journaled events without an fsync (EventLog::Sync): the
// journal may start over only after a sync, and a clean stop syncs.
void WrapTinyJournalManyTimes(Sync sync) {
  TempDir dir;
  SqliteEventLogOptions lo;
  lo.path = dir.File("events.db");
  lo.logger = NullLogger();
  lo.sync = sync;
  std::unique_ptr<SqliteEventLog> log;
  REQUIRE(SqliteEventLog::Open(lo, &log).ok());
  std::vector<Event> pending;
  auto journal =
      OpenJournal(lo.path + IngressJournal::kPathSuffix, log->LogId(), log->Stats().ingress_applied,
                  &pending, IngressJournal::kMinCapacityBytes, sync == Sync::kFull);
  LogWriterOptions o;
  o.commit_interval = 2ms;
  o.commit_max_events = 100;
  LogWriter writer(log.get(), o, NullLogger(), journal.get());
  writer.Start();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1500;
  std::atomic<int> failures{0};
  std::atomic<int> finished{0};
  std::atomic<uint64_t> bytes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Every 5th event is QoS 0 and shares the queue with the journaled ones.
        const bool durable = i % 5 != 0;
        Event e = Durable(std::to_string(t) + ":" + std::to_string(i), 100 + (i * 37 + t) % 700);
        if (!durable) e.qos = 0;
        if (durable)
          bytes += IngressJournal::kRecordHeaderBytes + e.topic.size() + e.payload.size();
        if (!writer.Write(std::move(e), durable).ok()) ++failures;
      }
      ++finished;
    });
  }
  // The log's applied number only grows, and it follows the journal.
  uint64_t seen = 0;
  bool monotonic = true;
  while (!WaitFor([&] { return finished.load() == kThreads; }, 1ms, 1ms)) {
    const uint64_t a = log->Stats().ingress_applied;
    if (a < seen) monotonic = false;
    seen = a;
  }
  for (auto& th : threads) th.join();
  CHECK(failures.load() == 0);
  CHECK(monotonic);
  CHECK(bytes.load() > 20 * IngressJournal::kMinCapacityBytes);  // wrapped 20 times at least
  const uint64_t durable_count = kThreads * kPerThread * 4 / 5;
  CHECK(writer.Stats().journaled == durable_count);
  CHECK(journal->records_written() == durable_count);
  writer.Stop();
  CHECK(log->Stats().ingress_applied == durable_count);
  CHECK(journal->applied() == durable_count);
  CHECK(log->SyncedIngress() == durable_count);
  if (sync == Sync::kFull) {
    CHECK(log->Stats().deferred_commits > 0);
    CHECK(log->Stats().deferred_syncs >= 20);  // before each wrap at least
  } else {
    CHECK(log->Stats().deferred_commits == 0);
  }

  std::vector<Event> stored;
  REQUIRE(log->Read(0, SIZE_MAX, SIZE_MAX, &stored).ok());
  REQUIRE(stored.size() == kThreads * kPerThread);
  std::vector<int> next(kThreads, 0);
  for (const Event& e : stored) {
    const auto [t, i] = ThreadAndIndex(e.payload);
    REQUIRE(i == next[t]);
    next[t] = i + 1;
  }
  journal.reset();
  OpenJournal(lo.path + IngressJournal::kPathSuffix, log->LogId(), log->Stats().ingress_applied,
              &pending);
  CHECK(pending.empty());
}

TEST_CASE("LogWriter with a tiny journal wraps it many times under many writers, losing nothing") {
  WrapTinyJournalManyTimes(Sync::kNormal);
}

TEST_CASE(
    "LogWriter with a tiny journal under sync = full: commits without fsyncs, a sync before each "
    "wrap, nothing lost") {
  WrapTinyJournalManyTimes(Sync::kFull);
}

TEST_CASE("LogWriter with a journal holds durable writers once the journal fills a full log") {
  TempDir dir;
  RecordingLog log;
  log.room = 0;
  std::vector<Event> pending;
  auto journal = OpenJournal(JournalPath(dir), "id", 0, &pending);
  LogWriterOptions o;
  o.full_retry_min = 1ms;
  o.full_retry_max = 5ms;
  LogWriter writer(&log, o, NullLogger(), journal.get());
  writer.Start();
  constexpr int kEvents = 300;  // about five journals' worth
  std::atomic<int> acked{0};
  Status last;
  std::thread source([&] {
    for (int i = 0; i < kEvents; ++i) {
      last = writer.Write(Durable("0:" + std::to_string(i), 1000), true);
      if (!last.ok()) return;
      ++acked;
    }
  });
  REQUIRE(WaitFor([&] { return writer.Stats().journal_waits >= 1; }, 10s));
  const int held = acked.load();
  const uint64_t waits = writer.Stats().full_waits;
  // Held for several more retries of the log: no acknowledgement meanwhile.
  REQUIRE(WaitFor([&] { return writer.Stats().full_waits >= waits + 3; }, 10s));
  CHECK(acked.load() == held);
  CHECK(held < kEvents);
  // Every acknowledged event is in the journal, and the journal is what ran out.
  CHECK(journal->last_number() == static_cast<uint64_t>(held));
  CHECK(held > 50);
  CHECK(log.StoredCount() == 0);
  log.SetRoom(SIZE_MAX);
  CHECK(WaitFor([&] { return acked.load() == kEvents; }, 30s));
  source.join();
  CHECK(last.ok());
  writer.Stop();
  REQUIRE(log.StoredCount() == kEvents);
  for (int i = 0; i < kEvents; ++i) CHECK(ThreadAndIndex(log.stored[i].payload).second == i);
  CHECK(journal->applied() == kEvents);
}

TEST_CASE("LogWriter with a journal stopping while the log stays full keeps the records") {
  TempDir dir;
  RecordingLog log;
  log.room = 0;
  std::vector<Event> pending;
  auto journal = OpenJournal(JournalPath(dir), "id", 0, &pending);
  LogWriterOptions o;
  o.full_retry_min = 1ms;
  o.full_retry_max = 5ms;
  {
    LogWriter writer(&log, o, NullLogger(), journal.get());
    writer.Start();
    for (int i = 0; i < 5; ++i) REQUIRE(writer.Write(Durable("0:" + std::to_string(i)), true).ok());
    REQUIRE(WaitFor([&] { return writer.Stats().full_waits >= 1; }, 10s));
    writer.Stop(10ms);
    CHECK(writer.Write(Durable("late"), true).IsShutdown());
  }
  // Acknowledged, not in the log: the next start gets them back.
  journal.reset();
  OpenJournal(JournalPath(dir), "id", 0, &pending);
  REQUIRE(pending.size() == 5);
  CHECK(pending[4].payload == "0:4");
}

// A gateway life in a child process: opens the log and its journal as the daemon does, commits
// what the journal gave back, makes `events` durable writes (telling the parent each id it
// acknowledged, through `fd`), and is killed with SIGKILL right after the last one, with commits
// in flight. Never returns.
[[noreturn]] void KilledLife(const std::string& path, int life, int events, int fd) {
  SqliteEventLogOptions lo;
  lo.path = path;
  lo.logger = NullLogger();
  std::unique_ptr<SqliteEventLog> log;
  if (!SqliteEventLog::Open(lo, &log).ok()) ::_exit(10);
  IngressJournalOptions jo;
  jo.path = path + IngressJournal::kPathSuffix;
  jo.capacity_bytes = IngressJournal::kMinCapacityBytes;
  jo.logger = NullLogger();
  std::unique_ptr<IngressJournal> journal;
  std::vector<Event> recovered;
  if (!IngressJournal::Open(jo, log->LogId(), log->Stats().ingress_applied, &journal, &recovered)
           .ok()) {
    ::_exit(11);
  }
  LogWriterOptions o;
  // Odd lives commit only once 64 events wait or a wrap needs it: many acknowledged events are
  // then in the journal alone when the kill comes.
  o.commit_interval = life % 2 == 1 ? std::chrono::milliseconds(3'600'000) : 2ms;
  o.commit_max_events = 64;
  LogWriter writer(log.get(), o, NullLogger(), journal.get());
  writer.Start(std::move(recovered));
  for (int i = 0; i < events; ++i) {
    const int id = life * 100000 + i;
    if (!writer.Write(Durable(std::to_string(id) + ":x", 200 + (i * 131) % 900), true).ok()) {
      ::_exit(12);
    }
    if (::write(fd, &id, sizeof id) != static_cast<ssize_t>(sizeof id)) ::_exit(13);
  }
  ::kill(::getpid(), SIGKILL);
  ::_exit(14);
}

TEST_CASE("LogWriter with a journal: acknowledged events survive SIGKILL, once and in order") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  std::vector<int> acked;
  constexpr int kLives = 4;
  for (int life = 0; life < kLives; ++life) {
    CAPTURE(life);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      KilledLife(path, life, 400 + 50 * life, fds[1]);
    }
    ::close(fds[1]);
    int id = 0;
    ssize_t n = 0;
    while ((n = ::read(fds[0], &id, sizeof id)) == static_cast<ssize_t>(sizeof id)) {
      acked.push_back(id);
    }
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "the life ended with status " << status);
  }
  REQUIRE(acked.size() == 400 + 450 + 500 + 550);

  // The last recovery, as the daemon's start makes it.
  SqliteEventLogOptions lo;
  lo.path = path;
  lo.logger = NullLogger();
  std::unique_ptr<SqliteEventLog> log;
  REQUIRE(SqliteEventLog::Open(lo, &log).ok());
  std::vector<Event> recovered;
  auto journal = OpenJournal(path + IngressJournal::kPathSuffix, log->LogId(),
                             log->Stats().ingress_applied, &recovered);
  const size_t recovered_count = recovered.size();
  {
    LogWriter writer(log.get(), LogWriterOptions{}, NullLogger(), journal.get());
    writer.Start(std::move(recovered));
    writer.Stop();
    CHECK(writer.Stats().written == recovered_count);
  }
  MESSAGE("events the journal gave back at the final start: " << recovered_count);
  std::vector<Event> stored;
  REQUIRE(log->Read(0, SIZE_MAX, SIZE_MAX, &stored).ok());
  std::vector<int> ids;
  for (const Event& e : stored) ids.push_back(std::stoi(e.payload.substr(0, e.payload.find(':'))));
  // In order and each once; every acknowledged one there (others may be: killed before telling).
  for (size_t i = 1; i < ids.size(); ++i) REQUIRE_MESSAGE(ids[i - 1] < ids[i], "at " << i);
  size_t k = 0;
  for (int id : acked) {
    while (k < ids.size() && ids[k] < id) ++k;
    REQUIRE_MESSAGE((k < ids.size() && ids[k] == id), "acknowledged event " << id << " lost");
  }
  CHECK(log->Stats().ingress_applied == journal->last_number());
}

}  // namespace
}  // namespace sluice::storage
