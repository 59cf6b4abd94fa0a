// SPDX-License-Identifier: Apache-2.0

#include "storage/sqlite_handle.h"

namespace sluice::storage {

Status SqliteHandle::Open(const std::string& path, int flags, const std::string& vfs) {
  Close();
  path_ = path;
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX,
                           vfs.empty() ? nullptr : vfs.c_str());
  if (rc != SQLITE_OK) {
    Status s = Error(rc, "opening the database");
    Close();
    return s;
  }
  sqlite3_extended_result_codes(db_, 1);
  // Another process (e.g. `sluice status`) may hold a read lock briefly; wait rather than fail.
  sqlite3_busy_timeout(db_, 5000);
  return Status::Ok();
}

void SqliteHandle::Close() {
  begin_ = Statement();
  commit_ = Statement();
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Status SqliteHandle::Exec(std::string_view sql) {
  char* err = nullptr;
  const std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string what = "executing '" + text + "'";
    if (err != nullptr) sqlite3_free(err);
    return Error(rc, what);
  }
  return Status::Ok();
}

Status SqliteHandle::BeginImmediate() {
  return StepCached("BEGIN IMMEDIATE", &begin_);
}

Status SqliteHandle::Commit() {
  return StepCached("COMMIT", &commit_);
}

Status SqliteHandle::StepCached(const char* sql, Statement* stmt) {
  if (stmt->get() == nullptr) {
    Status s = Prepare(sql, stmt);
    if (!s.ok()) return s;
  }
  const int rc = sqlite3_step(stmt->get());
  // Before the reset, so that the message has the connection's own detail for this error.
  Status s = rc == SQLITE_DONE ? Status::Ok() : Error(rc, std::string("executing '") + sql + "'");
  sqlite3_reset(stmt->get());
  return s;
}

Status SqliteHandle::Prepare(std::string_view sql, Statement* stmt) {
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, stmt->out(), nullptr);
  if (rc != SQLITE_OK) return Error(rc, "preparing '" + std::string(sql) + "'");
  return Status::Ok();
}

Status SqliteHandle::QueryInt(std::string_view sql, int64_t* value) {
  Statement stmt;
  Status s = Prepare(sql, &stmt);
  if (!s.ok()) return s;
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) {
    *value = sqlite3_column_int64(stmt.get(), 0);
    return Status::Ok();
  }
  if (rc == SQLITE_DONE) {
    *value = 0;
    return Status::Ok();
  }
  return Error(rc, "running '" + std::string(sql) + "'");
}

Status SqliteHandle::Error(int rc, std::string_view what) const {
  std::string msg = std::string(what) + " on " + path_ + ": " + sqlite3_errstr(rc);
  if (db_ != nullptr && sqlite3_errcode(db_) == rc) {
    const char* detail = sqlite3_errmsg(db_);
    if (detail != nullptr && msg.find(detail) == std::string::npos)
      msg += std::string(" (") + detail + ")";
  }
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_FULL:
      return Status::Full(msg);
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG:
    case SQLITE_CONSTRAINT:
      return Status::InvalidArgument(msg);
    default:
      return Status::IoError(msg);
  }
}

}  // namespace sluice::storage
