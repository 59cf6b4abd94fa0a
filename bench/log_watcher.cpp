// SPDX-License-Identifier: Apache-2.0

#include "bench/log_watcher.h"

#include <spdlog/sinks/null_sink.h>

#include <fstream>
#include <iomanip>
#include <memory>
#include <thread>

#include "bench/bench_payload.h"
#include "storage/sqlite_event_log.h"

namespace sluice::bench {

Status LogWatcher::Run(nlohmann::ordered_json* result) {
  storage::SqliteEventLogOptions o;
  o.path = options_.db_path;
  o.read_only = true;
  o.cursors.clear();  // whatever upstreams the daemon has
  o.logger = std::make_shared<spdlog::logger>("watch-log",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = storage::SqliteEventLog::Open(std::move(o), &log);
  if (!s.ok()) return Status::IoError("watch-log: " + s.ToString());
  std::ofstream timeline;
  if (!options_.timeline_csv.empty()) timeline.open(options_.timeline_csv);
  // Unix seconds to the millisecond; the default 6 significant digits would cut them to ~15 min.
  timeline << std::fixed << std::setprecision(3);

  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  uint64_t last = 0;
  uint64_t cursor = 0;
  bool reached = false;
  int64_t reached_us = 0;
  // The cursor's first move marks when the upstream began confirming (drain start).
  bool have_first = false;
  uint64_t first_cursor = 0;
  int64_t cursor_moved_us = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    s = log->RefreshPositions();
    if (!s.ok()) return Status::IoError("watch-log: " + s.ToString());
    const storage::LogStats st = log->Stats();
    const int64_t now = NowUnixMicros();
    cursor = st.cursor;
    last = st.last_seq;
    if (!have_first) {
      have_first = true;
      first_cursor = cursor;
    } else if (cursor_moved_us == 0 && cursor != first_cursor) {
      cursor_moved_us = now;
    }
    if (timeline.is_open())
      timeline << static_cast<double>(now) / 1e6 << ' ' << last << ' ' << cursor << '\n';
    const bool last_ok = options_.until_last_seq == 0 || last >= options_.until_last_seq;
    const bool cursor_ok = options_.until_cursor == 0 || cursor >= options_.until_cursor;
    if (last_ok && cursor_ok) {
      reached = true;
      reached_us = now;
      break;
    }
    std::this_thread::sleep_for(options_.interval);
  }
  auto& r = *result;
  r["reached"] = reached;
  r["reached_us"] = reached_us;
  r["last_seq"] = last;
  r["cursor"] = cursor;
  r["first_cursor"] = first_cursor;
  r["cursor_moved_us"] = cursor_moved_us;
  return Status::Ok();
}

}  // namespace sluice::bench
