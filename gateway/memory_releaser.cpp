// SPDX-License-Identifier: Apache-2.0

#include "gateway/memory_releaser.h"

#include <malloc.h>

namespace sluice::gateway {

HeapControl HeapControl::Glibc() {
  return {[] { return static_cast<size_t>(mallinfo2().fordblks); }, [] { malloc_trim(0); }};
}

MemoryReleaser::MemoryReleaser(HeapControl heap, MemoryReleaserOptions options, const Clock* clock,
                               std::shared_ptr<spdlog::logger> logger)
    : heap_(std::move(heap)),
      options_(options),
      clock_(clock),
      logger_(std::move(logger)),
      next_(clock_->Now() + options_.interval) {}

void MemoryReleaser::Tick() {
  const auto now = clock_->Now();
  if (now < next_) return;
  next_ = now + options_.interval;
  const size_t before = heap_.free_bytes();
  if (before < options_.threshold_bytes) return;
  heap_.release();
  ++releases_;
  logger_->debug("gave {} KiB of free heap back to the system ({} KiB left free)", before / 1024,
                 heap_.free_bytes() / 1024);
}

}  // namespace sluice::gateway
