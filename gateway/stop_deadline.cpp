// SPDX-License-Identifier: Apache-2.0

#include "gateway/stop_deadline.h"

namespace sluice::gateway {

StopDeadline::StopDeadline(std::chrono::milliseconds limit, std::function<void()> on_expiry) {
  thread_ = std::thread([this, limit, expire = std::move(on_expiry)] {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, limit, [this] { return disarmed_; })) return;
    lock.unlock();
    expire();
  });
}

StopDeadline::~StopDeadline() {
  Disarm();
  if (thread_.joinable()) thread_.join();
}

void StopDeadline::Disarm() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    disarmed_ = true;
  }
  cv_.notify_all();
}

}  // namespace sluice::gateway
