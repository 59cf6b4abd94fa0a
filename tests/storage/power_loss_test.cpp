// SPDX-License-Identifier: Apache-2.0

// Power loss against the real storage path (SqliteEventLog + IngressJournal + LogWriter, as the
// daemon assembles them): a fault-injecting VFS (PowerLossVfs) cuts the power at a random file
// operation, throws away what was not fsynced, and the next start recovers what is left: a fresh
// SqliteEventLog and IngressJournal open it and a LogWriter puts the journal's pending events in
// the log first (gateway/daemon.cpp, Daemon::Open).
//
// What "acknowledged" means here: MqttSource::Take (connectors/mqtt_source.cpp) calls
// LogWriter::Write(event, durable = true) for a QoS 1/2 message inside Paho's message callback and
// returns from the callback only when that Write returned OK; Paho sends the PUBACK after the
// callback returns, and a failed durable Write parks the callback so that no PUBACK goes out. So
// the moment Write(durable = true) returns OK is the moment the broker may forget the event; that
// is what these tests call acknowledged. With the ingress journal that moment comes once the
// event's record is written (and, under sync = "full", synced), before the log commits it.
// Likewise the forwarder deletes events only through EventLog::Acknowledge once Kafka confirmed
// them.
//
// Seeded: SLUICE_CHAOS_SEED repeats a run, SLUICE_POWER_CUTS sets the number of cuts per test.
// Checkpoints run on the log's checkpointer thread, as in the daemon, every kCheckpointPages WAL
// pages so that cuts land in them too; that thread makes the order of file operations, and so
// the exact cut points, vary from run to run. SLUICE_POWER_CHECKPOINT=inline runs them inside the
// commits instead (one thread), which repeats a failing seed exactly; the tests that aim at given
// journal operations always do.

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "storage/ingress_journal.h"
#include "storage/log_writer.h"
#include "storage/sqlite_event_log.h"
#include "tests/storage/power_loss_vfs.h"
#include "tests/test_util.h"

