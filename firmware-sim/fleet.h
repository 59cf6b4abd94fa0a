// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "common/status.h"
#include "firmware-sim/device_link.h"
#include "firmware-sim/device_profile.h"
#include "firmware-sim/device_queue.h"
#include "firmware-sim/event_schedule.h"
#include "firmware-sim/fleet_summary.h"
#include "firmware-sim/profile_mix.h"
#include "firmware-sim/simulated_device.h"

namespace sluice::sim {

struct ScheduledReboot {
  std::string device;  // e.g. "dev-003"
  double at_s = 0;     // seconds after the first scheduled event
};

struct FleetOptions {
  size_t devices = 20;
  ProfileMix mix = ProfileMix::Default(20);  // its total must equal `devices`
  // Base rate: events/s of a telemetry device; other profiles scale it (DeviceProfile).
  double rate = 1.0;
  // When > 0, the fleet-wide events/s; the base rate is derived from it and the mix.
  double total_rate = 0;
  double duration_s = 0;    // stop generating after this long; 0: no limit
  uint64_t max_events = 0;  // stop generating after this many events in all; 0: no limit
  // QoS per profile (indexed by ProfileKind); -1 takes the profile's default.
  std::array<int, kProfileCount> qos = {-1, -1, -1, -1};
  size_t payload_bytes = 0;  // minimum payload size; DeviceEvent pads up to it
  uint64_t seed = 1;
  std::string client_prefix = "sluice-sim";
  std::vector<ScheduledReboot> reboots;
  double reboot_probability = 0;  // random reboots per device per second
  size_t queue_capacity = 1000;   // events waiting in each device's outbox
  // Publishes in flight per device: below Paho's 100 buffered messages per client and below its
  // max_inflight (PahoLinkOptions), so that Paho never refuses one.
  size_t window = 64;
  std::chrono::milliseconds connect_timeout{30000};  // for the first connection of the fleet
  std::chrono::milliseconds flush_timeout{10000};    // at exit, for the outboxes to empty
  std::chrono::milliseconds disconnect_timeout{2000};
  std::chrono::milliseconds progress_interval{5000};
  std::chrono::milliseconds reconnect_min{250};
  std::chrono::milliseconds reconnect_max{5000};
};

// A progress report, as printed every --progress-interval.
struct FleetProgress {
  double elapsed_s = 0;
  uint64_t generated = 0;
  uint64_t sent = 0;
  double rate = 0;  // sent per second since the previous report
  size_t connected = 0;
  size_t devices = 0;
  size_t waiting = 0;
  size_t in_flight = 0;
  uint64_t dropped = 0;
  uint64_t reboots = 0;

  std::string ToLine() const;
};

// The simulated fleet: N devices, each with its firmware state (SimulatedDevice), schedule
// (EventSchedule), outbox (DeviceQueue) and MQTT connection (DeviceLink). This class is the
// policy: when events are due, when devices reboot and reconnect, what is published when; the
// link is the mechanism.
//
// Phases: connecting (until every device is online, or --connect-timeout: an error if none is),
// running (events generated on schedule), flushing (outboxes emptied, bounded by flush_timeout),
// closing ("offline" published, links disconnected), done.
//
// Threads: one scheduler thread calls Start/Tick/Run and the accessors. Link callbacks arrive on
// other threads and only append to an inbox (one mutex), which Tick drains; so all device state
// is owned by the scheduler thread and needs no lock. RequestStop may be called from any thread.
class Fleet {
 public:
  enum class Phase { kIdle, kConnecting, kRunning, kFlushing, kClosing, kDone };

  // Validates `options` (InvalidArgument saying which option is wrong) and creates the devices
  // and their links. `clock` outlives the fleet.
  static Status Open(FleetOptions options, const DeviceLinkFactory& factory, const Clock* clock,
                     std::shared_ptr<spdlog::logger> logger, std::unique_ptr<Fleet>* out);
  ~Fleet();

  Fleet(const Fleet&) = delete;
  Fleet& operator=(const Fleet&) = delete;

  // Runs every phase to the end in real time, calling `on_progress` every progress_interval.
  // Unavailable if no device could reach the broker within connect_timeout.
  Status Run(const std::function<void(const FleetProgress&)>& on_progress);

  // Stops generating and goes on to the flush; a second call also cuts the flush short.
  // Thread-safe, async-signal-unsafe (call it from a signal-handling thread).
  void RequestStop();

