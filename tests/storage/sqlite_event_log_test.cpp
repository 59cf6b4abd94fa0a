// SPDX-License-Identifier: Apache-2.0

#include "storage/sqlite_event_log.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "storage/gap_marker.h"
#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::TempDir;

SqliteEventLogOptions Options(const std::string& path) {
  SqliteEventLogOptions o;
  o.path = path;
  o.logger = NullLogger();
  return o;
}

std::unique_ptr<SqliteEventLog> OpenOrDie(SqliteEventLogOptions o) {
  std::unique_ptr<SqliteEventLog> log;
  Status s = SqliteEventLog::Open(std::move(o), &log);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return log;
}

Event MakeEvent(const std::string& topic, const std::string& payload, int qos = 1) {
  Event e;
  e.topic = topic;
  e.payload = payload;
  e.qos = qos;
  e.received_ms = 1700000000000;
  return e;
}

void AppendAll(EventLog* log, std::vector<Event>& events) {
  size_t appended = 0;
  Status s = log->Append(events, &appended);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(appended == events.size());
}

std::vector<Event> ReadAll(EventLog* log, uint64_t after = 0) {
  std::vector<Event> out;
  Status s = log->Read(after, 1000000, SIZE_MAX, &out);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return out;
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("SqliteEventLog assigns increasing sequence numbers and reads back in order") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  const std::string binary("\x00\x01\xff payload\n\x00", 13);
  std::vector<Event> batch = {MakeEvent("devices/a/t", "one"), MakeEvent("devices/b/t", binary, 0),
                              MakeEvent("devices/a/t", "")};
  AppendAll(log.get(), batch);
  CHECK(batch[0].seq == 1);
  CHECK(batch[1].seq == 2);
  CHECK(batch[2].seq == 3);

  auto read = ReadAll(log.get());
  REQUIRE(read.size() == 3);
  CHECK(read[0].topic == "devices/a/t");
  CHECK(read[0].payload == "one");
  CHECK(read[1].payload == binary);
  CHECK(read[1].qos == 0);
  CHECK(read[2].payload.empty());
  CHECK(read[2].received_ms == 1700000000000);

  auto tail = ReadAll(log.get(), 2);
  REQUIRE(tail.size() == 1);
  CHECK(tail[0].seq == 3);

  std::vector<Event> limited;
  REQUIRE(log->Read(0, 2, SIZE_MAX, &limited).ok());
  CHECK(limited.size() == 2);
}

TEST_CASE("SqliteEventLog Read replaces what the vector held, every field of it") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  std::vector<Event> batch = {MakeEvent("devices/a/t", "one"), MakeEvent("d/b", "two", 0)};
  batch[0].retained = true;
  batch[0].packet_id = 7;
  AppendAll(log.get(), batch);

  // Stale events, with every field set otherwise than the rows have it, and more of them.
  std::vector<Event> out(3);
  for (Event& e : out) {
    e.seq = 99;
    e.received_ms = 5;
    e.qos = 2;
    e.retained = true;
    e.topic = std::string(300, 't');
    e.payload = std::string(300, 'p');
    e.kind = EventKind::kGap;
    e.packet_id = 9;
    e.gap.count = 4;
    e.ingress = 11;
  }
  REQUIRE(log->Read(0, 10, SIZE_MAX, &out).ok());
  REQUIRE(out.size() == 2);
  for (size_t i = 0; i < out.size(); ++i) {
    INFO("row " << i);
    CHECK(out[i].seq == i + 1);
    CHECK(out[i].received_ms == 1700000000000);
    CHECK(out[i].topic == batch[i].topic);
    CHECK(out[i].payload == batch[i].payload);
    CHECK(out[i].qos == batch[i].qos);
    CHECK(out[i].retained == batch[i].retained);
    CHECK(out[i].packet_id == batch[i].packet_id);
    CHECK(out[i].kind == EventKind::kEvent);
    CHECK(out[i].gap.count == 0);
    CHECK(out[i].ingress == 0);
  }
  // Nothing after the last row: the vector is emptied, not left as it was.
  REQUIRE(log->Read(2, 10, SIZE_MAX, &out).ok());
  CHECK(out.empty());
}

TEST_CASE("SqliteEventLog replays undelivered events and keeps its cursor after reopen") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  {
    auto log = OpenOrDie(Options(path));
    std::vector<Event> batch;
    for (int i = 0; i < 10; ++i) batch.push_back(MakeEvent("t", "e" + std::to_string(i)));
    AppendAll(log.get(), batch);
    REQUIRE(log->Acknowledge("kafka", 4).ok());
    CHECK(log->Stats().events == 6);
  }
  auto log = OpenOrDie(Options(path));
  LogStats st = log->Stats();
  CHECK(st.cursor == 4);
  CHECK(st.events == 6);
  CHECK(st.first_seq == 5);
  CHECK(st.last_seq == 10);
  auto read = ReadAll(log.get(), st.cursor);
  REQUIRE(read.size() == 6);
  CHECK(read.front().seq == 5);
  CHECK(read.front().payload == "e4");
  CHECK(read.back().seq == 10);
}

