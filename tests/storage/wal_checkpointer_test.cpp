// SPDX-License-Identifier: Apache-2.0

#include "storage/wal_checkpointer.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "storage/sqlite_event_log.h"
#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// A VFS over SQLite's default one whose writes to main database files fail with SQLITE_FULL while
// `fail` is set. In WAL mode commits write only the WAL, so this fails checkpoints and nothing
// else. Each opened file gets the base file's methods with xWrite swapped; the base methods still
// do the work on the base file's own struct, which is the start of ours.
class FailCheckpointVfs {
 public:
  explicit FailCheckpointVfs(std::string name) : name_(std::move(name)) {
    base_ = sqlite3_vfs_find(nullptr);
    vfs_ = *base_;
    vfs_.zName = name_.c_str();
    vfs_.szOsFile = base_->szOsFile + static_cast<int>(sizeof(FailCheckpointVfs*));
    vfs_.pAppData = this;
    vfs_.xOpen = &Open;
    if (sqlite3_vfs_register(&vfs_, 0) != SQLITE_OK) throw std::runtime_error("vfs register");
  }
  ~FailCheckpointVfs() { sqlite3_vfs_unregister(&vfs_); }
  FailCheckpointVfs(const FailCheckpointVfs&) = delete;
  FailCheckpointVfs& operator=(const FailCheckpointVfs&) = delete;

  const std::string& name() const { return name_; }
  std::atomic<bool> fail{false};
  std::atomic<uint64_t> refused{0};

 private:
  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out) {
    auto* self = static_cast<FailCheckpointVfs*>(vfs->pAppData);
    int rc = self->base_->xOpen(self->base_, name, file, flags, out);
    if (rc != SQLITE_OK || file->pMethods == nullptr || (flags & SQLITE_OPEN_MAIN_DB) == 0)
      return rc;
    std::lock_guard<std::mutex> lock(self->mu_);
    if (!self->methods_set_) {
      self->methods_ = *file->pMethods;
      self->base_write_ = file->pMethods->xWrite;
      self->methods_.xWrite = &Write;
      self->methods_set_ = true;
    }
    std::memcpy(reinterpret_cast<char*>(file) + self->base_->szOsFile, &self, sizeof self);
    file->pMethods = &self->methods_;
    return rc;
  }
  static int Write(sqlite3_file* file, const void* buf, int n, sqlite3_int64 offset) {
    FailCheckpointVfs* self = nullptr;
    std::memcpy(&self, reinterpret_cast<char*>(file) + self_offset(file), sizeof self);
    if (self->fail) {
      self->refused++;
      return SQLITE_FULL;
    }
    return self->base_write_(file, buf, n, offset);
  }
  static int self_offset(sqlite3_file* /*file*/) { return sqlite3_vfs_find(nullptr)->szOsFile; }

  const std::string name_;
  sqlite3_vfs* base_;
  sqlite3_vfs vfs_{};
  std::mutex mu_;
  sqlite3_io_methods methods_{};  // GUARDED_BY(mu_) until set, then constant
  bool methods_set_ = false;      // GUARDED_BY(mu_)
  int (*base_write_)(sqlite3_file*, const void*, int, sqlite3_int64) = nullptr;
};

Event Sized(size_t bytes) {
  Event e;
  e.topic = "t/ckpt";
  e.payload.assign(bytes, 'p');
  e.qos = 1;
  e.received_ms = 1700000000000;
  return e;
}

uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

TEST_CASE("SqliteEventLog checkpoints on its own thread and keeps the WAL bounded") {
  TempDir dir;
  SqliteEventLogOptions o;
  o.path = dir.File("events.db");
  o.logger = NullLogger();
  o.checkpoint_pages = 100;
  o.checkpoint_truncate_pages = 500;
  std::unique_ptr<SqliteEventLog> log;
  REQUIRE(SqliteEventLog::Open(o, &log).ok());
  int64_t autockpt = -1;
  REQUIRE(log->WriterPragma("wal_autocheckpoint", &autockpt).ok());
  CHECK(autockpt == 0);  // nothing checkpoints inside a commit

  // 4,000 commits of 2 KiB, two WAL frames each: about 32 MiB of WAL without checkpoints. Paced
  // at 2,500 commits/s (load, not synchronisation), 2.5 times the rate the latency benchmark
  // holds; back to back, the WAL would grow by whatever the test thread writes during one
  // checkpoint's fsyncs, which on a busy disk is many MiB.
  constexpr int kCommits = 4000;
  uint64_t max_wal = 0;
  auto next = std::chrono::steady_clock::now();
  for (int i = 0; i < kCommits; ++i) {
    next += 400us;
    std::this_thread::sleep_until(next);
    std::vector<Event> one{Sized(2048)};
    size_t appended = 0;
    REQUIRE(log->Append(one, &appended).ok());
    if (i % 100 == 0) max_wal = std::max(max_wal, FileSize(o.path + "-wal"));
  }
  max_wal = std::max(max_wal, FileSize(o.path + "-wal"));
  const auto c = log->CheckpointCounters();
  MESSAGE("checkpoints " << c.runs << " complete " << c.complete << " truncate " << c.escalations
                         << " max WAL " << max_wal);
  CHECK(c.complete > 0);
  CHECK(c.failures == 0);
  // Commits back to back never let a PASSIVE checkpoint catch up, so the WAL starts over through
  // TRUNCATE at 500 pages (2 MiB), plus what is committed during one PASSIVE pass (slow fsyncs on
  // a shared disk: the bound is loose); without the checkpointer the WAL would end near 32 MiB.
  CHECK(c.escalations > 0);
  CHECK(max_wal < 12u * 1024 * 1024);
  std::vector<Event> all;
  REQUIRE(log->Read(0, SIZE_MAX, SIZE_MAX, &all).ok());
  CHECK(all.size() == kCommits);

  log.reset();
  // The checkpointer's connection was closed before the writer's, so the writer closed last and
  // removed the WAL as the last connection does.
  CHECK(!std::filesystem::exists(o.path + "-wal"));
  o.read_only = true;
  REQUIRE(SqliteEventLog::Open(o, &log).ok());
  CHECK(log->Stats().events == kCommits);
  CHECK(log->CheckpointCounters().runs == 0);  // read-only: no checkpointer
}

