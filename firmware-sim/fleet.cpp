// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/fleet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "firmware-sim/prng.h"

namespace sluice::sim {

namespace {

using Clock_ = std::chrono::steady_clock;

constexpr int kRebootAction = 0;
constexpr int kRandomRebootAction = 1;
constexpr int kEventAction = 2;
constexpr uint64_t kStatusTag = 0;  // status messages: their outcome changes nothing
constexpr size_t kMaxWindow = 90;   // Paho buffers at most 100 publishes per client
constexpr size_t kMaxPayloadBytes = 16 * 1024 * 1024;
// Run ticks at least this often even when nothing seems due: a safety net, so that a wake-up
// reason NextWakeup overlooks costs at most this much delay.
constexpr auto kMaxIdle = std::chrono::milliseconds(200);

int64_t ToNanos(double seconds) {
  return static_cast<int64_t>(std::llround(seconds * 1e9));
}

double Seconds(Clock_::duration d) {
  return std::chrono::duration<double>(d).count();
}

// dev-001 ... dev-020; wider when the fleet needs it, so that ids sort in device order.
std::string DeviceId(size_t index, size_t devices) {
  const size_t width = std::max<size_t>(3, std::to_string(devices).size());
  std::string n = std::to_string(index + 1);
  return "dev-" + std::string(width - std::min(width, n.size()), '0') + n;
}

}  // namespace

std::string FleetProgress::ToLine() const {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "[%7.1fs] sent %llu (%.1f/s)  connected %zu/%zu  queued %zu  in-flight %zu  "
                "dropped %llu  reboots %llu",
                elapsed_s, static_cast<unsigned long long>(sent), rate, connected, devices, waiting,
                in_flight, static_cast<unsigned long long>(dropped),
                static_cast<unsigned long long>(reboots));
  return buf;
}

// Turns one device's link callbacks into Notes for the scheduler thread. Called on the link's
// threads; only appends to the inbox.
class Fleet::DeviceListener final : public DeviceLink::Listener {
 public:
  DeviceListener(Fleet* fleet, size_t device) : fleet_(fleet), device_(device) {}

  void OnConnected() override { fleet_->Post({Note::Kind::kConnected, device_, 0, {}}); }
  void OnConnectFailed(const std::string& reason) override {
    fleet_->Post({Note::Kind::kConnectFailed, device_, 0, reason});
  }
  void OnConnectionLost(const std::string& reason) override {
    fleet_->Post({Note::Kind::kConnectionLost, device_, 0, reason});
  }
  void OnPublished(uint64_t tag) override {
    fleet_->Post({Note::Kind::kPublished, device_, tag, {}});
  }
  void OnPublishFailed(uint64_t tag, const std::string& reason) override {
    fleet_->Post({Note::Kind::kPublishFailed, device_, tag, reason});
  }
  void OnDisconnected() override { fleet_->Post({Note::Kind::kDisconnected, device_, 0, {}}); }

 private:
  Fleet* const fleet_;  // outlives the listener
  const size_t device_;
};

struct Fleet::Device {
  Device(const std::string& id, ProfileKind kind, uint64_t seed, int qos_level, double rate,
         const FleetOptions& o)
      : sim(id, kind, Prng::Mix(seed, 3)),
        profile(DeviceProfile::Get(kind)),
        qos(qos_level),
        topic(profile.Topic(id)),
        status_topic(StatusTopic(id)),
        // The first burst falls somewhere in the first period, so that devices do not all
        // publish at the same instant.
        schedule(rate, profile.burst(),
                 std::chrono::nanoseconds(
                     ToNanos(Prng(Prng::Mix(seed, 1)).Uniform() * profile.burst() / rate)),
                 profile.irregular(), Prng::Mix(seed, 2)),
        queue(o.queue_capacity, o.window),
        reboot_rng(Prng::Mix(seed, 4)),
        backoff(o.reconnect_min, o.reconnect_max, Prng::Mix(seed, 5)) {}