TEST_CASE("SqliteEventLog never reuses a sequence number once the log is empty") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  {
    auto log = OpenOrDie(Options(path));
    std::vector<Event> batch = {MakeEvent("t", "a"), MakeEvent("t", "b")};
    AppendAll(log.get(), batch);
    REQUIRE(log->Acknowledge("kafka", 2).ok());
    CHECK(log->Stats().events == 0);
  }
  auto log = OpenOrDie(Options(path));
  std::vector<Event> batch = {MakeEvent("t", "c")};
  AppendAll(log.get(), batch);
  CHECK(batch[0].seq == 3);
}

TEST_CASE("SqliteEventLog acknowledge frees bytes and refuses to pass the last seq") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  std::vector<Event> batch = {MakeEvent("t", std::string(100, 'x')), MakeEvent("t", "y")};
  AppendAll(log.get(), batch);
  const uint64_t full = log->Stats().bytes;
  CHECK(full == batch[0].AccountedBytes() + batch[1].AccountedBytes());
  REQUIRE(log->Acknowledge("kafka", 1).ok());
  CHECK(log->Stats().bytes == batch[1].AccountedBytes());
  CHECK_FALSE(log->Acknowledge("kafka", 3).ok());
}

TEST_CASE("SqliteEventLog under reject-new appends what fits and then refuses") {
  TempDir dir;
  auto o = Options(dir.File("events.db"));
  o.overflow = Overflow::kRejectNew;
  const Event sample = MakeEvent("t", std::string(68, 'p'));  // 1 + 68 + 32 accounted bytes
  REQUIRE(sample.AccountedBytes() == 101);
  o.max_bytes = 101 * 5;
  auto log = OpenOrDie(o);
  std::vector<Event> batch(7, sample);
  size_t appended = 0;
  Status s = log->Append(batch, &appended);
  CHECK(s.IsFull());
  CHECK(appended == 5);
  CHECK(batch[4].seq == 5);
  CHECK(batch[5].seq == 0);

  std::vector<Event> more(1, sample);
  s = log->Append(more, &appended);
  CHECK(s.IsFull());
  CHECK(appended == 0);
  CHECK(log->Stats().events == 5);

  REQUIRE(log->Acknowledge("kafka", 2).ok());
  s = log->Append(more, &appended);
  CHECK(s.ok());
  CHECK(more[0].seq == 6);
  CHECK(log->Stats().dropped_events == 0);
}

TEST_CASE(
    "SqliteEventLog under drop-oldest drops exactly the oldest events, counts them and "
    "leaves a gap marker in their place") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto o = Options(path);
  o.overflow = Overflow::kDropOldest;
  const Event sample = MakeEvent("t", std::string(68, 'p'));
  GapParts lost;
  lost["kafka"] = GapRange{1, 3, 3, sample.received_ms, sample.received_ms};
  const uint64_t marker_bytes = EncodeGapMarker(lost).size() + Event::kRowOverheadBytes;
  // Room for 4 events and the marker that the drop leaves (it counts like an event).
  o.max_bytes = sample.AccountedBytes() * 4 + marker_bytes;
  {
    auto log = OpenOrDie(o);
    std::vector<Event> batch(4, sample);
    AppendAll(log.get(), batch);
    std::vector<Event> more(3, sample);
    AppendAll(log.get(), more);
    LogStats st = log->Stats();
    CHECK(st.dropped_events == 3);
    CHECK(st.events == 5);
    CHECK(st.first_seq == 3);
    CHECK(st.bytes == o.max_bytes);
    auto read = ReadAll(log.get());
    REQUIRE(read.size() == 5);
    CHECK(read.front().seq == 3);  // the highest dropped seq
    CHECK(read.front().kind == EventKind::kGap);
    GapParts parts;
    REQUIRE(DecodeGapMarker(read.front().payload, &parts).ok());
    CHECK(parts.at("kafka").first_seq == 1);
    CHECK(parts.at("kafka").last_seq == 3);
    CHECK(parts.at("kafka").count == 3);
    CHECK(read[1].seq == 4);
    CHECK(read.back().seq == 7);
  }
  auto log = OpenOrDie(o);
  CHECK(log->Stats().dropped_events == 3);
  CHECK(log->Stats().last_seq == 7);
  CHECK(log->Stats().cursors.at(0).dropped_events == 3);
  CHECK(log->Stats().cursors.at(0).gap_markers == 1);
}

TEST_CASE("SqliteEventLog maps the sync setting onto SQLite's synchronous pragma") {
  TempDir dir;
  for (Sync mode : {Sync::kNormal, Sync::kFull}) {
    auto o = Options(dir.File(std::string("events-") + ToString(mode) + ".db"));
    o.sync = mode;
    auto log = OpenOrDie(o);
    int64_t level = -1;
    REQUIRE(log->WriterPragma("synchronous", &level).ok());
    CHECK(level == (mode == Sync::kFull ? 2 : 1));
    int64_t wal = 0;
    std::vector<Event> batch = {MakeEvent("t", "x")};
    AppendAll(log.get(), batch);
    CHECK(std::filesystem::exists(o.path + "-wal"));
    (void)wal;
  }
}

