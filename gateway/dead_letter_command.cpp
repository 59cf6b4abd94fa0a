// SPDX-License-Identifier: Apache-2.0

#include "gateway/dead_letter_command.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <sys/stat.h>

#include <cstdio>
#include <ctime>
#include <span>

namespace sluice::gateway {

namespace {

// UTC, millisecond precision, ISO 8601.
std::string Utc(int64_t unix_ms) {
  const time_t secs = static_cast<time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>((unix_ms % 1000 + 1000) % 1000));
  return buf;
}

// Valid UTF-8 without control characters other than tab, CR and LF: shown as it is.
bool Printable(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) return false;
      ++i;
      continue;
    }
    size_t len = 0;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    if (c >= 0xe0 && c <= 0xef) len = 3;
    if (c >= 0xf0 && c <= 0xf4) len = 4;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

// `xxd`-style: offset, 16 bytes in hex, the printable ASCII.
void HexDump(const std::string& s, std::ostream& out) {
  char line[100];
  for (size_t off = 0; off < s.size(); off += 16) {
    int n = std::snprintf(line, sizeof line, "%08zx: ", off);
    std::string ascii;
    for (size_t k = 0; k < 16; ++k) {
      if (off + k < s.size()) {
        const auto c = static_cast<unsigned char>(s[off + k]);
        n += std::snprintf(line + n, sizeof line - n, "%02x%s", c, k % 2 ? " " : "");
        ascii.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
      } else {
        n += std::snprintf(line + n, sizeof line - n, "  %s", k % 2 ? " " : "");
      }
    }
    out << line << ' ' << ascii << '\n';
  }
}

// One line, for `list`: control characters in a topic or reason must not break the table.
std::string OneLine(const std::string& s) {
  std::string out;
  for (char c : s) out.push_back(static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  return out;
}

std::shared_ptr<spdlog::logger> CommandLogger() {
  // Warnings (a migration, a refused file) reach the operator; the open's info line does not.
  auto logger = std::make_shared<spdlog::logger>("dead-letters",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(spdlog::level::warn);
  logger->set_pattern("sluice: %v");
  return logger;
}

}  // namespace

DeadLetterCommand::DeadLetterCommand(std::string log_path, std::ostream& out)
    : path_(std::move(log_path)), out_(out) {}

Status DeadLetterCommand::OpenReadOnly(std::unique_ptr<storage::SqliteEventLog>* log) {
  storage::SqliteEventLogOptions o;
  o.path = path_;
  o.read_only = true;
  o.logger = CommandLogger();
  return storage::SqliteEventLog::Open(std::move(o), log);
}

Status DeadLetterCommand::OpenForWrite(std::unique_ptr<storage::SqliteEventLog>* log) {
  // A read-write open creates a missing log; a command must not.
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || st.st_size == 0)
    return Status::NotFound("no event log at " + path_);
  storage::SqliteEventLogOptions o;
  o.path = path_;
  o.logger = CommandLogger();
  // Replay and purge never need room (a dead letter accounts for more than the event it
  // becomes), so the configured max_bytes does not matter here; checkpoints run inline.
  o.checkpoint_inline = true;
  // The upstreams' cursors as the file has them: this command knows no configuration, and must
  // neither remove a cursor nor add one.
  o.cursors.clear();
  Status s = storage::SqliteEventLog::Open(std::move(o), log);
  if (s.code() == Status::Code::kUnavailable) {
    return Status::Unavailable("sluice is running on this log: " + s.message() +
                               ". Stop it first (systemctl stop sluice), then run the command "
                               "again; list and show work while it runs");
  }
  return s;
}

