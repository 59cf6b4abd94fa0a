// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/log_throttle.h"
#include "common/status.h"
#include "storage/sqlite_handle.h"

namespace sluice::storage {

struct WalCheckpointerOptions {
  std::string path;  // the database file, already in WAL mode
  std::string vfs;   // registered SQLite VFS name; empty = SQLite's default
  // True: the checkpoints fsync as under synchronous=FULL; false: NORMAL. Both fsync the WAL and
  // the database around every checkpoint, which is what makes restarting the WAL safe.
  bool sync_full = false;
  // A commit that leaves at least this many pages in the WAL wakes the thread (SQLite's own
  // automatic checkpoint uses 1000).
  int64_t threshold_pages = 1000;
  // SQLite starts the WAL over only if a write transaction begins while every frame is copied
  // back; under steady commits, or while readers pin old frames, PASSIVE checkpoints never leave
  // it so and the WAL grows. Past this many pages a TRUNCATE checkpoint follows the PASSIVE one:
  // it waits at most `escalation_busy_timeout` for the writer's lock and for readers, copies the
  // frames committed since the PASSIVE pass (one fsync of each file, commits held back meanwhile)
  // and empties the file.
  int64_t escalate_pages = 16384;
  std::chrono::milliseconds escalation_busy_timeout{100};
  // After a checkpoint failed (I/O error, full disk) the next try waits this long.
  std::chrono::milliseconds retry_after_error{1000};
  // If set, called before a TRUNCATE checkpoint; the lock it returns keeps the writer from
  // starting a commit until it is released. SQLite's busy handler only polls for the write lock,
  // so a writer committing back to back would otherwise starve the TRUNCATE for good.
  std::function<std::unique_lock<std::mutex>()> hold_writes;
  // Times the retry back-off; the system clock if null. Must outlive the checkpointer.
  const Clock* clock = nullptr;
  std::shared_ptr<spdlog::logger> logger;  // REQUIRES: non-null
};

// Checkpoints the WAL of one SQLite database on a thread of its own, so that the fsyncs of a
// checkpoint never run inside a commit that an MQTT acknowledgement waits for. The writer turns
// SQLite's automatic checkpoint off and reports the WAL size after each commit (its
// sqlite3_wal_hook) through NoteWalPages; the thread then runs PASSIVE checkpoints on its own
// connection. PASSIVE takes no lock that the writer waits for: it copies what no reader still
// needs and leaves the rest for the next round.
//
// A failed checkpoint (SQLITE_FULL, an I/O error) is logged, throttled, and tried again later:
// the committed data stays in the WAL, which SQLite reads and recovers from as before, so a
// checkpoint failure never fails the log.
//
// Thread-safe: NoteWalPages may be called from any thread; the connection is used only by the
// checkpointer's thread.
class WalCheckpointer {
 public:
  struct Counters {
    uint64_t runs = 0;         // checkpoints attempted (PASSIVE and TRUNCATE)
    uint64_t complete = 0;     // checkpoints that copied every frame back to the database
    uint64_t failures = 0;     // checkpoints that returned an error other than SQLITE_BUSY
    uint64_t escalations = 0;  // TRUNCATE checkpoints attempted
    int64_t wal_pages = 0;     // the WAL size last reported by a commit or a checkpoint
  };

  // Opens the checkpointer's own connection and starts the thread.
  static Status Start(WalCheckpointerOptions options, std::unique_ptr<WalCheckpointer>* out);
  ~WalCheckpointer();  // Stop()

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // The WAL holds `pages` pages after a commit. Never blocks on I/O: it only wakes the thread.
  void NoteWalPages(int64_t pages);
  // Stops and joins the thread and closes the connection. Idempotent.
  void Stop();
  Counters counters() const;

 private:
  explicit WalCheckpointer(WalCheckpointerOptions options);
  void Run();
  // One checkpoint in `mode`; returns false if it failed with an error other than SQLITE_BUSY.
  // A checkpoint is due when the WAL has grown by threshold_pages since the last complete one (or
  // started over and reached threshold_pages), or a failed or partial one waits to be retried.
  bool DueLocked() const;

  const WalCheckpointerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
  SystemClock system_clock_;
  const Clock* clock_;  // options_.clock or system_clock_
  LogThrottle error_throttle_{std::chrono::seconds(60)};
  SqliteHandle db_;  // used only by thread_ once it runs

  mutable std::mutex mu_;
  std::condition_variable wake_;
  int64_t reported_pages_ = 0;  // GUARDED_BY(mu_)
  // WAL size that the last complete checkpoint reached; under steady commits the WAL does not
  // start over after it, and checkpointing again at every commit would only repeat fsyncs.
  int64_t done_pages_ = 0;  // GUARDED_BY(mu_)
  bool retry_ = false;      // GUARDED_BY(mu_)
  bool stop_ = false;       // GUARDED_BY(mu_)
  Counters counters_;       // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::storage
