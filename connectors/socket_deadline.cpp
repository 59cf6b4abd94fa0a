// SPDX-License-Identifier: Apache-2.0

#include "connectors/socket_deadline.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::connectors {

Status SocketDeadline::Create(int fd, std::chrono::milliseconds tick,
                              std::unique_ptr<SocketDeadline>* out) {
  const int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    return Status::Unavailable("cannot duplicate socket " + std::to_string(fd) + ": " +
                               std::strerror(errno));
  }
  std::unique_ptr<SocketDeadline> d(new SocketDeadline(dup, tick));
  d->thread_ = std::thread([p = d.get()] { p->Watch(); });
  *out = std::move(d);
  return Status::Ok();
}

SocketDeadline::~SocketDeadline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
  close(fd_);
}

void SocketDeadline::Arm(std::chrono::milliseconds limit) {
  limit_ms_.store(limit.count(), std::memory_order_relaxed);
  calls_.fetch_add(1, std::memory_order_release);
}

bool SocketDeadline::Disarm() {
  calls_.fetch_add(1, std::memory_order_release);
  return fired();
}

void SocketDeadline::Watch() {
  uint64_t seen = 0;  // the armed call being timed; 0 = none (calls_ is odd while armed)
  std::chrono::steady_clock::time_point since;
  std::chrono::milliseconds limit{0};
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, tick_, [this] { return stop_; })) {
    const uint64_t calls = calls_.load(std::memory_order_acquire);
    if ((calls & 1) == 0 || fired()) {
      seen = 0;
      continue;
    }
    const auto now = clock_.Now();
    if (calls != seen) {
      // First seen now; it began up to a tick ago, so the socket is never shut down early.
      seen = calls;
      since = now;
      limit = std::chrono::milliseconds(limit_ms_.load(std::memory_order_relaxed));
      continue;
    }
    if (now - since < limit) continue;
    // The caller is still inside the same call: end it. shutdown(2) on a socket another thread
    // waits on is safe, and wakes its poll() at once; fired_ goes first, so that the woken call's
    // Disarm cannot miss it.
    fired_.store(true, std::memory_order_release);
    ::shutdown(fd_, SHUT_RDWR);
  }
}

}  // namespace sluice::connectors