  SimulatedDevice sim;
  const DeviceProfile& profile;
  const int qos;
  const std::string topic;
  const std::string status_topic;
  const EventSchedule schedule;
  uint64_t next_event = 0;  // schedule index of the next event
  uint64_t generated = 0;
  DeviceQueue queue;
  Prng reboot_rng;
  std::vector<uint64_t> last_seq_of_boot;  // of finished boots; [0] is boot 1

  LinkState state = LinkState::kDown;
  Clock_::time_point next_attempt{};
  Clock_::time_point drain_deadline{};
  int status_in_flight = 0;  // status messages published and not yet confirmed
  Backoff backoff;
  bool recovering = false;  // lost the connection (not by a reboot) and not back yet
  uint64_t next_tag = 1;    // kStatusTag is 0
  // The listener outlives the link: declared first, destroyed last.
  std::unique_ptr<DeviceListener> listener;
  std::unique_ptr<DeviceLink> link;
};

Status Fleet::Open(FleetOptions options, const DeviceLinkFactory& factory, const Clock* clock,
                   std::shared_ptr<spdlog::logger> logger, std::unique_ptr<Fleet>* out) {
  const FleetOptions& o = options;
  if (o.devices < 1) return Status::InvalidArgument("--devices must be at least 1");
  if (o.mix.total() != o.devices) {
    return Status::InvalidArgument("--profiles " + o.mix.ToString() + " adds up to " +
                                   std::to_string(o.mix.total()) + " devices but --devices is " +
                                   std::to_string(o.devices));
  }
  if (o.total_rate > 0 ? !std::isfinite(o.total_rate) : !(o.rate > 0 && std::isfinite(o.rate))) {
    return Status::InvalidArgument("--rate / --total-rate must be a positive number of events/s");
  }
  for (ProfileKind kind : DeviceProfile::All()) {
    const int q = o.qos[static_cast<size_t>(kind)];
    if (q < -1 || q > 2) {
      return Status::InvalidArgument("--qos-" + std::string(DeviceProfile::Get(kind).name()) +
                                     " must be 0, 1 or 2, not " + std::to_string(q));
    }
  }
  if (!(o.duration_s >= 0) || !std::isfinite(o.duration_s)) {
    return Status::InvalidArgument("--duration must be a non-negative number of seconds");
  }
  if (o.payload_bytes > kMaxPayloadBytes) {
    return Status::InvalidArgument("--payload-bytes must be at most " +
                                   std::to_string(kMaxPayloadBytes));
  }
  if (!(o.reboot_probability >= 0) || !std::isfinite(o.reboot_probability)) {
    return Status::InvalidArgument("--reboot-probability must be a non-negative number");
  }
  if (o.queue_capacity < 1) return Status::InvalidArgument("--queue must be at least 1");
  if (o.window < 1 || o.window > kMaxWindow) {
    return Status::InvalidArgument("the in-flight window must be between 1 and " +
                                   std::to_string(kMaxWindow));
  }
  if (o.progress_interval <= std::chrono::milliseconds(0)) {
    return Status::InvalidArgument("--progress-interval must be positive");
  }

  std::unique_ptr<Fleet> fleet(new Fleet(std::move(options), clock, std::move(logger)));
  const FleetOptions& opt = fleet->options_;
  const std::vector<ProfileKind> kinds = opt.mix.Assign();
  double factors = 0;
  for (ProfileKind kind : kinds) factors += DeviceProfile::Get(kind).rate_factor();
  const double base_rate = opt.total_rate > 0 ? opt.total_rate / factors : opt.rate;
  fleet->target_rate_ = base_rate * factors;

  for (size_t i = 0; i < opt.devices; ++i) {
    const std::string id = DeviceId(i, opt.devices);
    const ProfileKind kind = kinds[i];
    const DeviceProfile& profile = DeviceProfile::Get(kind);
    const int qos = opt.qos[static_cast<size_t>(kind)] >= 0 ? opt.qos[static_cast<size_t>(kind)]
                                                            : profile.default_qos();
    auto d = std::make_unique<Device>(id, kind, Prng::Mix(opt.seed, i + 1), qos,
                                      base_rate * profile.rate_factor(), opt);
    d->listener = std::make_unique<DeviceListener>(fleet.get(), i);
    LinkSpec spec{id, opt.client_prefix + "-" + id, d->status_topic, "offline"};
    Status s = factory(spec, d->listener.get(), &d->link);
    if (!s.ok()) return s;
    fleet->ids_.push_back(id);
    fleet->actions_.push({d->schedule.DueAt(0).count(), kEventAction, i});
    fleet->devices_.push_back(std::move(d));
  }
  for (const ScheduledReboot& r : opt.reboots) {
    auto it = std::find(fleet->ids_.begin(), fleet->ids_.end(), r.device);
    if (it == fleet->ids_.end()) {
      return Status::InvalidArgument("--reboot " + r.device + ": no such device (devices are " +
                                     fleet->ids_.front() + " to " + fleet->ids_.back() + ")");
    }
    if (!(r.at_s >= 0) || !std::isfinite(r.at_s)) {
      return Status::InvalidArgument("--reboot " + r.device + ": the time must be >= 0 seconds");
    }
    fleet->actions_.push(
        {ToNanos(r.at_s), kRebootAction, static_cast<size_t>(it - fleet->ids_.begin())});
  }
  if (opt.reboot_probability > 0) {
    for (size_t i = 0; i < opt.devices; ++i) {
      Device& d = *fleet->devices_[i];
      // A Poisson process per device: exponential gaps drawn from the device's own stream.
      const double gap = -std::log(1.0 - d.reboot_rng.Uniform()) / opt.reboot_probability;
      fleet->actions_.push({ToNanos(gap), kRandomRebootAction, i});
    }
  }
  *out = std::move(fleet);
  return Status::Ok();
}