namespace sluice::storage {
namespace {

using sluice::testing::ChaosSeedFromEnvironment;
using sluice::testing::EnvOr;
using sluice::testing::NullLogger;
using sluice::testing::PowerLossVfs;
using sluice::testing::TempDir;

constexpr int64_t kCheckpointPages = 100;
// Small enough that the journal wraps now and then in a workload (the daemon's default is 4 MiB).
constexpr uint64_t kJournalBytes = 256 << 10;

bool InlineCheckpoints() {
  const char* v = std::getenv("SLUICE_POWER_CHECKPOINT");
  return v != nullptr && std::string(v) == "inline";
}

uint64_t ChaosSeed() {
  static const uint64_t seed = ChaosSeedFromEnvironment();
  return seed;
}

Event MakeEvent(uint64_t n, std::mt19937_64& rng) {
  Event e;
  e.topic = "devices/dev-" + std::to_string(n % 7) + "/telemetry";
  e.qos = 1;
  e.received_ms = 1764000000000 + static_cast<int64_t>(n);
  // Sizes from tens of bytes to over a page, so that commits write one or several pages.
  const size_t size = 20 + rng() % 1500;
  e.payload = "event " + std::to_string(n) + ":";
  while (e.payload.size() < size) e.payload.push_back(static_cast<char>('a' + rng() % 26));
  return e;
}

// n of MakeEvent(n): which submitted event a row holds. With the journal, seqs no longer follow
// the submission order one to one: QoS 0 events may be lost to a cut while later acknowledged
// ones come back from the journal.
uint64_t IndexOf(const Event& e) {
  const size_t colon = e.payload.find(':');
  if (e.payload.rfind("event ", 0) != 0 || colon == std::string::npos) return 0;
  return std::strtoull(e.payload.c_str() + 6, nullptr, 10);
}

// How one gateway life is run.
struct Plan {
  Sync sync = Sync::kFull;
  std::string vfs;
  uint64_t seed = 0;
  int steps = 500;
  uint64_t journal_bytes = kJournalBytes;
  bool inline_checkpoints = false;
  // No cut is armed: waits for a complete checkpoint if one is due, so that the caller can check
  // that the workload reaches the checkpointer at all, and notes the file operations that the
  // aimed cuts go for.
  bool dry = false;
  const PowerLossVfs* counter = nullptr;  // dry: the VFS whose mutations are noted
};

// What the source and the forwarder were told before the power went off.
struct Run {
  std::vector<Event> submitted;            // MakeEvent(k) is submitted[k - 1]
  std::vector<uint64_t> acked;             // k of each durable Write that returned OK (PUBACK sent)
  std::map<uint64_t, uint64_t> read_seqs;  // seq -> k, of every row read before its confirmation
  uint64_t cursor_confirmed = 0;           // highest Acknowledge that returned OK
  uint64_t cursor_attempted = 0;           // highest Acknowledge tried
  bool opened = false;                     // the log and the journal opened
  uint64_t checkpoints = 0;                // complete background checkpoints
  // Dry runs: mutation numbers (1 = the run's first), as CutAtMutation counts them.
  std::vector<std::pair<uint64_t, uint64_t>> wraps;  // first..last of a Write that wrapped
  std::vector<uint64_t> journal_syncs;               // a record's fdatasync (sync = full)
  uint64_t max_acked() const { return acked.empty() ? 0 : acked.back(); }
};

IngressJournalOptions JournalOptions(const std::string& path, Sync sync, const std::string& vfs,
                                     uint64_t bytes) {
  IngressJournalOptions jo;
  jo.path = path + IngressJournal::kPathSuffix;
  jo.vfs = vfs;
  jo.capacity_bytes = bytes;
  jo.sync_each_record = sync == Sync::kFull;
  jo.logger = NullLogger();
  return jo;
}

// One gateway life on the power-loss VFS: MQTT-like durable writes through the ingress journal,
// some preceded by QoS 0 writes that share their commit, forwarder reads and acknowledgements,
// and a clean stop at the end (a cut before it leaves the rest undone). The writer's background
// thread runs, but commits fall due only when the queue reaches its (seeded) capacity or a full
// journal needs one, both on the writing thread: with inline checkpoints a workload seed gives
// the same file operations every time.
Run Drive(const std::string& path, const Plan& p) {
  Run run;
  SqliteEventLogOptions o;
  o.path = path;
  o.sync = p.sync;
  o.vfs = p.vfs;
  o.logger = NullLogger();
  o.checkpoint_pages = kCheckpointPages;
  o.checkpoint_inline = p.inline_checkpoints;
  std::unique_ptr<SqliteEventLog> log;
  if (!SqliteEventLog::Open(o, &log).ok()) return run;
  std::unique_ptr<IngressJournal> journal;
  std::vector<Event> recovered;
  if (!IngressJournal::Open(JournalOptions(path, p.sync, p.vfs, p.journal_bytes), log->LogId(),
                            log->Stats().ingress_applied, &journal, &recovered)
           .ok()) {
    return run;
  }
  run.opened = true;
  std::mt19937_64 rng(p.seed);
  LogWriterOptions wo;
  wo.commit_interval = std::chrono::hours(1);
  wo.commit_max_events = 1 << 20;
  wo.queue_capacity = 1 + rng() % 32;
  LogWriter writer(log.get(), wo, NullLogger(), journal.get());
  writer.Start(std::move(recovered));
  auto mutations = [&] { return p.counter != nullptr ? p.counter->mutations() : 0; };
  uint64_t tail = IngressJournal::kHeaderBytes;  // where the journal's next record goes
  for (int step = 0; step < p.steps; ++step) {
    const unsigned pick = rng() % 100;
    if (pick < 75) {
      const int qos0 = static_cast<int>(rng() % 4 == 0 ? rng() % 5 : 0);
      bool ok = true;
      for (int i = 0; ok && i <= qos0; ++i) {
        const bool durable = i == qos0;
        run.submitted.push_back(MakeEvent(run.submitted.size() + 1, rng));
        Event e = run.submitted.back();
        e.qos = durable ? 1 : 0;
        run.submitted.back().qos = e.qos;
        const uint64_t record =
            IngressJournal::kRecordHeaderBytes + e.topic.size() + e.payload.size();
        const uint64_t before = mutations();
        ok = writer.Write(std::move(e), durable).ok();
        if (!ok || !durable) continue;
        run.acked.push_back(run.submitted.size());
        if (p.sync == Sync::kFull) run.journal_syncs.push_back(mutations());
        if (tail + record > p.journal_bytes) {
          run.wraps.emplace_back(before + 1, mutations());
          tail = IngressJournal::kHeaderBytes;
        }
        tail += record;
      }
      if (!ok) break;
    } else if (pick < 95) {
      const LogStats st = log->Stats();
      if (st.last_seq > st.cursor) {
        const uint64_t through = st.cursor + 1 + rng() % (st.last_seq - st.cursor);
        // The forwarder confirms what it read: note which event each confirmed seq held.
        std::vector<Event> rows;
        if (!log->Read(st.cursor, through - st.cursor, SIZE_MAX, &rows).ok()) break;
        for (const Event& e : rows) run.read_seqs[e.seq] = IndexOf(e);
        run.cursor_attempted = through;
        if (!log->Acknowledge("kafka", through).ok()) break;
        run.cursor_confirmed = through;
      }
    } else {
      std::vector<Event> batch;
      (void)log->Read(log->Stats().cursor, 100, 1 << 20, &batch);
    }
  }
  if (p.dry && !p.inline_checkpoints) {
    // A fast workload can end before the checkpointer's thread got to run: once the WAL has
    // reached the threshold a checkpoint is due (retried if a commit raced it), so wait for it.
    sluice::testing::WaitFor(
        [&] {
          const auto c = log->CheckpointCounters();
          return c.complete > 0 || c.wal_pages < kCheckpointPages;
        },
        std::chrono::seconds(10));
    run.checkpoints = log->CheckpointCounters().complete;
  }
  writer.Stop();
  return run;
}

struct Outcome {
  uint64_t lost_acked = 0;   // acknowledged to the broker, gone after the cut and the recovery
  uint64_t resurrected = 0;  // confirmed by the upstream and deleted, back after the cut
  bool seq_reused = false;   // the next event gets a seq the upstream may already hold
  uint64_t recovered = 0;    // events the journal gave back
  uint64_t cursor = 0;
  uint64_t last_seq = 0;
};

// The next start after the cut, then the checks. The start opens what the cut left with a fresh
// SqliteEventLog and IngressJournal and lets a LogWriter commit the journal's pending events
// (they must all go in, and a clean stop must leave nothing pending). What must hold whatever the
// sync mode: the log opens (quick_check inside Open), integrity_check passes, the waiting events
// are exactly seqs cursor+1..last_seq, each byte-identical to what was submitted, the events
// confirmed before the cut followed by those in the log are in submission order with none twice,
// and the cursor is not ahead of what the forwarder tried to confirm. The reopen goes through the
// VFS again, powered on: it only spares the real fsyncs of recovery.
Outcome CheckAfterCut(const std::string& path, const Plan& p, const Run& run) {
  Outcome out;
  SqliteEventLogOptions o;
  o.path = path;
  o.sync = p.sync;
  o.vfs = p.vfs;
  o.logger = NullLogger();
  std::unique_ptr<SqliteEventLog> log;
  const Status s = SqliteEventLog::Open(o, &log);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  {
    const IngressJournalOptions jo = JournalOptions(path, p.sync, p.vfs, p.journal_bytes);
    std::unique_ptr<IngressJournal> journal;
    std::vector<Event> recovered;
    Status js =
        IngressJournal::Open(jo, log->LogId(), log->Stats().ingress_applied, &journal, &recovered);
    REQUIRE_MESSAGE(js.ok(), js.ToString());
    out.recovered = recovered.size();
    for (size_t i = 1; i < recovered.size(); ++i) {
      CHECK(recovered[i].ingress == recovered[i - 1].ingress + 1);
    }
    LogWriter writer(log.get(), LogWriterOptions{}, NullLogger(), journal.get());
    writer.Start(std::move(recovered));
    writer.Stop();
    CHECK(writer.Stats().written == out.recovered);
    CHECK(journal->applied() == journal->last_number());
    CHECK(log->Stats().ingress_applied == journal->last_number());
    journal.reset();
    js = IngressJournal::Open(jo, log->LogId(), log->Stats().ingress_applied, &journal, &recovered);
    REQUIRE_MESSAGE(js.ok(), js.ToString());
    CHECK(recovered.empty());
  }
  const LogStats st = log->Stats();
  out.cursor = st.cursor;
  out.last_seq = st.last_seq;

  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, p.vfs.c_str()) == SQLITE_OK);
  sqlite3_stmt* check = nullptr;
  REQUIRE(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &check, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(check) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(check, 0))) == "ok");
  sqlite3_finalize(check);
  sqlite3_close(raw);

  std::vector<Event> events;
  REQUIRE(log->Read(0, SIZE_MAX, SIZE_MAX, &events).ok());
  CHECK(st.cursor <= run.cursor_attempted);
  CHECK(events.size() == st.last_seq - st.cursor);
  // Every event that was ever in the log, in seq order: the confirmed (deleted) ones as the
  // forwarder read them, then the rows left.
  std::vector<uint64_t> order;
  for (uint64_t seq = 1; seq <= st.cursor; ++seq) {
    const auto it = run.read_seqs.find(seq);
    REQUIRE_MESSAGE(it != run.read_seqs.end(), "confirmed seq " << seq << " was never read");
    order.push_back(it->second);
  }
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    REQUIRE(e.seq == st.cursor + 1 + i);
    const uint64_t k = IndexOf(e);
    REQUIRE_MESSAGE((k >= 1 && k <= run.submitted.size()), "seq " << e.seq << " holds no event");
    const Event& want = run.submitted[k - 1];
    CHECK(e.topic == want.topic);
    CHECK(e.payload == want.payload);
    CHECK(e.qos == want.qos);
    CHECK(e.received_ms == want.received_ms);
    order.push_back(k);
  }
  for (size_t i = 1; i < order.size(); ++i) {
    REQUIRE_MESSAGE(order[i - 1] < order[i], "seq " << i + 1 << " holds event " << order[i]
                                                    << " after event " << order[i - 1]
                                                    << " (out of order or twice)");
  }
  const std::set<uint64_t> present(order.begin(), order.end());
  for (uint64_t k : run.acked) {
    if (present.count(k) == 0) ++out.lost_acked;
  }
  if (run.cursor_confirmed > st.cursor) out.resurrected = run.cursor_confirmed - st.cursor;

  // The log takes writes again, and a new event is numbered after everything the upstream saw.
  Event next;
  next.topic = "after/cut";
  next.payload = "next";
  next.qos = 1;
  std::vector<Event> one{next};
  size_t appended = 0;
  REQUIRE(log->Append(one, &appended).ok());
  CHECK(one[0].seq == st.last_seq + 1);
  out.seq_reused = one[0].seq <= run.cursor_attempted;
  std::vector<Event> again;
  REQUIRE(log->Read(st.cursor, SIZE_MAX, SIZE_MAX, &again).ok());
  REQUIRE(!again.empty());
  CHECK(again.back().payload == "next");
  return out;
}

