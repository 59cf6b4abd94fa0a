// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "storage/event_log.h"
#include "storage/event_writer.h"
#include "storage/ingress_journal.h"

namespace sluice::storage {

struct LogWriterOptions {
  // When the background thread commits the queue: once its oldest event has waited
  // commit_interval; sooner, after commit_gather, once commit_after_events are queued; at once
  // at commit_max_events. With the ingress journal this bounds only how soon upstreams see an
  // event, not its durability. Each commit rewrites the log's last pages (about 12 KiB in the
  // WAL, whatever it holds), so batches of a hundred events or more write little per event
  // (docs/performance.md, "Flash wear"), and a low rate waits for them.
  std::chrono::milliseconds commit_interval{100};
  std::chrono::milliseconds commit_gather{10};
  size_t commit_after_events = 100;
  size_t commit_max_events = 2000;  // events per transaction at most
  // Non-durable events queued at most; a writer that finds the queue full commits it itself, which
  // slows the source down instead of growing memory.
  size_t queue_capacity = 20000;
  // Backoff while the log is full under reject-new.
  std::chrono::milliseconds full_retry_min{50};
  std::chrono::milliseconds full_retry_max{2000};
  // Times the commits; the system clock if null. Must outlive the writer.
  const Clock* clock = nullptr;
};

struct LogWriterStats {
  uint64_t written = 0;         // events committed to the log
  uint64_t full_waits = 0;      // times a commit found the log full and waited for room
  uint64_t journaled = 0;       // durable events acknowledged through the ingress journal
  uint64_t journal_waits = 0;   // times the journal was full and a writer waited for a commit
  uint64_t journal_bypass = 0;  // durable events too large for the journal, committed directly
};

// Group commit in front of an EventLog, after LevelDB's writer queue: events from every thread go
// into one ordered queue and are committed together, so ingest runs at the log's batched speed.
//
// Write(event, durable=true) returns only once the event is durable to the log's sync mode: the
// MQTT source calls it for QoS 1/2 messages inside Paho's callback, so that the broker is
// acknowledged only for events that survive. With an ingress journal (the daemon always has one)
// the event is appended to the journal (one write, plus an fdatasync under sync = "full") and
// queued, and Write returns; the background thread commits the queue like QoS 0 events, and the
// journal forgets the events once they are in the log. An event too large for the journal, or
// every durable event without a journal, waits for a transaction holding it instead: whoever
// finds no commit in progress commits the whole queue (leader); the others wait and get the
// leader's result.
// Write(event, durable=false) queues the event and returns at once (QoS 0): the background thread
// commits the queue every commit_interval, or sooner when commit_max_events are waiting.
//
// When the log is full under reject-new, the committing thread waits with backoff until room
// appears (the upstream acknowledges) or Stop() is called; the queue and then the journal fill,
// and the source is thereby held back and the broker keeps the events. Thread-safe.
class LogWriter final : public EventWriter {
 public:
  // `log` and `journal` (null: none) must outlive the writer.
  LogWriter(EventLog* log, LogWriterOptions options, std::shared_ptr<spdlog::logger> logger,
            IngressJournal* journal = nullptr);
  ~LogWriter() override;

  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // `recovered`: the journal's events that were acknowledged but not yet in the log
  // (IngressJournal::Open's `pending`); they are committed first, before any new event.
  void Start(std::vector<Event> recovered = {});

  // Returns OK once the event is queued (durable=false) or committed (durable=true). Returns
  // Shutdown if Stop() began before the event was committed (it is then not in the log), or the
  // log's fatal error.
  Status Write(Event event, bool durable) override;

  // Commits whatever is queued, then stops the background thread. Events that cannot be
  // committed because the log stays full are abandoned with Shutdown after `grace`.
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  LogWriterStats Stats() const;

 private:
  // REQUIRES: lock held, committing_ false. Commits the first batch of the queue; releases the
  // lock while the transaction runs.
  void CommitBatchLocked(std::unique_lock<std::mutex>& lock);
  void BackgroundLoop();
  // REQUIRES: mu_ held. Queues the event, wakes the background thread when the next commit's time
  // changes; returns the event's queue position.
  uint64_t EnqueueLocked(Event event);
  // REQUIRES: mu_ held, queue not empty. When the background thread commits next.
  std::chrono::steady_clock::time_point CommitDueLocked() const;
  // Appends a durable event to the journal and queues it. REQUIRES: journal_mu_ held, mu_ not.
  Status WriteThroughJournal(Event* event, bool* bypass);
  // REQUIRES: lock held. Commits until every journal record up to `number` is in the log.
  Status CommitThroughLocked(std::unique_lock<std::mutex>& lock, uint64_t number);
  // REQUIRES: lock held, journal set. Makes what the log committed durable (EventLog::Sync) and
  // lets the journal forget it; a failure fails the writer. Releases the lock meanwhile.
  Status SyncLogLocked(std::unique_lock<std::mutex>& lock);
  // REQUIRES: lock held. Waits while the queue is at capacity, committing it if nobody does.
  Status WaitForQueueRoomLocked(std::unique_lock<std::mutex>& lock);

  EventLog* const log_;
  const LogWriterOptions options_;
  SystemClock system_clock_;
  const Clock* const clock_;
  std::shared_ptr<spdlog::logger> logger_;
  IngressJournal* const journal_;

  // Serialises journal appends and keeps the journal's record order the queue's order. Taken
  // before mu_, never while holding it.
  std::mutex journal_mu_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // committed_ advanced, or stopping
  std::condition_variable work_cv_;  // something to commit for the background thread
  std::deque<Event> queue_;          // GUARDED_BY(mu_)
  // GUARDED_BY(mu_) when the oldest queued event (or the rest left by the last commit) arrived
  std::chrono::steady_clock::time_point oldest_at_;
  uint64_t enqueued_ = 0;   // GUARDED_BY(mu_) events ever queued
  uint64_t committed_ = 0;  // GUARDED_BY(mu_) events ever taken off the queue
  // Every queued event up to this position is in the log. Events are written in queue order, and
  // once one cannot be written none after it is, so positions in (ok_through_, committed_] are
  // the ones lost to a failure or shutdown.
  uint64_t ok_through_ = 0;    // GUARDED_BY(mu_)
  bool committing_ = false;    // GUARDED_BY(mu_)
  bool stopping_ = false;      // GUARDED_BY(mu_)
  bool give_up_ = false;       // GUARDED_BY(mu_) stop waiting for room
  bool journal_done_ = false;  // GUARDED_BY(mu_) Stop() left the journal as it will be found
  Status failed_;              // GUARDED_BY(mu_)
  LogWriterStats stats_;       // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::storage