Status DeadLetterCommand::List(uint64_t after_seq, size_t limit) {
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = OpenReadOnly(&log);
  if (!s.ok()) return s;
  std::vector<storage::DeadLetterRow> rows;
  s = log->ReadDeadLetters(after_seq, limit, &rows);
  if (!s.ok()) return s;
  const storage::LogStats st = log->Stats();
  out_ << "SEQ\tRECEIVED\tFAILED\tBYTES\tUPSTREAM\tTOPIC\tREASON\n";
  for (const auto& r : rows) {
    out_ << r.event.seq << '\t' << Utc(r.event.received_ms) << '\t' << Utc(r.failed_ms) << '\t'
         << r.event.payload.size() << '\t' << OneLine(r.upstream) << '\t' << OneLine(r.event.topic)
         << '\t' << (r.error.empty() ? "(not kept: the log was full)" : OneLine(r.error)) << '\n';
  }
  out_ << rows.size() << " of " << st.dead_letters << " dead letters shown";
  if (rows.size() >= limit && limit > 0 && st.dead_letters > rows.size())
    out_ << " (--after " << rows.back().event.seq << " for the next ones)";
  out_ << "; " << st.dropped_dead_letters << " dropped by drop-oldest since the log was created\n";
  return Status::Ok();
}

Status DeadLetterCommand::Show(uint64_t seq, bool hex) {
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = OpenReadOnly(&log);
  if (!s.ok()) return s;
  storage::DeadLetterRow r;
  s = log->ReadDeadLetter(seq, &r);
  if (!s.ok()) return s;
  out_ << "seq       " << r.event.seq << "\n";
  out_ << "received  " << Utc(r.event.received_ms) << "\n";
  out_ << "failed    " << Utc(r.failed_ms) << "\n";
  out_ << "topic     " << OneLine(r.event.topic) << "\n";
  out_ << "upstream  " << OneLine(r.upstream) << "\n";
  out_ << "qos       " << r.event.qos << "\n";
  out_ << "retained  " << (r.event.retained ? "yes" : "no") << "\n";
  out_ << "reason    " << (r.error.empty() ? "(not kept: the log was full)" : OneLine(r.error))
       << "\n";
  const bool text = !hex && Printable(r.event.payload);
  out_ << "payload   " << r.event.payload.size() << " bytes" << (text ? ", text:" : ", hex:")
       << "\n";
  if (text) {
    out_ << r.event.payload;
    if (!r.event.payload.empty() && r.event.payload.back() != '\n') out_ << '\n';
  } else {
    HexDump(r.event.payload, out_);
  }
  return Status::Ok();
}

Status DeadLetterCommand::Replay(const std::vector<uint64_t>& seqs, bool all) {
  if (all == !seqs.empty()) return Status::InvalidArgument("name dead letters by seq, or --all");
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = OpenForWrite(&log);
  if (!s.ok()) return s;
  const uint64_t waiting = log->Stats().events;
  std::vector<std::pair<uint64_t, uint64_t>> replayed;
  s = log->ReplayDeadLetters(seqs, all, &replayed);
  if (!s.ok()) return s;
  size_t appended = 0;
  for (const auto& [old_seq, new_seq] : replayed) {
    if (new_seq == 0) {
      out_ << "dead letter " << old_seq << ": its event still waits in the log and is sent again "
           << "from its place\n";
    } else {
      out_ << "dead letter " << old_seq << " -> event " << new_seq << "\n";
      ++appended;
    }
  }
  out_ << "replayed " << replayed.size() << " dead letters: " << appended
       << " appended at the end of the log, after the " << waiting
       << " events already waiting; they are forwarded when sluice runs\n";
  return Status::Ok();
}

Status DeadLetterCommand::Purge(const std::vector<uint64_t>& seqs, bool all) {
  if (all == !seqs.empty()) return Status::InvalidArgument("name dead letters by seq, or --all");
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = OpenForWrite(&log);
  if (!s.ok()) return s;
  uint64_t purged = 0;
  s = log->PurgeDeadLetters(seqs, all, &purged);
  if (!s.ok()) return s;
  out_ << "purged " << purged << " dead letters\n";
  return Status::Ok();
}

}  // namespace sluice::gateway