struct CutStats {
  int cuts = 0;
  int during_creation = 0;
  int torn = 0;
  std::vector<uint64_t> lost_per_cut;
  uint64_t recovered_cuts = 0;  // cuts after which the journal gave events back
  uint64_t recovered_events = 0;
  uint64_t resurrected_cuts = 0;
  uint64_t resurrected_events = 0;
  uint64_t seq_reused_cuts = 0;
};

// Where the cuts go.
enum class Aim {
  kAnywhere,      // random file operations (the first few: the log's creation)
  kJournalSyncs,  // the fdatasync of a journal record: the record is written, not synced
  kJournalWraps,  // the operations of a durable write that wraps the journal, and the next two
};

struct Scenario {
  Sync sync = Sync::kFull;
  Aim aim = Aim::kAnywhere;
  uint64_t journal_bytes = kJournalBytes;
  bool inline_checkpoints = InlineCheckpoints();
  bool always_torn = false;  // else every other cut is torn
  int steps = 500;
};

// Runs `cuts` power cuts over a few seeded workloads. Half the cuts lose every unsynced write,
// half keep a random subset of the unsynced sectors (torn writes), unless the scenario tears all.
CutStats CutManyTimes(const Scenario& sc, uint64_t seed, int cuts) {
  constexpr int kWorkloads = 4;
  constexpr int kEarlyCuts = 12;
  std::mt19937_64 rng(seed);
  std::vector<Plan> plans;
  std::vector<uint64_t> workload_mutations;
  // Aimed cuts: (workload, mutation).
  std::vector<std::pair<int, uint64_t>> aimed;
  for (int w = 0; w < kWorkloads; ++w) {
    Plan p;
    p.sync = sc.sync;
    p.seed = rng();
    p.steps = sc.steps;
    p.journal_bytes = sc.journal_bytes;
    p.inline_checkpoints = sc.inline_checkpoints;
    plans.push_back(p);
    // A run without a cut measures how many file operations the workload makes.
    PowerLossVfs vfs("power-loss-dry");
    TempDir dir;
    p.vfs = vfs.name();
    p.dry = true;
    p.counter = &vfs;
    const Run run = Drive(dir.File("events.db"), p);
    REQUIRE(run.opened);
    REQUIRE(run.acked.size() > 300);
    // The cuts must also hit checkpoints, the only writes to the database file.
    if (!p.inline_checkpoints) REQUIRE(run.checkpoints > 0);
    workload_mutations.push_back(vfs.mutations());
    if (sc.aim == Aim::kJournalSyncs) {
      for (uint64_t m : run.journal_syncs) aimed.emplace_back(w, m);
    } else if (sc.aim == Aim::kJournalWraps) {
      REQUIRE(run.wraps.size() >= 2);
      for (const auto& [first, last] : run.wraps) {
        for (uint64_t m = first; m <= last + 2; ++m) aimed.emplace_back(w, m);
      }
    }
  }
  if (sc.aim != Aim::kAnywhere) {
    REQUIRE(!aimed.empty());
    std::shuffle(aimed.begin(), aimed.end(), rng);
    if (aimed.size() > static_cast<size_t>(cuts)) aimed.resize(static_cast<size_t>(cuts));
    std::sort(aimed.begin(), aimed.end());
  }
  const int n = sc.aim == Aim::kAnywhere ? cuts : static_cast<int>(aimed.size());

  CutStats stats;
  PowerLossVfs vfs("power-loss");
  for (int i = 0; i < n; ++i) {
    const int w = sc.aim == Aim::kAnywhere ? i % kWorkloads : aimed[i].first;
    uint64_t cut_at = 0;
    if (sc.aim != Aim::kAnywhere) {
      cut_at = aimed[i].second;
    } else {
      cut_at = i < kEarlyCuts ? static_cast<uint64_t>(i + 1) : 1 + rng() % workload_mutations[w];
    }
    const bool torn = sc.always_torn || i % 2 == 1;
    const uint64_t tear_seed = rng();
    CAPTURE(i);
    CAPTURE(w);
    CAPTURE(cut_at);
    CAPTURE(torn);
    TempDir dir;
    const std::string path = dir.File("events.db");
    Plan p = plans[w];
    p.vfs = vfs.name();
    vfs.CutAtMutation(cut_at);
    const Run run = Drive(path, p);
    // The connections are closed by now (a gateway that lost power does not checkpoint on its
    // way out); a cut point past the end of the workload cuts here.
    vfs.PowerOff();
    vfs.RestoreAfterPowerLoss(torn ? PowerLossVfs::Loss::kTorn : PowerLossVfs::Loss::kUnsynced,
                              tear_seed);
    const Outcome out = CheckAfterCut(path, p, run);
    ++stats.cuts;
    if (!run.opened) ++stats.during_creation;
    if (torn) ++stats.torn;
    stats.lost_per_cut.push_back(out.lost_acked);
    if (out.recovered > 0) {
      ++stats.recovered_cuts;
      stats.recovered_events += out.recovered;
    }
    if (out.seq_reused) ++stats.seq_reused_cuts;
    if (out.resurrected > 0) {
      ++stats.resurrected_cuts;
      stats.resurrected_events += out.resurrected;
    }
    if (sc.sync == Sync::kFull) {
      CHECK_MESSAGE(out.lost_acked == 0,
                    "acknowledged events lost: " << out.lost_acked << " (acked through event "
                                                 << run.max_acked() << ", log now ends at seq "
                                                 << out.last_seq << ")");
      CHECK_MESSAGE(out.resurrected == 0,
                    "confirmed cursor " << run.cursor_confirmed << " came back as " << out.cursor);
      CHECK_MESSAGE(!out.seq_reused,
                    "the next seq is not above the confirmed cursor " << run.cursor_attempted);
    }
  }
  return stats;
}

