// SPDX-License-Identifier: Apache-2.0

// Power loss under exactly-once delivery (issue #11), one level below the daemon: the durable log
// (SqliteEventLog, sync = full) on the power-loss VFS (tests/storage/power_loss_vfs.h), and a
// Forwarder with a KafkaSink in exactly-once mode, put together as gateway/upstream.cpp does,
// forwarding to the real Kafka of the integration fixture. The power is cut again and again at a
// random file operation; each time the log is reopened from what survived and a new forwarder and
// sink are built with the same gateway id, upstream and log identity, as a rebooted gateway would.
// At the end everything is drained and the topic is read with isolation.level=read_committed.
//
// Each life runs in a child process, which dies at the cut as a gateway losing power does: the VFS
// goes off, so nothing the log writes from then on reaches the disk; the forwarder stops without
// draining (drain_timeout 0) and cannot store its cursor; the child closes the log (which, with
// the power off, writes nothing), applies the loss to the files (RestoreAfterPowerLoss: every
// write not yet fsynced is gone; it also powers the VFS on again, so no thread of the dead gateway
// may touch the log past it) and calls _exit. The sink and its producer are never stopped or
// destroyed: no commit, no flush, no EndTxn; whatever the transaction held stays open at the
// broker until the next life's producer, with the same transactional.id, calls init_transactions,
// which fences the old epoch and aborts it, as after a real reboot. (Destroying the transactional
// producer in-process instead can abort the whole process inside librdkafka 2.0.2.) Kafka calls
// the forwarder makes between the cut and its stop are calls a real gateway could have made just
// before the cut: the log can no longer change, so they can only commit events that were already
// durable, with a cursor that was not yet stored.
//
// "Acknowledged" here: Append returned OK (sync = full: the commit was fsynced), the moment the
// MQTT source would send the PUBACK (tests/storage/power_loss_test.cpp says why).
//
// Seeded: SLUICE_CHAOS_SEED repeats a run's choices (the cut points then still vary with thread
// timing), SLUICE_POWER_EOS_CUTS sets the number of cuts.

#include <doctest/doctest.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/kafka_sink.h"
#include "connectors/record_headers.h"
#include "connectors/router.h"
#include "gateway/forwarder.h"
#include "storage/sqlite_event_log.h"
#include "tests/integration/harness.h"
#include "tests/storage/power_loss_vfs.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::ChaosSeedFromEnvironment;
using sluice::testing::EnvOr;
using sluice::testing::PowerLossVfs;
using sluice::testing::TempDir;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// A cut lands at a random one of a life's first kMaxCutMutation file operations (writes, truncates,
// fsyncs of the log, its WAL and checkpoints); at the forwarder's pace that is up to about a
// second of appending. One life in ten is cut within its first kEarlyCutMutations: reopening an
// existing log writes nothing, so those cuts land in the first appends, before the new producer
// has fenced the old one and read the checkpoint back.
constexpr uint64_t kMaxCutMutation = 3000;
constexpr uint64_t kEarlyCutMutations = 12;
// WAL pages before a background checkpoint: small, so that cuts land in checkpoints too.
constexpr int64_t kCheckpointPages = 100;
// Events appended by the last life, which is not cut, before everything is drained.
constexpr uint64_t kFinalEvents = 500;

std::string PayloadOf(uint64_t id) {
  std::string p = "eos-" + std::to_string(id) + ":";
  const size_t size = p.size() + 16 + id % 200;
  while (p.size() < size) p.push_back(static_cast<char>('a' + (id * 7 + p.size()) % 26));
  return p;
}

storage::Event EventOf(uint64_t id) {
  storage::Event e;
  e.topic = "devices/dev-" + std::to_string(id % 5) + "/telemetry";
  e.qos = 1;
  e.received_ms = 1764000000000 + static_cast<int64_t>(id);
  e.payload = PayloadOf(id);
  return e;
}

struct Setup {
  std::string path;
  std::string vfs;
  std::string brokers;
  std::string gateway_id;
  const connectors::Router* router = nullptr;
  std::string log_file;  // every life's sluice log lines, appended
};

