#include "bench/log_watcher.h"

#include <sqlite3.h>

#include <fstream>
#include <iomanip>
#include <memory>
#include <thread>

#include "bench/bench_payload.h"

namespace sluice::bench {

Status LogWatcher::Run(nlohmann::ordered_json* result) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(options_.db_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  if (rc != SQLITE_OK) {
    return Status::IoError("watch-log: cannot open " + options_.db_path + ": " +
                           sqlite3_errstr(rc));
  }
  sqlite3_busy_timeout(db.get(), 1000);
  sqlite3_stmt* raw_st = nullptr;
  // The events that carried the highest numbers may already be confirmed and deleted, so the
  // cursor counts as well (as in SqliteEventLog's own recovery of the next number).
  const char* sql =
      "SELECT (SELECT COALESCE(max(seq), 0) FROM events), "
      "(SELECT COALESCE(max(seq), 0) FROM cursors)";
  if (sqlite3_prepare_v2(db.get(), sql, -1, &raw_st, nullptr) != SQLITE_OK) {
    return Status::IoError("watch-log: " + options_.db_path + ": " + sqlite3_errmsg(db.get()));
  }
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> st(raw_st, &sqlite3_finalize);
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
    sqlite3_reset(st.get());
    const int step = sqlite3_step(st.get());
    const int64_t now = NowUnixMicros();
    if (step == SQLITE_ROW) {
      cursor = static_cast<uint64_t>(sqlite3_column_int64(st.get(), 1));
      last = std::max(static_cast<uint64_t>(sqlite3_column_int64(st.get(), 0)), cursor);
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
    } else if (step != SQLITE_BUSY && step != SQLITE_LOCKED) {
      return Status::IoError("watch-log: reading " + options_.db_path + ": " +
                             sqlite3_errmsg(db.get()));
    }
    sqlite3_reset(st.get());
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