std::string Distribution(std::vector<uint64_t> v) {
  std::sort(v.begin(), v.end());
  uint64_t sum = 0;
  size_t nonzero = 0;
  for (uint64_t x : v) {
    sum += x;
    if (x > 0) ++nonzero;
  }
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))]; };
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "cuts losing acknowledged events %zu of %zu; per cut: min %llu median %llu p90 "
                "%llu max %llu mean %.1f",
                nonzero, v.size(), static_cast<unsigned long long>(v.front()),
                static_cast<unsigned long long>(at(0.5)), static_cast<unsigned long long>(at(0.9)),
                static_cast<unsigned long long>(v.back()),
                static_cast<double>(sum) / static_cast<double>(v.size()));
  return buf;
}

void Print(const char* scenario, const Scenario& sc, uint64_t seed, const CutStats& st,
           double seconds) {
  std::printf(
      "scenario=%s sync=%s checkpoints=%s seed=%llu cuts=%d (torn %d, during creation %d) %s; "
      "journal gave events back after %llu cuts (%llu events); cursor went back in %llu cuts "
      "(%llu confirmed events resurrected); seqs handed out again in %llu cuts (%.1f s)\n",
      scenario, sc.sync == Sync::kFull ? "full" : "normal",
      sc.inline_checkpoints ? "inline" : "background", static_cast<unsigned long long>(seed),
      st.cuts, st.torn, st.during_creation, Distribution(st.lost_per_cut).c_str(),
      static_cast<unsigned long long>(st.recovered_cuts),
      static_cast<unsigned long long>(st.recovered_events),
      static_cast<unsigned long long>(st.resurrected_cuts),
      static_cast<unsigned long long>(st.resurrected_events),
      static_cast<unsigned long long>(st.seq_reused_cuts), seconds);
}