// What the parent decides for one life before it forks it.
struct LifePlan {
  bool final = false;           // not cut: appends kFinalEvents, drains, stops cleanly
  uint64_t cut_at = 0;          // CutAtMutation before the log opens; 0: none
  bool cut_after_open = false;  // the first life: armed once the log exists
  uint64_t lead = 0;            // events the log may run ahead of Kafka's confirmations
  uint64_t first_id = 0;        // payload id of the life's first event
  uint64_t rng_seed = 0;        // group sizes
  bool torn = false;            // the loss keeps a random subset of the unsynced sectors
  uint64_t tear_seed = 0;
};

// One gateway life: what the daemon builds for a Kafka upstream (gateway/upstream.cpp). Lives in
// the child process only.
class Life {
 public:
  Life(const Setup& setup, PowerLossVfs* vfs, const LifePlan& plan, FILE* out)
      : setup_(setup), vfs_(vfs), plan_(plan), out_(out), rng_(plan.rng_seed) {}

  // Runs the life to its cut (or, for the final one, to the drained end) and reports each step to
  // the parent as a line on `out`; returns the child's exit code.
  int Run() {
    logger_ = std::make_shared<spdlog::logger>(
        "power-eos", std::make_shared<spdlog::sinks::basic_file_sink_mt>(setup_.log_file));
    logger_->set_level(spdlog::level::info);
    // _exit skips every destructor: each line must be on disk when it is written.
    logger_->flush_on(spdlog::level::info);
    if (plan_.cut_at != 0) vfs_->CutAtMutation(plan_.cut_at);
    Status s = Start();
    if (!s.ok()) {
      if (!vfs_->powered_off())
        return Error("the log did not open with the power on: " + s.ToString());
      Report("open-failed");
      return Cut();
    }
    Report("open " + std::to_string(log_->Stats().last_seq) + " " + std::to_string(start_cursor_) +
           " " + log_->LogId());
    if (plan_.cut_after_open) vfs_->CutAtMutation(1 + rng_() % kMaxCutMutation);
    if (int rc = AppendUntilCut(plan_.final ? kFinalEvents : UINT64_MAX); rc != 0) return rc;
    return plan_.final ? Drain() : Cut();
  }

 private:
  Status Start() {
    storage::SqliteEventLogOptions o;
    o.path = setup_.path;
    o.sync = storage::Sync::kFull;
    o.vfs = setup_.vfs;
    o.logger = logger_;
    o.checkpoint_pages = kCheckpointPages;
    Status s = storage::SqliteEventLog::Open(o, &log_);
    if (!s.ok()) return s;
    storage::SqliteEventLog* const log = log_.get();
    s = log->CursorPosition("kafka", &start_cursor_);
    if (!s.ok()) return s;

    connectors::KafkaSinkOptions k;
    k.brokers = setup_.brokers;
    k.gateway_id = setup_.gateway_id;
    k.log_id = log->LogId();
    k.delivery = connectors::KafkaDelivery::kExactlyOnce;
    k.reconnect_max_ms = 1000;
    k.log_last_seq = [log] { return log->Stats().last_seq; };
    s = connectors::KafkaSink::Create(k, setup_.router, nullptr, logger_, &sink_);
    if (!s.ok()) return s;

    gateway::ForwarderOptions f;
    // A dead gateway drains nothing: Stop returns at once and leaves what is in flight.
    f.drain_timeout = 0ms;
    forwarder_ = std::make_unique<gateway::Forwarder>(log, sink_.get(), f, logger_);
    forwarder_->Start();
    return Status::Ok();
  }

  // Highest seq the forwarder has had confirmed: it forwards in order and every event here goes
  // to Kafka, so each confirmation (a commit, or a checkpoint read back) moves it by one.
  uint64_t ConfirmedThrough() const { return start_cursor_ + forwarder_->Stats().delivered; }

