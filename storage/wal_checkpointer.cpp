// SPDX-License-Identifier: Apache-2.0

#include "storage/wal_checkpointer.h"

namespace sluice::storage {

namespace {

// Rounds after a checkpoint that could not copy everything (a reader still needed old frames) wait
// this long, so that a pinned WAL does not turn every commit into a checkpoint attempt.
constexpr std::chrono::milliseconds kRetryIncomplete{100};

const char* ModeName(int mode) {
  return mode == SQLITE_CHECKPOINT_TRUNCATE ? "TRUNCATE" : "PASSIVE";
}

}  // namespace

WalCheckpointer::WalCheckpointer(WalCheckpointerOptions options)
    : options_(std::move(options)),
      log_(options_.logger),
      clock_(options_.clock != nullptr ? options_.clock : &system_clock_) {}

Status WalCheckpointer::Start(WalCheckpointerOptions options,
                              std::unique_ptr<WalCheckpointer>* out) {
  if (!options.logger) return Status::InvalidArgument("WalCheckpointer needs a logger");
  std::unique_ptr<WalCheckpointer> c(new WalCheckpointer(std::move(options)));
  Status s = c->db_.Open(c->options_.path, SQLITE_OPEN_READWRITE, c->options_.vfs);
  // The checkpoint's fsyncs follow this connection's setting; OFF would let the writer restart
  // the WAL over frames whose pages never reached the disk.
  if (s.ok())
    s = c->db_.Exec(c->options_.sync_full ? "PRAGMA synchronous=FULL"
                                          : "PRAGMA synchronous=NORMAL");
  if (!s.ok()) return s;
  c->thread_ = std::thread([p = c.get()] { p->Run(); });
  *out = std::move(c);
  return Status::Ok();
}

WalCheckpointer::~WalCheckpointer() {
  Stop();
}

void WalCheckpointer::NoteWalPages(int64_t pages) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reported_pages_ = pages;
    counters_.wal_pages = pages;
    wake = DueLocked();
  }
  if (wake) wake_.notify_one();
}

void WalCheckpointer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  // No final checkpoint here: the writer's connection, closed last, checkpoints the whole WAL
  // and removes it, as SQLite does for the last connection to a database.
  db_.Close();
}

WalCheckpointer::Counters WalCheckpointer::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

bool WalCheckpointer::DueLocked() const {
  const int64_t p = reported_pages_;
  const int64_t t = options_.threshold_pages;
  return retry_ || (p >= t && (p < done_pages_ || p - done_pages_ >= t));
}

void WalCheckpointer::Run() {
  auto not_before = clock_->Now();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || DueLocked(); });
    if (stop_) return;
    // Backing off; Stop() still ends the wait at once. The wait is for the clock's remaining
    // time, checked again after it, so that a test's clock decides when the back-off is over.
    while (!stop_ && clock_->Now() < not_before)
      wake_.wait_for(lock, not_before - clock_->Now(), [&] { return stop_; });
    if (stop_) return;
    reported_pages_ = 0;  // the next commit reports the size again
    retry_ = false;
    lock.unlock();

    int wal_pages = 0;
    int copied = 0;
    const int rc = sqlite3_wal_checkpoint_v2(db_.db(), nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                             &wal_pages, &copied);
    bool ok = rc == SQLITE_OK || rc == SQLITE_BUSY;
    bool complete = rc == SQLITE_OK && copied == wal_pages;
    bool escalated = false;
    if (ok && wal_pages >= options_.escalate_pages) {
      // The WAL did not start over for escalate_pages pages (see the option). Right after the
      // PASSIVE pass only a few frames are left to copy, so commits wait about one fsync.
      escalated = true;
      std::unique_lock<std::mutex> writes;
      if (options_.hold_writes) writes = options_.hold_writes();
      sqlite3_busy_timeout(db_.db(), static_cast<int>(options_.escalation_busy_timeout.count()));
      int left = 0;
      const int trc =
          sqlite3_wal_checkpoint_v2(db_.db(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, &left, &copied);
      sqlite3_busy_timeout(db_.db(), 0);
      // Judged by the TRUNCATE alone: a PASSIVE pass that copied everything did not make the WAL
      // start over, which is what the escalation is for.
      complete = trc == SQLITE_OK;
      if (complete) wal_pages = 0;
      if (trc != SQLITE_OK && trc != SQLITE_BUSY) {
        ok = false;
        uint64_t suppressed = 0;
        if (error_throttle_.Allow(&suppressed)) {
          log_->warn("{} checkpoint of {} failed ({} similar since): {}; the WAL keeps the data",
                     ModeName(SQLITE_CHECKPOINT_TRUNCATE), options_.path, suppressed,
                     db_.Error(trc, "checkpointing").ToString());
        }
      }
    }
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      uint64_t suppressed = 0;
      if (error_throttle_.Allow(&suppressed)) {
        log_->warn(
            "{} checkpoint of {} failed ({} similar since): {}; the WAL keeps the data, retrying "
            "in {} ms",
            ModeName(SQLITE_CHECKPOINT_PASSIVE), options_.path, suppressed,
            db_.Error(rc, "checkpointing").ToString(), options_.retry_after_error.count());
      }
    }

    lock.lock();
    counters_.runs += escalated ? 2 : 1;
    if (escalated) counters_.escalations++;
    if (complete) counters_.complete++;
    if (!ok) counters_.failures++;
    const auto now = clock_->Now();
    // A TRUNCATE that found readers in the way stalled the writer for its busy timeout: such
    // attempts are spaced like errors.
    const bool back_off = !ok || (escalated && !complete);
    not_before = back_off   ? now + options_.retry_after_error
                 : complete ? now
                            : now + kRetryIncomplete;
    if (complete) {
      done_pages_ = std::max<int64_t>(wal_pages, 0);  // 0 after TRUNCATE
    } else {
      retry_ = true;  // even if no commit comes: the frames are still waiting
    }
  }
}

}  // namespace sluice::storage