double Since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST_CASE("PowerLossVfs keeps synced writes and loses unsynced ones") {
  PowerLossVfs vfs("power-loss-self-test");
  TempDir dir;
  const std::string path = dir.File("t.db");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                          vfs.name().c_str()) == SQLITE_OK);
  auto exec = [&](const char* sql) { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); };
  REQUIRE(exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t(x)") == SQLITE_OK);
  REQUIRE(exec("INSERT INTO t VALUES(1)") == SQLITE_OK);
  // Without fsync the next commit sits in the (simulated) page cache only.
  REQUIRE(exec("PRAGMA synchronous=OFF; INSERT INTO t VALUES(2)") == SQLITE_OK);
  vfs.PowerOff();
  CHECK(exec("INSERT INTO t VALUES(3)") != SQLITE_OK);
  sqlite3_close(db);
  const auto report = vfs.RestoreAfterPowerLoss(PowerLossVfs::Loss::kUnsynced, 1);
  CHECK(report.ops_lost > 0);

  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "SELECT group_concat(x) FROM t", -1, &st, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(st) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) == "1");
  sqlite3_finalize(st);
  sqlite3_close(db);
}

SqliteEventLogOptions Options(const std::string& path) {
  SqliteEventLogOptions o;
  o.path = path;
  o.sync = Sync::kFull;
  o.logger = NullLogger();
  return o;
}

