// SPDX-License-Identifier: Apache-2.0

#include "gateway/memory_releaser.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <vector>

#include "tests/manual_clock.h"

namespace sluice::gateway {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;

std::shared_ptr<spdlog::logger> Quiet() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

// A heap whose free bytes the test sets; a release frees all but 100 KiB of them.
struct FakeHeap {
  size_t free = 0;
  int released = 0;
  HeapControl Control() {
    return {[this] { return free; },
            [this] {
              ++released;
              free = 100 << 10;
            }};
  }
};

// A releaser that looks every 10 s and releases from 4 MiB free, over a fake heap and clock.
struct Rig {
  ManualClock clock;
  FakeHeap heap;
  MemoryReleaser releaser{heap.Control(), {10s, 4 << 20}, &clock, Quiet()};
};

TEST_CASE("MemoryReleaser releases free heap above the threshold, at most once an interval") {
  Rig rig;
  rig.heap.free = 20 << 20;  // a drain's buffers, freed
  rig.releaser.Tick();
  CHECK(rig.heap.released == 0);  // the interval is not up yet
  rig.clock.Advance(10s);
  rig.releaser.Tick();
  CHECK(rig.heap.released == 1);
  CHECK(rig.releaser.releases() == 1);

  rig.heap.free = 30 << 20;
  rig.clock.Advance(5s);
  rig.releaser.Tick();
  CHECK(rig.heap.released == 1);  // 5 s after the last look
  rig.clock.Advance(5s);
  rig.releaser.Tick();
  CHECK(rig.heap.released == 2);
}

TEST_CASE("MemoryReleaser leaves a heap with little free alone") {
  Rig rig;
  rig.heap.free = (4 << 20) - 1;
  for (int i = 0; i < 5; ++i) {
    rig.clock.Advance(10s);
    rig.releaser.Tick();
  }
  CHECK(rig.heap.released == 0);
}

// The sanitizers bring allocators of their own, which glibc's mallinfo2 and malloc_trim do not see.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// Resident bytes of this process (/proc/self/statm).
size_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Whether madvise(MADV_DONTNEED) gives this process's pages back, as malloc_trim relies on: a
// user-mode emulator (the arm64 unit tests run under qemu-user) may take the call and ignore it.
bool MadviseReleases() {
  const size_t len = 8 << 20;
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  memset(p, 1, len);
  const size_t before = ResidentBytes();
  madvise(p, len, MADV_DONTNEED);
  const size_t after = ResidentBytes();
  munmap(p, len);
  return before > after && before - after >= len / 2;
}

TEST_CASE("HeapControl::Glibc sees freed memory and gives it back to the system") {
  // Many small blocks, as librdkafka's records and headers are, freed but for the last, which
  // keeps the heap's top in use so that free() alone cannot shrink the heap.
  std::vector<void*> blocks;
  for (int i = 0; i < 60000; ++i) {
    blocks.push_back(malloc(256));
    memset(blocks.back(), 1, 256);  // resident
  }
  for (size_t i = 0; i + 1 < blocks.size(); ++i) free(blocks[i]);
  HeapControl glibc = HeapControl::Glibc();
  CHECK(glibc.free_bytes() >= (12u << 20));
  if (!MadviseReleases()) {
    MESSAGE("madvise gives no pages back here: the release is not measured");
    free(blocks.back());
    return;
  }
  const size_t before = ResidentBytes();
  glibc.release();
  const size_t after = ResidentBytes();
  CHECK(before > after);
  CHECK(before - after >= (8u << 20));
  free(blocks.back());
}
#endif

}  // namespace
}  // namespace sluice::gateway
