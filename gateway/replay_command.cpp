// SPDX-License-Identifier: Apache-2.0

#include "gateway/replay_command.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>

#include "storage/sqlite_event_log.h"

namespace sluice::gateway {

namespace {

Status BadSince(std::string_view text) {
  return Status::InvalidArgument(
      fmt::format("--since '{}': expected an RFC 3339 UTC time such as 2026-12-05T10:00:00Z or a "
                  "duration before now such as 30s, 90m, 2h, 1d",
                  text));
}

std::string FormatUtc(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

Status ParseSince(std::string_view text, int64_t now_ms, int64_t* since_ms) {
  if (text.empty()) return BadSince(text);
  const char unit = text.back();
  if (unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
    int64_t n = 0;
    const char* end = text.data() + text.size() - 1;
    auto [p, ec] = std::from_chars(text.data(), end, n);
    if (ec != std::errc() || p != end || n < 0) return BadSince(text);
    const int64_t unit_ms = unit == 's'   ? 1000
                            : unit == 'm' ? 60'000
                            : unit == 'h' ? 3'600'000
                                          : 86'400'000;
    if (n > now_ms / unit_ms) return BadSince(text);
    *since_ms = now_ms - n * unit_ms;
    return Status::Ok();
  }
  std::tm tm{};
  const std::string s(text);
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr || std::string_view(rest) != "Z") return BadSince(text);
  const std::time_t t = timegm(&tm);
  if (t < 0) return BadSince(text);
  *since_ms = static_cast<int64_t>(t) * 1000;
  return Status::Ok();
}

ReplayCommand::ReplayCommand(std::string log_path, const Clock* clock, std::ostream& out)
    : path_(std::move(log_path)), clock_(clock), out_(out) {}

Status ReplayCommand::Request(const std::string& upstream, std::optional<uint64_t> from_seq,
                              const std::string& since) {
  if (from_seq.has_value() == !since.empty()) {
    return Status::InvalidArgument("replay: give exactly one of --from SEQ and --since TIME");
  }
  storage::ReplayRequestOptions o;
  o.path = path_;
  o.upstream = upstream;
  o.clock = clock_;
  if (from_seq.has_value()) {
    if (*from_seq == 0) return Status::InvalidArgument("replay: --from starts at seq 1");
    o.from_seq = *from_seq;
  } else {
    int64_t since_ms = 0;
    Status s = ParseSince(since, clock_->NowUnixMillis(), &since_ms);
    if (!s.ok()) return s;
    o.since_ms = since_ms;
  }
  storage::ReplayRequest r;
  Status s = storage::SqliteEventLog::RequestReplay(o, &r);
  if (!s.ok()) return s;
  out_ << fmt::format(
      "replay {} requested at {}: seq {} to {} to upstream '{}'; a running sluice "
      "starts it within a second, otherwise the next start does. Progress: sluice status.\n",
      r.id, FormatUtc(r.created_ms), r.from_seq, r.through_seq, r.upstream);
  return Status::Ok();
}

}  // namespace sluice::gateway
