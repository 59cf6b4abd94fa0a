// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace sluice::gateway {

// A hard bound on shutdown. Armed when the daemon begins to stop; if Disarm() does not come within
// `limit`, `on_expiry` runs on the deadline's own thread (main() logs and calls _exit: a part that
// hangs, such as a wedged forwarder or an unresponsive broker, must not keep the process alive
// until the service manager's SIGKILL). Exiting early loses nothing: what is not confirmed stays
// in the log and is sent again, what is not in the log was not acknowledged to the broker.
// Thread-safe; the destructor disarms and joins.
class StopDeadline {
 public:
  StopDeadline(std::chrono::milliseconds limit, std::function<void()> on_expiry);
  ~StopDeadline();

  StopDeadline(const StopDeadline&) = delete;
  StopDeadline& operator=(const StopDeadline&) = delete;

  void Disarm();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::gateway
