// SPDX-License-Identifier: Apache-2.0

#include "gateway/forwarder.h"

#include <algorithm>
#include <limits>
#include <map>

#include "storage/gap_marker.h"

namespace sluice::gateway {

namespace {
using connectors::Delivery;

// While the upstream is unreachable, librdkafka keeps every event handed to it in memory until a
// broker answers (measured: about 900 bytes per 100-byte event, so a full window of 50,000, the
// old default, added some 40 MiB of RSS during an outage). A small window is enough to notice the
// upstream's return; the rest of the backlog waits on disk, and the full window opens with the
// first confirmation.
constexpr size_t kInFlightWhileDisconnected = 1000;

// The window holds every sent event until the cursor passes it. While its first event stays open
// (held, lost, or in flight for long) later ones may be confirmed behind it; past this many
// entries per in-flight slot nothing new is sent, so memory stays bounded.
constexpr size_t kWindowPerInFlight = 2;

size_t InFlightLimit(const connectors::Sink& sink, size_t max_in_flight) {
  return sink.Connected() ? max_in_flight : std::min(max_in_flight, kInFlightWhileDisconnected);
}

const Clock* DefaultClock() {
  static const SystemClock clock;
  return &clock;
}

int64_t Millis(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
}  // namespace

Forwarder::Forwarder(storage::EventLog* log, connectors::Sink* sink, ForwarderOptions options,
                     std::shared_ptr<spdlog::logger> logger)
    : log_(log),
      sink_(sink),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : DefaultClock()),
      logger_(std::move(logger)),
      hold_backoff_(options_.hold_backoff_min, options_.hold_backoff_max) {}

Forwarder::~Forwarder() {
  Stop();
}

void Forwarder::Start() {
  // A log without this cursor fails the first acknowledgement, which stops the loop with the
  // reason; starting from 0 meanwhile only reads.
  uint64_t cursor = 0;
  if (options_.replay.id != 0) {
    const ReplayRange& r = options_.replay;
    acked_ = std::max(r.position, r.from_seq > 0 ? r.from_seq - 1 : 0);
  } else if (log_->CursorPosition(options_.cursor, &cursor).ok()) {
    acked_ = cursor;
  }
  next_read_after_ = acked_;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.acked_through = acked_;
    stats_.last_progress_ms = Millis(clock_->Now());
  }
  thread_ = std::thread([this] { Loop(); });
}

void Forwarder::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

ForwarderStats Forwarder::Stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

Status Forwarder::error() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return error_;
}

bool Forwarder::Fail(const Status& s) {
  logger_->critical("forwarding stopped: {}", s.ToString());
  std::lock_guard<std::mutex> lock(stats_mu_);
  if (error_.ok()) error_ = s;
  return false;
}

Forwarder::Pending* Forwarder::FindPending(uint64_t seq) {
  auto it = std::lower_bound(window_.begin(), window_.end(), seq,
                             [](const Pending& p, uint64_t s) { return p.seq < s; });
  if (it == window_.end() || it->seq != seq) return nullptr;
  return &*it;
}

void Forwarder::Loop() {
  std::vector<Delivery> deliveries;
  bool sink_failed = false;
  while (!stop_.load() && error().ok() && !Stats().finished) {
    const bool busy = FillSink();
    if (!error().ok()) break;
    std::chrono::milliseconds wait(0);
    if (!busy) {
      const size_t in_flight = sink_->InFlight();
      if (in_flight > 0) {
        // Waiting on the upstream: short polls while it answers, longer ones while it does not.
        const bool window_full = in_flight >= InFlightLimit(*sink_, options_.max_in_flight);
        wait = (window_full || !sink_->Connected()) ? options_.idle_wait
                                                    : std::chrono::milliseconds(2);
      } else if (replay_done_) {
        // The range is read; only its last position remains to be stored.
        wait = options_.ack_interval;
      } else if (held_) {
        // Nothing in flight and the hold's backoff running: wait for its end, never spin.
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(hold_until_ - clock_->Now());
        wait = std::clamp(left, std::chrono::milliseconds(1), options_.idle_wait);
      }
    }
    if (stalled_) {
      // A full disk or the window's bound held up the next event: wait instead of spinning.
      wait = options_.idle_wait;
      stalled_ = false;
    }
    deliveries.clear();
    sink_->Poll(wait, &deliveries);
    HandleDeliveries(deliveries);
    if (!error().ok()) break;
    MaybeAcknowledge(false);
    if (Status s = sink_->error(); !s.ok()) {
      sink_failed = true;
      Fail(s);
      break;
    }
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.last_progress_ms = Millis(clock_->Now());
      stats_.window = window_.size();
    }
    if (!busy && !held_ && sink_->InFlight() == 0 && UnsentEmpty() && !replay_done_) {
      log_->WaitForEventsAfter(next_read_after_, options_.idle_wait);
    }
  }

  // Shutdown: give what is in flight a bounded time to be confirmed, then store the cursor.
  if (error().ok() && sink_->InFlight() > 0) {
    const auto deadline = clock_->Now() + options_.drain_timeout;
    while (sink_->InFlight() > 0 && clock_->Now() < deadline && error().ok()) {
      deliveries.clear();
      sink_->Poll(std::chrono::milliseconds(50), &deliveries);
      HandleDeliveries(deliveries);
    }
    if (sink_->InFlight() > 0) {
      logger_->warn(
          "{} events still unconfirmed by {} at shutdown; they stay in the log and are "
          "sent again on the next start",
          sink_->InFlight(), sink_->name());
    }
  }
  // A failed sink leaves the log usable: store what was confirmed, so less is sent twice.
  if (error().ok() || sink_failed) MaybeAcknowledge(true);
}

