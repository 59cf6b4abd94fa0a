// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/histogram.h"
#include "storage/event_log.h"
#include "storage/gap_marker.h"
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
  // lowest existing cursor, so it receives what still waits in the log. Empty: the cursors the
  // file has, none added or removed (maintenance commands such as `sluice dead-letters purge`,
  // which must not move any upstream's position). A read-only open always reports every stored
  // cursor (those of this list first, in its order).
  std::vector<std::string> cursors = {"kafka"};
  // Open the file read-only and take no lock: for `sluice status` beside a running daemon.
  bool read_only = false;
  // storage.retain: events every upstream confirmed stay in the log, for `sluice replay`, while
  // their accounted bytes stay within retain_bytes and (if retain_age > 0) they were received less
  // than retain_age ago. They count against max_bytes and are the first to go when room is
  // needed. retain_bytes 0: nothing is kept. Enforced on each append and acknowledgement.
  uint64_t retain_bytes = 0;
  std::chrono::milliseconds retain_age{0};
  // The newest this many rows with an MQTT packet id stay in the log after every upstream
  // confirmed them, whatever storage.retain says, so that RecentIngress finds them after a crash.
  // They count as retained rows (against max_bytes too) and are evicted with them, oldest first,
  // when room is needed. 0: none is kept.
  size_t recent_ingress_rows = kRecentIngressRows;
  // Whether the upstream `cursor` takes events of this MQTT topic (its routes feed it), so that a
  // gap marker counts for each upstream only the dropped events it would have received. Null:
  // every cursor takes every topic. Called under the log's write lock while it drops events:
  // must be cheap, thread-safe, and must not call into the log.
  std::function<bool(std::string_view cursor, std::string_view topic)> feeds;
  // Time for retention by age, dead-letter timestamps and the throttling of drop reports; the
  // system clock if null. Must outlive the log.
  const Clock* clock = nullptr;
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

// One row of the dead-letter table: one event refused by one upstream (an event refused by two
// upstreams has two rows).
struct DeadLetterRow {
  Event event;           // as it was in the log, with its original seq
  std::string upstream;  // the upstream (cursor) that refused it; "kafka" for rows of format 1-2
  std::string error;     // why the upstream refused it (may be shortened when the log was full)
  int64_t failed_ms = 0;
};

// A `sluice replay` request (SqliteEventLog::RequestReplay).
struct ReplayRequestOptions {
  std::string path;      // the log file
  std::string vfs;       // registered SQLite VFS name; empty = SQLite's default
  std::string upstream;  // the upstream to send the range to again
  // Where the range starts: exactly one of them. from_seq is a sequence number; since_ms a wall
  // clock time (Unix ms), resolved to the first event received at or after it.
  std::optional<uint64_t> from_seq;
  std::optional<int64_t> since_ms;
  const Clock* clock = nullptr;            // for created_ms; the system clock if null
  std::shared_ptr<spdlog::logger> logger;  // may be null: then nothing is logged
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
// Every figure of Stats(), per cursor too, is kept exact in memory by the operation that changes
// it (docs/log-format.md, "Accounting"); only Open counts the table. The one write from another
// process (RequestReplay, into `replays`) touches nothing this accounting covers.
//
// A file that is not a sluice log, was written by a newer schema, or fails SQLite's quick_check is
// refused with Corruption and left exactly as it was.
class SqliteEventLog final : public EventLog {
 public:
  static constexpr int kSchemaVersion = 4;
  // PRAGMA application_id marks the file as ours: "SLCE".
  static constexpr int32_t kApplicationId = 0x534C4345;
  // Under drop-oldest on a full disk, the first round frees at least this many accounted bytes:
  // SQLite needs whole free pages, and a round per tiny event would log a line per event.
  static constexpr uint64_t kDiskFullDropMinBytes = 64 * 1024;
  // Drops are logged as merged sequence ranges at most this often (the first one at once).
  static constexpr std::chrono::seconds kDropReportInterval{10};

  static Status Open(SqliteEventLogOptions options, std::unique_ptr<SqliteEventLog>* out);
  ~SqliteEventLog() override;

