#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/histogram.h"
#include "storage/event_log.h"
#include "storage/sqlite_handle.h"
#include "storage/wal_checkpointer.h"

namespace sluice::storage {

enum class Overflow { kDropOldest, kRejectNew };
enum class Sync { kNormal, kFull };

struct SqliteEventLogOptions {
  std::string path;
  uint64_t max_bytes = 1ull << 30;
  Overflow overflow = Overflow::kRejectNew;
  Sync sync = Sync::kNormal;
  // The upstreams' names, one cursor each, in configuration order. A cursor the file has and this
  // list lacks is removed at open (its upstream left the configuration); a new one starts at the
  // lowest existing cursor, so it receives what still waits in the log.
  std::vector<std::string> cursors = {"kafka"};
  // Confirmed events kept for `sluice replay` (storage.retain_*): at most retain_bytes (0: none)
  // and younger than retain_age (0: no age bound); counted in max_bytes.
  uint64_t retain_bytes = 0;
  std::chrono::seconds retain_age{0};
  // Open the file read-only and take no lock: for `sluice status` beside a running daemon.
  bool read_only = false;
  // Name of a registered SQLite VFS for both connections; empty = SQLite's default. Tests pass a
  // fault-injecting VFS here to simulate power loss.
  std::string vfs;
  std::shared_ptr<spdlog::logger> logger;  // REQUIRES: non-null
  // If set, takes the duration in seconds of every append transaction, fsync included; must
  // outlive the log.
  Histogram* commit_seconds = nullptr;
  // WAL checkpoints run on a thread of their own (WalCheckpointer) once a commit leaves this many
  // pages in the WAL, so that their fsyncs never delay a commit. `checkpoint_inline` instead
  // leaves them to SQLite's automatic checkpoint inside the committing call (at the same size):
  // one thread, so the file operations follow from the calls alone, which a seeded power-loss
  // run needs to be repeated exactly.
  int64_t checkpoint_pages = 1000;
  // Under a steady stream of commits a PASSIVE checkpoint never finds the WAL fully copied at the
  // moment a commit starts, so SQLite never starts the WAL over. Past this size (64 MiB, the
  // journal_size_limit) the checkpointer empties it with a TRUNCATE checkpoint, which holds
  // commits back for one fsync of the frames since the last PASSIVE one.
  int64_t checkpoint_truncate_pages = 16384;
  bool checkpoint_inline = false;
};

// One row of the dead-letter table.
struct DeadLetterRow {
  Event event;        // as it was in the log, with its original seq
  std::string error;  // why the upstream refused it (may be shortened when the log was full)
  int64_t failed_ms = 0;
};

// The EventLog on an SQLite database in WAL mode. The on-disk format is in docs/log-format.md;
// kSchemaVersion below is its version.
//
// One connection writes (appends, acknowledgements, dead letters), guarded by write_mu_; a second
// connection serves Read so that the forwarder never waits behind a group commit. WAL lets the
// reader see the last committed state while a writer works.
// A third connection, on the WalCheckpointer's thread, copies the WAL back into the database
// (read-write logs only), so that no commit waits for a checkpoint's fsyncs.
//
// A file that is not a sluice log, was written by a newer schema, or fails SQLite's quick_check is
// refused with Corruption and left exactly as it was.
class SqliteEventLog final : public EventLog {
 public:
  static constexpr int kSchemaVersion = 2;
  // PRAGMA application_id marks the file as ours: "SLCE".
  static constexpr int32_t kApplicationId = 0x534C4345;
  // Under drop-oldest on a full disk, the first round frees at least this many accounted bytes:
  // SQLite needs whole free pages, and a round per tiny event would log a line per event.
  static constexpr uint64_t kDiskFullDropMinBytes = 64 * 1024;
  // Drops are logged as merged sequence ranges at most this often (the first one at once).
  static constexpr std::chrono::seconds kDropReportInterval{10};

  static Status Open(SqliteEventLogOptions options, std::unique_ptr<SqliteEventLog>* out);
  ~SqliteEventLog() override;

  SqliteEventLog(const SqliteEventLog&) = delete;
  SqliteEventLog& operator=(const SqliteEventLog&) = delete;