  // Appends numbered events in groups of 1 to 4 until an Append fails at the cut (or `limit` are
  // in). The log runs at most plan.lead events ahead of what Kafka confirmed, so that the life
  // forwards while it appends and cuts fall between, inside and right after transactions.
  int AppendUntilCut(uint64_t limit) {
    uint64_t id = plan_.first_id;
    uint64_t last_seq = log_->Stats().last_seq;
    while (id - plan_.first_id < limit) {
      const uint64_t n = std::min<uint64_t>(1 + rng_() % 4, limit - (id - plan_.first_id));
      std::vector<storage::Event> batch;
      for (uint64_t i = 0; i < n; ++i) batch.push_back(EventOf(id + i));
      size_t appended = 0;
      const Status s = log_->Append(batch, &appended);
      if (!s.ok()) {
        // Nothing but the cut may fail an append here (the log is far from full).
        if (!vfs_->powered_off()) return Error("append failed with the power on: " + s.ToString());
        for (uint64_t i = 0; i < n; ++i) Report("unacked " + std::to_string(id + i));
        return 0;
      }
      if (appended != n)
        return Error("append took " + std::to_string(appended) + " of " + std::to_string(n));
      for (const storage::Event& e : batch) {
        Report("ack " + std::to_string(id++) + " " + std::to_string(e.seq));
        last_seq = e.seq;
      }
      auto behind = [&] { return last_seq - std::min(last_seq, ConfirmedThrough()); };
      if (behind() < plan_.lead) continue;
      const bool progressed = WaitFor(
          [&] { return vfs_->powered_off() || !forwarder_->error().ok() || behind() < plan_.lead; },
          30s);
      if (Status f = forwarder_->error(); !f.ok() && !vfs_->powered_off()) {
        return Error("the forwarder stopped with the power on: " + f.ToString());
      }
      if (!progressed) {
        return Error("Kafka confirmed nothing for 30 s (confirmed through " +
                     std::to_string(ConfirmedThrough()) + ", log at " + std::to_string(last_seq) +
                     ", hold: " + forwarder_->Stats().hold_reason + ")");
      }
    }
    return 0;
  }

  // The power goes off (if the cut has not come yet, it comes now).
  int Cut() {
    vfs_->PowerOff();
    if (forwarder_) {
      forwarder_->Stop();
      const gateway::ForwarderStats st = forwarder_->Stats();
      // Events handed to Kafka (each counted once) and not confirmed: a transaction open or in
      // doubt at the cut.
      const uint64_t handed = st.sent - std::min(st.sent, st.resent);
      const uint64_t in_flight = handed - std::min(handed, st.delivered);
      Report("stats " + std::to_string(in_flight) + " " + std::to_string(ConfirmedThrough()) + " " +
             std::to_string(st.acked_through));
    }
    // RestoreAfterPowerLoss wants every connection closed; with the power off, closing them
    // writes nothing. The sink stays: its producer dies with the process.
    forwarder_.reset();
    log_.reset();
    vfs_->RestoreAfterPowerLoss(
        plan_.torn ? PowerLossVfs::Loss::kTorn : PowerLossVfs::Loss::kUnsynced, plan_.tear_seed);
    Report("cut");
    return 0;
  }

  // The cursor passes an event only once its transaction committed, so a cursor at the log's end
  // means Kafka has it all.
  int Drain() {
    const bool drained = WaitFor(
        [&] {
          const storage::LogStats st = log_->Stats();
          return st.cursor == st.last_seq || !forwarder_->error().ok();
        },
        60s);
    forwarder_->Stop();
    if (Status f = forwarder_->error(); !f.ok()) return Error("forwarding failed: " + f.ToString());
    const storage::LogStats st = log_->Stats();
    if (!drained) {
      return Error("not drained: cursor " + std::to_string(st.cursor) + ", log at " +
                   std::to_string(st.last_seq));
    }
    forwarder_.reset();
    sink_.reset();
    log_.reset();
    Report("drained " + std::to_string(st.last_seq));
    return 0;
  }

  void Report(const std::string& line) {
    std::fprintf(out_, "%s\n", line.c_str());
    std::fflush(out_);
  }
  int Error(const std::string& what) {
    Report("error " + what);
    return 2;
  }

  const Setup& setup_;
  PowerLossVfs* const vfs_;
  const LifePlan plan_;
  FILE* const out_;
  std::mt19937_64 rng_;
  std::shared_ptr<spdlog::logger> logger_;
  std::unique_ptr<storage::SqliteEventLog> log_;
  std::unique_ptr<connectors::KafkaSink> sink_;
  std::unique_ptr<gateway::Forwarder> forwarder_;
  uint64_t start_cursor_ = 0;
};