  // Stores a replay request in the log at options.path on a connection of its own, without the
  // daemon's lock, so that it works beside a running daemon (which picks it up through
  // PendingReplays); SQLite's locking and busy timeout order the two writers. The range is
  // [from, the upstream's cursor]: what the upstream confirmed from there on is sent again.
  // NotFound for an unknown upstream (naming the known ones) or a missing log; InvalidArgument if
  // the range is no longer (or not yet) in the log, saying what the log retains, or if the file
  // has an older format (run sluice on it once); Corruption for a file that is not a sluice log.
  static Status RequestReplay(const ReplayRequestOptions& options, ReplayRequest* out);
  // Every replay request in the log, done or not, oldest first; read-only, beside a daemon too.
  // Empty for a file of a format before 3.
  static Status ListReplays(const std::string& path, const std::string& vfs,
                            std::vector<ReplayRequest>* out);

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
  Status RecentIngress(size_t max_rows, std::vector<Event>* out) override;
  Status Sync() override;
  uint64_t SyncedIngress() const override;
  LogStats Stats() const override;

  // Read-only logs: re-reads the last assigned seq and every cursor's position from the file (a
  // few index lookups), so that a watcher beside the daemon can sample them often. The other
  // figures of Stats() (backlogs, bytes, retained, dead letters) stay as the open counted them:
  // counting them again costs a pass over the log. InvalidArgument on a read-write log, whose
  // figures are always current.
  Status RefreshPositions();

  // Reads an integer PRAGMA on the writing connection (e.g. "synchronous"), for diagnostics.
  Status WriterPragma(std::string_view name, int64_t* value);

  // The log's identity: 32 hex digits of a random 128-bit id made when the file was created (or
  // migrated from format 1), so that (LogId, seq) is unique across cloned images and re-created
  // logs. Empty only for a format-1 file opened read-only.
  const std::string& LogId() const { return log_id_; }

  // Reads the dead letters with seq > after_seq, oldest first, in (seq, upstream) order: at least
  // `limit` rows if there are that many, plus the other upstreams' rows of the last seq, so that
  // paging by seq never splits one. Safe on a read-only log beside a running daemon.
  Status ReadDeadLetters(uint64_t after_seq, size_t limit, std::vector<DeadLetterRow>* out);
  // The row of the first upstream (by name) that refused seq; NotFound if none did.
  Status ReadDeadLetter(uint64_t seq, DeadLetterRow* out);

  // Puts the dead letters `seqs` (all of them if `all`) back into the log in one transaction; a
  // seq stands for the rows of every upstream that refused it. Each seq is appended once, as a
  // new event at the end (new seq, its original receive time, topic, payload and flags), and
  // goes to every upstream its route feeds, also those that had taken it the first time. A seq
  // whose event still waits in the log for every upstream that refused it is only deleted: each
  // sends it again from its place. `replayed` gets (old seq, new seq or 0) per seq, in seq order.
  // NotFound, and nothing changed, if a seq is not a dead letter. Never needs room: a dead letter
  // accounts for more than the event it becomes. REQUIRES: opened read-write (holds the lock, so
  // no daemon runs).
  Status ReplayDeadLetters(std::span<const uint64_t> seqs, bool all,
                           std::vector<std::pair<uint64_t, uint64_t>>* replayed);
  // Deletes the dead letters `seqs` (all if `all`; a seq: every upstream's row) in one
  // transaction; *purged = rows deleted. NotFound, and nothing deleted, if a seq is not a dead
  // letter. REQUIRES: opened read-write.
  Status PurgeDeadLetters(std::span<const uint64_t> seqs, bool all, uint64_t* purged);

  // The background checkpointer's counters; all zero when checkpoints run inline or read-only.
  WalCheckpointer::Counters CheckpointCounters() const;

