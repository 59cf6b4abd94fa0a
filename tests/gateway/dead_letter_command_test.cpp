// SPDX-License-Identifier: Apache-2.0

#include "gateway/dead_letter_command.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <sstream>

#include "storage/sqlite_event_log.h"
#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::TempDir;

std::unique_ptr<storage::SqliteEventLog> OpenLog(const std::string& path) {
  storage::SqliteEventLogOptions o;
  o.path = path;
  o.logger = NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = storage::SqliteEventLog::Open(o, &log);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return log;
}

// A log with 4 events: 1 (text) and 2 (binary) dead-lettered, 3 confirmed, 4 waiting.
void MakeLog(const std::string& path) {
  auto log = OpenLog(path);
  std::vector<storage::Event> batch(4);
  const char* topics[] = {"devices/a/data", "devices/b/data", "devices/c/data", "devices/d/data"};
  for (size_t i = 0; i < batch.size(); ++i) {
    batch[i].topic = topics[i];
    batch[i].payload = "{\"n\":" + std::to_string(i + 1) + "}";
    batch[i].received_ms = 1700000000000 + static_cast<int64_t>(i);
  }
  batch[1].payload = std::string("\x00\x01\xfe\xff binary", 11);
  size_t n = 0;
  REQUIRE(log->Append(batch, &n).ok());
  REQUIRE(log->DeadLetter("kafka", batch[0], "events: Broker: Message size too large").ok());
  REQUIRE(log->DeadLetter("kafka", batch[1], "no route matches MQTT topic 'devices/b/data'").ok());
  REQUIRE(log->Acknowledge("kafka", 3).ok());
}

TEST_CASE("dead-letters list shows seq, times, topic and reason, with a limit") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  MakeLog(path);
  std::ostringstream out;
  DeadLetterCommand command(path, out);
  REQUIRE(command.List(0, 100).ok());
  const std::string text = out.str();
  CHECK(text.find("1\t2023-11-14T22:13:20.000Z\t") != std::string::npos);
  CHECK(text.find("devices/a/data\tevents: Broker: Message size too large") != std::string::npos);
  CHECK(text.find("devices/b/data\tno route matches") != std::string::npos);
  CHECK(text.find("2 of 2 dead letters shown") != std::string::npos);

  std::ostringstream one;
  DeadLetterCommand limited(path, one);
  REQUIRE(limited.List(0, 1).ok());
  CHECK(one.str().find("devices/b/data") == std::string::npos);
  CHECK(one.str().find("1 of 2 dead letters shown (--after 1 for the next ones)") !=
        std::string::npos);
}

TEST_CASE("dead-letters show prints a text payload as text and a binary one as hex") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  MakeLog(path);
  std::ostringstream text;
  REQUIRE(DeadLetterCommand(path, text).Show(1, false).ok());
  CHECK(text.str().find("reason    events: Broker: Message size too large") != std::string::npos);
  CHECK(text.str().find("payload   7 bytes, text:\n{\"n\":1}\n") != std::string::npos);

  std::ostringstream bin;
  REQUIRE(DeadLetterCommand(path, bin).Show(2, false).ok());
  CHECK(bin.str().find("payload   11 bytes, hex:\n00000000: 0001 feff 2062 696e 6172 79") !=
        std::string::npos);

  std::ostringstream missing;
  CHECK(DeadLetterCommand(path, missing).Show(3, false).code() == Status::Code::kNotFound);
}

TEST_CASE("dead-letters list and show work beside a running daemon; replay and purge refuse") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  MakeLog(path);
  auto daemon = OpenLog(path);  // holds the lock, as the daemon does
  std::ostringstream out;
  DeadLetterCommand command(path, out);
  CHECK(command.List(0, 10).ok());
  CHECK(command.Show(1, false).ok());
  Status s = command.Replay({1}, false);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("sluice is running on this log") != std::string::npos);
  CHECK(s.message().find("pid " + std::to_string(getpid())) != std::string::npos);
  CHECK(s.message().find("Stop it first") != std::string::npos);
  CHECK(command.Purge({}, true).code() == Status::Code::kUnavailable);
  CHECK(daemon->Stats().dead_letters == 2);
}

TEST_CASE("dead-letters replay appends chosen dead letters at the end of the log") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  MakeLog(path);
  std::ostringstream out;
  DeadLetterCommand command(path, out);
  CHECK(command.Replay({}, false).code() == Status::Code::kInvalidArgument);
  CHECK(command.Replay({1}, true).code() == Status::Code::kInvalidArgument);
  CHECK(command.Replay({1, 7}, false).code() == Status::Code::kNotFound);
  REQUIRE(command.Replay({1}, false).ok());
  CHECK(out.str().find("dead letter 1 -> event 5") != std::string::npos);
  CHECK(out.str().find("after the 1 events already waiting") != std::string::npos);
  auto log = OpenLog(path);
  std::vector<storage::Event> waiting;
  REQUIRE(log->Read(0, 10, SIZE_MAX, &waiting).ok());
  REQUIRE(waiting.size() == 2);
  CHECK(waiting[0].seq == 4);
  CHECK(waiting[1].seq == 5);
  CHECK(waiting[1].topic == "devices/a/data");
  CHECK(waiting[1].payload == "{\"n\":1}");
  CHECK(log->Stats().dead_letters == 1);
}

TEST_CASE("dead-letters purge deletes chosen or all dead letters and prints the count") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  MakeLog(path);
  std::ostringstream out;
  DeadLetterCommand command(path, out);
  CHECK(command.Purge({}, false).code() == Status::Code::kInvalidArgument);
  REQUIRE(command.Purge({2}, false).ok());
  CHECK(out.str() == "purged 1 dead letters\n");
  REQUIRE(command.Purge({}, true).ok());
  CHECK(out.str() == "purged 1 dead letters\npurged 1 dead letters\n");
  CHECK(OpenLog(path)->Stats().dead_letters == 0);
  std::ostringstream nothing;
  CHECK(DeadLetterCommand(dir.File("absent.db"), nothing).Purge({}, true).code() ==
        Status::Code::kNotFound);
}

}  // namespace
}  // namespace sluice::gateway
