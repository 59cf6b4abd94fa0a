// SPDX-License-Identifier: Apache-2.0

#include "gateway/stop_deadline.h"

#include <doctest/doctest.h>

#include <atomic>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using namespace std::chrono_literals;
using sluice::testing::WaitFor;

TEST_CASE("StopDeadline runs its action when shutdown outlasts the limit") {
  std::atomic<bool> expired{false};
  StopDeadline deadline(50ms, [&] { expired = true; });
  CHECK(WaitFor([&] { return expired.load(); }, 5000ms));
}

TEST_CASE("StopDeadline disarmed in time never runs its action") {
  std::atomic<bool> expired{false};
  const auto start = std::chrono::steady_clock::now();
  {
    StopDeadline deadline(10s, [&] { expired = true; });
    deadline.Disarm();
  }
  // The destructor returned without waiting for the limit.
  CHECK(std::chrono::steady_clock::now() - start < 5s);
  CHECK_FALSE(expired.load());
}

}  // namespace
}  // namespace sluice::gateway