 private:
  // One upstream's cursor and what waits for it, kept exact in memory (docs/log-format.md,
  // "Accounting"): every operation that adds or removes rows after a cursor adjusts it by the
  // rows it touched, so that Stats() never counts the table.
  struct Cursor {
    CursorStats stats;
    uint64_t first_seq = 0;  // the first row after the cursor; 0 when none
  };
  // Everything Stats() reports, copied before a transaction and put back if it does not commit.
  struct State {
    LogStats stats;                 // `cursors` left empty: Stats() fills it from `cursors` below
    std::vector<Cursor> cursors;    // configuration order (read-only: stored order, see options)
    int64_t first_retained_ms = 0;  // receive time of the oldest retained row
    // Seqs of the newest options_.recent_ingress_rows rows with a packet id, ascending: the rows
    // retention keeps (read-write logs only).
    std::deque<uint64_t> ingress;
  };
  // A drop, from its commit until it is logged: merged ranges of seqs, and per upstream how many
  // of the dropped events it had not confirmed.
  struct DropRange {
    uint64_t first = 0;
    uint64_t last = 0;
    uint64_t count = 0;
    const char* reason = "";
    std::map<std::string, uint64_t> lost;  // upstream -> events of this drop it lost
  };

  explicit SqliteEventLog(SqliteEventLogOptions options);

  Status OpenFiles();
  Status VerifyExisting();
  Status CreateSchema();
  // Inside the creating or migrating transaction: a new random identity (returned in *id).
  Status WriteIdentity(std::string* id);
  // Brings a file of an older format to kSchemaVersion in one transaction.
  Status MigrateSchema(int64_t from_version);
  Status LoadIdentity();
  Status PrepareStatements();
  // Read-write: removes stored cursors that options_.cursors lacks and adds the new ones, in one
  // transaction. Then *out gets the cursors in the order the log keeps them.
  Status ReconcileCursors(std::vector<std::pair<std::string, uint64_t>>* out);
  // One transaction: deletes the `removed` cursors with their counters, adds the `added` ones at
  // `start`, and logs both.
  Status StoreCursorChanges(const std::vector<std::pair<std::string, uint64_t>>& removed,
                            const std::vector<std::string>& added, uint64_t start);
  Status LoadState();
  // Counts the rows with after < seq <= through: how many and their accounted bytes.
  Status CountRangeLocked(SqliteHandle* db, uint64_t after, uint64_t through, uint64_t* rows,
                          uint64_t* bytes);
  // The first row with seq > after: its seq and receive time; both 0 if there is none.
  Status FirstAfterLocked(uint64_t after, uint64_t* seq, int64_t* received_ms);

