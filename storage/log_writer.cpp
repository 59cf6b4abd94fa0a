// SPDX-License-Identifier: Apache-2.0

#include "storage/log_writer.h"

#include <algorithm>
#include <vector>

#include "common/backoff.h"

namespace sluice::storage {

namespace {
constexpr std::chrono::milliseconds kClockRecheck{50};
}  // namespace

LogWriter::LogWriter(EventLog* log, LogWriterOptions options,
                     std::shared_ptr<spdlog::logger> logger, IngressJournal* journal)
    : log_(log),
      options_(options),
      clock_(options_.clock != nullptr ? options_.clock : &system_clock_),
      logger_(std::move(logger)),
      journal_(journal) {}

LogWriter::~LogWriter() {
  Stop(std::chrono::milliseconds(0));
}

void LogWriter::Start(std::vector<Event> recovered) {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  // Ahead of anything new: they were acknowledged before it arrived.
  for (auto it = recovered.rbegin(); it != recovered.rend(); ++it) {
    queue_.push_front(std::move(*it));
    ++enqueued_;
  }
  oldest_at_ = clock_->Now();
  thread_ = std::thread([this] { BackgroundLoop(); });
}

uint64_t LogWriter::EnqueueLocked(Event event) {
  if (queue_.empty()) oldest_at_ = clock_->Now();
  queue_.push_back(std::move(event));
  // The background thread sleeps until the next commit is due; these change when it is.
  const size_t n = queue_.size();
  if (n == 1 || n == options_.commit_after_events || n >= options_.commit_max_events) {
    work_cv_.notify_one();
  }
  return ++enqueued_;
}

std::chrono::steady_clock::time_point LogWriter::CommitDueLocked() const {
  // A high rate fills a batch quickly: commit it after the short gather time, so that upstreams
  // see events soon. A low rate would commit a handful of events each time, rewriting the log's
  // last pages for them; it waits up to commit_interval for more.
  if (queue_.size() >= options_.commit_max_events) return oldest_at_;
  if (queue_.size() >= options_.commit_after_events) return oldest_at_ + options_.commit_gather;
  return oldest_at_ + options_.commit_interval;
}

Status LogWriter::WaitForQueueRoomLocked(std::unique_lock<std::mutex>& lock) {
  // A writer that finds the queue full becomes the committer itself: the source is slowed to the
  // log's speed and memory stays bounded.
  while (queue_.size() >= options_.queue_capacity) {
    if (!failed_.ok()) return failed_;
    if (give_up_) return Status::Shutdown("event log writer stopped");
    if (!committing_) {
      CommitBatchLocked(lock);
    } else {
      cv_.wait(lock);
    }
  }
  return Status::Ok();
}

Status LogWriter::CommitThroughLocked(std::unique_lock<std::mutex>& lock, uint64_t number) {
  while (journal_->applied() < number) {
    if (!failed_.ok()) return failed_;
    if (give_up_) return Status::Shutdown("event log writer stopped");
    if (committing_) {
      cv_.wait(lock);
      continue;
    }
    if (!queue_.empty()) {
      CommitBatchLocked(lock);
      continue;
    }
    // Everything queued is in the log, but under sync = "full" perhaps not durable yet.
    Status s = SyncLogLocked(lock);
    if (!s.ok()) return s;
    if (journal_->applied() >= number) break;
    // Journal records whose events left the queue without reaching the log: only a restart
    // recovers them, so the journal cannot start over.
    return Status::IoError("ingress journal records up to " + std::to_string(number) +
                           " are not in the log and no longer queued");
  }
  return Status::Ok();
}

Status LogWriter::SyncLogLocked(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  Status s = log_->Sync();
  if (s.ok()) journal_->MarkApplied(log_->SyncedIngress());
  lock.lock();
  if (!s.ok() && failed_.ok()) {
    failed_ = s;
    logger_->critical("cannot sync the event log: {}", s.ToString());
    cv_.notify_all();
  }
  return s;
}

Status LogWriter::WriteThroughJournal(Event* event, bool* bypass) {
  *bypass = false;
  {
    std::unique_lock<std::mutex> lock(mu_);
    Status s = WaitForQueueRoomLocked(lock);
    if (!s.ok()) return s;
    if (!failed_.ok()) return failed_;
    if (give_up_ || journal_done_) return Status::Shutdown("event log writer stopped");
  }
  Status s = journal_->Append(event);
  if (s.IsFull()) {
    // The journal starts over at its front once every record in it is in the log.
    std::unique_lock<std::mutex> lock(mu_);
    stats_.journal_waits++;
    s = CommitThroughLocked(lock, journal_->last_number());
    lock.unlock();
    if (s.ok()) s = journal_->Append(event);
  }
  if (s.code() == Status::Code::kInvalidArgument) {
    *bypass = true;
    return Status::Ok();
  }
  if (!s.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failed_.ok()) {
      failed_ = s;
      logger_->critical("cannot write to the ingress journal: {}", s.ToString());
    }
    cv_.notify_all();
    return s;
  }
  // Acknowledged from here on: a restart finds the event in the journal if not in the log.
  std::lock_guard<std::mutex> lock(mu_);
  EnqueueLocked(std::move(*event));
  stats_.journaled++;
  return Status::Ok();
}

