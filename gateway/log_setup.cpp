// SPDX-License-Identifier: Apache-2.0

#include "gateway/log_setup.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/systemd_sink.h>
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>

namespace sluice::gateway {

bool FdIsJournalStream(int fd, const char* journal_stream) {
  if (journal_stream == nullptr) return false;
  uintmax_t dev = 0;
  uintmax_t ino = 0;
  int consumed = 0;
  if (std::sscanf(journal_stream, "%" SCNuMAX ":%" SCNuMAX "%n", &dev, &ino, &consumed) != 2 ||
      journal_stream[consumed] != '\0') {
    return false;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) return false;
  return static_cast<uintmax_t>(st.st_dev) == dev && static_cast<uintmax_t>(st.st_ino) == ino;
}

std::shared_ptr<spdlog::logger> MakeDaemonLogger(const std::string& level, bool journal) {
  std::shared_ptr<spdlog::logger> logger;
  if (journal) {
    // journald stamps time, priority and unit itself; the message stays bare.
    logger = std::make_shared<spdlog::logger>(
        "sluice", std::make_shared<spdlog::sinks::systemd_sink_mt>("sluice"));
  } else {
    logger = std::make_shared<spdlog::logger>("sluice",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(level));
  logger->flush_on(spdlog::level::info);
  return logger;
}

}  // namespace sluice::gateway
