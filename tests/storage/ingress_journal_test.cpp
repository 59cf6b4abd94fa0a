// SPDX-License-Identifier: Apache-2.0

#include "storage/ingress_journal.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::TempDir;

constexpr uint64_t kMin = IngressJournal::kMinCapacityBytes;
constexpr char kLogId[] = "log-identity-a";

IngressJournalOptions Options(const std::string& path, uint64_t capacity = kMin) {
  IngressJournalOptions o;
  o.path = path;
  o.capacity_bytes = capacity;
  o.logger = NullLogger();
  return o;
}

// The journal's path beside a log file, as the daemon has it: the unix VFS creates a file opened
// as SQLITE_OPEN_MAIN_JOURNAL with the permissions of the database its name leads to (the path up
// to its last '-'), and fails with SQLITE_IOERR_FSTAT if there is none.
std::string JournalPath(const TempDir& dir) {
  const std::string db = dir.File("events.db");
  std::ofstream touch(db, std::ios::app);
  return db + IngressJournal::kPathSuffix;
}

// Opens the journal and requires success; `pending` gets the records above `applied`.
std::unique_ptr<IngressJournal> MustOpen(const IngressJournalOptions& o, uint64_t applied,
                                         std::vector<Event>* pending,
                                         std::string_view log_id = kLogId) {
  std::unique_ptr<IngressJournal> j;
  const Status s = IngressJournal::Open(o, log_id, applied, &j, pending);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(j != nullptr);
  return j;
}

// Event n: binary payload (NUL and high bytes) of `payload_bytes`, fields derived from n.
Event Ev(uint64_t n, size_t payload_bytes = 40) {
  Event e;
  e.topic = "devices/d" + std::to_string(n % 5) + "/t";
  e.payload = "ev" + std::to_string(n) + ":";
  e.payload.push_back('\0');
  e.payload.push_back('\xff');
  e.payload.push_back('\x80');
  while (e.payload.size() < payload_bytes) e.payload.push_back(static_cast<char>(n * 7 + 13));
  e.qos = n % 2 == 0 ? 2 : 1;
  e.retained = n % 3 == 0;
  e.packet_id = static_cast<uint16_t>(1000 + n);
  e.received_ms = 1764000000000 + static_cast<int64_t>(n) * 3;
  return e;
}

void CheckSame(const Event& got, const Event& want) {
  CHECK(got.topic == want.topic);
  CHECK(got.payload == want.payload);
  CHECK(got.qos == want.qos);
  CHECK(got.retained == want.retained);
  CHECK(got.packet_id == want.packet_id);
  CHECK(got.received_ms == want.received_ms);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

uint64_t RecordBytes(const Event& e) {
  return IngressJournal::kRecordHeaderBytes + e.topic.size() + e.payload.size();
}

// Appends events first..last (by Ev's numbering) and returns their on-disk offsets.
std::vector<uint64_t> AppendRange(IngressJournal* j, uint64_t first, uint64_t last,
                                  size_t payload_bytes = 40) {
  std::vector<uint64_t> offsets;
  uint64_t at = IngressJournal::kHeaderBytes;
  for (uint64_t n = first; n <= last; ++n) {
    Event e = Ev(n, payload_bytes);
    offsets.push_back(at);
    at += RecordBytes(e);
    const Status s = j->Append(&e);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  return offsets;
}

TEST_CASE("IngressJournal gives back every unapplied record after reopen, in order, whole") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, /*applied=*/40, &pending);
    CHECK(pending.empty());
    CHECK(std::filesystem::file_size(o.path) == kMin);
    CHECK(j->last_number() == 40);
    for (uint64_t n = 1; n <= 5; ++n) {
      Event e = Ev(n);
      REQUIRE(j->Append(&e).ok());
      // Numbered on from where the log left off.
      CHECK(e.ingress == 40 + n);
    }
    CHECK(j->records_written() == 5);
    CHECK(j->last_number() == 45);
    CHECK(j->applied() == 40);
  }
  auto j = MustOpen(o, 40, &pending);
  REQUIRE(pending.size() == 5);
  for (uint64_t n = 1; n <= 5; ++n) {
    CAPTURE(n);
    CHECK(pending[n - 1].ingress == 40 + n);
    CheckSame(pending[n - 1], Ev(n));
  }
  CHECK(j->records_written() == 0);
  CHECK(j->last_number() == 45);
  // The next record goes after them.
  Event e = Ev(6);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == 46);
  j.reset();
  j = MustOpen(o, 40, &pending);
  REQUIRE(pending.size() == 6);
  CheckSame(pending[5], Ev(6));
  CHECK(pending[5].ingress == 46);
}

