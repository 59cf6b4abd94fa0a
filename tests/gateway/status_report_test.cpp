// SPDX-License-Identifier: Apache-2.0

#include "gateway/status_report.h"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "storage/sqlite_event_log.h"
#include "tests/manual_clock.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::ManualClock;
using sluice::testing::NullLogger;
using sluice::testing::TempDir;

TEST_CASE("ReadStatus reports backlog, age and cursor of a log a daemon holds open") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  storage::SqliteEventLogOptions o;
  o.path = path;
  o.logger = NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  REQUIRE(storage::SqliteEventLog::Open(o, &log).ok());
  std::vector<storage::Event> batch(5);
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].topic = "devices/a/t";
    batch[i].payload = "payload";
    batch[i].received_ms = 1000000 + static_cast<int64_t>(i) * 1000;
  }
  size_t n = 0;
  REQUIRE(log->Append(batch, &n).ok());
  REQUIRE(log->DeadLetter("kafka", batch[0], "refused").ok());
  REQUIRE(log->Acknowledge("kafka", 2).ok());

  ManualClock clock(ManualClock::Mode::kStill, 1000000 + 62000);
  StatusReport r;
  REQUIRE(ReadStatus(path, 1 << 20, clock, &r).ok());
  CHECK(r.daemon_running);
  CHECK(r.stats.events == 3);
  CHECK(r.stats.cursor == 2);
  CHECK(r.stats.last_seq == 5);
  CHECK(r.file_bytes > 0);

  const std::string text = r.ToText();
  CHECK(text.find("3 events") != std::string::npos);
  CHECK(text.find("upstream     kafka: cursor 2, 3 events") != std::string::npos);
  CHECK(text.find("60 s ago (seq 3)") != std::string::npos);

  auto j = nlohmann::json::parse(r.ToJson());
  CHECK(j["backlog_events"] == 3);
  CHECK(j["oldest_event_age_ms"] == 60000);
  CHECK(j["upstreams"][0]["cursor"] == 2);
  CHECK(j["upstreams"][0]["name"] == "kafka");
  CHECK(j["upstreams"][0]["backlog_events"] == 3);
  CHECK(j["max_bytes"] == 1 << 20);
  CHECK(j["dead_letters"] == 1);
  CHECK(j["dead_letter_bytes"] == batch[0].AccountedBytes() + 7);
  CHECK(j["log_id"] == log->LogId());
  CHECK(text.find("identity     " + log->LogId()) != std::string::npos);

  log.reset();
  REQUIRE(ReadStatus(path, 0, clock, &r).ok());
  CHECK_FALSE(r.daemon_running);
}

TEST_CASE("ReadStatus says so when there is no log") {
  TempDir dir;
  StatusReport r;
  ManualClock clock(ManualClock::Mode::kStill, 0);
  Status s = ReadStatus(dir.File("missing.db"), 0, clock, &r);
  CHECK(s.code() == Status::Code::kNotFound);
  CHECK(s.message().find("missing.db") != std::string::npos);
}

}  // namespace
}  // namespace sluice::gateway
