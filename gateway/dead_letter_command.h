// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/sqlite_event_log.h"

namespace sluice::gateway {

// `sluice dead-letters list|show|replay|purge` on the log at one path; the output goes to `out`.
//
// list and show open the log read-only and take no lock: like `sluice status` they are safe
// beside a running daemon (WAL readers never block the writer).
//
// replay and purge write, and only while no daemon runs on the log: they open it read-write,
// which takes the daemon's exclusive flock on <path>.lock, and otherwise fail with Unavailable
// ("sluice is running on this log ... stop it first"). Writing beside the daemon could be made
// safe for SQLite alone (both would write in BEGIN IMMEDIATE transactions), but the daemon keeps
// the log's state in memory (last seq, byte accounting, counters) and would hand out a replayed
// event's new seq a second time; the lock rules that out without a protocol between the two
// processes (docs/operations.md, "Dead letters").
//
// Status codes: InvalidArgument for bad usage (exit 2), anything else not OK is an error (exit 1).
// Not thread-safe; one command per object.
class DeadLetterCommand {
 public:
  // `out` must outlive the object.
  DeadLetterCommand(std::string log_path, std::ostream& out);

  // One line per dead letter with seq > after_seq, oldest first, at most `limit` of them.
  Status List(uint64_t after_seq, size_t limit);
  // One dead letter with its payload: as text if it is printable UTF-8 (and !hex), else a hex dump.
  Status Show(uint64_t seq, bool hex);
  // Puts the chosen dead letters (all if `all`) back into the log as new events at its end.
  Status Replay(const std::vector<uint64_t>& seqs, bool all);
  // Deletes the chosen dead letters (all if `all`) and prints how many.
  Status Purge(const std::vector<uint64_t>& seqs, bool all);

 private:
  Status OpenReadOnly(std::unique_ptr<storage::SqliteEventLog>* log);
  Status OpenForWrite(std::unique_ptr<storage::SqliteEventLog>* log);

  const std::string path_;
  std::ostream& out_;
};

}  // namespace sluice::gateway