TEST_CASE(
    "SqliteEventLog under sync = full commits journaled events without an fsync and syncs them "
    "before an upstream reads them") {
  TempDir dir;
  auto o = Options(dir.File("events.db"));
  o.sync = Sync::kFull;
  auto log = OpenOrDie(o);
  // A QoS 1 event the journal does not hold (too large for it) gets a synced commit.
  std::vector<Event> direct = {MakeEvent("t", "direct")};
  AppendAll(log.get(), direct);
  CHECK(log->Stats().deferred_commits == 0);
  // Journaled events, with a QoS 0 event in the same batch: no fsync of their own.
  std::vector<Event> journaled = {MakeEvent("t", "a"), MakeEvent("t", "b", 0)};
  journaled[0].ingress = 7;
  AppendAll(log.get(), journaled);
  CHECK(log->Stats().deferred_commits == 1);
  CHECK(log->Stats().ingress_applied == 7);
  CHECK(log->SyncedIngress() == 0);  // the journal must keep record 7
  int64_t level = -1;
  REQUIRE(log->WriterPragma("synchronous", &level).ok());
  CHECK(level == 2);  // every other commit still syncs

  // An upstream gets durable rows only: Read syncs first, once.
  std::vector<Event> read;
  REQUIRE(log->Read(0, 10, SIZE_MAX, &read).ok());
  CHECK(read.size() == 3);
  CHECK(log->Stats().deferred_syncs == 1);
  CHECK(log->SyncedIngress() == 7);
  read.clear();
  REQUIRE(log->Read(0, 10, SIZE_MAX, &read).ok());
  REQUIRE(log->Sync().ok());
  CHECK(log->Stats().deferred_syncs == 1);

  // A synced commit syncs the deferred ones before it.
  journaled = {MakeEvent("t", "c")};
  journaled[0].ingress = 8;
  AppendAll(log.get(), journaled);
  CHECK(log->SyncedIngress() == 7);
  direct = {MakeEvent("t", "d")};
  AppendAll(log.get(), direct);
  CHECK(log->SyncedIngress() == 8);
  REQUIRE(log->Sync().ok());
  CHECK(log->Stats().deferred_syncs == 1);
  CHECK(log->Stats().deferred_commits == 2);
}

TEST_CASE("SqliteEventLog under sync = normal holds journaled events as durable at their commit") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  std::vector<Event> journaled = {MakeEvent("t", "a")};
  journaled[0].ingress = 3;
  AppendAll(log.get(), journaled);
  CHECK(log->SyncedIngress() == 3);
  REQUIRE(log->Sync().ok());
  CHECK(log->Stats().deferred_commits == 0);
  CHECK(log->Stats().deferred_syncs == 0);
}

TEST_CASE("SqliteEventLog refuses a file that is not a database and leaves it untouched") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  {
    std::ofstream out(path, std::ios::binary);
    out << "this is somebody's notes file, not a database\n";
  }
  const std::string before = FileBytes(path);
  std::unique_ptr<SqliteEventLog> log;
  Status s = SqliteEventLog::Open(Options(path), &log);
  CHECK(s.IsCorruption());
  CHECK(s.message().find(path) != std::string::npos);
  CHECK(FileBytes(path) == before);
  CHECK_FALSE(std::filesystem::exists(path + "-wal"));
}

TEST_CASE("SqliteEventLog refuses a foreign SQLite database and leaves it untouched") {
  TempDir dir;
  const std::string path = dir.File("other.db");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "CREATE TABLE customers(id INTEGER, name TEXT);"
                       "INSERT INTO customers VALUES(1, 'ada');",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  const std::string before = FileBytes(path);
  std::unique_ptr<SqliteEventLog> log;
  Status s = SqliteEventLog::Open(Options(path), &log);
  CHECK(s.IsCorruption());
  CHECK(s.message().find("not a sluice event log") != std::string::npos);
  CHECK(FileBytes(path) == before);
}

TEST_CASE("SqliteEventLog refuses a corrupt log and leaves it in place") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  {
    auto log = OpenOrDie(Options(path));
    std::vector<Event> batch;
    for (int i = 0; i < 2000; ++i) batch.push_back(MakeEvent("t", std::string(200, 'a' + i % 26)));
    AppendAll(log.get(), batch);
  }
  // Closing the last connection checkpointed the WAL into the main file; now damage a b-tree page
  // in the middle of it, as a failing SD card would.
  REQUIRE_FALSE(std::filesystem::exists(path + "-wal"));
  const auto size = std::filesystem::file_size(path);
  REQUIRE(size > 8 * 4096);
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(4096 * 3));
    const std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  const std::string before = FileBytes(path);
  std::unique_ptr<SqliteEventLog> log;
  Status s = SqliteEventLog::Open(Options(path), &log);
  CHECK(s.IsCorruption());
  CHECK(s.message().find("left untouched") != std::string::npos);
  CHECK(std::filesystem::exists(path));
  CHECK(FileBytes(path) == before);
}

TEST_CASE("SqliteEventLog refuses a second writer on the same file") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto first = OpenOrDie(Options(path));
  std::unique_ptr<SqliteEventLog> second;
  Status s = SqliteEventLog::Open(Options(path), &second);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("another sluice process") != std::string::npos);
}

TEST_CASE("SqliteEventLog opened read-only sees a running writer's state") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto writer = OpenOrDie(Options(path));
  std::vector<Event> batch = {MakeEvent("t", "a"), MakeEvent("t", "b"), MakeEvent("t", "c")};
  AppendAll(writer.get(), batch);
  REQUIRE(writer->Acknowledge("kafka", 1).ok());
  auto o = Options(path);
  o.read_only = true;
  auto reader = OpenOrDie(o);
  LogStats st = reader->Stats();
  CHECK(st.events == 2);
  CHECK(st.cursor == 1);
  CHECK(st.last_seq == 3);
  size_t appended = 0;
  CHECK_FALSE(reader->Append(batch, &appended).ok());
}