bool Forwarder::FillSink() {
  if (resend_wait_) {
    // The originals of the events about to be sent again may still be in flight; a resend now
    // could land before them or between them (B, A, B) upstream.
    if (sink_->InFlight() > 0) return false;
    resend_wait_ = false;
  }
  if (held_ && clock_->Now() < hold_until_) return false;
  bool busy = false;
  bool read = false;
  uint64_t sent = 0;
  uint64_t resent = 0;
  uint64_t rejected = 0;
  uint64_t skipped = 0;
  Status failed;
  const size_t window_cap = kWindowPerInFlight * std::max<size_t>(options_.max_in_flight, 1);
  while (!stop_.load()) {
    // One at a time while held (the first open event probes the upstream) and after a batch that
    // was too large (each event is tried on its own).
    const bool single = held_ || step_through_ != 0;
    const size_t limit = single ? 1 : InFlightLimit(*sink_, options_.max_in_flight);
    if (sink_->InFlight() >= limit) break;
    if (UnsentEmpty()) {
      // One read per pass: a rewind across many confirmed events must not keep the loop, and the
      // heartbeat the watchdog reads, from its next pass.
      if (read) break;
      read = true;
      // After a rewind the log is read again from the first open event.
      const bool rereading = !window_.empty() && window_.back().seq > next_read_after_;
      const size_t max_events = rereading
                                    ? options_.read_batch
                                    : std::min(options_.read_batch, limit - sink_->InFlight());
      std::vector<storage::Event>& batch = read_batch_;
      Status s = log_->Read(next_read_after_, max_events, options_.read_batch_bytes, &batch);
      unsent_pos_ = 0;
      if (!s.ok()) {
        ClearUnsent();
        failed = s;
        break;
      }
      if (rereading) SettleDropped(next_read_after_, batch);
      if (options_.replay.id != 0) {
        // The range ends at through_seq; rows after it, or none at all (the rest of the range
        // left the log), end the reading.
        const uint64_t through = options_.replay.through_seq;
        while (!batch.empty() && batch.back().seq > through) batch.pop_back();
        if (batch.empty()) {
          replay_done_ = true;
          next_read_after_ = std::max(next_read_after_, through);
          break;
        }
      }
      if (batch.empty()) break;
      busy = true;
      if (options_.failpoint) options_.failpoint("forwarder.wedge");
      next_read_after_ = batch.back().seq;
    }
    storage::Event& e = UnsentFront();
    Pending* existing =
        !window_.empty() && e.seq <= window_.back().seq ? FindPending(e.seq) : nullptr;
    if (existing != nullptr && existing->state == State::kDone && !existing->gap &&
        e.kind == storage::EventKind::kGap) {
      // The event at this seq was confirmed, then a drop deleted it with open events before it
      // and put a gap marker in its place: those events are gone, and only the marker can tell
      // the upstream so. Open again, for the marker.
      existing->state = State::kOpen;
    }
    if (existing != nullptr && existing->state != State::kOpen) {  // settled before a rewind
      PopUnsent();
      busy = true;
      continue;
    }
    if (step_through_ != 0 && e.seq > step_through_) {
      // Every event that was open at the too-large answer is settled once the last one sent
      // alone is; then full speed again.
      if (sink_->InFlight() > 0) break;
      step_through_ = 0;
      continue;
    }
    if (existing == nullptr && window_.size() >= window_cap) {
      stalled_ = true;
      break;
    }
    // Settles the first unsent event without sending it; the cursor passes it with its neighbours.
    auto settle_unsent = [&] {
      if (existing == nullptr) {
        window_.push_back({UnsentFront().seq, State::kDone});
      } else {
        existing->state = State::kDone;
      }
      PopUnsent();
      busy = true;
    };
    if (!Prepare(&e)) {
      settle_unsent();
      skipped++;
      continue;
    }
    Status s = sink_->Send(e);
    if (s.ok()) {
      if (existing == nullptr) {
        window_.push_back(
            {e.seq, State::kOpen, single, e.received_ms, e.kind == storage::EventKind::kGap});
      } else {
        existing->alone = single;
        // A gap marker takes the seq of the last event it stands for, which may have been sent
        // before the drop deleted it.
        existing->gap = e.kind == storage::EventKind::kGap;
        resent++;
      }
      if (held_) probe_seq_ = e.seq;
      PopUnsent();
      busy = true;
      sent++;
      continue;
    }
    if (s.code() == Status::Code::kInvalidArgument) {
      // The disk is full: the event stays first in line and is refused and recorded again on a
      // later pass, once there is room; the cursor cannot pass it meanwhile.
      if (!DeadLetter(e, s.message())) break;
      settle_unsent();
      rejected++;
      continue;
    }
    if (s.code() == Status::Code::kUnavailable) {
      // Unavailable with a hold reason: an operator must act, so back off like a held delivery.
      // Otherwise serve delivery reports first, then try the same event again; with nothing in
      // flight no report is coming, so wait rather than ask again in a tight loop.
      if (std::string reason = sink_->HoldReason(); !reason.empty()) {
        Hold(reason);
      } else if (sink_->InFlight() == 0) {
        stalled_ = true;
      }
      break;
    }
    if (s.code() != Status::Code::kFull) {
      logger_->critical("{} refused event seq {} with an unexpected error", sink_->name(), e.seq);
      failed = s;
    }
    break;  // Full: serve delivery reports first, then send the same event again
  }
  if (sent + rejected + skipped > 0) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.sent += sent;
    stats_.resent += resent;
    stats_.rejected += rejected;
    stats_.skipped += skipped;
  }
  if (!failed.ok()) return Fail(failed);
  return busy;
}