// What the test was told across every life.
struct Ledger {
  uint64_t next_id = 1;
  std::map<uint64_t, uint64_t> acked;  // payload id -> seq, for every Append that returned OK
  std::set<uint64_t> unacked;          // ids handed to an Append that failed at a cut
  uint64_t max_acked_seq = 0;
  uint64_t stored_cursor = 0;  // highest cursor a forwarder stored (Acknowledge returned OK)
  std::string log_id;
  uint64_t drained_last_seq = 0;
};

struct Figures {
  int cuts = 0;
  int torn = 0;
  int during_open = 0;       // the log did not reopen: the cut came first
  int events_in_flight = 0;  // cuts with events handed to Kafka and not yet confirmed
  int kafka_ahead = 0;       // cuts after which Kafka held events past the stored cursor
  uint64_t kafka_ahead_events = 0;
  uint64_t seq_backward = 0;     // seqs handed out again, or a log that ended below an acked seq
  uint64_t cursor_backward = 0;  // lives whose cursor came back below a stored one
};

// Forks one life and folds what it reported into the ledger, checking what must hold under
// sync = full: the same log identity, every acknowledged seq still there, no seq handed out
// twice, the stored cursor not gone back.
void RunLife(const Setup& setup, PowerLossVfs* vfs, const LifePlan& plan, Ledger* ledger,
             Figures* fig) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(stdout);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    FILE* out = ::fdopen(fds[1], "w");
    int rc = 3;
    try {
      rc = Life(setup, vfs, plan, out).Run();
    } catch (const std::exception& e) {
      std::fprintf(out, "error exception: %s\n", e.what());
    }
    std::fflush(out);
    ::_exit(rc);
  }
  ::close(fds[1]);
  FILE* in = ::fdopen(fds[0], "r");
  char* raw = nullptr;
  size_t cap = 0;
  bool cut = false;
  while (::getline(&raw, &cap, in) > 0) {
    std::istringstream line(raw);
    std::string what;
    line >> what;
    if (what == "open") {
      uint64_t last_seq = 0;
      uint64_t cursor = 0;
      std::string log_id;
      line >> last_seq >> cursor >> log_id;
      if (ledger->log_id.empty()) ledger->log_id = log_id;
      CHECK(log_id == ledger->log_id);
      if (last_seq < ledger->max_acked_seq) {
        ++fig->seq_backward;
        FAIL_CHECK("the log ends at seq " << last_seq << " after a cut, but seq "
                                          << ledger->max_acked_seq << " was acknowledged");
      }
      if (cursor < ledger->stored_cursor) {
        ++fig->cursor_backward;
        FAIL_CHECK("the cursor came back as " << cursor << " after a cut; " << ledger->stored_cursor
                                              << " was stored");
      }
      CHECK(cursor <= last_seq);
    } else if (what == "open-failed") {
      ++fig->during_open;
    } else if (what == "ack") {
      uint64_t id = 0;
      uint64_t seq = 0;
      line >> id >> seq;
      if (seq <= ledger->max_acked_seq) {
        ++fig->seq_backward;
        FAIL_CHECK("seq " << seq << " handed out again: seq " << ledger->max_acked_seq
                          << " was acknowledged before");
      }
      ledger->acked[id] = seq;
      ledger->max_acked_seq = std::max(ledger->max_acked_seq, seq);
      ledger->next_id = std::max(ledger->next_id, id + 1);
    } else if (what == "unacked") {
      uint64_t id = 0;
      line >> id;
      ledger->unacked.insert(id);
      ledger->next_id = std::max(ledger->next_id, id + 1);
    } else if (what == "stats") {
      uint64_t in_flight = 0;
      uint64_t confirmed = 0;
      uint64_t stored = 0;
      line >> in_flight >> confirmed >> stored;
      if (in_flight > 0) ++fig->events_in_flight;
      if (confirmed > stored) {
        ++fig->kafka_ahead;
        fig->kafka_ahead_events += confirmed - stored;
      }
      ledger->stored_cursor = std::max(ledger->stored_cursor, stored);
    } else if (what == "cut") {
      cut = true;
    } else if (what == "drained") {
      line >> ledger->drained_last_seq;
    } else {
      FAIL_CHECK("life failed: " << std::string(raw));
    }
  }
  std::free(raw);
  std::fclose(in);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "the life's process ended with status "
                      << status << " (see the sluice log: " << setup.log_file << ")");
  if (!plan.final) {
    REQUIRE(cut);
    ++fig->cuts;
    if (plan.torn) ++fig->torn;
  }
}

