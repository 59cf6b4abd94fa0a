#pragma once

#include <spdlog/logger.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "storage/event_log.h"
#include "storage/sqlite_handle.h"

namespace sluice::storage {

enum class Overflow { kDropOldest, kRejectNew };
enum class Sync { kNormal, kFull };

struct SqliteEventLogOptions {
  std::string path;
  uint64_t max_bytes = 1ull << 30;
  Overflow overflow = Overflow::kRejectNew;
  Sync sync = Sync::kNormal;
  // Name under which the upstream's cursor is stored; one per upstream.
  std::string cursor_name = "kafka";
  // Open the file read-only and take no lock: for `sluice status` beside a running daemon.
  bool read_only = false;
  std::shared_ptr<spdlog::logger> logger;  // REQUIRES: non-null
};

// The EventLog on an SQLite database in WAL mode. The on-disk format is in docs/log-format.md;
// kSchemaVersion below is its version.
//
// One connection writes (appends, acknowledgements, dead letters), guarded by write_mu_; a second
// connection serves Read so that the forwarder never waits behind a group commit. WAL lets the
// reader see the last committed state while a writer works.
//
// A file that is not a sluice log, was written by a newer schema, or fails SQLite's quick_check is
// refused with Corruption and left exactly as it was.
class SqliteEventLog final : public EventLog {
 public:
  static constexpr int kSchemaVersion = 1;
  // PRAGMA application_id marks the file as ours: "SLCE".
  static constexpr int32_t kApplicationId = 0x534C4345;
  // The dead-letter table keeps the newest this many events, so that an upstream refusing
  // everything for days cannot fill the disk through it.
  static constexpr int64_t kMaxDeadLetters = 10000;

  static Status Open(SqliteEventLogOptions options, std::unique_ptr<SqliteEventLog>* out);
  ~SqliteEventLog() override;

  SqliteEventLog(const SqliteEventLog&) = delete;
  SqliteEventLog& operator=(const SqliteEventLog&) = delete;

  Status Append(std::span<Event> events, size_t* appended) override;
  Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
              std::vector<Event>* out) override;
  Status Acknowledge(uint64_t through_seq) override;
  Status DeadLetter(const Event& event, std::string_view error) override;
  bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) override;
  LogStats Stats() const override;

  // Reads an integer PRAGMA on the writing connection (e.g. "synchronous"), for diagnostics.
  Status WriterPragma(std::string_view name, int64_t* value);

  // Reads up to `limit` dead letters, oldest first, as (event, error) pairs.
  Status ReadDeadLetters(size_t limit, std::vector<std::pair<Event, std::string>>* out);

 private:
  explicit SqliteEventLog(SqliteEventLogOptions options);

  Status OpenFiles();
  Status VerifyExisting();
  Status CreateSchema();
  Status PrepareStatements();
  Status LoadState();
  Status DropOldestLocked(uint64_t need_bytes);
  Status SetMetaLocked(const char* key, int64_t value);
  Status FailLocked(Status s);  // records the first fatal error; returns it

  const SqliteEventLogOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  int lock_fd_ = -1;  // flock on <path>.lock: one daemon per log

  mutable std::mutex write_mu_;
  std::condition_variable appended_cv_;
  SqliteHandle writer_;       // GUARDED_BY(write_mu_)
  Statement insert_event_;    // GUARDED_BY(write_mu_)
  Statement delete_through_;  // GUARDED_BY(write_mu_)
  Statement upsert_cursor_;   // GUARDED_BY(write_mu_)
  Statement insert_dead_;     // GUARDED_BY(write_mu_)
  Statement oldest_sizes_;    // GUARDED_BY(write_mu_)
  Statement upsert_meta_;     // GUARDED_BY(write_mu_)
  LogStats stats_;            // GUARDED_BY(write_mu_)
  Status failed_;             // GUARDED_BY(write_mu_)

  std::mutex read_mu_;
  SqliteHandle reader_;  // GUARDED_BY(read_mu_)
  Statement read_from_;  // GUARDED_BY(read_mu_)
};

const char* ToString(Overflow o);
const char* ToString(Sync s);

}  // namespace sluice::storage
