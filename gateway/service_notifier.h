// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"

namespace sluice::gateway {

// When a part of the pipeline whose loop proves progress last completed a pass.
struct Heartbeat {
  std::string name;  // e.g. "forwarder"
  std::chrono::steady_clock::time_point last;
};

// Sends one state string ("READY=1", "WATCHDOG=1", ...) to the service manager; false when it
// could not be sent.
using NotifySender = std::function<bool(const std::string& state)>;

struct ServiceNotifierOptions {
  // The service manager's watchdog timeout (WATCHDOG_USEC); zero when it expects no pings.
  std::chrono::microseconds watchdog{0};
  // STATUS= is recomputed at most this often, and sent only when it changed.
  std::chrono::milliseconds status_interval{1000};
};

// The systemd notification protocol (sd_notify(3)) for `sluice run` under Type=notify.
//
// - READY=1 once, when the pipeline takes events (the log is open and the MQTT subscription made).
// - STATUS=<one line> whenever the line changed, at most every status_interval.
// - WATCHDOG=1 every quarter of the watchdog timeout, but only while every heartbeat is fresh, that
//   is, at most half the timeout old. A wedged forwarder stops the pings, and systemd restarts the
//   service at most 1.5 timeouts after the wedge; a live main loop alone proves nothing.
// - RELOADING=1 / READY=1 around a SIGHUP reload, STOPPING=1 at shutdown.
//
// With an empty sender (no NOTIFY_SOCKET: not started by systemd) every call does nothing.
// Thread-safe: Ready() comes from the MQTT connector thread, the rest from the main loop.
class ServiceNotifier {
 public:
  // `clock` must outlive the notifier.
  ServiceNotifier(NotifySender send, ServiceNotifierOptions options, const Clock* clock,
                  std::shared_ptr<spdlog::logger> logger);

  // Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID (sd_watchdog_enabled(3)) and sends with
  // sd_notify(3). For main(); tests construct the notifier with a sender of their own.
  static std::unique_ptr<ServiceNotifier> FromEnvironment(const Clock* clock,
                                                          std::shared_ptr<spdlog::logger> logger);

  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  bool enabled() const { return static_cast<bool>(send_); }
  std::chrono::microseconds watchdog() const { return options_.watchdog; }
  // A heartbeat older than this withholds the watchdog ping.
  std::chrono::microseconds fresh_limit() const { return options_.watchdog / 2; }

  // Sends READY=1 with `status` the first time; later calls do nothing.
  void Ready(const std::string& status);
  // Around a configuration reload; READY=1 follows only once Ready() was called.
  void Reloading();
  void Reloaded();
  void Stopping(const std::string& status);

  // Called from the main loop at least every few hundred milliseconds. `status` is called only
  // when a STATUS= update is due. `beats` are the pipeline's heartbeats.
  void Tick(const std::function<std::string()>& status, const std::vector<Heartbeat>& beats);

  // The heartbeat that last withheld a ping, while it stays stale (for tests and logs).
  std::optional<std::string> stale() const;

 private:
  bool Send(const std::string& state);  // REQUIRES: mu_ held

  const NotifySender send_;
  const ServiceNotifierOptions options_;
  const Clock* const clock_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mu_;
  bool ready_ = false;                                                      // GUARDED_BY(mu_)
  bool stopping_ = false;                                                   // GUARDED_BY(mu_)
  std::string last_status_;                                                 // GUARDED_BY(mu_)
  std::optional<std::chrono::steady_clock::time_point> last_status_check_;  // GUARDED_BY(mu_)
  std::optional<std::chrono::steady_clock::time_point> last_ping_;          // GUARDED_BY(mu_)
  std::optional<std::string> stale_;                                        // GUARDED_BY(mu_)
  bool send_failed_ = false;                                                // GUARDED_BY(mu_)
};

}  // namespace sluice::gateway
