#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/histogram.h"
#include "common/log_throttle.h"
#include "connectors/sink.h"
#include "storage/event_log.h"

namespace sluice::gateway {

struct ForwarderOptions {
  size_t max_in_flight = 50000;  // events handed to the sink and not yet confirmed
  size_t read_batch = 2000;      // events read from the log at a time
  size_t read_batch_bytes = 4 << 20;
  // The cursor is written at most this often while events flow: each write is a transaction, and
  // a crash in between only re-sends events (at-least-once), never loses one.
  std::chrono::milliseconds ack_interval{200};
  std::chrono::milliseconds idle_wait{100};
  std::chrono::milliseconds drain_timeout{10000};  // for in-flight events at Stop
  // Test hook, called with "forwarder.wedge" each time a batch was read from the log (see
  // gateway/failpoint.h). Empty in production.
  std::function<void(const char*)> failpoint;
  // If both are set, each confirmed event's time from receipt (Event::received_ms, wall clock) to
  // its confirmation is observed in seconds. Both must outlive the forwarder.
  const Clock* clock = nullptr;
  Histogram* forward_latency_seconds = nullptr;
};

struct ForwarderStats {
  uint64_t sent = 0;             // handed to the sink
  uint64_t delivered = 0;        // confirmed by the upstream
  uint64_t rejected = 0;         // refused for good, now in the dead-letter table
  uint64_t resent = 0;           // handed over again after the sink lost them
  uint64_t acked_through = 0;    // the log's cursor as last written
  int64_t last_progress_ms = 0;  // steady-clock ms when the loop last completed a pass
};

// Moves events from the log to a sink in sequence order and advances the log's cursor.
//
// The cursor passes an event only when the sink confirmed it and every event before it, so after
// any crash forwarding restarts at the oldest unconfirmed event. Rejected events are written to the
// dead-letter table and then count as done, so one bad event never blocks the log. When the sink
// reports events lost in flight, forwarding rewinds to the oldest unconfirmed event and sends
// again everything not yet confirmed, in order.
//
// Threads: one thread of its own runs the loop and owns the sink; Stats() from any thread.
class Forwarder {
 public:
  // `log` and `sink` must outlive the forwarder.
  Forwarder(storage::EventLog* log, connectors::Sink* sink, ForwarderOptions options,
            std::shared_ptr<spdlog::logger> logger);
  ~Forwarder();

  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  void Start();
  // Stops reading, waits up to drain_timeout for in-flight events, writes the cursor, joins.
  void Stop();

  ForwarderStats Stats() const;
  // The first error that stopped the loop (the log failed); OK while healthy. A full disk is not
  // such an error: storing the cursor or a dead letter is retried until there is room.
  Status error() const;

 private:
  struct Pending {
    uint64_t seq;
    bool done;
    int64_t received_ms = 0;  // for the forward latency
  };

  void Loop();
  bool FillSink();  // true if it sent something
  void HandleDeliveries(std::vector<connectors::Delivery>& deliveries);
  void Rewind();
  void MaybeAcknowledge(bool force);
  Pending* FindPending(uint64_t seq);
  bool Fail(const Status& s);
  void WarnDiskFull(const Status& s);

  storage::EventLog* const log_;
  connectors::Sink* const sink_;
  const ForwarderOptions options_;
  std::shared_ptr<spdlog::logger> logger_;

  // Owned by the loop thread.
  std::deque<Pending> window_;         // sent events in seq order, confirmed or not
  std::deque<storage::Event> unsent_;  // read from the log, not yet accepted by the sink
  uint64_t next_read_after_ = 0;       // highest seq read from the log
  uint64_t acked_ = 0;
  // The disk was too full to record a dead letter, or the upstream refused an event with nothing
  // in flight, on this pass.
  bool stalled_ = false;
  std::chrono::steady_clock::time_point last_ack_{};
  LogThrottle dead_letter_log_{std::chrono::seconds(10)};
  LogThrottle disk_full_log_{std::chrono::seconds(10)};
  LogThrottle rewind_log_{std::chrono::seconds(10)};

  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex stats_mu_;
  ForwarderStats stats_;  // GUARDED_BY(stats_mu_)
  Status error_;          // GUARDED_BY(stats_mu_)
};

}  // namespace sluice::gateway