bool Forwarder::Prepare(storage::Event* e) {
  if (e->kind == storage::EventKind::kGap) {
    std::map<std::string, storage::GapRange> parts;
    if (Status s = storage::DecodeGapMarker(e->payload, &parts); !s.ok()) {
      // The marker was written by this program; an unreadable one means the file was damaged,
      // which SQLite's checks would have caught. Pass it by rather than stop forwarding.
      logger_->error("gap marker seq {} unreadable ({}); passed by", e->seq, s.message());
      return false;
    }
    auto it = parts.find(options_.cursor);
    if (it == parts.end()) return false;  // this upstream had confirmed every dropped event
    e->gap = it->second;
    return true;
  }
  return !options_.takes || options_.takes(*e);
}

bool Forwarder::DeadLetter(const storage::Event& e, std::string_view error) {
  uint64_t suppressed = 0;
  if (dead_letter_log_.Allow(&suppressed)) {
    logger_->error(
        "event seq {} on '{}' refused for good by {}: {}; moved to the "
        "dead-letter table ({} more since the last report)",
        e.seq, e.topic, sink_->name(), error, suppressed);
  }
  Status d = log_->DeadLetter(options_.cursor, e, error);
  if (d.IsFull()) {
    WarnDiskFull(d);
    stalled_ = true;
    return false;
  }
  if (!d.ok()) return Fail(d);
  return true;
}

void Forwarder::SettleDropped(uint64_t after_seq, const std::vector<storage::Event>& batch) {
  // The log returns every waiting event after `after_seq` in order, and every open event in the
  // window is waiting unless the drop-oldest policy deleted it: an open event the read skipped
  // is gone and can never be sent again.
  uint64_t dropped = 0;
  auto settle = [&](uint64_t after, uint64_t before) {
    auto it = std::lower_bound(window_.begin(), window_.end(), after + 1,
                               [](const Pending& p, uint64_t s) { return p.seq < s; });
    for (; it != window_.end() && it->seq < before; ++it) {
      if (it->state == State::kOpen) {
        it->state = State::kDropped;
        dropped++;
      }
    }
  };
  uint64_t prev = after_seq;
  for (const storage::Event& e : batch) {
    if (e.seq > prev + 1) settle(prev, e.seq);
    prev = e.seq;
  }
  if (batch.empty()) settle(prev, std::numeric_limits<uint64_t>::max());
  if (dropped == 0) return;
  logger_->warn(
      "{} events waiting for {} were dropped from the log by overflow = drop-oldest before "
      "the upstream confirmed them",
      dropped, sink_->name());
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.dropped_unsent += dropped;
}