Fleet::Fleet(FleetOptions options, const Clock* clock, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), clock_(clock), log_(std::move(logger)) {}

Fleet::~Fleet() {
  // Links first (they may still call back), then listeners, then the inbox.
  for (auto& d : devices_) d->link.reset();
}

void Fleet::Post(Note note) {
  // Notified under the lock: once the scheduler has taken the note, this call no longer touches
  // the fleet, so the last note of a link (its disconnect) may be followed by the fleet's end.
  std::lock_guard<std::mutex> lock(inbox_mu_);
  inbox_.push_back(std::move(note));
  inbox_cv_.notify_one();
}

void Fleet::RequestStop() {
  // Under the lock, so that Run cannot check for requests and then miss this wake-up.
  std::lock_guard<std::mutex> lock(inbox_mu_);
  stop_requests_++;
  inbox_cv_.notify_one();
}

void Fleet::Start() {
  const auto now = clock_->Now();
  phase_ = Phase::kConnecting;
  deadline_ = now + options_.connect_timeout;
  ConnectDue(now);
}

Status Fleet::Tick() {
  const auto now = clock_->Now();
  DrainInbox(now);
  const int stops = stop_requests_.load();
  Status result;
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kDone:
      break;
    case Phase::kConnecting:
      if (stops > 0) {
        interrupted_ = true;
        started_ = generating_ended_ = now;
        BeginClosing(now);
        break;
      }
      ConnectDue(now);
      if (Online() == devices_.size()) {
        BeginRunning(now);
      } else if (now >= deadline_) {
        if (Online() == 0) {
          char waited[32];
          std::snprintf(waited, sizeof waited, "%.1f s",
                        std::chrono::duration<double>(options_.connect_timeout).count());
          result = Status::Unavailable(
              std::string("no device could connect to the MQTT broker within ") + waited +
              " (last error: " + (last_link_error_.empty() ? "none" : last_link_error_) + ")");
          failure_ = result;
          started_ = generating_ended_ = now;
          BeginClosing(now);
          break;
        }
        log_->warn(
            "{} of {} devices connected within the connect timeout; starting anyway, the "
            "others keep retrying (last error: {})",
            Online(), devices_.size(), last_link_error_);
        BeginRunning(now);
      }
      break;
    case Phase::kRunning:
      if (stops > 0) {
        interrupted_ = true;
        BeginFlushing(now);
        break;
      }
      Generate(now);
      DrainLinks(now);
      ConnectDue(now);
      PumpAll();
      break;
    case Phase::kFlushing:
      DrainLinks(now);
      ConnectDue(now);
      PumpAll();
      if (OutboxesEmpty() || now >= deadline_ || stops > 1) {
        if (!OutboxesEmpty()) {
          log_->warn("flush {}: events still queued or unconfirmed are reported as dropped",
                     stops > 1 ? "cut short by a second signal" : "timed out");
        }
        BeginClosing(now);
      }
      break;
    case Phase::kClosing:
      DrainLinks(now);
      if (LinksSettled() || now >= deadline_) {
        // What is still unconfirmed now never will be.
        for (auto& d : devices_) d->queue.DropAll();
        phase_ = Phase::kDone;
      }
      break;
  }
  LogLinkChanges();
  return result;
}