  // One transaction: trims retention, makes room (drops under drop-oldest, evicts retained rows
  // under reject-new), appends the longest prefix of `events` that fits (all of them under
  // drop-oldest) and sets *taken. Full with *log_full if not even one fits under max_bytes; Full
  // without it if the disk is full. On failure nothing is appended and state_ is unchanged.
  // Under sync = "full", commits a batch that the ingress journal covers without an fsync
  // (EventLog::Sync); the transaction itself is InsertTxnLocked.
  Status InsertLocked(std::span<Event> events, size_t* taken, bool* log_full);
  Status InsertTxnLocked(std::span<Event> events, size_t* taken, bool* log_full);
  uint64_t SyncedIngressLocked() const;
  // Inside a transaction: frees room until the used bytes are at most target_used, in this
  // order: retained rows, then (if allow_dead) dead letters, then (if allow_waiting) the oldest
  // waiting rows, leaving a gap marker. `reason` starts the warning that names the dropped range.
  Status MakeRoomLocked(uint64_t target_used, const char* reason, bool allow_dead,
                        bool allow_waiting);
  // Evicts the oldest retained rows that free `need_bytes` (all of them if they do not).
  Status EvictRetainedLocked(uint64_t need_bytes);
  // Deletes the retained rows beyond storage.retain (bytes and age).
  Status TrimRetainedLocked();
  // Deletes every retained row with seq <= through (but the rows of state_.ingress if
  // `keep_ingress`) and takes it out of the accounting.
  Status DeleteRetainedLocked(uint64_t through, bool keep_ingress);
  // Rows with a packet id and a seq at least this are kept by retention (state_.ingress).
  uint64_t IngressFloorLocked() const;
  // How many retained rows are kept for RecentIngress (state_.ingress up to the lowest cursor).
  uint64_t IngressRetainedLocked() const;
  // The rows with after < seq <= through left the log: they leave state_.ingress too.
  void ForgetIngressLocked(uint64_t after, uint64_t through);
  Status LoadIngressLocked(std::deque<uint64_t>* out);
  // Drops the oldest dead letters until `need_bytes` are freed or none is left; adds the bytes
  // freed to *freed.
  Status DropDeadLettersLocked(uint64_t need_bytes, uint64_t* freed);
  // Drops the oldest waiting rows (after the lowest cursor) that free `need_bytes`, and leaves
  // one gap marker at the highest dropped seq for the upstreams that lose events. Sets
  // *dropped_events to the events (not markers) dropped.
  Status DropWaitingLocked(uint64_t need_bytes, const char* reason, uint64_t* dropped_events);
  // What the rows of one drop were: the gap parts they make, which upstreams lost how many
  // events, the range of the dropped events, and bytes handed over to dead-letter copies.
  struct DropTally {
    GapParts parts;
    std::set<std::string> carried;  // upstreams whose part of a dropped marker goes on
    std::map<std::string, uint64_t> lost;
    uint64_t events = 0, first = 0, last = 0, moved = 0;
  };
  // Deletes the rows with after < seq <= through (all waiting), taking each out of the cursors'
  // figures, and tallies them into *t.
  Status DeleteWaitingLocked(uint64_t after, uint64_t through, DropTally* t);
  // A dropped marker at `seq`: its parts for upstreams that had not passed it go into *parts,
  // and their names into *carried.
  Status MergeDroppedMarkerLocked(uint64_t seq, const std::string& payload, GapParts* parts,
                                  std::set<std::string>* carried);
  // Writes the gap marker for a drop through `seq` with `parts`; adjusts the cursors and counts
  // a gap marker for each upstream whose part is not `carried` over from a dropped one.
  Status InsertGapMarkerLocked(uint64_t seq, const GapParts& parts,
                               const std::set<std::string>& carried);
  // Inserts one row (event or marker) with its seq, in the open transaction.
  Status InsertRowLocked(const Event& e);
  // A row with seq `seq` and `bytes` accounted bytes left every cursor that had not passed it.
  void RemoveFromCursorsLocked(uint64_t seq, uint64_t bytes);
  // After the rows with seq <= through left the log: each cursor that had them first finds its
  // new first row.
  Status RefreshFirstRowsLocked(uint64_t through);
  // The lowest cursor's figures become the log's waiting figures (LogStats events, bytes, ...).
  void RefreshWaitingLocked();
  uint64_t LowestCursorLocked() const;
  Cursor* FindCursorLocked(std::string_view name);
  // Accounted bytes of everything in the log: waiting and retained rows plus dead letters.
  uint64_t UsedBytesLocked() const {
    return state_.stats.bytes + state_.stats.retained_bytes + state_.stats.dead_letter_bytes;
  }
  // Selects the dead letters named (or all) into *seqs, distinct, in seq order; NotFound if one
  // is missing.
  Status SelectDeadLettersLocked(std::span<const uint64_t> seqs, bool all,
                                 std::vector<uint64_t>* out);
  // Deletes the dead letters of `seq` (of every upstream if `upstream` is null) and takes them
  // out of state_; *in_events tells whether the event is still in `events`. Fills *rows if
  // non-null. NotFound if there is none.
  Status DeleteDeadLettersLocked(uint64_t seq, const std::string_view* upstream,
                                 std::vector<DeadLetterRow>* rows, bool* in_events);
  // Appends one event (its seq set, above every other) in the open transaction and accounts it
  // for every cursor.
  Status AppendOneLocked(const Event& e);
  // NotFound naming the log's cursors.
  Status UnknownCursorLocked(std::string_view name) const;
  // Drops the oldest events in a transaction of its own, to free pages on a full disk.
  Status DropOldestForDiskLocked(uint64_t need_bytes);
  // After a commit that included a drop: adds it to the drops not yet logged, and logs them once
  // the report interval has passed.
  void NoteCommittedDropLocked();
  void ReportDropsLocked();  // logs the drops not yet logged, if any
  bool ReportDueLocked() const;
  Status SetMetaLocked(const std::string& key, int64_t value);
  Status FailLocked(Status s);  // records the first fatal error; returns it
  // Puts state_ back after a transaction that did not commit.
  void RollbackStateLocked(State before);
  // sqlite3_wal_hook of the writing connection: runs after each commit, write_mu_ held.
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);