TEST_CASE("SqliteEventLog keeps dead letters with their error") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  std::vector<Event> batch = {MakeEvent("t", "too big"), MakeEvent("t", "fine")};
  batch[0].retained = true;
  AppendAll(log.get(), batch);
  REQUIRE(log->DeadLetter("kafka", batch[0], "Broker: Message size too large").ok());
  REQUIRE(log->Acknowledge("kafka", 2).ok());
  std::vector<DeadLetterRow> dead;
  REQUIRE(log->ReadDeadLetters(0, 10, &dead).ok());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].event.seq == 1);
  CHECK(dead[0].event.payload == "too big");
  CHECK(dead[0].event.retained);
  CHECK(dead[0].error == "Broker: Message size too large");
  CHECK(dead[0].failed_ms > 0);
  CHECK(log->Stats().dead_letters == 1);
  DeadLetterRow one;
  REQUIRE(log->ReadDeadLetter(1, &one).ok());
  CHECK(one.event.topic == "t");
  CHECK(log->ReadDeadLetter(2, &one).code() == Status::Code::kNotFound);
}

// The old code kept only the newest 10,000 and deleted the rest without a word.
TEST_CASE("SqliteEventLog keeps every dead letter that fits, beyond 10,000") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  const size_t n = 10005;
  {
    auto log = OpenOrDie(Options(path));
    std::vector<Event> batch(n, MakeEvent("t", "x"));
    AppendAll(log.get(), batch);
    for (const Event& e : batch) REQUIRE(log->DeadLetter("kafka", e, "refused").ok());
    REQUIRE(log->Acknowledge("kafka", n).ok());
    const LogStats st = log->Stats();
    CHECK(st.dead_letters == n);
    CHECK(st.events == 0);
    CHECK(st.bytes == 0);
    // Each keeps its event's bytes plus the reason's.
    CHECK(st.dead_letter_bytes == n * (MakeEvent("t", "x").AccountedBytes() + 7));
    CHECK(st.dropped_dead_letters == 0);
  }
  auto log = OpenOrDie(Options(path));
  CHECK(log->Stats().dead_letters == n);
  CHECK(log->Stats().dead_letter_bytes == n * (MakeEvent("t", "x").AccountedBytes() + 7));
  std::vector<DeadLetterRow> dead;
  REQUIRE(log->ReadDeadLetters(0, 1, &dead).ok());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].event.seq == 1);
}

TEST_CASE("SqliteEventLog counts dead letters against max_bytes under reject-new") {
  TempDir dir;
  auto o = Options(dir.File("events.db"));
  o.overflow = Overflow::kRejectNew;
  const Event sample = MakeEvent("t", std::string(68, 'p'));  // 101 accounted bytes
  o.max_bytes = 101 * 4 + 10;
  auto log = OpenOrDie(o);
  std::vector<Event> batch(4, sample);
  AppendAll(log.get(), batch);
  // Moving an event into the dead letters needs room only for its reason: 10 bytes are left.
  REQUIRE(log->DeadLetter("kafka", batch[0], "refused").ok());
  REQUIRE(log->Acknowledge("kafka", 1).ok());
  LogStats st = log->Stats();
  CHECK(st.bytes == 101 * 3);
  CHECK(st.dead_letter_bytes == 101 + 7);
  // The dead letter keeps its bytes: a new event does not fit in the 3 bytes left.
  std::vector<Event> more(1, sample);
  size_t appended = 0;
  CHECK(log->Append(more, &appended).IsFull());
  CHECK(appended == 0);
  // A full log still takes the next refusal: the reason is shortened to the room left (3 bytes),
  // the event is kept whole.
  REQUIRE(log->DeadLetter("kafka", batch[1], "refused for a long reason").ok());
  REQUIRE(log->Acknowledge("kafka", 2).ok());
  std::vector<DeadLetterRow> dead;
  REQUIRE(log->ReadDeadLetters(0, 10, &dead).ok());
  REQUIRE(dead.size() == 2);
  CHECK(dead[1].event.payload == sample.payload);
  CHECK(dead[1].error == "ref");
  st = log->Stats();
  CHECK(st.bytes + st.dead_letter_bytes == o.max_bytes);
  // Purging them makes room again.
  uint64_t purged = 0;
  REQUIRE(log->PurgeDeadLetters({}, true, &purged).ok());
  CHECK(purged == 2);
  CHECK(log->Stats().dead_letter_bytes == 0);
  CHECK(log->Append(more, &appended).ok());
}