Status Fleet::Run(const std::function<void(const FleetProgress&)>& on_progress) {
  Start();
  auto next_progress = clock_->Now() + options_.progress_interval;
  int stops_seen = 0;
  while (phase_ != Phase::kDone) {
    // A failed start is also kept in failure_, returned below once the links are closed.
    if (Status s = Tick(); !s.ok()) log_->debug("start failed: {}", s.ToString());
    if (phase_ == Phase::kDone) break;
    const auto now = clock_->Now();
    if (phase_ == Phase::kRunning || phase_ == Phase::kFlushing) {
      if (now >= next_progress) {
        if (on_progress) on_progress(Progress());
        while (next_progress <= now) next_progress += options_.progress_interval;
      }
    } else {
      next_progress = now + options_.progress_interval;
    }
    const auto wake = std::min(NextWakeup(), next_progress);
    std::unique_lock<std::mutex> lock(inbox_mu_);
    inbox_cv_.wait_until(lock, wake,
                         [&] { return !inbox_.empty() || stop_requests_.load() != stops_seen; });
    stops_seen = stop_requests_.load();
  }
  return failure_;
}

Clock_::time_point Fleet::NextWakeup() const {
  const auto now = clock_->Now();
  auto wake = now + kMaxIdle;
  if (phase_ == Phase::kRunning && !actions_.empty()) {
    wake = std::min(wake, started_ + std::chrono::nanoseconds(actions_.top().at_ns));
  }
  if (phase_ == Phase::kConnecting || phase_ == Phase::kRunning || phase_ == Phase::kFlushing) {
    for (const auto& d : devices_) {
      if (d->state == LinkState::kDown) wake = std::min(wake, d->next_attempt);
    }
  }
  for (const auto& d : devices_) {
    if (d->state == LinkState::kDraining) wake = std::min(wake, d->drain_deadline);
  }
  if (phase_ != Phase::kRunning) wake = std::min(wake, deadline_);
  return wake;
}

void Fleet::DrainInbox(Clock_::time_point now) {
  std::vector<Note> notes;
  {
    std::lock_guard<std::mutex> lock(inbox_mu_);
    notes.swap(inbox_);
  }
  for (const Note& n : notes) Apply(n, now);
}

