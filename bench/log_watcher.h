// SPDX-License-Identifier: Apache-2.0

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
  uint64_t until_cursor = 0;    // stop once the lowest cursor (confirmed upstream) reaches this
  std::chrono::milliseconds interval{20};
  std::chrono::milliseconds timeout{600000};
  std::string timeline_csv;  // "unix_s last_seq cursor" per sample
};

// Watches a running sluice's event log from outside through storage/: a read-only SqliteEventLog
// (no lock, like `sluice status`) kept open, whose positions are refreshed for each sample
// (SqliteEventLog::RefreshPositions: a few index lookups, so sampling every few milliseconds
// stays cheap): the last sequence number assigned and the lowest cursor (confirmed by every
// upstream; with one upstream, its cursor). Each sample is a few short reads, so it never holds
// back the daemon's checkpoints for long.
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