TEST_CASE("SqliteEventLog under drop-oldest drops dead letters first and counts them") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto o = Options(path);
  o.overflow = Overflow::kDropOldest;
  const Event sample = MakeEvent("t", std::string(68, 'p'));  // 101 accounted bytes
  o.max_bytes = 101 * 4 + 2 * 3;
  {
    auto log = OpenOrDie(o);
    std::vector<Event> batch(4, sample);
    AppendAll(log.get(), batch);
    REQUIRE(log->DeadLetter("kafka", batch[0], "r1").ok());
    REQUIRE(log->DeadLetter("kafka", batch[1], "r2").ok());
    REQUIRE(log->Acknowledge("kafka", 2).ok());
    CHECK(log->Stats().dead_letter_bytes == 2 * 103);
    // One more event: the oldest dead letter goes, no waiting event does.
    std::vector<Event> more(1, sample);
    AppendAll(log.get(), more);
    LogStats st = log->Stats();
    CHECK(st.dropped_dead_letters == 1);
    CHECK(st.dropped_events == 0);
    CHECK(st.dead_letters == 1);
    CHECK(st.events == 3);
    CHECK(st.bytes + st.dead_letter_bytes <= o.max_bytes);
    std::vector<DeadLetterRow> dead;
    REQUIRE(log->ReadDeadLetters(0, 10, &dead).ok());
    REQUIRE(dead.size() == 1);
    CHECK(dead[0].event.seq == 2);
    // Two more: the last dead letter, then the oldest waiting event, and one more for the room
    // its gap marker takes (the marker stands at seq 4, the highest dropped).
    std::vector<Event> two(2, sample);
    AppendAll(log.get(), two);
    st = log->Stats();
    CHECK(st.dropped_dead_letters == 2);
    CHECK(st.dead_letters == 0);
    CHECK(st.dropped_events == 2);
    CHECK(st.first_seq == 4);
    CHECK(st.bytes + st.dead_letter_bytes <= o.max_bytes);
  }
  auto log = OpenOrDie(o);
  CHECK(log->Stats().dropped_dead_letters == 2);
  CHECK(log->Stats().dropped_events == 2);
}

TEST_CASE(
    "SqliteEventLog under drop-oldest makes room for a reason by dropping older dead letters") {
  TempDir dir;
  auto o = Options(dir.File("events.db"));
  o.overflow = Overflow::kDropOldest;
  const Event sample = MakeEvent("t", std::string(68, 'p'));  // 101 accounted bytes
  o.max_bytes = 101 * 3 + 4;
  auto log = OpenOrDie(o);
  std::vector<Event> batch(3, sample);
  AppendAll(log.get(), batch);
  REQUIRE(log->DeadLetter("kafka", batch[0], "r1").ok());
  REQUIRE(log->Acknowledge("kafka", 1).ok());
  // 2 bytes left; a 5-byte reason needs dead letter 1 to go (it frees 103).
  REQUIRE(log->DeadLetter("kafka", batch[1], "again").ok());
  LogStats st = log->Stats();
  CHECK(st.dropped_dead_letters == 1);
  CHECK(st.dropped_events == 0);
  CHECK(st.dead_letters == 1);
  CHECK(st.bytes + st.dead_letter_bytes <= o.max_bytes);
  DeadLetterRow row;
  REQUIRE(log->ReadDeadLetter(2, &row).ok());
  CHECK(row.error == "again");
  CHECK(log->ReadDeadLetter(1, &row).code() == Status::Code::kNotFound);

  // An event drop-oldest deleted before it was refused is not recorded again: it was counted as
  // dropped.
  std::vector<Event> more(2, sample);
  AppendAll(log.get(), more);  // drops dead letter 2, then events 2 and 3 (room for the marker)
  st = log->Stats();
  CHECK(st.dropped_dead_letters == 2);
  REQUIRE(st.dropped_events == 2);
  REQUIRE(st.first_seq == 3);  // the gap marker
  const uint64_t dead_before = st.dead_letters;
  REQUIRE(log->DeadLetter("kafka", batch[1], "late").ok());
  CHECK(log->Stats().dead_letters == dead_before);
  CHECK(log->ReadDeadLetter(2, &row).code() == Status::Code::kNotFound);
}

TEST_CASE("SqliteEventLog replays dead letters as new events at the end of the log") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto o = Options(path);
  o.max_bytes = 101 * 4 + 7;
  auto log = OpenOrDie(o);
  std::vector<Event> batch = {MakeEvent("a", std::string(68, '1')),
                              MakeEvent("b", std::string(68, '2')),
                              MakeEvent("c", std::string(68, '3'))};
  batch[1].retained = true;
  batch[1].received_ms = 1700000000123;
  AppendAll(log.get(), batch);
  REQUIRE(log->DeadLetter("kafka", batch[0], "r").ok());
  REQUIRE(log->DeadLetter("kafka", batch[1], "r").ok());
  REQUIRE(log->Acknowledge("kafka", 3).ok());
  std::vector<Event> later(1, MakeEvent("d", std::string(68, '4')));
  AppendAll(log.get(), later);  // seq 4; the log is now full: 2 dead letters + 1 event + 1 byte
  REQUIRE(log->Stats().bytes + log->Stats().dead_letter_bytes == 101 * 3 + 2);

  std::vector<std::pair<uint64_t, uint64_t>> replayed;
  const std::vector<uint64_t> missing = {2, 9};
  CHECK(log->ReplayDeadLetters(missing, false, &replayed).code() == Status::Code::kNotFound);
  CHECK(log->Stats().dead_letters == 2);  // nothing changed

  const std::vector<uint64_t> wanted = {2};
  REQUIRE(log->ReplayDeadLetters(wanted, false, &replayed).ok());
  REQUIRE(replayed.size() == 1);
  CHECK(replayed[0] == std::pair<uint64_t, uint64_t>(2, 5));
  auto read = ReadAll(log.get(), 3);
  REQUIRE(read.size() == 2);
  CHECK(read[0].seq == 4);  // the replayed event lands after everything already in the log
  CHECK(read[1].seq == 5);
  CHECK(read[1].topic == "b");
  CHECK(read[1].payload == batch[1].payload);
  CHECK(read[1].retained);
  CHECK(read[1].received_ms == 1700000000123);
  LogStats st = log->Stats();
  CHECK(st.dead_letters == 1);
  CHECK(st.events == 2);
  CHECK(st.last_seq == 5);
  CHECK(st.bytes + st.dead_letter_bytes == 101 * 3 + 1);  // the reason's byte is freed

  REQUIRE(log->ReplayDeadLetters({}, true, &replayed).ok());
  REQUIRE(replayed.size() == 1);
  CHECK(replayed[0] == std::pair<uint64_t, uint64_t>(1, 6));
  CHECK(log->Stats().dead_letters == 0);
  CHECK(log->Stats().dead_letter_bytes == 0);
  CHECK(log->Stats().bytes == 101 * 3);
  log.reset();
  auto reopened = OpenOrDie(o);
  CHECK(reopened->Stats().last_seq == 6);
  CHECK(reopened->Stats().dead_letters == 0);
}