void Fleet::Apply(const Note& note, Clock_::time_point now) {
  Device& d = *devices_[note.device];
  switch (note.kind) {
    case Note::Kind::kConnected:
      if (d.state != LinkState::kConnecting) return;
      d.state = LinkState::kOnline;
      d.status_in_flight = 0;
      d.backoff.Reset();
      if (d.recovering) reconnected_since_log_++;
      d.recovering = false;
      PublishStatus(d, "online");
      if (phase_ == Phase::kClosing) Close(d);
      return;
    case Note::Kind::kConnectFailed:
      if (d.state != LinkState::kConnecting) return;
      d.state = LinkState::kDown;
      d.next_attempt = now + d.backoff.Next();
      connect_failures_++;
      last_link_error_ = note.reason;
      return;
    case Note::Kind::kConnectionLost: {
      if (d.state != LinkState::kOnline && d.state != LinkState::kDraining &&
          d.state != LinkState::kDisconnecting) {
        return;
      }
      const bool leaving = d.state != LinkState::kOnline;
      d.state = LinkState::kDown;
      d.status_in_flight = 0;
      // With a clean session Paho forgets what was in flight and may never report it: whatever
      // the broker did not confirm is resent (or, from an earlier boot, dropped).
      d.queue.FailAllInFlight(d.sim.boot());
      if (leaving) {
        d.next_attempt = now;
        return;
      }
      connection_losses_++;
      lost_since_log_++;
      d.recovering = true;
      last_link_error_ = note.reason;
      d.next_attempt = now + d.backoff.Next();
      return;
    }
    case Note::Kind::kPublished:
      if (note.tag != kStatusTag) {
        d.queue.Confirm(note.tag);
      } else if (d.status_in_flight > 0) {
        d.status_in_flight--;
      }
      return;
    case Note::Kind::kPublishFailed:
      if (note.tag != kStatusTag) {
        d.queue.Fail(note.tag, d.sim.boot());
      } else if (d.status_in_flight > 0) {
        d.status_in_flight--;
      }
      return;
    case Note::Kind::kDisconnected:
      if (d.state != LinkState::kDisconnecting) return;
      d.state = LinkState::kDown;
      d.queue.FailAllInFlight(d.sim.boot());
      // Before the closing phase only a reboot disconnects, and a rebooted device connects again
      // at once; while closing, nothing connects any more.
      d.backoff.Reset();
      d.next_attempt = now;
      return;
  }
}

void Fleet::ConnectDue(Clock_::time_point now) {
  for (auto& dp : devices_) {
    Device& d = *dp;
    if (d.state != LinkState::kDown || now < d.next_attempt) continue;
    Status s = d.link->Connect();
    if (s.ok()) {
      d.state = LinkState::kConnecting;
    } else {
      connect_failures_++;
      last_link_error_ = s.message();
      d.next_attempt = now + d.backoff.Next();
    }
  }
}

void Fleet::PumpAll() {
  for (auto& d : devices_) Pump(*d);
}

void Fleet::Pump(Device& d) {
  while (d.state == LinkState::kOnline && d.queue.CanSend()) {
    const uint64_t tag = d.next_tag++;
    const OutgoingEvent& e = d.queue.StartSend(tag);
    Status s = d.link->Publish(d.topic, e.payload, d.qos, false, tag);
    if (!s.ok()) {
      // Most likely the connection just dropped and its note is on the way; the event waits.
      d.queue.Fail(tag, d.sim.boot());
      last_link_error_ = s.message();
      return;
    }
  }
}

void Fleet::BeginRunning(Clock_::time_point now) {
  phase_ = Phase::kRunning;
  started_ = now;
  last_progress_at_ = now;
  log_->info("{} of {} devices connected; generating {:.1f} events/s", Online(), devices_.size(),
             target_rate_);
  Generate(now);
  PumpAll();
}

void Fleet::Generate(Clock_::time_point now) {
  const int64_t elapsed =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_).count();
  const int64_t limit =
      options_.duration_s > 0 ? ToNanos(options_.duration_s) : std::numeric_limits<int64_t>::max();
  const auto budget_spent = [&] {
    return options_.max_events > 0 && generated_ >= options_.max_events;
  };
  // In due order across the fleet, so that the --events cut-off and the interleaving of reboots
  // and events depend on the schedule alone, not on when this runs.
  while (!actions_.empty()) {
    const Action a = actions_.top();
    if (a.at_ns > elapsed || a.at_ns >= limit) break;
    if (a.kind == kEventAction && budget_spent()) break;
    actions_.pop();
    Device& d = *devices_[a.device];
    if (a.kind == kEventAction) {
      GenerateEvent(d);
      actions_.push({d.schedule.DueAt(d.next_event).count(), kEventAction, a.device});
    } else {
      // Events due before the reboot would have gone out had this tick come on time.
      Pump(d);
      Reboot(d, now);
      if (a.kind == kRandomRebootAction) {
        const double gap = -std::log(1.0 - d.reboot_rng.Uniform()) / options_.reboot_probability;
        actions_.push({a.at_ns + ToNanos(gap), kRandomRebootAction, a.device});
      }
    }
  }
  if (budget_spent() || elapsed >= limit) BeginFlushing(now);
}

