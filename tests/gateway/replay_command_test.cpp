// SPDX-License-Identifier: Apache-2.0

#include "gateway/replay_command.h"

#include <doctest/doctest.h>

#include <memory>
#include <sstream>

#include "storage/sqlite_event_log.h"
#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::ManualClock;
using sluice::testing::NullLogger;
using sluice::testing::TempDir;

TEST_CASE("ParseSince takes an RFC 3339 UTC time or a duration before now") {
  const int64_t now = ManualClock::kStartUnixMs;
  int64_t ms = 0;
  REQUIRE(ParseSince("2026-12-05T10:00:00Z", now, &ms).ok());
  CHECK(ms == 1796464800000);
  REQUIRE(ParseSince("90m", now, &ms).ok());
  CHECK(ms == now - 90 * 60'000);
  REQUIRE(ParseSince("2h", now, &ms).ok());
  CHECK(ms == now - 2 * 3'600'000);
  REQUIRE(ParseSince("1d", now, &ms).ok());
  CHECK(ms == now - 86'400'000);
  REQUIRE(ParseSince("30s", now, &ms).ok());
  CHECK(ms == now - 30'000);
  for (const char* bad : {"", "yesterday", "10x", "-5m", "2026-12-05 10:00:00",
                          "2026-12-05T10:00:00", "2026-12-05T10:00:00+01:00", "m"}) {
    CAPTURE(bad);
    const Status s = ParseSince(bad, now, &ms);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(s.message().find("--since") != std::string::npos);
  }
}

TEST_CASE("ReplayCommand asks the log for a retained range and says what it asked for") {
  TempDir dir;
  storage::SqliteEventLogOptions o;
  o.path = dir.File("events.db");
  o.cursors = {"central", "cloud"};
  o.retain_bytes = 1 << 20;
  o.logger = NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  REQUIRE(storage::SqliteEventLog::Open(o, &log).ok());
  std::vector<storage::Event> events(10);
  for (auto& e : events) {
    e.topic = "t";
    e.payload = "p";
  }
  size_t n = 0;
  REQUIRE(log->Append(events, &n).ok());
  REQUIRE(log->Acknowledge("central", 10).ok());
  REQUIRE(log->Acknowledge("cloud", 10).ok());

  ManualClock clock;
  std::ostringstream out;
  ReplayCommand command(o.path, &clock, out);
  // Beside the open log (a daemon would hold it the same way).
  REQUIRE(command.Request("central", 3, "").ok());
  CHECK(out.str().find("seq 3 to 10 to upstream 'central'") != std::string::npos);
  std::vector<storage::ReplayRequest> pending;
  REQUIRE(log->PendingReplays(&pending).ok());
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].upstream == "central");
  CHECK(pending[0].from_seq == 3);
  CHECK(pending[0].through_seq == 10);

  CHECK(command.Request("central", std::nullopt, "").code() == Status::Code::kInvalidArgument);
  CHECK(command.Request("central", 3, "1h").code() == Status::Code::kInvalidArgument);
  CHECK(command.Request("central", 0, "").code() == Status::Code::kInvalidArgument);
  const Status unknown = command.Request("centrl", 3, "");
  CHECK(unknown.code() == Status::Code::kNotFound);
  CHECK(unknown.message().find("central") != std::string::npos);  // names the known upstreams
}

}  // namespace
}  // namespace sluice::gateway