TEST_CASE("SqliteEventLog purges chosen dead letters, or none if one is missing") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  std::vector<Event> batch(3, MakeEvent("t", "x"));
  AppendAll(log.get(), batch);
  for (const Event& e : batch) REQUIRE(log->DeadLetter("kafka", e, "r").ok());
  REQUIRE(log->Acknowledge("kafka", 3).ok());
  uint64_t purged = 7;
  const std::vector<uint64_t> bad = {1, 4};
  CHECK(log->PurgeDeadLetters(bad, false, &purged).code() == Status::Code::kNotFound);
  CHECK(purged == 0);
  CHECK(log->Stats().dead_letters == 3);
  const std::vector<uint64_t> two = {1, 3, 3};
  REQUIRE(log->PurgeDeadLetters(two, false, &purged).ok());
  CHECK(purged == 2);
  std::vector<DeadLetterRow> dead;
  REQUIRE(log->ReadDeadLetters(0, 10, &dead).ok());
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].event.seq == 2);
  CHECK(log->Stats().dead_letter_bytes == MakeEvent("t", "x").AccountedBytes() + 1);
}

TEST_CASE("SqliteEventLog round-trips the retain flag") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  std::vector<Event> batch = {MakeEvent("t", "a"), MakeEvent("t", "b")};
  batch[1].retained = true;
  {
    auto log = OpenOrDie(Options(path));
    AppendAll(log.get(), batch);
  }
  auto log = OpenOrDie(Options(path));
  auto read = ReadAll(log.get());
  REQUIRE(read.size() == 2);
  CHECK_FALSE(read[0].retained);
  CHECK(read[1].retained);
}

TEST_CASE("SqliteEventLog has a random identity, stable across reopen") {
  TempDir dir;
  std::string first;
  {
    auto log = OpenOrDie(Options(dir.File("a.db")));
    first = log->LogId();
  }
  CHECK(first.size() == 32);
  CHECK(first.find_first_not_of("0123456789abcdef") == std::string::npos);
  auto again = OpenOrDie(Options(dir.File("a.db")));
  CHECK(again->LogId() == first);
  auto o = Options(dir.File("a.db"));
  o.read_only = true;
  CHECK(OpenOrDie(o)->LogId() == first);
  // A re-created log (same path, new file) and another log get identities of their own.
  again.reset();
  std::filesystem::remove(dir.File("a.db"));
  auto recreated = OpenOrDie(Options(dir.File("a.db")));
  CHECK(recreated->LogId().size() == 32);
  CHECK(recreated->LogId() != first);
  auto other = OpenOrDie(Options(dir.File("b.db")));
  CHECK(other->LogId() != first);
  CHECK(other->LogId() != recreated->LogId());
}

