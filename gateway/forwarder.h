// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/histogram.h"
#include "common/log_throttle.h"
#include "connectors/sink.h"
#include "storage/event_log.h"

namespace sluice::gateway {

// A range of the log sent to an upstream again (`sluice replay`), with a position of its own.
struct ReplayRange {
  int64_t id = 0;            // the log's ReplayRequest id; 0: live forwarding, not a replay
  uint64_t from_seq = 0;     // first seq to send
  uint64_t through_seq = 0;  // last seq to send
  uint64_t position = 0;     // already confirmed through here (a replay resumed after a restart)
};

struct ForwarderOptions {
  // The upstream's name: the log cursor this forwarder reads after and advances, and its part of
  // each gap marker.
  std::string cursor = "kafka";
  // Whether the upstream takes an event (its route feeds the upstream); one it does not take is
  // passed by without being sent. Null: every event.
  std::function<bool(const storage::Event&)> takes;
  // Set: send this range again instead of forwarding live; the position goes to
  // EventLog::AdvanceReplay and the cursor is not touched. The loop ends once the range is done.
  ReplayRange replay;
  size_t max_in_flight = 10000;  // events handed to the sink and not yet confirmed
  size_t read_batch = 2000;      // events read from the log at a time
  size_t read_batch_bytes = 4 << 20;
  // The cursor is written at most this often while events flow: each write is a transaction, and
  // a crash in between only re-sends events (at-least-once), never loses one.
  std::chrono::milliseconds ack_interval{200};
  std::chrono::milliseconds idle_wait{100};
  std::chrono::milliseconds drain_timeout{10000};  // for in-flight events at Stop
  // While the upstream holds events until an operator acts (Delivery::Outcome::kHold), the first
  // open event is offered again after a backoff between these two.
  std::chrono::milliseconds hold_backoff_min{500};
  std::chrono::milliseconds hold_backoff_max{30000};
  // Test hook, called with "forwarder.wedge" each time a batch was read from the log (see
  // gateway/failpoint.h). Empty in production.
  std::function<void(const char*)> failpoint;
  // The forwarder's only source of time (ack interval, hold backoff, drain deadline, heartbeat);
  // the system clock if null. Must outlive the forwarder.
  const Clock* clock = nullptr;
  // If set, each confirmed event's time from receipt (Event::received_ms, wall clock) to its
  // confirmation is observed in seconds. Must outlive the forwarder.
  Histogram* forward_latency_seconds = nullptr;
};

struct ForwarderStats {
  uint64_t sent = 0;             // handed to the sink
  uint64_t delivered = 0;        // confirmed by the upstream
  uint64_t rejected = 0;         // refused for good, now in the dead-letter table
  uint64_t resent = 0;           // handed over again after the sink lost or held them
  uint64_t dropped_unsent = 0;   // dropped by the log's overflow policy before they were confirmed
  uint64_t skipped = 0;          // not for this upstream (its routes do not feed it), passed by
  uint64_t gap_records = 0;      // gap records the upstream confirmed
  bool finished = false;         // a replay whose range is done
  uint64_t holds = 0;            // backoffs because the upstream held events (Outcome::kHold)
  std::string hold_reason;       // why the upstream holds events now, with the fix; empty if not
  uint64_t window = 0;           // events sent and not yet passed by the cursor (bounded)
  uint64_t acked_through = 0;    // the log's cursor as last written
  int64_t last_progress_ms = 0;  // Clock::Now() in ms when the loop last completed a pass
};

// Moves events from the log to a sink in sequence order and advances the log's cursor.
//
// The cursor passes an event only when the sink confirmed it and every event before it, so after
// any crash forwarding restarts at the oldest unconfirmed event. Rejected events are written to the
// dead-letter table and then count as done, so one bad event never blocks the log. When the sink
// reports events lost in flight, forwarding rewinds to the oldest unconfirmed event and sends
// again everything not yet confirmed, in order, once nothing is in flight any more (so a resend
// never overtakes or interleaves with its original). Open events that the log's drop-oldest
// policy deleted meanwhile leave the window as dropped, so the cursor always reaches the last
// event whose predecessors are all settled.
//
// Held events (the upstream waits for an operator) stay in the log; after a backoff the first
// open one is offered alone until the upstream takes it. Events refused as part of a batch that
// was too large are sent again one at a time; only an event too large on its own is dead-lettered.
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
  // The first error that stopped the loop (the log or the sink failed for good); OK while healthy.
  // A full disk is not such an error: storing the cursor or a dead letter is retried until there is
  // room.
  Status error() const;