void Fleet::GenerateEvent(Device& d) {
  const DeviceEvent e = d.sim.NextEvent(clock_->NowUnixMillis());
  d.queue.Push({e.boot, e.seq, e.Encode(options_.payload_bytes)});
  d.next_event++;
  d.generated++;
  generated_++;
}

void Fleet::Reboot(Device& d, Clock_::time_point now) {
  d.last_seq_of_boot.push_back(d.sim.last_seq());
  // The outbox lives in RAM: what waited is gone. What is in flight may still be confirmed.
  d.queue.DropWaiting();
  d.sim.Reboot();
  reboots_++;
  switch (d.state) {
    case LinkState::kOnline:
      Leave(d, now);
      return;
    case LinkState::kDown:
      d.backoff.Reset();
      d.next_attempt = now;
      return;
    case LinkState::kConnecting:
    case LinkState::kDraining:
    case LinkState::kDisconnecting:
      // The link is already cycling; the connection it makes belongs to the new boot.
      return;
  }
}

void Fleet::BeginFlushing(Clock_::time_point now) {
  phase_ = Phase::kFlushing;
  generating_ended_ = now;
  deadline_ = now + options_.flush_timeout;
}

void Fleet::BeginClosing(Clock_::time_point now) {
  phase_ = Phase::kClosing;
  ended_ = now;
  deadline_ = now + options_.disconnect_timeout + std::chrono::seconds(1);
  for (auto& d : devices_) {
    // Waiting events cannot go out any more; those in flight may still be confirmed.
    d->queue.DropWaiting();
    Close(*d);
  }
}

void Fleet::Close(Device& d) {
  if (d.state == LinkState::kOnline) Leave(d, clock_->Now());
}

void Fleet::Leave(Device& d, Clock_::time_point now) {
  // A clean disconnect does not fire the will, so the device says "offline" itself.
  PublishStatus(d, "offline");
  d.state = LinkState::kDraining;
  d.drain_deadline = now + options_.disconnect_timeout;
}

void Fleet::DrainLinks(Clock_::time_point now) {
  for (auto& dp : devices_) {
    Device& d = *dp;
    if (d.state != LinkState::kDraining) continue;
    const bool drained = d.queue.in_flight() == 0 && d.status_in_flight == 0;
    if (!drained && now < d.drain_deadline) continue;
    if (d.link->Disconnect(std::chrono::milliseconds(0)).ok()) {
      d.state = LinkState::kDisconnecting;
    } else {
      d.state = LinkState::kDown;
      d.queue.FailAllInFlight(d.sim.boot());
      d.next_attempt = now;
    }
  }
}

void Fleet::PublishStatus(Device& d, const char* status) {
  Status s = d.link->Publish(d.status_topic, status, 1, true, kStatusTag);
  if (s.ok()) {
    d.status_in_flight++;
  } else {
    last_link_error_ = s.message();
  }
}

size_t Fleet::Online() const {
  return static_cast<size_t>(std::count_if(devices_.begin(), devices_.end(), [](const auto& d) {
    return d->state == LinkState::kOnline;
  }));
}

bool Fleet::OutboxesEmpty() const {
  return std::all_of(devices_.begin(), devices_.end(), [](const auto& d) {
    return d->queue.waiting() == 0 && d->queue.in_flight() == 0;
  });
}