TEST_CASE("IngressJournal returns only the records above the log's applied number") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 0, &pending);
    AppendRange(j.get(), 1, 5);
  }
  MustOpen(o, 3, &pending);
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].ingress == 4);
  CHECK(pending[1].ingress == 5);
  CheckSame(pending[0], Ev(4));

  // Everything applied: nothing pending, and writing starts over at the front, numbered on.
  auto j = MustOpen(o, 5, &pending);
  CHECK(pending.empty());
  CHECK(j->last_number() == 5);
  Event e = Ev(6);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == 6);
  j.reset();
  MustOpen(o, 5, &pending);
  REQUIRE(pending.size() == 1);
  CheckSame(pending[0], Ev(6));
}

TEST_CASE("IngressJournal is Full at its tail until every record is applied, then wraps") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  auto j = MustOpen(o, 0, &pending);
  // Equal-sized records: after a wrap, a new record ends exactly where an older one begins,
  // so the reader meets a well-formed stale record right behind the new chain.
  constexpr size_t kPayload = 1000;
  uint64_t n = 0;
  Status s;
  for (int i = 0; s.ok() && i < 1000; ++i) {
    Event e = Ev(n + 1, kPayload);
    s = j->Append(&e);
    if (s.ok()) ++n;
  }
  REQUIRE(s.IsFull());
  const uint64_t per_file = (kMin - IngressJournal::kHeaderBytes) / RecordBytes(Ev(1, kPayload));
  CHECK(n == per_file);
  CHECK(j->records_written() == n);
  CHECK(j->last_number() == n);
  j->MarkApplied(n - 1);
  Event e = Ev(n + 1, kPayload);
  CHECK(j->Append(&e).IsFull());
  CHECK(e.ingress == 0);
  // A lower mark never moves it back.
  j->MarkApplied(n);
  j->MarkApplied(2);
  CHECK(j->applied() == n);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == n + 1);
  Event e2 = Ev(n + 2, kPayload);
  REQUIRE(j->Append(&e2).ok());
  CHECK(e2.ingress == n + 2);
  j.reset();

  // The chain after the wrap is exactly the two new records; the older ones behind them are not.
  j = MustOpen(o, n, &pending);
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].ingress == n + 1);
  CHECK(pending[1].ingress == n + 2);
  CheckSame(pending[0], Ev(n + 1, kPayload));
  CheckSame(pending[1], Ev(n + 2, kPayload));
  j.reset();
  MustOpen(o, n + 1, &pending);
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].ingress == n + 2);
  j = MustOpen(o, n + 2, &pending);
  CHECK(pending.empty());
}

TEST_CASE("IngressJournal wraps many times with records of varied sizes and keeps each chain") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  auto j = MustOpen(o, 0, &pending);
  uint64_t bytes = 0;
  uint64_t waits = 0;
  for (uint64_t n = 1; n <= 2000; ++n) {
    Event e = Ev(n, 30 + (n * 7919) % 1700);
    Status s = j->Append(&e);
    if (s.IsFull()) {
      ++waits;
      j->MarkApplied(j->last_number());
      s = j->Append(&e);
    }
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    REQUIRE(e.ingress == n);
    bytes += RecordBytes(e);
    // Every 97th record: a restart finds the records since the last applied mark, in order.
    if (n % 97 == 0) {
      const uint64_t applied = j->applied();
      j.reset();
      j = MustOpen(o, applied, &pending);
      REQUIRE(pending.size() == n - applied);
      for (size_t i = 0; i < pending.size(); ++i) {
        REQUIRE(pending[i].ingress == applied + 1 + i);
        CheckSame(pending[i], Ev(applied + 1 + i, 30 + ((applied + 1 + i) * 7919) % 1700));
      }
    }
  }
  CHECK(bytes > 20 * kMin);
  CHECK(waits > 10);
}

TEST_CASE("IngressJournal: a torn last record ends the chain and the earlier ones survive") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  std::vector<uint64_t> offsets;
  {
    auto j = MustOpen(o, 0, &pending);
    offsets = AppendRange(j.get(), 1, 3, 600);
  }
  const std::string intact = ReadAll(o.path);
  const uint64_t last_at = offsets[2];
  const uint64_t last_size = RecordBytes(Ev(3, 600));

  SUBCASE("a flipped byte in its payload") {
    std::string bytes = intact;
    bytes[last_at + last_size - 10] ^= 0x01;
    WriteAll(o.path, bytes);
  }
  SUBCASE("a flipped byte in its number") {
    std::string bytes = intact;
    bytes[last_at + 8] ^= 0x40;
    WriteAll(o.path, bytes);
  }
  SUBCASE("its second half lost (zeros, as an unsynced sector)") {
    std::string bytes = intact;
    for (uint64_t i = last_at + last_size / 2; i < last_at + last_size; ++i) bytes[i] = '\0';
    WriteAll(o.path, bytes);
  }
  SUBCASE("the file cut off halfway through it") {
    WriteAll(o.path, intact.substr(0, last_at + last_size / 2));
  }
  auto j = MustOpen(o, 0, &pending);
  REQUIRE(pending.size() == 2);
  CHECK(pending[0].ingress == 1);
  CHECK(pending[1].ingress == 2);
  CheckSame(pending[1], Ev(2, 600));
  // The number of the torn record is handed out again; the new record replaces it.
  Event e = Ev(33, 100);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == 3);
  j.reset();
  MustOpen(o, 0, &pending);
  REQUIRE(pending.size() == 3);
  CheckSame(pending[2], Ev(33, 100));
}

