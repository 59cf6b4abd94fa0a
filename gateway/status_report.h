// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "storage/event_log.h"

namespace sluice::gateway {

// What `sluice status` shows: the log's state as read from its file, read-only, beside a running
// daemon (SQLite's WAL lets a reader see the last commit without taking any lock the daemon
// waits on).
struct StatusReport {
  std::string log_path;
  std::string log_id;           // the log's identity (SqliteEventLog::LogId); empty for format 1
  bool daemon_running = false;  // another process holds the log's lock
  uint64_t file_bytes = 0;      // the database file plus its WAL, on disk
  storage::LogStats stats;      // stats.cursors: one entry per upstream
  std::vector<storage::ReplayRequest> replays;  // every replay requested, done or not
  // Acknowledged events in the ingress journal that are not in the log yet: a running daemon's
  // next commit, or what a crashed one left for its next start.
  uint64_t journal_pending = 0;
  int64_t now_ms = 0;

  // Human-readable lines.
  std::string ToText() const;
  // One JSON object, for scripts; field names are documented in docs/operations.md.
  std::string ToJson() const;
};

// Fills `out` from the log at `path`; `max_bytes` is the configured bound (0: unknown). NotFound
// when there is no log yet.
Status ReadStatus(const std::string& path, uint64_t max_bytes, const Clock& clock,
                  StatusReport* out);

}  // namespace sluice::gateway