bool Fleet::LinksSettled() const {
  return std::none_of(devices_.begin(), devices_.end(), [](const auto& d) {
    return d->state == LinkState::kConnecting || d->state == LinkState::kDraining ||
           d->state == LinkState::kDisconnecting;
  });
}

void Fleet::LogLinkChanges() {
  // A broker outage takes the devices down over a few ticks: one line when the first goes, one
  // when all are gone (or every few seconds while some hold on).
  uint64_t ignored = 0;
  if (lost_since_log_ > 0 && (Online() == 0 || loss_log_.Allow(&ignored))) {
    log_->warn(
        "{} device(s) lost their MQTT connection ({}); {} of {} online, events wait in "
        "the device queues",
        lost_since_log_, last_link_error_, Online(), devices_.size());
    lost_since_log_ = 0;
  }
  // Reconnects trickle in over the backoff: one line when the fleet is whole again, or every few
  // seconds while it is not.
  if (reconnected_since_log_ > 0 &&
      (Online() == devices_.size() || reconnect_log_.Allow(&ignored))) {
    log_->info("{} device(s) reconnected; {} of {} online", reconnected_since_log_, Online(),
               devices_.size());
    reconnected_since_log_ = 0;
  }
  uint64_t suppressed = 0;
  if (connect_failures_ > 0 && connect_failure_log_.Allow(&suppressed)) {
    log_->warn("{} connect attempt(s) failed (last error: {}); retrying with backoff",
               connect_failures_, last_link_error_);
    connect_failures_ = 0;
  }
}

FleetProgress Fleet::Progress() {
  const auto now = clock_->Now();
  FleetProgress p;
  p.elapsed_s = Seconds(now - started_);
  p.generated = generated_;
  p.devices = devices_.size();
  p.connected = Online();
  p.reboots = reboots_;
  for (const auto& d : devices_) {
    p.sent += d->queue.sent();
    p.waiting += d->queue.waiting();
    p.in_flight += d->queue.in_flight();
    p.dropped += d->queue.dropped_total();
  }
  const double dt = Seconds(now - last_progress_at_);
  p.rate = dt > 0 ? static_cast<double>(p.sent - last_progress_sent_) / dt : 0;
  last_progress_sent_ = p.sent;
  last_progress_at_ = now;
  return p;
}

FleetSummary Fleet::Summary() const {
  const auto now = clock_->Now();
  const bool started = phase_ != Phase::kIdle && phase_ != Phase::kConnecting;
  FleetSummary s;
  s.seed = options_.seed;
  s.reboots = reboots_;
  s.connection_losses = connection_losses_;
  s.target_rate = target_rate_;
  s.interrupted = interrupted_;
  if (started) {
    const bool ended = phase_ == Phase::kClosing || phase_ == Phase::kDone;
    const bool generating = phase_ == Phase::kRunning;
    s.elapsed_s = Seconds((ended ? ended_ : now) - started_);
    s.generating_s = Seconds((generating ? now : generating_ended_) - started_);
  }
  for (const auto& dp : devices_) {
    const Device& d = *dp;
    DeviceSummary ds;
    ds.device = d.sim.id();
    ds.profile = std::string(d.profile.name());
    ds.qos = d.qos;
    for (uint32_t b = 1; b <= d.sim.boot(); ++b) {
      BootSummary bs;
      bs.boot = b;
      bs.last_seq = b < d.sim.boot() ? d.last_seq_of_boot[b - 1] : d.sim.last_seq();
      auto it = d.queue.dropped().find(b);
      if (it != d.queue.dropped().end()) bs.dropped = it->second.ranges();
      ds.boots.push_back(std::move(bs));
    }
    ds.generated = d.generated;
    ds.sent = d.queue.sent();
    ds.dropped_overflow = d.queue.dropped_overflow();
    ds.dropped = d.queue.dropped_total();
    s.devices.push_back(std::move(ds));
  }
  return s;
}

}  // namespace sluice::sim
