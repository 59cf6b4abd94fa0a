// SPDX-License-Identifier: Apache-2.0

#include "gateway/service_notifier.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>

namespace sluice::gateway {

namespace {
int64_t Millis(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
}  // namespace

ServiceNotifier::ServiceNotifier(NotifySender send, ServiceNotifierOptions options,
                                 const Clock* clock, std::shared_ptr<spdlog::logger> logger)
    : send_(std::move(send)), options_(options), clock_(clock), log_(std::move(logger)) {}

std::unique_ptr<ServiceNotifier> ServiceNotifier::FromEnvironment(
    const Clock* clock, std::shared_ptr<spdlog::logger> logger) {
  ServiceNotifierOptions options;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  if (socket == nullptr || *socket == '\0') {
    return std::make_unique<ServiceNotifier>(nullptr, options, clock, std::move(logger));
  }
  uint64_t usec = 0;
  // Checks WATCHDOG_PID too, so a child that inherited the variables does not ping for us.
  if (sd_watchdog_enabled(0, &usec) > 0) options.watchdog = std::chrono::microseconds(usec);
  NotifySender send = [](const std::string& state) { return sd_notify(0, state.c_str()) > 0; };
  return std::make_unique<ServiceNotifier>(std::move(send), options, clock, std::move(logger));
}

bool ServiceNotifier::Send(const std::string& state) {
  if (!send_) return false;
  if (send_(state)) {
    send_failed_ = false;
    return true;
  }
  if (!send_failed_) {
    // Once per failure streak: a service manager that went away should not flood the log.
    log_->warn("cannot notify the service manager (NOTIFY_SOCKET) of '{}'",
               state.substr(0, state.find('\n')));
    send_failed_ = true;
  }
  return false;
}

void ServiceNotifier::Ready(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ready_ || stopping_ || !send_) return;
  ready_ = true;
  last_status_ = status;
  Send("READY=1\nSTATUS=" + status);
}

void ServiceNotifier::Reloading() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_ || stopping_) return;
  Send("RELOADING=1\nSTATUS=reloading the configuration");
}

void ServiceNotifier::Reloaded() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ready_ || stopping_) return;
  // Forces the next Tick to send the pipeline's status again over "reloading".
  last_status_.clear();
  last_status_check_.reset();
  Send("READY=1");
}

void ServiceNotifier::Stopping(const std::string& status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return;
  stopping_ = true;
  Send("STOPPING=1\nSTATUS=" + status);
}

std::optional<std::string> ServiceNotifier::stale() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stale_;
}

void ServiceNotifier::Tick(const std::function<std::string()>& status,
                           const std::vector<Heartbeat>& beats) {
  if (!send_) return;
  bool status_due = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    const auto now = clock_->Now();
    if (options_.watchdog.count() > 0 &&
        (!last_ping_ || now - *last_ping_ >= options_.watchdog / 4)) {
      const Heartbeat* stale = nullptr;
      for (const Heartbeat& b : beats) {
        if (now - b.last > fresh_limit()) {
          stale = &b;
          break;
        }
      }
      if (stale != nullptr) {
        if (stale_ != stale->name) {
          log_->error(
              "watchdog: the {} made no progress for {} ms (limit {} ms); withholding the "
              "watchdog ping, so the service manager restarts sluice",
              stale->name, Millis(now - stale->last),
              std::chrono::duration_cast<std::chrono::milliseconds>(fresh_limit()).count());
          stale_ = stale->name;
        }
      } else {
        if (stale_) {
          log_->warn("watchdog: the {} is making progress again; pings resumed", *stale_);
          stale_.reset();
        }
        if (Send("WATCHDOG=1")) last_ping_ = now;
      }
    }
    if (!last_status_check_ || now - *last_status_check_ >= options_.status_interval) {
      last_status_check_ = now;
      status_due = true;
    }
  }
  if (!status_due) return;
  // Outside the lock: the status reads the log's statistics, and Ready() must not wait for that.
  const std::string line = status();
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_ || line == last_status_) return;
  last_status_ = line;
  log_->debug("service status: {}", line);
  Send("STATUS=" + line);
}

}  // namespace sluice::gateway