  Status Append(std::span<Event> events, size_t* appended) override;
  Status Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
              std::vector<Event>* out) override;
  Status Acknowledge(std::string_view cursor, uint64_t through_seq) override;
  Status CursorPosition(std::string_view cursor, uint64_t* seq) const override;
  Status DeadLetter(std::string_view cursor, const Event& event, std::string_view error) override;
  Status PendingReplays(std::vector<ReplayRequest>* out) override;
  Status AdvanceReplay(int64_t id, uint64_t position, bool done) override;
  bool WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) override;
  LogStats Stats() const override;

  // Reads an integer PRAGMA on the writing connection (e.g. "synchronous"), for diagnostics.
  Status WriterPragma(std::string_view name, int64_t* value);

  // The log's identity: 32 hex digits of a random 128-bit id made when the file was created (or
  // migrated from format 1), so that (LogId, seq) is unique across cloned images and re-created
  // logs. Empty only for a format-1 file opened read-only.
  const std::string& LogId() const { return log_id_; }

  // Reads up to `limit` dead letters with seq > after_seq, oldest first. Safe on a read-only log
  // beside a running daemon.
  Status ReadDeadLetters(uint64_t after_seq, size_t limit, std::vector<DeadLetterRow>* out);
  // NotFound if there is no dead letter with this seq.
  Status ReadDeadLetter(uint64_t seq, DeadLetterRow* out);

  // Puts the dead letters `seqs` (all of them if `all`) back into the log in one transaction:
  // each is appended as a new event at the end (new seq, its original receive time, topic,
  // payload and flags) and its dead-letter row deleted. One whose event still waits in the log
  // (refused, not yet passed by the cursor) is only deleted: the event is sent again from its
  // place. `replayed` gets (old seq, new seq or 0) per dead letter, in seq order. NotFound, and
  // nothing changed, if a seq is not a dead letter. Never needs room: a dead letter accounts for
  // more than the event it becomes. REQUIRES: opened read-write (holds the lock, so no daemon).
  Status ReplayDeadLetters(std::span<const uint64_t> seqs, bool all,
                           std::vector<std::pair<uint64_t, uint64_t>>* replayed);
  // Deletes the dead letters `seqs` (all if `all`) in one transaction; NotFound, and nothing
  // deleted, if a seq is not a dead letter. REQUIRES: opened read-write.
  Status PurgeDeadLetters(std::span<const uint64_t> seqs, bool all, uint64_t* purged);

  // The background checkpointer's counters; all zero when checkpoints run inline or read-only.
  WalCheckpointer::Counters CheckpointCounters() const;

 private:
  explicit SqliteEventLog(SqliteEventLogOptions options);

  Status OpenFiles();
  Status VerifyExisting();
  Status CreateSchema();
  // Inside the creating or migrating transaction: a new random identity (returned in *id) and the
  // current format version.
  Status WriteIdentityAndVersion(std::string* id);
  // Brings a file of an older format to kSchemaVersion in one transaction.
  Status MigrateSchema(int64_t from_version);
  Status LoadIdentity();
  Status PrepareStatements();
  Status LoadState();
  // One transaction: appends `events` (dropping the oldest first when max_bytes requires it under
  // drop-oldest) and updates stats_; on failure nothing is appended and stats_ is unchanged.
  Status InsertLocked(std::span<Event> events, uint64_t incoming);
  // `reason` starts the warning that names the dropped range. Dead letters go first (they are
  // older than the waiting events), then the oldest waiting events.
  Status DropOldestLocked(uint64_t need_bytes, const char* reason);
  // Drops the oldest dead letters until `need_bytes` are freed or none is left; adds the bytes
  // freed to *freed.
  Status DropDeadLettersLocked(uint64_t need_bytes, uint64_t* freed);
  // Accounted bytes of everything in the log: waiting events plus dead letters.
  uint64_t UsedBytesLocked() const { return stats_.bytes + stats_.dead_letter_bytes; }
  // Selects the dead letters named (or all) into *seqs, in seq order; NotFound if one is missing.
  Status SelectDeadLettersLocked(std::span<const uint64_t> seqs, bool all,
                                 std::vector<uint64_t>* out);
  // Deletes one dead letter and takes it out of stats_; *in_events tells whether its event still
  // waits in `events`. Fills *row if non-null.
  Status DeleteDeadLetterLocked(uint64_t seq, DeadLetterRow* row, bool* in_events);
  // Drops the oldest events in a transaction of its own, to free pages on a full disk.
  Status DropOldestForDiskLocked(uint64_t need_bytes);
  // After a commit that included a drop: adds it to the drops not yet logged, and logs them once
  // the report interval has passed.
  void NoteCommittedDropLocked();
  void ReportDropsLocked();  // logs the drops not yet logged, if any
  Status SetMetaLocked(const char* key, int64_t value);
  Status FailLocked(Status s);  // records the first fatal error; returns it
  // sqlite3_wal_hook of the writing connection: runs after each commit, write_mu_ held.
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);

  const SqliteEventLogOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  int lock_fd_ = -1;          // flock on <path>.lock: one daemon per log
  int64_t file_version_ = 0;  // the format the file has after open (older only when read-only)
  std::string log_id_;        // set during Open, constant afterwards

  mutable std::mutex write_mu_;
  std::condition_variable appended_cv_;
  SqliteHandle writer_;       // GUARDED_BY(write_mu_)
  Statement insert_event_;    // GUARDED_BY(write_mu_)
  Statement delete_through_;  // GUARDED_BY(write_mu_)
  Statement upsert_cursor_;   // GUARDED_BY(write_mu_)
  Statement insert_dead_;     // GUARDED_BY(write_mu_)
  Statement oldest_sizes_;    // GUARDED_BY(write_mu_)
  Statement oldest_dead_;     // GUARDED_BY(write_mu_)
  Statement delete_dead_;     // GUARDED_BY(write_mu_)
  Statement event_exists_;    // GUARDED_BY(write_mu_)
  Statement upsert_meta_;     // GUARDED_BY(write_mu_)
  LogStats stats_;            // GUARDED_BY(write_mu_)
  Status failed_;             // GUARDED_BY(write_mu_)
  struct DropRange {
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t count = 0;
    const char* reason = "";
  };
  std::optional<DropRange> uncommitted_drop_;  // GUARDED_BY(write_mu_)
  DropRange unreported_drop_;                  // GUARDED_BY(write_mu_)
  // Dropped dead letters: their seqs have gaps, so a range only bounds them.
  std::optional<DropRange> uncommitted_dead_drop_;          // GUARDED_BY(write_mu_)
  DropRange unreported_dead_drop_;                          // GUARDED_BY(write_mu_)
  uint64_t unreported_short_reasons_ = 0;                   // GUARDED_BY(write_mu_)
  std::chrono::steady_clock::time_point drop_reported_at_;  // GUARDED_BY(write_mu_)

  // Started after the writer switched to WAL, stopped before any connection closes; not set when
  // read-only or inline.
  std::unique_ptr<WalCheckpointer> checkpointer_;

  std::mutex read_mu_;
  SqliteHandle reader_;  // GUARDED_BY(read_mu_)
  Statement read_from_;  // GUARDED_BY(read_mu_)
};

const char* ToString(Overflow o);
const char* ToString(Sync s);

}  // namespace sluice::storage