  const SqliteEventLogOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  SystemClock system_clock_;
  const Clock* clock_;        // options_.clock or system_clock_
  int lock_fd_ = -1;          // flock on <path>.lock: one daemon per log
  int64_t file_version_ = 0;  // the format the file has after open (older only when read-only)
  std::string log_id_;        // set during Open, constant afterwards

  mutable std::mutex write_mu_;
  std::condition_variable appended_cv_;
  SqliteHandle writer_;              // GUARDED_BY(write_mu_)
  Statement insert_event_;           // GUARDED_BY(write_mu_)
  Statement delete_through_;         // GUARDED_BY(write_mu_)
  Statement delete_unkept_through_;  // GUARDED_BY(write_mu_)
  Statement count_retained_;         // GUARDED_BY(write_mu_)
  Statement delete_retained_;        // GUARDED_BY(write_mu_)
  Statement delete_range_;           // GUARDED_BY(write_mu_)
  Statement upsert_cursor_;          // GUARDED_BY(write_mu_)
  Statement insert_dead_;            // GUARDED_BY(write_mu_)
  Statement oldest_waiting_;         // GUARDED_BY(write_mu_)
  Statement oldest_retained_;        // GUARDED_BY(write_mu_)
  Statement oldest_dead_;            // GUARDED_BY(write_mu_)
  Statement delete_dead_through_;    // GUARDED_BY(write_mu_)
  Statement delete_dead_seq_;        // GUARDED_BY(write_mu_)
  Statement delete_dead_one_;        // GUARDED_BY(write_mu_)
  Statement event_exists_;           // GUARDED_BY(write_mu_)
  Statement upsert_meta_;            // GUARDED_BY(write_mu_)
  Statement count_range_;            // GUARDED_BY(write_mu_)
  Statement first_after_;            // GUARDED_BY(write_mu_)
  Statement pending_replays_;        // GUARDED_BY(write_mu_)
  Statement advance_replay_;         // GUARDED_BY(write_mu_)
  Statement stored_cursors_;         // GUARDED_BY(write_mu_)
  Statement last_seq_;               // GUARDED_BY(write_mu_)
  State state_;                      // GUARDED_BY(write_mu_)
  // Sync = "full": an append was committed without an fsync (EventLog::Sync) and nothing has
  // synced the WAL since; synced_ingress_ is what ingress_applied was before that append.
  // Written under write_mu_; read without it too, so that Read waits behind a group commit only
  // when it has to sync.
  std::atomic<bool> unsynced_{false};
  uint64_t synced_ingress_ = 0;                // GUARDED_BY(write_mu_)
  Status failed_;                              // GUARDED_BY(write_mu_)
  std::optional<DropRange> uncommitted_drop_;  // GUARDED_BY(write_mu_)
  DropRange unreported_drop_;                  // GUARDED_BY(write_mu_)
  // Dropped dead letters: their seqs have gaps, so a range only bounds them.
  std::optional<DropRange> uncommitted_dead_drop_;  // GUARDED_BY(write_mu_)
  DropRange unreported_dead_drop_;                  // GUARDED_BY(write_mu_)
  uint64_t unreported_short_reasons_ = 0;           // GUARDED_BY(write_mu_)
  // When drops were last logged; none yet: the first is logged at once.
  std::optional<std::chrono::steady_clock::time_point> drop_reported_at_;  // GUARDED_BY(write_mu_)

  // Started after the writer switched to WAL, stopped before any connection closes; not set when
  // read-only or inline.
  std::unique_ptr<WalCheckpointer> checkpointer_;

  std::mutex read_mu_;
  SqliteHandle reader_;       // GUARDED_BY(read_mu_)
  Statement read_from_;       // GUARDED_BY(read_mu_)
  Statement recent_ingress_;  // GUARDED_BY(read_mu_)
};

const char* ToString(Overflow o);
const char* ToString(Sync s);

}  // namespace sluice::storage
