#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"

namespace sluice::bench {

struct LogWatcherOptions {
  std::string db_path;
  uint64_t until_last_seq = 0;  // stop once this sequence number is in the log (0: not a goal)
  uint64_t until_cursor = 0;    // stop once the cursor (confirmed by Kafka) reaches this
  std::chrono::milliseconds interval{20};
  std::chrono::milliseconds timeout{600000};
  std::string timeline_csv;  // "unix_s last_seq cursor" per sample
};

// Watches a running sluice's event log from outside, read-only, the way `sluice status` does but
// with one connection kept open so that sampling every few milliseconds stays cheap: the last
// sequence number assigned and the Kafka cursor. Each sample is a short read transaction, so it
// never holds back the daemon's checkpoints for long.
class LogWatcher {
 public:
  explicit LogWatcher(LogWatcherOptions options) : options_(std::move(options)) {}

  // result: reached, reached_us (Unix us of the first sample meeting the goal), last_seq, cursor,
  // first_cursor and cursor_moved_us (the first sample that saw the cursor move; 0: never).
  Status Run(nlohmann::ordered_json* result);

 private:
  const LogWatcherOptions options_;
};

}  // namespace sluice::bench
