// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

#include "common/clock.h"

namespace sluice::gateway {

// The allocator's side of the process, injected so that tests can drive it.
struct HeapControl {
  std::function<size_t()> free_bytes;  // bytes the allocator holds free (mallinfo2's fordblks)
  std::function<void()> release;       // hands free pages back to the system (malloc_trim(0))
  static HeapControl Glibc();
};

struct MemoryReleaserOptions {
  std::chrono::milliseconds interval{10000};  // how often the free bytes are looked at
  size_t threshold_bytes = 4 << 20;           // released when at least this much is free
};

// Gives the system back the memory a drain used. While an upstream drains a backlog, librdkafka
// holds up to kafka.max_in_flight_events records with their headers and batch buffers; once they
// are confirmed, glibc keeps the freed pages in its arenas for reuse, so the daemon stayed at its
// drain peak (36 MiB against 23 before the first outage, docs/performance.md "Memory") until the
// next drain, for days on a gateway that drained once. A release costs a millisecond or two
// (madvise on the free pages); pages wanted again are faulted back in, so doing it during a
// drain costs little either.
//
// Tick() comes from the daemon's main loop; not thread-safe.
class MemoryReleaser {
 public:
  // `clock` must outlive the releaser.
  MemoryReleaser(HeapControl heap, MemoryReleaserOptions options, const Clock* clock,
                 std::shared_ptr<spdlog::logger> logger);

  void Tick();
  size_t releases() const { return releases_; }

 private:
  const HeapControl heap_;
  const MemoryReleaserOptions options_;
  const Clock* const clock_;
  const std::shared_ptr<spdlog::logger> logger_;
  std::chrono::steady_clock::time_point next_;
  size_t releases_ = 0;
};

}  // namespace sluice::gateway
