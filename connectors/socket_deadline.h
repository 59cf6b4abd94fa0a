// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::connectors {

// Bounds how long one thread may spend in a call that a client library makes on a socket with an
// unbounded wait (rabbitmq-c writes basic.publish and heartbeats this way: a non-blocking socket,
// then poll() without a timeout until the peer reads). Arm before the call, Disarm after: when a
// call stays armed past its limit, a helper thread shuts the socket down (shutdown(2), both ways),
// which wakes the library's poll() and fails its send() and recv(), so the call returns an error
// and the caller treats the connection as lost. The socket is never usable again after that.
//
// The helper holds a duplicate of the descriptor, so it can never shut down an unrelated socket
// that reused the number after the library closed its own; the connection ends for good only
// when both are closed, i.e. when this object is destroyed too.
//
// Cost on the calling thread: two atomic increments per call. The helper wakes every `tick` and
// times a call from the first tick that sees it, so a stuck call ends between `limit` and
// `limit + 2 * tick` after it began, never before.
//
// Thread-safety: one thread calls Arm and Disarm (the one that makes the calls); fired() may be
// read from any thread.
class SocketDeadline {
 public:
  // Watches socket `fd` (duplicated; the caller keeps its own). Unavailable when the descriptor
  // cannot be duplicated.
  static Status Create(int fd, std::chrono::milliseconds tick,
                       std::unique_ptr<SocketDeadline>* out);
  ~SocketDeadline();

  SocketDeadline(const SocketDeadline&) = delete;
  SocketDeadline& operator=(const SocketDeadline&) = delete;

  // The next call may take `limit` at most. REQUIRES: not armed.
  void Arm(std::chrono::milliseconds limit);
  // The call returned. True if its limit passed and the socket was shut down.
  bool Disarm();
  // The socket was shut down (by any call since Create).
  bool fired() const { return fired_.load(std::memory_order_acquire); }

 private:
  SocketDeadline(int fd, std::chrono::milliseconds tick) : fd_(fd), tick_(tick) {}
  void Watch();

  const int fd_;  // the duplicate, owned
  const std::chrono::milliseconds tick_;
  const SystemClock clock_;
  // Odd while a call is armed; each Arm and Disarm adds one, so the helper tells one long call
  // from many short ones.
  std::atomic<uint64_t> calls_{0};
  std::atomic<int64_t> limit_ms_{0};  // of the armed call
  std::atomic<bool> fired_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace sluice::connectors