 private:
  enum class State : uint8_t { kOpen, kDone, kDropped };
  struct Pending {
    uint64_t seq;
    State state;
    bool alone = false;       // sent while nothing else was in flight (single-step)
    int64_t received_ms = 0;  // for the forward latency
    bool gap = false;         // a gap record
  };

  void Loop();
  bool FillSink();  // true if it read or sent something
  void HandleDeliveries(std::vector<connectors::Delivery>& deliveries);
  // What the upstream is sent for the row `e`, which it takes; false if it takes nothing of it (a
  // route that does not feed it, or a gap marker without its part).
  bool Prepare(storage::Event* e);
  // Stores the position: the cursor, or a replay's position.
  Status StorePosition(uint64_t through, bool done);
  // Records `e` as refused for good; false if it could not be recorded (the disk is full, or the
  // log failed: then the loop fails).
  bool DeadLetter(const storage::Event& e, std::string_view error);
  void Rewind();
  void Hold(const std::string& reason);
  void SettleDropped(uint64_t after_seq, const std::vector<storage::Event>& batch);
  void MaybeAcknowledge(bool force);
  Pending* FindPending(uint64_t seq);
  bool Fail(const Status& s);
  void WarnDiskFull(const Status& s);
  bool UnsentEmpty() const { return unsent_pos_ >= read_batch_.size(); }
  storage::Event& UnsentFront() { return read_batch_[unsent_pos_]; }
  void PopUnsent() { ++unsent_pos_; }
  void ClearUnsent() { unsent_pos_ = read_batch_.size(); }

  storage::EventLog* const log_;
  connectors::Sink* const sink_;
  const ForwarderOptions options_;
  const Clock* const clock_;
  std::shared_ptr<spdlog::logger> logger_;

  // Owned by the loop thread.
  std::deque<Pending> window_;  // sent events in seq order, settled or not
  // The last read from the log; its events from unsent_pos_ on are not yet accepted by the sink.
  // The log is read again only once they all are, into the same vector, whose Events keep their
  // buffers from read to read (a drain would otherwise allocate and free two strings per event);
  // what stays allocated is one read's worth, at most read_batch events and read_batch_bytes.
  std::vector<storage::Event> read_batch_;
  size_t unsent_pos_ = 0;
  bool replay_done_ = false;      // a replay read past its range: nothing more to read
  uint64_t next_read_after_ = 0;  // highest seq read from the log
  uint64_t acked_ = 0;
  // The disk was too full to record a dead letter, the upstream refused an event with nothing
  // in flight, or the window reached its bound, on this pass.
  bool stalled_ = false;
  // A rewind happened: nothing is read or sent until the sink has nothing in flight.
  bool resend_wait_ = false;
  bool too_large_batch_reported_ = false;  // said once: the remedy does not change
  // The upstream holds events: nothing is sent before hold_until_, then only the first open event,
  // alone (probe_seq_), until it is confirmed.
  bool held_ = false;
  std::chrono::steady_clock::time_point hold_until_{};
  uint64_t probe_seq_ = 0;
  Backoff hold_backoff_;
  // After a batch too large: events up to this seq are sent one at a time; 0 when off.
  uint64_t step_through_ = 0;
  std::chrono::steady_clock::time_point last_ack_{};
  LogThrottle dead_letter_log_{std::chrono::seconds(10)};
  LogThrottle disk_full_log_{std::chrono::seconds(10)};
  LogThrottle rewind_log_{std::chrono::seconds(10)};
  LogThrottle hold_log_{std::chrono::seconds(10)};

  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex stats_mu_;
  ForwarderStats stats_;  // GUARDED_BY(stats_mu_)
  Status error_;          // GUARDED_BY(stats_mu_)
};

}  // namespace sluice::gateway