struct Tally {
  size_t records = 0;
  size_t lost = 0;            // acknowledged, not in Kafka
  size_t duplicate_ids = 0;   // records of an event already read
  size_t duplicate_seqs = 0;  // records of a seq already read
  size_t missing_seqs = 0;    // seqs of the final log absent from Kafka
  size_t reordered = 0;       // a seq not above the previous one of its partition
  size_t corrupted = 0;  // unreadable, wrong bytes, wrong log, or another seq than acknowledged
  size_t unacked_arrived = 0;  // appended, not acknowledged before the cut, in Kafka (allowed)
  std::string first_problem;
};
Tally Count(const std::vector<Record>& records, const Ledger& ledger, uint64_t last_seq) {
  Tally t;
  t.records = records.size();
  auto problem = [&](size_t* counter, const std::string& what) {
    ++*counter;
    if (t.first_problem.empty()) t.first_problem = what;
  };
  std::map<uint64_t, int> per_id;
  std::map<uint64_t, int> per_seq;
  std::map<int32_t, uint64_t> last_in_partition;
  for (const Record& r : records) {
    const std::string where =
        "partition " + std::to_string(r.partition) + " offset " + std::to_string(r.offset);
    auto seq_header = r.headers.find(connectors::kHeaderSeq);
    auto log_header = r.headers.find(connectors::kHeaderLogId);
    const size_t colon = r.value.find(':');
    if (seq_header == r.headers.end() || log_header == r.headers.end() ||
        r.value.rfind("eos-", 0) != 0 || colon == std::string::npos) {
      problem(&t.corrupted, where + ": not a record of this test");
      continue;
    }
    const uint64_t seq = std::strtoull(seq_header->second.c_str(), nullptr, 10);
    const uint64_t id = std::strtoull(r.value.c_str() + 4, nullptr, 10);
    if (r.value != PayloadOf(id) || log_header->second != ledger.log_id) {
      problem(&t.corrupted, where + ": payload or log id differs from event " + std::to_string(id));
    }
    if (auto it = ledger.acked.find(id); it != ledger.acked.end() && it->second != seq) {
      problem(&t.corrupted, where + ": event " + std::to_string(id) + " was acknowledged as seq " +
                                std::to_string(it->second) + ", arrived as seq " +
                                std::to_string(seq));
    }
    if (++per_id[id] > 1)
      problem(&t.duplicate_ids, where + ": event " + std::to_string(id) + " again");
    if (++per_seq[seq] > 1)
      problem(&t.duplicate_seqs, where + ": seq " + std::to_string(seq) + " again");
    uint64_t& last = last_in_partition[r.partition];
    if (seq <= last) {
      problem(&t.reordered,
              where + ": seq " + std::to_string(seq) + " after seq " + std::to_string(last));
    }
    last = std::max(last, seq);
  }
  for (const auto& [id, seq] : ledger.acked) {
    if (per_id.count(id) == 0) {
      problem(&t.lost, "acknowledged event " + std::to_string(id) + " (seq " + std::to_string(seq) +
                           ") is not in Kafka");
    }
  }
  for (uint64_t id : ledger.unacked) t.unacked_arrived += per_id.count(id);
  // Under sync = full every seq the log handed out belongs to a durable event, and the cursor
  // passed each only once Kafka had it.
  for (uint64_t seq = 1; seq <= last_seq; ++seq) {
    if (per_seq.count(seq) == 0) {
      problem(&t.missing_seqs, "seq " + std::to_string(seq) + " of the log is not in Kafka");
    }
  }
  return t;
}