TEST_CASE("failing checkpoints do not fail appends and lose nothing") {
  FailCheckpointVfs vfs("fail-checkpoint");
  TempDir dir;
  SqliteEventLogOptions o;
  o.path = dir.File("events.db");
  o.logger = NullLogger();
  o.vfs = vfs.name();
  o.sync = Sync::kFull;
  o.checkpoint_pages = 50;
  std::unique_ptr<SqliteEventLog> log;
  REQUIRE(SqliteEventLog::Open(o, &log).ok());
  vfs.fail = true;
  constexpr int kCommits = 400;
  for (int i = 0; i < kCommits; ++i) {
    std::vector<Event> one{Sized(1000)};
    size_t appended = 0;
    const Status s = log->Append(one, &appended);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    REQUIRE(log->Acknowledge("kafka", one[0].seq > 1 ? one[0].seq - 1 : 0).ok());
  }
  CHECK(WaitFor([&] { return log->CheckpointCounters().failures > 0; }, 10s));
  CHECK(vfs.refused > 0);
  CHECK(log->Stats().last_seq == kCommits);

  // Space comes back: the next try (after the retry interval, without a new commit) succeeds.
  vfs.fail = false;
  CHECK(WaitFor([&] { return log->CheckpointCounters().complete > 0; }, 10s));
  log.reset();
  REQUIRE(SqliteEventLog::Open(o, &log).ok());
  const LogStats st = log->Stats();
  CHECK(st.last_seq == kCommits);
  CHECK(st.cursor == kCommits - 1);
  std::vector<Event> rest;
  REQUIRE(log->Read(st.cursor, SIZE_MAX, SIZE_MAX, &rest).ok());
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].payload == std::string(1000, 'p'));
}

int CountPages(void* arg, sqlite3* /*db*/, const char* /*name*/, int pages) {
  static_cast<WalCheckpointer*>(arg)->NoteWalPages(pages);
  return SQLITE_OK;
}

TEST_CASE("WalCheckpointer truncates a WAL that a reader kept from restarting, once it lets go") {
  TempDir dir;
  const std::string path = dir.File("plain.db");
  sqlite3* writer = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &writer) == SQLITE_OK);
  REQUIRE(sqlite3_exec(writer,
                       "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;"
                       "CREATE TABLE t(x BLOB); INSERT INTO t VALUES(zeroblob(100));",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(writer, 5000);

  WalCheckpointerOptions c;
  c.path = path;
  c.threshold_pages = 10;
  c.escalate_pages = 50;
  c.escalation_busy_timeout = 20ms;
  c.retry_after_error = 20ms;
  c.logger = NullLogger();
  std::unique_ptr<WalCheckpointer> ckpt;
  REQUIRE(WalCheckpointer::Start(c, &ckpt).ok());
  sqlite3_wal_hook(writer, &CountPages, ckpt.get());

  // A reader holding an old snapshot: no checkpoint can copy past it or restart the WAL.
  sqlite3* reader = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &reader) == SQLITE_OK);
  REQUIRE(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM t;", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  for (int i = 0; i < 100; ++i) {
    REQUIRE(sqlite3_exec(writer, "INSERT INTO t VALUES(zeroblob(3000))", nullptr, nullptr,
                         nullptr) == SQLITE_OK);
  }
  CHECK(WaitFor([&] { return ckpt->counters().escalations > 0; }, 10s));
  CHECK(FileSize(path + "-wal") > 50u * 4096);
  CHECK(ckpt->counters().failures == 0);  // SQLITE_BUSY is not a failure

  REQUIRE(sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
  // Without another commit: the thread retries by itself and TRUNCATE empties the file.
  CHECK(WaitFor([&] { return FileSize(path + "-wal") == 0; }, 10s));
  ckpt->Stop();
  const uint64_t runs = ckpt->counters().runs;
  ckpt->Stop();  // idempotent
  CHECK(ckpt->counters().runs == runs);
  sqlite3_close(reader);
  sqlite3_close(writer);
}

}  // namespace
}  // namespace sluice::storage
