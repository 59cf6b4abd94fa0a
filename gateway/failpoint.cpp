// SPDX-License-Identifier: Apache-2.0

#include "gateway/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>

namespace sluice::gateway {

Status ParseFailpoint(const std::string& spec, FailpointHook* out) {
  *out = nullptr;
  if (spec.empty()) return Status::Ok();
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    return Status::InvalidArgument("SLUICE_FAILPOINT must be <name>:<count>, not '" + spec + "'");
  }
  const std::string name = spec.substr(0, colon);
  uint64_t count = 0;
  for (char c : spec.substr(colon + 1)) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("SLUICE_FAILPOINT count must be a number in '" + spec + "'");
    }
    count = count * 10 + static_cast<uint64_t>(c - '0');
  }
  if (count == 0) return Status::InvalidArgument("SLUICE_FAILPOINT count must be at least 1");
  auto hits = std::make_shared<std::atomic<uint64_t>>(0);
  const bool wedge = name.ends_with(".wedge");
  *out = [name, count, hits, wedge](const char* point) {
    if (std::strcmp(point, name.c_str()) != 0) return;
    if (hits->fetch_add(1) + 1 != count) return;
    if (wedge) {
      // Every signal is blocked in this thread (the main thread takes them synchronously), so
      // pause() never returns: the thread stays hung until the process ends.
      for (;;) pause();
    }
    // No cleanup, no flush: exactly what a crash at this point leaves behind.
    kill(getpid(), SIGKILL);
  };
  return Status::Ok();
}

}  // namespace sluice::gateway