TEST_CASE(
    "power loss with sync = full under exactly-once delivery: no acknowledged event is lost or "
    "duplicated in Kafka") {
  const Env env = Env::FromEnvironment();
  const int cuts = static_cast<int>(EnvOr("SLUICE_POWER_EOS_CUTS", 40));
  const uint64_t seed = ChaosSeedFromEnvironment();
  std::printf("scenario=power-loss-exactly-once seed=%llu cuts=%d (SLUICE_CHAOS_SEED repeats it)\n",
              static_cast<unsigned long long>(seed), cuts);
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  const auto t0 = std::chrono::steady_clock::now();

  TempDir dir;
  PowerLossVfs vfs("power-loss-eos");
  const std::string suffix = UniqueSuffix();
  const std::string topic = "power-eos-" + suffix;
  connectors::Route route;
  route.mqtt_filter = "devices/+/telemetry";
  route.upstream_topic = topic;
  REQUIRE(connectors::KeyPattern::Parse("devices/{device}/#", &route.key).ok());
  const connectors::Router router({route});
  Setup setup;
  setup.path = dir.File("events.db");
  setup.vfs = vfs.name();
  setup.brokers = env.kafka_brokers;
  setup.gateway_id = "power-" + suffix;
  setup.router = &router;
  setup.log_file = dir.File("sluice.log");

  Ledger ledger;
  Figures fig;
  for (int i = 0; i <= cuts; ++i) {
    CAPTURE(i);
    LifePlan plan;
    plan.final = i == cuts;
    // The first life creates the log uncut: a cut during creation is power_loss_test.cpp's.
    if (i == 0) {
      plan.cut_after_open = !plan.final;
    } else if (!plan.final) {
      plan.cut_at = rng() % 10 == 0 ? 1 + rng() % kEarlyCutMutations : 1 + rng() % kMaxCutMutation;
    }
    plan.lead = plan.final ? 1000 : 20 + rng() % 1000;
    plan.first_id = ledger.next_id;
    plan.rng_seed = rng();
    plan.torn = i % 2 == 1;
    plan.tear_seed = rng();
    RunLife(setup, &vfs, plan, &ledger, &fig);
  }
  const uint64_t final_last_seq = ledger.drained_last_seq;
  REQUIRE(final_last_seq > 0);

  const std::vector<Record> records = ReadTopicUntil(
      env.kafka_brokers, topic,
      [&](const std::vector<Record>& r) { return r.size() >= final_last_seq; }, 90s);
  const Tally t = Count(records, ledger, final_last_seq);
  const double seconds = Seconds(std::chrono::steady_clock::now() - t0);
  std::printf(
      "scenario=power-loss-exactly-once seed=%llu cuts=%d (torn %d, before the log reopened %d, "
      "with events in flight %d, with Kafka ahead of the stored cursor %d: %llu events) "
      "appended=%llu acknowledged=%zu unacknowledged=%zu (in Kafka %zu) log_last_seq=%llu "
      "records=%zu lost=%zu duplicates=%zu duplicate_seqs=%zu missing_seqs=%zu reordered=%zu "
      "corrupted=%zu seq_backward=%llu cursor_backward=%llu (%.1f s)\n",
      static_cast<unsigned long long>(seed), fig.cuts, fig.torn, fig.during_open,
      fig.events_in_flight, fig.kafka_ahead,
      static_cast<unsigned long long>(fig.kafka_ahead_events),
      static_cast<unsigned long long>(ledger.next_id - 1), ledger.acked.size(),
      ledger.unacked.size(), t.unacked_arrived, static_cast<unsigned long long>(final_last_seq),
      t.records, t.lost, t.duplicate_ids, t.duplicate_seqs, t.missing_seqs, t.reordered,
      t.corrupted, static_cast<unsigned long long>(fig.seq_backward),
      static_cast<unsigned long long>(fig.cursor_backward), seconds);
  std::fflush(stdout);
  CHECK_MESSAGE(t.lost == 0, t.first_problem);
  CHECK_MESSAGE(t.duplicate_ids == 0, t.first_problem);
  CHECK_MESSAGE(t.duplicate_seqs == 0, t.first_problem);
  CHECK_MESSAGE(t.missing_seqs == 0, t.first_problem);
  CHECK_MESSAGE(t.reordered == 0, t.first_problem);
  CHECK_MESSAGE(t.corrupted == 0, t.first_problem);
  CHECK(fig.cuts == cuts);
  // The cuts must have hit the windows exactly-once is about, or the run proves little.
  CHECK(fig.events_in_flight > 0);
  CHECK(fig.kafka_ahead > 0);
  // A checkpoint beyond the log's end can only come from a log that lost acknowledged events.
  std::ifstream sluice_log(setup.log_file);
  std::stringstream sluice_text;
  sluice_text << sluice_log.rdbuf();
  CHECK_MESSAGE(sluice_text.str().find("lost its newest events") == std::string::npos,
                sluice_text.str());
}

}  // namespace
}  // namespace sluice::itest