TEST_CASE("IngressJournal: a damaged first record leaves nothing pending, not what follows") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 0, &pending);
    AppendRange(j.get(), 1, 4);
  }
  std::string bytes = ReadAll(o.path);
  bytes[IngressJournal::kHeaderBytes + 20] ^= 0x10;
  WriteAll(o.path, bytes);
  MustOpen(o, 0, &pending);
  CHECK(pending.empty());
}

TEST_CASE("IngressJournal Reset leaves nothing to recover and numbering goes on") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 0, &pending);
    AppendRange(j.get(), 1, 3);
    j->MarkApplied(2);
    CHECK(j->Reset().code() == Status::Code::kInvalidArgument);
    j->MarkApplied(3);
    REQUIRE(j->Reset().ok());
  }
  // Even with the log claiming less applied (a reader would otherwise return 1..3).
  auto j = MustOpen(o, 0, &pending);
  CHECK(pending.empty());
  j.reset();
  j = MustOpen(o, 3, &pending);
  CHECK(pending.empty());
  Event e = Ev(4);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == 4);
}

TEST_CASE("IngressJournal of another log that holds records is refused and left untouched") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 0, &pending, "log-a");
    AppendRange(j.get(), 1, 2);
  }
  const std::string before = ReadAll(o.path);
  std::unique_ptr<IngressJournal> j;
  const Status s = IngressJournal::Open(o, "log-b", 0, &j, &pending);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK(s.message().find("log-a") != std::string::npos);
  CHECK(j == nullptr);
  CHECK(pending.empty());
  CHECK(ReadAll(o.path) == before);
  // Also when that log had applied them all: the journal cannot know.
  CHECK(IngressJournal::Open(o, "log-b", 99, &j, &pending).code() == Status::Code::kCorruption);
  CHECK(ReadAll(o.path) == before);
  // Its own log still finds them.
  MustOpen(o, 0, &pending, "log-a");
  CHECK(pending.size() == 2);
}

TEST_CASE("IngressJournal of another log that holds no record is started anew for this one") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 0, &pending, "log-a");
    AppendRange(j.get(), 1, 2);
    j->MarkApplied(2);
    REQUIRE(j->Reset().ok());
  }
  {
    auto j = MustOpen(o, 7, &pending, "log-b");
    CHECK(pending.empty());
    Event e = Ev(1);
    REQUIRE(j->Append(&e).ok());
    CHECK(e.ingress == 8);
  }
  // Now it is log-b's, holding a record.
  std::unique_ptr<IngressJournal> j;
  CHECK(IngressJournal::Open(o, "log-a", 0, &j, &pending).code() == Status::Code::kCorruption);
  MustOpen(o, 7, &pending, "log-b");
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].ingress == 8);
}

TEST_CASE("IngressJournal refuses a file that is not a journal and leaves it as it is") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::string garbage;
  SUBCASE("garbage of the journal's size") {
    garbage.assign(kMin, '\x5a');
  }
  SUBCASE("a short text file") {
    garbage = "not a journal at all\n";
  }
  SUBCASE("a journal header with a newer version") {
    std::vector<Event> pending;
    { MustOpen(o, 0, &pending); }
    garbage = ReadAll(o.path);
    garbage[4] = 2;  // the version; the header's checksum no longer matches either
  }
  SUBCASE("zeros with one stray byte") {
    garbage.assign(kMin, '\0');
    garbage[kMin - 1] = 1;
  }
  WriteAll(o.path, garbage);
  std::unique_ptr<IngressJournal> j;
  std::vector<Event> pending;
  const Status s = IngressJournal::Open(o, kLogId, 0, &j, &pending);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK(s.message().find(o.path) != std::string::npos);
  CHECK(j == nullptr);
  CHECK(ReadAll(o.path) == garbage);
}