// Format 1 exactly as sluice 1 created it (kept here, not taken from the code, so that a change
// to the current schema cannot hide a migration bug).
void CreateV1Log(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const char* sql =
      "PRAGMA page_size=4096; PRAGMA journal_mode=WAL; BEGIN;"
      "CREATE TABLE events(seq INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,"
      " qos INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL);"
      "CREATE TABLE cursors(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
      "CREATE TABLE dead_letters(seq INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,"
      " qos INTEGER NOT NULL, topic TEXT NOT NULL, payload BLOB NOT NULL, error TEXT NOT NULL,"
      " failed_ms INTEGER NOT NULL);"
      "PRAGMA application_id=1397506885; PRAGMA user_version=1;"
      "INSERT INTO events VALUES(3, 1700000000000, 1, 'devices/a/t', x'00ff');"
      "INSERT INTO events VALUES(4, 1700000000001, 0, 'devices/b/t', 'four');"
      "INSERT INTO cursors VALUES('kafka', 2);"
      "INSERT INTO dead_letters VALUES(2, 1699999999999, 1, 'devices/c/t', 'two', 'refused', 5);"
      "COMMIT;";
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

int64_t UserVersion(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  const int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

TEST_CASE("SqliteEventLog migrates a format 1 log and keeps its contents") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  CreateV1Log(path);
  {
    // Read-only (sluice status beside an older daemon): read as it is, nothing changed.
    auto o = Options(path);
    o.read_only = true;
    auto ro = OpenOrDie(o);
    CHECK(ro->LogId().empty());
    auto read = ReadAll(ro.get());
    REQUIRE(read.size() == 2);
    CHECK_FALSE(read[0].retained);
    std::vector<DeadLetterRow> dead;
    REQUIRE(ro->ReadDeadLetters(0, 10, &dead).ok());
    CHECK(dead.size() == 1);
  }
  CHECK(UserVersion(path) == 1);
  std::string id;
  {
    auto log = OpenOrDie(Options(path));
    CHECK(UserVersion(path) == SqliteEventLog::kSchemaVersion);
    id = log->LogId();
    CHECK(id.size() == 32);
    const LogStats st = log->Stats();
    CHECK(st.events == 2);
    CHECK(st.cursor == 2);
    CHECK(st.last_seq == 4);
    CHECK(st.dead_letters == 1);
    CHECK(st.dead_letter_bytes == 11 + 3 + 32 + 7);
    auto read = ReadAll(log.get());
    REQUIRE(read.size() == 2);
    CHECK(read[0].payload == std::string("\x00\xff", 2));
    CHECK_FALSE(read[1].retained);
    std::vector<Event> more = {MakeEvent("t", "new")};
    more[0].retained = true;
    AppendAll(log.get(), more);
    CHECK(more[0].seq == 5);
  }
  auto log = OpenOrDie(Options(path));
  CHECK(log->LogId() == id);
  auto read = ReadAll(log.get(), 4);
  REQUIRE(read.size() == 1);
  CHECK(read[0].retained);
}

TEST_CASE("SqliteEventLog refuses a log of a newer format and leaves it untouched") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  { auto log = OpenOrDie(Options(path)); }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(
              db,
              ("PRAGMA user_version=" + std::to_string(SqliteEventLog::kSchemaVersion + 1)).c_str(),
              nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  const std::string before = FileBytes(path);
  std::unique_ptr<SqliteEventLog> log;
  Status s = SqliteEventLog::Open(Options(path), &log);
  CHECK(s.IsCorruption());
  CHECK(s.message().find("newer than this sluice understands") != std::string::npos);
  CHECK(FileBytes(path) == before);
}

TEST_CASE("SqliteEventLog counts topic bytes, not characters") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  std::vector<Event> batch = {MakeEvent("sensors/h\xc3\xa4lle/\xe6\xb8\xa9\xe5\xba\xa6", "p")};
  const uint64_t expected = batch[0].AccountedBytes();
  {
    auto log = OpenOrDie(Options(path));
    AppendAll(log.get(), batch);
    CHECK(log->Stats().bytes == expected);
  }
  auto log = OpenOrDie(Options(path));
  CHECK(log->Stats().bytes == expected);
  REQUIRE(log->Acknowledge("kafka", 1).ok());
  CHECK(log->Stats().bytes == 0);
}

TEST_CASE("SqliteEventLog wakes a waiting reader when events are appended") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("events.db")));
  CHECK_FALSE(log->WaitForEventsAfter(0, std::chrono::milliseconds(1)));
  std::thread appender([&] {
    std::vector<Event> batch = {MakeEvent("t", "x")};
    size_t n = 0;
    CHECK(log->Append(batch, &n).ok());
  });
  CHECK(log->WaitForEventsAfter(0, std::chrono::seconds(10)));
  appender.join();
}

TEST_CASE("SqliteEventLog creates a missing directory and names an unusable one") {
  TempDir dir;
  auto log = OpenOrDie(Options(dir.File("nested/deeper/events.db")));
  CHECK(std::filesystem::exists(dir.File("nested/deeper/events.db")));
  std::unique_ptr<SqliteEventLog> bad;
  { std::ofstream(dir.File("plainfile")) << "x"; }
  Status s = SqliteEventLog::Open(Options(dir.File("plainfile/events.db")), &bad);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("plainfile") != std::string::npos);
}

// Makes the database unable to grow by one more page, the way a full disk does: SQLite then
// returns SQLITE_FULL from the insert that needs a new page. Every event below fills a page of
// its own (3000 of 4096 bytes), so each further event needs one.
void FillDisk(SqliteEventLog* log) {
  int64_t pages = 0;
  REQUIRE(log->WriterPragma("page_count", &pages).ok());
  int64_t max = 0;
  REQUIRE(log->WriterPragma("max_page_count=" + std::to_string(pages), &max).ok());
  REQUIRE(max == pages);
}

std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  std::string result = "cannot open";
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      result = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return result;
}

