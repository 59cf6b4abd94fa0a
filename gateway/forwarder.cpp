#include "gateway/forwarder.h"

#include <algorithm>

namespace sluice::gateway {

namespace {
int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// While the upstream is unreachable, librdkafka keeps every event handed to it in memory until a
// broker answers (measured: about 900 bytes per 100-byte event, so a full 50,000-event window
// added some 40 MiB of RSS during an outage). A small window is enough to notice the upstream's
// return; the rest of the backlog waits on disk, and the full window opens with the first
// confirmation.
constexpr size_t kInFlightWhileDisconnected = 1000;

size_t InFlightLimit(const connectors::Sink& sink, size_t max_in_flight) {
  return sink.Connected() ? max_in_flight : std::min(max_in_flight, kInFlightWhileDisconnected);
}
}  // namespace

Forwarder::Forwarder(storage::EventLog* log, connectors::Sink* sink, ForwarderOptions options,
                     std::shared_ptr<spdlog::logger> logger)
    : log_(log), sink_(sink), options_(options), logger_(std::move(logger)) {}

Forwarder::~Forwarder() {
  Stop();
}

void Forwarder::Start() {
  acked_ = log_->Stats().cursor;
  next_read_after_ = acked_;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.acked_through = acked_;
    stats_.last_progress_ms = SteadyMillis();
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
  std::vector<connectors::Delivery> deliveries;
  while (!stop_.load() && error().ok()) {
    const bool sent = FillSink();
    if (!error().ok()) break;
    const bool window_full = sink_->InFlight() >= InFlightLimit(*sink_, options_.max_in_flight);
    std::chrono::milliseconds wait(0);
    if (sink_->InFlight() > 0 && !sent) {
      // Waiting on the upstream: short polls while it answers, longer ones while it does not.
      wait =
          (window_full || !sink_->Connected()) ? options_.idle_wait : std::chrono::milliseconds(2);
    }
    if (stalled_) {
      // A full disk held up the next event: give the disk time instead of spinning.
      wait = options_.idle_wait;
      stalled_ = false;
    }
    deliveries.clear();
    sink_->Poll(wait, &deliveries);
    HandleDeliveries(deliveries);
    MaybeAcknowledge(false);
    {
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.last_progress_ms = SteadyMillis();
    }
    if (sink_->InFlight() == 0 && unsent_.empty() && !sent) {
      log_->WaitForEventsAfter(next_read_after_, options_.idle_wait);
    }
  }

  // Shutdown: give what is in flight a bounded time to be confirmed, then store the cursor.
  if (error().ok() && sink_->InFlight() > 0) {
    const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
    while (sink_->InFlight() > 0 && std::chrono::steady_clock::now() < deadline) {
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
  if (error().ok()) MaybeAcknowledge(true);
}

bool Forwarder::FillSink() {
  bool sent_any = false;
  const size_t limit = InFlightLimit(*sink_, options_.max_in_flight);
  while (!stop_.load() && sink_->InFlight() < limit) {
    if (unsent_.empty()) {
      std::vector<storage::Event> batch;
      const size_t room = limit - sink_->InFlight();
      Status s = log_->Read(next_read_after_, std::min(options_.read_batch, room),
                            options_.read_batch_bytes, &batch);
      if (!s.ok()) return Fail(s);
      if (batch.empty()) break;
      if (options_.failpoint) options_.failpoint("forwarder.wedge");
      next_read_after_ = batch.back().seq;
      for (auto& e : batch) unsent_.push_back(std::move(e));
    }
    storage::Event& e = unsent_.front();
    Pending* existing = FindPending(e.seq);
    if (existing != nullptr && existing->done) {  // confirmed before a rewind
      unsent_.pop_front();
      continue;
    }
    Status s = sink_->Send(e);
    if (s.ok()) {
      if (existing == nullptr) window_.push_back({e.seq, false, e.received_ms});
      unsent_.pop_front();
      sent_any = true;
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.sent++;
      continue;
    }
    if (s.code() == Status::Code::kInvalidArgument) {
      uint64_t suppressed = 0;
      if (dead_letter_log_.Allow(&suppressed)) {
        logger_->error(
            "event seq {} on '{}' refused for good by {}: {}; moved to the "
            "dead-letter table ({} more since the last report)",
            e.seq, e.topic, sink_->name(), s.message(), suppressed);
      }
      Status d = log_->DeadLetter(e, s.message());
      if (d.IsFull()) {
        // The disk is full: the event stays first in line and is refused and recorded again on a
        // later pass, once there is room; the cursor cannot pass it meanwhile.
        WarnDiskFull(d);
        stalled_ = true;
        break;
      }
      if (!d.ok()) return Fail(d);
      if (existing == nullptr) {
        window_.push_back({e.seq, true});
      } else {
        existing->done = true;
      }
      unsent_.pop_front();
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.rejected++;
      continue;
    }
    // Full or unavailable: serve delivery reports first, then try the same event again. With
    // nothing in flight no report is coming, so an unavailable upstream (e.g. an ACL refusal
    // answered at once) would otherwise be asked again in a tight loop.
    if (s.code() == Status::Code::kUnavailable && sink_->InFlight() == 0) stalled_ = true;
    break;
  }
  return sent_any;
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

void Forwarder::HandleDeliveries(std::vector<connectors::Delivery>& deliveries) {
  bool rewind = false;
  uint64_t delivered = 0;
  Histogram* const latency = options_.clock != nullptr ? options_.forward_latency_seconds : nullptr;
  const int64_t now_ms =
      latency != nullptr && !deliveries.empty() ? options_.clock->NowUnixMillis() : 0;
  for (auto& d : deliveries) {
    using Outcome = connectors::Delivery::Outcome;
    if (d.outcome == Outcome::kRetry) {
      rewind = true;
      continue;
    }
    Pending* p = FindPending(d.seq);
    if (p == nullptr || p->done) continue;  // a report for an event settled before a rewind
    if (d.outcome == Outcome::kRejected) {
      std::vector<storage::Event> one;
      Status s = log_->Read(d.seq - 1, 1, SIZE_MAX, &one);
      if (s.ok() && !one.empty() && one[0].seq == d.seq) {
        uint64_t suppressed = 0;
        if (dead_letter_log_.Allow(&suppressed)) {
          logger_->error(
              "event seq {} on '{}' refused for good by {}: {}; moved to the "
              "dead-letter table ({} more since the last report)",
              d.seq, one[0].topic, sink_->name(), d.error, suppressed);
        }
        s = log_->DeadLetter(one[0], d.error);
      }
      if (s.IsFull()) {
        // Not recorded: the event stays open and is sent again, and refused again, by the rewind.
        WarnDiskFull(s);
        rewind = true;
        continue;
      }
      if (!s.ok()) {
        Fail(s);
        return;
      }
      std::lock_guard<std::mutex> lock(stats_mu_);
      stats_.rejected++;
    } else {
      delivered++;
      if (latency != nullptr) {
        // Wall clocks can step back; a negative latency is a clock change, not a fast delivery.
        latency->Observe(static_cast<double>(std::max<int64_t>(now_ms - p->received_ms, 0)) /
                         1000.0);
      }
    }
    p->done = true;
  }
  if (delivered > 0) {
    std::lock_guard<std::mutex> lock(stats_mu_);
    stats_.delivered += delivered;
  }
  if (rewind) Rewind();
}

void Forwarder::Rewind() {
  // Everything not yet confirmed is sent again from the log, in order; confirmed events in the
  // window are skipped by FillSink.
  uint64_t first_open = 0;
  for (const Pending& p : window_) {
    if (!p.done) {
      first_open = p.seq;
      break;
    }
  }
  // Events read ahead but not yet sent are read again too: with nothing open in the window (the
  // sink refused the first of them), the read position would otherwise pass them unsent and the
  // cursor would acknowledge them.
  uint64_t restart = first_open;
  if (!unsent_.empty() && (restart == 0 || unsent_.front().seq < restart)) {
    restart = unsent_.front().seq;
  }
  unsent_.clear();
  if (restart != 0) next_read_after_ = restart - 1;
  uint64_t open = 0;
  for (const Pending& p : window_) open += p.done ? 0 : 1;
  uint64_t suppressed = 0;
  // An upstream that refuses every attempt (an ACL, a rebuilt producer) rewinds again and again.
  if (rewind_log_.Allow(&suppressed)) {
    logger_->warn(
        "{} lost {} events in flight; sending them again from seq {} ({} more since the last "
        "report)",
        sink_->name(), open, next_read_after_ + 1, suppressed);
  }
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.resent += open;
}

void Forwarder::MaybeAcknowledge(bool force) {
  uint64_t through = acked_;
  while (!window_.empty() && window_.front().done) {
    through = window_.front().seq;
    window_.pop_front();
  }
  // With nothing outstanding, every event read so far is settled (events dropped by the log's
  // overflow policy leave gaps the cursor may pass).
  if (window_.empty() && unsent_.empty()) through = std::max(through, next_read_after_);
  if (through <= acked_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_ack_ < options_.ack_interval) {
    // Remember the progress; it is written at the next interval.
    window_.push_front({through, true});
    return;
  }
  Status s = log_->Acknowledge(through);
  if (s.IsFull()) {
    // The disk is full: the cursor cannot be stored now, but nothing is lost by waiting (Kafka has
    // the events; a crash meanwhile only sends them again). Keep the progress and try again at the
    // next interval, so that forwarding goes on and room appears once the cursor is written.
    window_.push_front({through, true});
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
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_.acked_through = through;
}

}  // namespace sluice::gateway