void Forwarder::WarnDiskFull(const Status& s) {
  uint64_t suppressed = 0;
  if (disk_full_log_.Allow(&suppressed)) {
    logger_->warn(
        "cannot record a dead letter ({}); the event is retried ({} more since the "
        "last report)",
        s.message(), suppressed);
  }
}

void Forwarder::HandleDeliveries(std::vector<Delivery>& deliveries) {
  using Outcome = Delivery::Outcome;
  bool rewind = false;
  bool hold = false;
  bool too_large = false;
  bool probe_delivered = false;
  std::string hold_reason;
  uint64_t delivered = 0;
  uint64_t rejected = 0;
  uint64_t dropped = 0;
  uint64_t gap_records = 0;
  Histogram* const latency = options_.forward_latency_seconds;
  const int64_t now_ms = latency != nullptr && !deliveries.empty() ? clock_->NowUnixMillis() : 0;
  for (auto& d : deliveries) {
    if (d.outcome == Outcome::kRetry) {
      rewind = true;
      continue;
    }
    Pending* p = d.seq == 0 ? nullptr : FindPending(d.seq);
    if (d.outcome == Outcome::kHold && (d.seq == 0 || (p != nullptr && p->state == State::kOpen))) {
      // The event stays open; the rewind sends it again after the backoff.
      hold = true;
      if (!d.error.empty()) hold_reason = d.error;
      rewind = true;
      continue;
    }
    if (p == nullptr || p->state != State::kOpen) continue;  // settled before a rewind
    if (d.outcome == Outcome::kTooLarge && !p->alone) {
      // A batch-level answer: try each event on its own before concluding.
      if (!too_large_batch_reported_) {
        too_large_batch_reported_ = true;
        logger_->error(
            "upstream {}: a batch was refused as too large ({}); its events are sent again one "
            "at a time, but batches already in flight behind it may have landed first, out of "
            "order. Set batch_bytes below the topic's max.message.bytes (docs/configuration.md)",
            options_.cursor, d.error);
      }
      too_large = true;
      rewind = true;
      continue;
    }
    if (d.outcome == Outcome::kRejected || d.outcome == Outcome::kTooLarge) {
      std::vector<storage::Event> one;
      Status s = log_->Read(d.seq - 1, 1, SIZE_MAX, &one);
      if (!s.ok()) {
        Fail(s);
        return;
      }
      if (one.empty() || one[0].seq != d.seq) {
        p->state = State::kDropped;  // deleted by drop-oldest meanwhile: nothing to record
        dropped++;
        continue;
      }
      if (!DeadLetter(one[0], d.error)) {
        if (!error().ok()) return;
        // Not recorded (disk full): the event stays open and is sent again, and refused again,
        // by the rewind.
        rewind = true;
        continue;
      }
      rejected++;
    } else if (p->gap) {
      gap_records++;
      if (held_ && d.seq == probe_seq_) probe_delivered = true;
    } else {
      delivered++;
      if (held_ && d.seq == probe_seq_) probe_delivered = true;
      if (latency != nullptr) {
        // Wall clocks can step back; a negative latency is a clock change, not a fast delivery.
        latency->Observe(static_cast<double>(std::max<int64_t>(now_ms - p->received_ms, 0)) /
                         1000.0);
      }
    }
    p->state = State::kDone;
  }
  if (delivered + rejected + dropped + gap_records > 0) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.gap_records += gap_records;
    stats_.delivered += delivered;
    stats_.rejected += rejected;
    stats_.dropped_unsent += dropped;
  }
  if (probe_delivered && !hold) {
    held_ = false;
    probe_seq_ = 0;
    hold_backoff_.Reset();
    logger_->info("{} takes events again; forwarding at full speed", sink_->name());
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.hold_reason.clear();
  }
  if (too_large) {
    for (auto it = window_.rbegin(); it != window_.rend(); ++it) {
      if (it->state == State::kOpen) {
        step_through_ = std::max(step_through_, it->seq);
        break;
      }
    }
  }
  if (hold) {
    if (hold_reason.empty()) hold_reason = sink_->HoldReason();
    if (hold_reason.empty()) hold_reason = sink_->name() + " holds events";
    // The answers to one batch can arrive over several polls; only the first one after the
    // backoff (the probe's) starts the next, longer backoff.
    if (!held_ || clock_->Now() >= hold_until_) {
      Hold(hold_reason);
    } else {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.hold_reason = hold_reason;
    }
  }
  if (rewind) Rewind();
}

