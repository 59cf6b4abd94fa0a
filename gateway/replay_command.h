// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace sluice::gateway {

// `sluice replay --upstream NAME --from SEQ | --since TIME`: asks for a retained range of the log
// to be sent to one upstream again.
//
// The request is written into the log (its `replays` table) on a connection of its own, beside a
// running daemon, which picks it up within a second and sends the range through a second
// connection and a position of its own; live forwarding and the upstream's cursor are untouched.
// The range ends at the upstream's cursor when the request is made: what comes after is still
// on its way live. Without a daemon the request waits in the log for the next start.
class ReplayCommand {
 public:
  // `clock` resolves --since; both must outlive the object.
  ReplayCommand(std::string log_path, const Clock* clock, std::ostream& out);

  // Exactly one of from_seq / since is set. `since`: an RFC 3339 UTC time
  // ("2026-12-05T10:00:00Z") or a duration before now ("90m", "2h", "1d", "30s").
  // InvalidArgument for bad usage (exit 2); other errors exit 1.
  Status Request(const std::string& upstream, std::optional<uint64_t> from_seq,
                 const std::string& since);

 private:
  const std::string path_;
  const Clock* clock_;
  std::ostream& out_;
};

// Parses --since: an RFC 3339 UTC time or a duration before `now_ms`; InvalidArgument naming the
// accepted forms otherwise.
Status ParseSince(std::string_view text, int64_t now_ms, int64_t* since_ms);

}  // namespace sluice::gateway