TEST_CASE("IngressJournal initialises a file of zeros or an empty one (a cut during creation)") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  SUBCASE("part-preallocated") {
    WriteAll(o.path, std::string(8192, '\0'));
  }
  SUBCASE("empty") {
    WriteAll(o.path, "");
  }
  SUBCASE("all zeros, full size") {
    WriteAll(o.path, std::string(kMin, '\0'));
  }
  std::vector<Event> pending;
  {
    auto j = MustOpen(o, 5, &pending);
    CHECK(pending.empty());
    CHECK(std::filesystem::file_size(o.path) == kMin);
    Event e = Ev(1);
    REQUIRE(j->Append(&e).ok());
    CHECK(e.ingress == 6);
  }
  MustOpen(o, 5, &pending);
  CHECK(pending.size() == 1);
}

TEST_CASE("IngressJournal keeps its size while records are pending and takes a new one after") {
  TempDir dir;
  std::vector<Event> pending;
  const auto small = Options(JournalPath(dir), kMin);
  const auto large = Options(JournalPath(dir), 2 * kMin);
  {
    auto j = MustOpen(small, 0, &pending);
    AppendRange(j.get(), 1, 3);
  }
  {
    auto j = MustOpen(large, 0, &pending);
    REQUIRE(pending.size() == 3);
    CHECK(j->capacity_bytes() == kMin);
    CHECK(std::filesystem::file_size(small.path) == kMin);
    Event e = Ev(4);
    REQUIRE(j->Append(&e).ok());
    CHECK(e.ingress == 4);
  }
  {
    // Still pending: still the old size, all four there.
    auto j = MustOpen(large, 0, &pending);
    REQUIRE(pending.size() == 4);
    CHECK(j->capacity_bytes() == kMin);
  }
  {
    // All applied: the new size takes effect, numbering goes on.
    auto j = MustOpen(large, 4, &pending);
    CHECK(pending.empty());
    CHECK(j->capacity_bytes() == 2 * kMin);
    CHECK(std::filesystem::file_size(large.path) == 2 * kMin);
    Event e = Ev(5);
    REQUIRE(j->Append(&e).ok());
    CHECK(e.ingress == 5);
  }
  // And back down, once the record is applied.
  auto j = MustOpen(small, 5, &pending);
  CHECK(pending.empty());
  CHECK(j->capacity_bytes() == kMin);
  CHECK(std::filesystem::file_size(small.path) == kMin);
}

TEST_CASE("IngressJournal refuses an event that can never fit, and goes on") {
  TempDir dir;
  const auto o = Options(JournalPath(dir));
  std::vector<Event> pending;
  auto j = MustOpen(o, 0, &pending);
  AppendRange(j.get(), 1, 2);
  Event huge = Ev(3, kMin);
  CHECK(j->Append(&huge).code() == Status::Code::kInvalidArgument);
  CHECK(huge.ingress == 0);
  // Exactly the room after the header fits; one byte more does not.
  j->MarkApplied(2);
  const uint64_t room = kMin - IngressJournal::kHeaderBytes;
  Event just = Ev(3, 10);
  just.payload.resize(room - IngressJournal::kRecordHeaderBytes - just.topic.size() + 1);
  CHECK(j->Append(&just).code() == Status::Code::kInvalidArgument);
  just.payload.pop_back();
  REQUIRE(j->Append(&just).ok());
  CHECK(just.ingress == 3);
  Event long_topic = Ev(4);
  long_topic.topic.assign(70000, 't');
  CHECK(j->Append(&long_topic).code() == Status::Code::kInvalidArgument);
  CHECK(j->records_written() == 3);
  j->MarkApplied(3);
  Event e = Ev(5);
  REQUIRE(j->Append(&e).ok());
  CHECK(e.ingress == 4);
  CHECK(j->records_written() == 4);
  j.reset();
  MustOpen(o, 3, &pending);
  REQUIRE(pending.size() == 1);
  CheckSame(pending[0], Ev(5));
}

TEST_CASE("IngressJournal options below the minimum or naming an unknown VFS are refused") {
  TempDir dir;
  std::vector<Event> pending;
  std::unique_ptr<IngressJournal> j;
  CHECK(IngressJournal::Open(Options(JournalPath(dir), kMin - 1), kLogId, 0, &j, &pending).code() ==
        Status::Code::kInvalidArgument);
  auto o = Options(JournalPath(dir));
  o.vfs = "no-such-vfs";
  CHECK(IngressJournal::Open(o, kLogId, 0, &j, &pending).code() == Status::Code::kInvalidArgument);
  CHECK(j == nullptr);
  CHECK_FALSE(std::filesystem::exists(JournalPath(dir)));
}

}  // namespace
}  // namespace sluice::storage
