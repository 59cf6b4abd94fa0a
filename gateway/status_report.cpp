// SPDX-License-Identifier: Apache-2.0

#include "gateway/status_report.h"

#include <fcntl.h>
#include <spdlog/sinks/null_sink.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "storage/ingress_journal.h"
#include "storage/sqlite_event_log.h"

namespace sluice::gateway {

namespace {

uint64_t FileSize(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

// The daemon holds an exclusive flock on <log>.lock while it runs.
bool LockHeld(const std::string& lock_path) {
  const int fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}

std::string Bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::ostringstream out;
  out.precision(u == 0 ? 0 : 1);
  out << std::fixed << v << ' ' << units[u];
  return out.str();
}

int64_t AgeMs(int64_t now_ms, uint64_t events, int64_t oldest_ms) {
  return events == 0 ? 0 : std::max<int64_t>(0, now_ms - oldest_ms);
}

int64_t OldestAgeMs(const StatusReport& r) {
  return AgeMs(r.now_ms, r.stats.events, r.stats.oldest_received_ms);
}

}  // namespace

Status ReadStatus(const std::string& path, uint64_t max_bytes, const Clock& clock,
                  StatusReport* out) {
  storage::SqliteEventLogOptions o;
  o.path = path;
  o.read_only = true;
  o.logger =
      std::make_shared<spdlog::logger>("status", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = storage::SqliteEventLog::Open(o, &log);
  if (!s.ok()) return s;
  StatusReport r;
  r.log_path = path;
  r.log_id = log->LogId();
  r.stats = log->Stats();
  r.stats.max_bytes = max_bytes;
  s = storage::SqliteEventLog::ListReplays(path, "", &r.replays);
  if (!s.ok()) return s;
  r.now_ms = clock.NowUnixMillis();
  r.daemon_running = LockHeld(path + ".lock");
  r.file_bytes = FileSize(path) + FileSize(path + "-wal");
  std::vector<storage::Event> pending;
  s = storage::IngressJournal::Peek(path + storage::IngressJournal::kPathSuffix, "",
                                    r.stats.ingress_applied, &pending);
  if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
  r.journal_pending = pending.size();
  *out = std::move(r);
  return Status::Ok();
}

std::string StatusReport::ToText() const {
  const auto& st = stats;
  std::ostringstream out;
  const double full =
      st.max_bytes == 0 ? 0.0
                        : 100.0 * static_cast<double>(st.bytes) / static_cast<double>(st.max_bytes);
  out << "log          " << log_path << (daemon_running ? " (daemon running)" : " (no daemon)")
      << "\n";
  out << "backlog      " << st.events << " events, " << Bytes(st.bytes);
  if (st.max_bytes != 0) {
    out.precision(1);
    out << std::fixed << " (" << full << "% of max_bytes " << Bytes(st.max_bytes) << ")";
  }
  out << "\n";
  out << "oldest       ";
  if (st.events == 0) {
    out << "-\n";
  } else {
    out << OldestAgeMs(*this) / 1000 << " s ago (seq " << st.first_seq << ")\n";
  }
  out << "sequence     last assigned " << st.last_seq << "\n";
  for (const storage::CursorStats& c : st.cursors) {
    out << "upstream     " << c.name << ": cursor " << c.cursor << ", " << c.events << " events / "
        << Bytes(c.bytes) << " waiting";
    if (c.events > 0)
      out << " (oldest " << AgeMs(now_ms, c.events, c.oldest_received_ms) / 1000 << " s ago)";
    out << ", " << c.dropped_events << " dropped and reported in " << c.gap_markers
        << " gap records\n";
  }
  if (st.retained_events > 0) {
    out << "retained     " << st.retained_events << " events, " << Bytes(st.retained_bytes)
        << " (from seq " << st.first_retained_seq << ", for sluice replay)\n";
  }
  for (const storage::ReplayRequest& r : replays) {
    if (r.done) continue;
    out << "replay       " << r.id << " to " << r.upstream << ": seq " << r.from_seq << " to "
        << r.through_seq << ", confirmed through " << r.position << "\n";
  }
  out << "dropped      " << st.dropped_events << " events (by the drop-oldest policy)\n";
  if (journal_pending > 0) {
    out << "ingress journal: " << journal_pending
        << " acknowledged events not yet in the log (they go in first at the next commit or "
           "start)\n";
  }
  out << "dead letters " << st.dead_letters << ", " << Bytes(st.dead_letter_bytes) << " ("
      << st.dropped_dead_letters << " dropped by the drop-oldest policy)\n";
  out << "identity     " << (log_id.empty() ? "-" : log_id) << "\n";
  out << "on disk      " << Bytes(file_bytes) << "\n";
  return out.str();
}

std::string StatusReport::ToJson() const {
  nlohmann::ordered_json j;
  j["log"] = log_path;
  j["daemon_running"] = daemon_running;
  j["backlog_events"] = stats.events;
  j["backlog_bytes"] = stats.bytes;
  j["max_bytes"] = stats.max_bytes;
  j["oldest_event_age_ms"] = OldestAgeMs(*this);
  j["first_seq"] = stats.first_seq;
  j["last_seq"] = stats.last_seq;
  j["upstreams"] = nlohmann::ordered_json::array();
  for (const storage::CursorStats& c : stats.cursors) {
    j["upstreams"].push_back(
        {{"name", c.name},
         {"cursor", c.cursor},
         {"backlog_events", c.events},
         {"backlog_bytes", c.bytes},
         {"oldest_event_age_ms", AgeMs(now_ms, c.events, c.oldest_received_ms)},
         {"dropped_events", c.dropped_events},
         {"gap_records", c.gap_markers}});
  }
  j["retained_events"] = stats.retained_events;
  j["retained_bytes"] = stats.retained_bytes;
  j["replays"] = nlohmann::ordered_json::array();
  for (const storage::ReplayRequest& r : replays) {
    j["replays"].push_back({{"id", r.id},
                            {"upstream", r.upstream},
                            {"from_seq", r.from_seq},
                            {"through_seq", r.through_seq},
                            {"position", r.position},
                            {"done", r.done}});
  }
  j["dropped_events"] = stats.dropped_events;
  j["journal_pending"] = journal_pending;
  j["dead_letters"] = stats.dead_letters;
  j["dead_letter_bytes"] = stats.dead_letter_bytes;
  j["dropped_dead_letters"] = stats.dropped_dead_letters;
  j["log_id"] = log_id;
  j["file_bytes"] = file_bytes;
  return j.dump(2);
}

}  // namespace sluice::gateway