TEST_CASE("an empty SQLite database left by a cut during creation becomes a log, not a refusal") {
  // The state a cut between `PRAGMA journal_mode=WAL` and the schema commit leaves: SQLite's
  // header, no tables, application_id 0. Nothing in it can be lost by finishing the creation.
  TempDir dir;
  const std::string path = dir.File("events.db");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  std::unique_ptr<SqliteEventLog> log;
  const Status s = SqliteEventLog::Open(Options(path), &log);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  int64_t app_id = 0;
  REQUIRE(log->WriterPragma("application_id", &app_id).ok());
  CHECK(app_id == SqliteEventLog::kApplicationId);
}

TEST_CASE("a torn first page beside a hot journal is rolled back by SQLite, not refused") {
  // A new log is switched to WAL through a rollback journal. Cut the power at each early file
  // operation until one leaves that journal behind, then tear page 1 as a half-done write would.
  PowerLossVfs vfs("power-loss-hot-journal");
  bool found = false;
  for (uint64_t cut = 1; cut <= 20 && !found; ++cut) {
    TempDir dir;
    const std::string path = dir.File("events.db");
    vfs.CutAtMutation(cut);
    {
      SqliteEventLogOptions o = Options(path);
      o.vfs = vfs.name();
      std::unique_ptr<SqliteEventLog> log;
      (void)SqliteEventLog::Open(o, &log);
    }
    vfs.PowerOff();
    vfs.RestoreAfterPowerLoss(PowerLossVfs::Loss::kUnsynced, cut);
    // A journal whose header has its magic number is hot: SQLite plays it back.
    std::ifstream journal(path + "-journal", std::ios::binary);
    char magic[8] = {};
    journal.read(magic, sizeof magic);
    if (!journal || std::string(magic, sizeof magic) == std::string(sizeof magic, '\0')) continue;
    found = true;
    {
      std::ofstream garbage(path, std::ios::binary | std::ios::trunc);
      garbage << std::string(4096, '\x5a');
    }
    std::unique_ptr<SqliteEventLog> log;
    const Status s = SqliteEventLog::Open(Options(path), &log);
    CAPTURE(cut);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    std::mt19937_64 rng(cut);
    std::vector<Event> one{MakeEvent(1, rng)};
    size_t appended = 0;
    CHECK(log->Append(one, &appended).ok());
  }
  CHECK(found);
}