void Forwarder::Hold(const std::string& reason) {
  held_ = true;
  probe_seq_ = 0;
  const std::chrono::milliseconds delay = hold_backoff_.Next();
  hold_until_ = clock_->Now() + delay;
  uint64_t suppressed = 0;
  if (hold_log_.Allow(&suppressed)) {
    logger_->warn(
        "{} holds events until an operator acts: {}; they stay in the log (cursor {}), trying "
        "again in {} ms ({} more since the last report)",
        sink_->name(), reason, acked_, delay.count(), suppressed);
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.holds++;
  stats_.hold_reason = reason;
}

void Forwarder::Rewind() {
  // Everything not yet settled is sent again from the log, in order, once nothing is in flight;
  // settled events in the window are skipped by FillSink.
  uint64_t first_open = 0;
  uint64_t open = 0;
  for (const Pending& p : window_) {
    if (p.state != State::kOpen) continue;
    if (first_open == 0) first_open = p.seq;
    open++;
  }
  // Events read ahead but not yet sent are read again too: with nothing open in the window (the
  // sink refused the first of them), the read position would otherwise pass them unsent and the
  // cursor would acknowledge them.
  uint64_t restart = first_open;
  if (!UnsentEmpty() && (restart == 0 || UnsentFront().seq < restart)) {
    restart = UnsentFront().seq;
  }
  ClearUnsent();
  if (restart != 0) next_read_after_ = restart - 1;
  resend_wait_ = true;
  uint64_t suppressed = 0;
  // An upstream that refuses every attempt (an ACL, a rebuilt producer) rewinds again and again.
  if (open > 0 && rewind_log_.Allow(&suppressed)) {
    logger_->warn(
        "{} did not take {} events; sending them again from seq {} once nothing is in flight "
        "({} more since the last report)",
        sink_->name(), open, next_read_after_ + 1, suppressed);
  }
}

void Forwarder::MaybeAcknowledge(bool force) {
  uint64_t through = acked_;
  while (!window_.empty() && window_.front().state != State::kOpen) {
    through = window_.front().seq;
    window_.pop_front();
  }
  // With nothing outstanding, every event read so far is settled (events dropped by the log's
  // overflow policy leave gaps the cursor may pass).
  if (window_.empty() && UnsentEmpty()) through = std::max(through, next_read_after_);
  if (through <= acked_) return;
  // Every event up to `through` is settled and has left the window; a rewind still reading them
  // again would no longer recognise them as settled and send them twice.
  next_read_after_ = std::max(next_read_after_, through);
  while (!UnsentEmpty() && UnsentFront().seq <= through) PopUnsent();
  const auto now = clock_->Now();
  if (!force && now - last_ack_ < options_.ack_interval) {
    // Remember the progress; it is written at the next interval.
    window_.push_front({through, State::kDone});
    return;
  }
  const bool done = options_.replay.id != 0 && through >= options_.replay.through_seq;
  Status s = StorePosition(through, done);
  if (s.IsFull()) {
    // The disk is full: the cursor cannot be stored now, but nothing is lost by waiting (Kafka has
    // the events; a crash meanwhile only sends them again). Keep the progress and try again at the
    // next interval, so that forwarding goes on and room appears once the cursor is written.
    window_.push_front({through, State::kDone});
    last_ack_ = now;
    uint64_t suppressed = 0;
    if (disk_full_log_.Allow(&suppressed)) {
      logger_->warn("cannot store the cursor ({}); retrying ({} more since the last report)",
                    s.message(), suppressed);
    }
    return;
  }
  if (!s.ok()) {
    Fail(s);
    return;
  }
  acked_ = through;
  last_ack_ = now;
  if (done) {
    logger_->info("replay {} to {} done: seq {} to {} sent again", options_.replay.id,
                  sink_->name(), options_.replay.from_seq, options_.replay.through_seq);
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.acked_through = through;
  stats_.finished = done;
}

Status Forwarder::StorePosition(uint64_t through, bool done) {
  if (options_.replay.id == 0) return log_->Acknowledge(options_.cursor, through);
  return log_->AdvanceReplay(options_.replay.id, std::min(through, options_.replay.through_seq),
                             done);
}

}  // namespace sluice::gateway
