#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "storage/event_log.h"
#include "storage/event_writer.h"

namespace sluice::storage {

struct LogWriterOptions {
  std::chrono::milliseconds commit_interval{10};  // longest a non-durable event waits
  size_t commit_max_events = 2000;                // events per transaction at most
  // Non-durable events queued at most; a writer that finds the queue full commits it itself, which
  // slows the source down instead of growing memory.
  size_t queue_capacity = 20000;
  // Backoff while the log is full under reject-new.
  std::chrono::milliseconds full_retry_min{50};
  std::chrono::milliseconds full_retry_max{2000};
};

struct LogWriterStats {
  uint64_t written = 0;     // events committed to the log
  uint64_t full_waits = 0;  // times a commit found the log full and waited for room
};

// Group commit in front of an EventLog, after LevelDB's writer queue: events from every thread go
// into one ordered queue and are committed together, so ingest runs at the log's batched speed.
//
// Write(event, durable=true) returns only once a transaction holding the event has committed: the
// MQTT source calls it for QoS 1/2 messages inside Paho's callback, so that the broker is
// acknowledged only for events already in the log. Whoever finds no commit in progress commits
// the whole queue (leader); the others wait and get the leader's result.
// Write(event, durable=false) queues the event and returns at once (QoS 0): the background thread
// commits the queue every commit_interval, or sooner when commit_max_events are waiting.
//
// When the log is full under reject-new, the committing thread waits with backoff until room
// appears (the upstream acknowledges) or Stop() is called; the source is thereby held back and the
// broker keeps the events. Thread-safe.
class LogWriter final : public EventWriter {
 public:
  // `log` must outlive the writer.
  LogWriter(EventLog* log, LogWriterOptions options, std::shared_ptr<spdlog::logger> logger);
  ~LogWriter() override;

  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  void Start();

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

  EventLog* const log_;
  const LogWriterOptions options_;
  std::shared_ptr<spdlog::logger> logger_;

  mutable std::mutex mu_;
  std::condition_variable cv_;       // committed_ advanced, or stopping
  std::condition_variable work_cv_;  // something to commit for the background thread
  std::deque<Event> queue_;          // GUARDED_BY(mu_)
  uint64_t enqueued_ = 0;            // GUARDED_BY(mu_) events ever queued
  uint64_t committed_ = 0;           // GUARDED_BY(mu_) events ever taken off the queue
  // Every queued event up to this position is in the log. Events are written in queue order, and
  // once one cannot be written none after it is, so positions in (ok_through_, committed_] are
  // the ones lost to a failure or shutdown.
  uint64_t ok_through_ = 0;  // GUARDED_BY(mu_)
  bool committing_ = false;  // GUARDED_BY(mu_)
  bool stopping_ = false;    // GUARDED_BY(mu_)
  bool give_up_ = false;     // GUARDED_BY(mu_) stop waiting for room
  Status failed_;            // GUARDED_BY(mu_)
  LogWriterStats stats_;     // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::storage