TEST_CASE("SQLite fsyncs the directory when it creates the WAL (SQLITE_DISABLE_DIRSYNC unset)") {
  // The WAL's directory entry must survive a power cut along with the frames synced into it; the
  // unix VFS fsyncs the directory on the first sync of a newly created WAL or journal unless
  // SQLite was built with SQLITE_DISABLE_DIRSYNC.
  CHECK(sqlite3_compileoption_used("DISABLE_DIRSYNC") == 0);
}

TEST_CASE("power loss with sync = full loses no acknowledged event and no confirmed deletion") {
  const uint64_t seed = ChaosSeed();
  const int cuts = static_cast<int>(EnvOr("SLUICE_POWER_CUTS", 240));
  const auto t0 = std::chrono::steady_clock::now();
  Scenario sc;
  sc.sync = Sync::kFull;
  const CutStats st = CutManyTimes(sc, seed, cuts);
  Print("power-loss", sc, seed, st, Since(t0));
  CHECK(st.cuts == cuts);
  // The first cuts fall into the log's creation, which must also come back (as an empty log).
  CHECK(st.during_creation > 0);
  // Acknowledged events only the journal held when the power went.
  CHECK(st.recovered_cuts > 0);
}

TEST_CASE("power loss with sync = normal: the log stays consistent; the loss is measured") {
  const uint64_t seed = ChaosSeed();
  const int cuts = static_cast<int>(EnvOr("SLUICE_POWER_CUTS", 240));
  const auto t0 = std::chrono::steady_clock::now();
  Scenario sc;
  sc.sync = Sync::kNormal;
  const CutStats st = CutManyTimes(sc, seed, cuts);
  // Not asserted: sync = normal gives up exactly this, by design (docs/configuration.md).
  Print("power-loss", sc, seed, st, Since(t0));
  CHECK(st.cuts == cuts);
}

TEST_CASE("power loss with sync = full tearing a journal record before its sync loses nothing") {
  // Each cut fails the fdatasync of a journal record, so that record is written but not synced,
  // and the loss keeps a random subset of its sectors: the chain ends at it (or, kept whole, it
  // comes back unacknowledged), and every acknowledged record before it comes back.
  const uint64_t seed = ChaosSeed();
  const int cuts = static_cast<int>(EnvOr("SLUICE_POWER_CUTS", 240)) / 4;
  const auto t0 = std::chrono::steady_clock::now();
  Scenario sc;
  sc.sync = Sync::kFull;
  sc.aim = Aim::kJournalSyncs;
  sc.inline_checkpoints = true;
  sc.always_torn = true;
  const CutStats st = CutManyTimes(sc, seed, cuts);
  Print("power-loss-torn-journal", sc, seed, st, Since(t0));
  CHECK(st.cuts == cuts);
  CHECK(st.recovered_cuts > 0);
}

TEST_CASE("power loss with sync = full while the journal wraps to its front loses nothing") {
  // A journal of the minimum size wraps every ~80 events; the cuts hit every file operation of a
  // durable write that wraps it (the commit it forces, the record at the front, its sync) and the
  // two after.
  const uint64_t seed = ChaosSeed();
  const int cuts = static_cast<int>(EnvOr("SLUICE_POWER_CUTS", 240)) / 2;
  const auto t0 = std::chrono::steady_clock::now();
  Scenario sc;
  sc.sync = Sync::kFull;
  sc.aim = Aim::kJournalWraps;
  sc.journal_bytes = IngressJournal::kMinCapacityBytes;
  sc.inline_checkpoints = true;
  const CutStats st = CutManyTimes(sc, seed, cuts);
  Print("power-loss-journal-wrap", sc, seed, st, Since(t0));
  CHECK(st.cuts > 0);
  CHECK(st.recovered_cuts > 0);
}

}  // namespace
}  // namespace sluice::storage