  // The steps Run is made of, for tests that drive a fake clock. Start begins connecting; Tick
  // does everything due at clock->Now() and returns an error only for a failed start.
  void Start();
  Status Tick();
  Phase phase() const { return phase_; }
  // When Tick has something to do next, at the latest.
  std::chrono::steady_clock::time_point NextWakeup() const;

  // The rate in it is measured since the previous call.
  FleetProgress Progress();
  FleetSummary Summary() const;
  // Fleet-wide events/s the schedule produces.
  double target_rate() const { return target_rate_; }
  const std::vector<std::string>& device_ids() const { return ids_; }

 private:
  // kDraining: leaving (reboot or exit), "offline" published, waiting for what is in flight to be
  // confirmed before disconnecting (Paho's own disconnect timeout waits out its full length).
  enum class LinkState { kDown, kConnecting, kOnline, kDraining, kDisconnecting };
  class DeviceListener;
  struct Device;

  // A link callback's outcome, queued for the scheduler thread.
  struct Note {
    enum class Kind {
      kConnected,
      kConnectFailed,
      kConnectionLost,
      kPublished,
      kPublishFailed,
      kDisconnected
    };
    Kind kind;
    size_t device;
    uint64_t tag = 0;
    std::string reason;
  };

  // An entry of the schedule heap: the next event of a device, or a reboot.
  struct Action {
    int64_t at_ns;
    int kind;  // kRebootAction, kRandomRebootAction or kEventAction: reboots go first
    size_t device;
    bool operator>(const Action& o) const {
      if (at_ns != o.at_ns) return at_ns > o.at_ns;
      if (kind != o.kind) return kind > o.kind;
      return device > o.device;
    }
  };

  Fleet(FleetOptions options, const Clock* clock, std::shared_ptr<spdlog::logger> logger);

  void Post(Note note);
  void DrainInbox(std::chrono::steady_clock::time_point now);
  void Apply(const Note& note, std::chrono::steady_clock::time_point now);
  void ConnectDue(std::chrono::steady_clock::time_point now);
  void PumpAll();
  void Pump(Device& d);
  void BeginRunning(std::chrono::steady_clock::time_point now);
  void Generate(std::chrono::steady_clock::time_point now);
  void GenerateEvent(Device& d);
  void Reboot(Device& d, std::chrono::steady_clock::time_point now);
  void BeginFlushing(std::chrono::steady_clock::time_point now);
  void BeginClosing(std::chrono::steady_clock::time_point now);
  void Close(Device& d);
  void Leave(Device& d, std::chrono::steady_clock::time_point now);
  void DrainLinks(std::chrono::steady_clock::time_point now);
  void PublishStatus(Device& d, const char* status);
  size_t Online() const;
  bool OutboxesEmpty() const;
  bool LinksSettled() const;
  void LogLinkChanges();

  const FleetOptions options_;
  const Clock* const clock_;
  std::shared_ptr<spdlog::logger> log_;
  double target_rate_ = 0;
  std::vector<std::string> ids_;

  // Inbox: filled by link callbacks, drained by Tick. Bounded by construction: each device has
  // at most `window` + 2 publishes and one connect or disconnect outstanding.
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::vector<Note> inbox_;  // GUARDED_BY(inbox_mu_)
  std::atomic<int> stop_requests_{0};

  // Scheduler thread only from here on. Devices last: their links go first on destruction, so
  // no callback reaches a destroyed listener or inbox.
  Phase phase_ = Phase::kIdle;
  std::chrono::steady_clock::time_point started_{};  // schedule time zero
  std::chrono::steady_clock::time_point generating_ended_{};
  std::chrono::steady_clock::time_point ended_{};
  std::chrono::steady_clock::time_point deadline_{};  // of the current phase
  std::priority_queue<Action, std::vector<Action>, std::greater<Action>> actions_;
  uint64_t generated_ = 0;
  uint64_t reboots_ = 0;
  uint64_t connection_losses_ = 0;
  bool interrupted_ = false;
  // Link events since they were last logged, so that a broker outage is one line, not N.
  size_t lost_since_log_ = 0;
  size_t reconnected_since_log_ = 0;
  std::string last_link_error_;
  LogThrottle connect_failure_log_{std::chrono::seconds(10)};
  LogThrottle reconnect_log_{std::chrono::seconds(5)};
  LogThrottle loss_log_{std::chrono::seconds(5)};
  uint64_t connect_failures_ = 0;
  uint64_t last_progress_sent_ = 0;
  std::chrono::steady_clock::time_point last_progress_at_{};
  Status failure_;  // why the start failed, kept for Run
  std::vector<std::unique_ptr<Device>> devices_;
};

}  // namespace sluice::sim