TEST_CASE("SqliteEventLog on a full disk under reject-new appends nothing and resumes after acks") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto o = Options(path);
  o.overflow = Overflow::kRejectNew;
  const Event big = MakeEvent("t", std::string(3000, 'p'));
  {
    auto log = OpenOrDie(o);
    std::vector<Event> first(100, big);
    AppendAll(log.get(), first);
    FillDisk(log.get());

    std::vector<Event> more(3, big);
    size_t appended = 7;
    Status s = log->Append(more, &appended);
    REQUIRE(s.IsFull());
    CHECK(s.message().find("disk holding event log " + path + " is full") != std::string::npos);
    CHECK(appended == 0);
    for (const Event& e : more) CHECK(e.seq == 0);
    LogStats st = log->Stats();
    CHECK(st.events == 100);
    CHECK(st.last_seq == 100);
    CHECK(st.disk_full_errors == 1);
    CHECK(st.dropped_events == 0);

    // Full is not fail-stop: acknowledging still works and frees pages for new events, which get
    // the next sequence numbers (the refused batch used none up).
    REQUIRE(log->Acknowledge("kafka", 50).ok());
    s = log->Append(more, &appended);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(appended == 3);
    CHECK(more[0].seq == 101);
    CHECK(more[2].seq == 103);
    auto read = ReadAll(log.get());
    REQUIRE(read.size() == 53);
    for (size_t i = 0; i < read.size(); ++i) CHECK(read[i].seq == 51 + i);
  }
  CHECK(IntegrityCheck(path) == "ok");
  auto log = OpenOrDie(o);
  CHECK(log->Stats().last_seq == 103);
  CHECK(log->Stats().events == 53);
}

TEST_CASE("SqliteEventLog on a full disk under drop-oldest drops exactly the oldest to make room") {
  TempDir dir;
  const std::string path = dir.File("events.db");
  auto o = Options(path);
  o.overflow = Overflow::kDropOldest;
  std::ostringstream text;
  o.logger = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
  const Event big = MakeEvent("t", std::string(3000, 'p'));
  {
    auto log = OpenOrDie(o);
    std::vector<Event> first(100, big);
    AppendAll(log.get(), first);
    FillDisk(log.get());

    std::vector<Event> more(5, big);
    AppendAll(log.get(), more);
    CHECK(more[0].seq == 101);
    CHECK(more[4].seq == 105);
    LogStats st = log->Stats();
    // The first round frees at least kDiskFullDropMinBytes: the oldest 22 events of 3033 bytes.
    const uint64_t dropped =
        (SqliteEventLog::kDiskFullDropMinBytes + big.AccountedBytes() - 1) / big.AccountedBytes();
    REQUIRE(dropped == 22);
    CHECK(st.dropped_events == dropped);
    CHECK(st.first_seq == dropped);  // the gap marker, at the highest dropped seq
    CHECK(st.events == 105 - dropped + 1);
    CHECK(st.disk_full_errors == 0);
    auto read = ReadAll(log.get());
    REQUIRE(read.size() == 105 - dropped + 1);
    CHECK(read.front().seq == dropped);
    CHECK(read.front().kind == EventKind::kGap);
    CHECK(read[1].seq == dropped + 1);
    CHECK(read.back().seq == 105);
    CHECK(text.str().find(
              "disk full (max_bytes " + std::to_string(o.max_bytes) +
              "): dropped the 22 oldest events, seq 1..22, to make room; not yet confirmed") !=
          std::string::npos);
    CHECK(text.str().find("already had them in flight): kafka 22") != std::string::npos);
  }
  CHECK(IntegrityCheck(path) == "ok");
}

TEST_CASE("SqliteEventLog on a full disk with nothing to drop reports Full and stays usable") {
  TempDir dir;
  auto o = Options(dir.File("events.db"));
  o.overflow = Overflow::kDropOldest;
  auto log = OpenOrDie(o);
  FillDisk(log.get());
  // Two events do not fit in the table's one (root) page: the batch needs a new page.
  std::vector<Event> two(2, MakeEvent("t", std::string(3000, 'p')));
  size_t appended = 0;
  Status s = log->Append(two, &appended);
  REQUIRE(s.IsFull());
  CHECK(appended == 0);
  CHECK(two[0].seq == 0);
  CHECK(two[1].seq == 0);
  CHECK(log->Stats().disk_full_errors == 1);
  CHECK(log->Stats().events == 0);
  CHECK(log->Stats().last_seq == 0);
  CHECK(log->Stats().dropped_events == 0);
  // Space comes back: the same events go in with the first sequence numbers.
  int64_t max = 0;
  REQUIRE(log->WriterPragma("max_page_count=100000", &max).ok());
  AppendAll(log.get(), two);
  CHECK(two[0].seq == 1);
  CHECK(two[1].seq == 2);
}

// As root, permissions do not apply, so the open runs in a child that has become `nobody`.
TEST_CASE("SqliteEventLog names a log directory it may not enter") {
  TempDir dir;
  const std::string locked = dir.File("locked");
  REQUIRE(std::filesystem::create_directory(locked));
  REQUIRE(chmod(locked.c_str(), 0) == 0);
  REQUIRE(chmod(dir.path().c_str(), 0755) == 0);
  const std::string path = locked + "/events.db";
  auto try_open = [&]() -> Status {
    std::unique_ptr<SqliteEventLog> log;
    return SqliteEventLog::Open(Options(path), &log);
  };
  if (geteuid() != 0) {
    Status s = try_open();
    CHECK(s.code() == Status::Code::kIoError);
    CHECK(s.message().find(locked) != std::string::npos);
  } else {
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
      Status s = try_open();
      _exit(s.code() == Status::Code::kIoError && s.message().find(locked) != std::string::npos
                ? 0
                : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK_FALSE(std::filesystem::exists(path));
  REQUIRE(chmod(locked.c_str(), 0700) == 0);
}

}  // namespace
}  // namespace sluice::storage