Status LogWriter::Write(Event event, bool durable) {
  if (durable && journal_ != nullptr) {
    std::lock_guard<std::mutex> journal_lock(journal_mu_);
    bool bypass = false;
    // The event is moved only when it goes through the journal.
    Status s = WriteThroughJournal(&event, &bypass);
    if (!bypass) return s;
  }
  std::unique_lock<std::mutex> lock(mu_);
  if (!durable) {
    Status s = WaitForQueueRoomLocked(lock);
    if (!s.ok()) return s;
  } else if (journal_ != nullptr) {
    stats_.journal_bypass++;
  }
  if (!failed_.ok()) return failed_;
  if (give_up_) return Status::Shutdown("event log writer stopped");
  const uint64_t pos = EnqueueLocked(std::move(event));
  if (!durable) return Status::Ok();
  while (ok_through_ < pos) {
    if (!failed_.ok()) return failed_;
    if (committed_ >= pos || give_up_) {
      return Status::Shutdown("event log writer stopped before the event was committed");
    }
    if (!committing_) {
      CommitBatchLocked(lock);
    } else {
      cv_.wait(lock);
    }
  }
  return Status::Ok();
}

void LogWriter::CommitBatchLocked(std::unique_lock<std::mutex>& lock) {
  committing_ = true;
  const size_t n = std::min(queue_.size(), options_.commit_max_events);
  std::vector<Event> batch;
  batch.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  const uint64_t first_pos = committed_ + 1;
  lock.unlock();

  Backoff backoff(options_.full_retry_min, options_.full_retry_max);
  size_t done = 0;
  Status s;
  bool gave_up = false;
  while (done < n) {
    size_t appended = 0;
    s = log_->Append(std::span<Event>(batch).subspan(done), &appended);
    done += appended;
    if (s.ok() || !s.IsFull()) break;
    // The log is full under reject-new: hold the source back until the upstream frees room.
    lock.lock();
    if (stats_.full_waits++ == 0 || backoff.attempts() == 0) {
      logger_->warn("{}; holding back new events until the upstream frees room", s.message());
    }
    const bool stop = cv_.wait_for(lock, backoff.Next(), [&] { return give_up_; });
    lock.unlock();
    if (stop) {
      gave_up = true;
      break;
    }
  }

  // Under sync = "full" the commit may not be durable yet (EventLog::Sync): the journal keeps
  // its records until it is.
  if (journal_ != nullptr && done > 0) journal_->MarkApplied(log_->SyncedIngress());

  lock.lock();
  committing_ = false;
  committed_ = first_pos + n - 1;
  ok_through_ = first_pos + done - 1;
  stats_.written += done;
  if (done < n) {
    if (!s.ok() && !s.IsFull() && !gave_up) {
      failed_ = s;
      logger_->critical("cannot write to the event log: {}", s.ToString());
    }
    // Whatever is still queued can no longer be written in order: it is lost to the log with this
    // batch. Durable writers among them see an error and do not acknowledge their messages.
    size_t lost = (n - done) + queue_.size();
    committed_ += queue_.size();
    queue_.clear();
    logger_->error("{} events were not written to the event log ({})", lost,
                   gave_up ? "shutdown while the log was full" : s.ToString());
    if (gave_up) give_up_ = true;
  }
  cv_.notify_all();
}

void LogWriter::BackgroundLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (stopping_ && !committing_ && (queue_.empty() || give_up_ || !failed_.ok())) break;
    if (committing_) {
      // A writer is committing the queue itself; look again once it is done.
      cv_.wait_for(lock, options_.commit_interval);
      continue;
    }
    if (queue_.empty() || !failed_.ok() || give_up_) {
      work_cv_.wait_for(lock, options_.commit_interval);
      continue;
    }
    const auto now = clock_->Now();
    if (!stopping_ && now < CommitDueLocked()) {
      // Measured on the injected clock, which moves without waking anyone: look again at least
      // every kClockRecheck. An Enqueue that brings the commit forward wakes it at once.
      work_cv_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(CommitDueLocked() - now,
                                                                            kClockRecheck));
      continue;
    }
    CommitBatchLocked(lock);
    // What is left came after the batch: its wait starts now, give or take the commit.
    if (!queue_.empty() && queue_.size() < options_.commit_after_events) {
      oldest_at_ = clock_->Now();
    }
  }
}

void LogWriter::Stop(std::chrono::milliseconds grace) {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  work_cv_.notify_all();
  // Let the queue drain; if the log stays full, give up after the grace period. After a failure
  // nothing commits any more (a failed journal append leaves the queue as it was): no wait.
  cv_.wait_for(lock, grace, [&] { return (queue_.empty() || !failed_.ok()) && !committing_; });
  if (!queue_.empty() || committing_) give_up_ = true;
  cv_.notify_all();
  work_cv_.notify_all();
  lock.unlock();
  if (thread_.joinable()) thread_.join();
  lock.lock();
  if (!queue_.empty()) {
    logger_->error("{} queued events were not written to the event log at shutdown", queue_.size());
    committed_ += queue_.size();
    queue_.clear();
  }
  give_up_ = true;
  cv_.notify_all();
  lock.unlock();
  if (journal_ == nullptr) return;
  // No writer is left (the source stopped first); a late one finds give_up_ set.
  std::lock_guard<std::mutex> journal_lock(journal_mu_);
  lock.lock();
  if (journal_done_) return;
  journal_done_ = true;
  if (failed_.ok()) (void)SyncLogLocked(lock);
  lock.unlock();
  if (journal_->applied() >= journal_->last_number()) {
    // A clean stop leaves nothing to recover.
    Status s = journal_->Reset();
    if (!s.ok()) logger_->warn("could not empty the ingress journal at shutdown: {}", s.ToString());
  } else {
    logger_->warn(
        "ingress journal: acknowledged events (records {}..{}) are not in the log; they go in at "
        "the next start",
        journal_->applied() + 1, journal_->last_number());
  }
}

LogWriterStats LogWriter::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace sluice::storage
