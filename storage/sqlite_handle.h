// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::storage {

// RAII owner of one prepared statement. Resets on destruction is not needed: the statement is
// finalized. Not thread-safe; used under its connection's lock.
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept {
    if (this != &o) {
      sqlite3_finalize(stmt_);
      stmt_ = o.stmt_;
      o.stmt_ = nullptr;
    }
    return *this;
  }

  sqlite3_stmt* get() const { return stmt_; }
  sqlite3_stmt** out() { return &stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// RAII owner of one SQLite connection, with the few helpers the log needs. Errors come back as
// Status values whose message names the database file and the statement that failed.
class SqliteHandle {
 public:
  SqliteHandle() = default;
  ~SqliteHandle() { Close(); }
  SqliteHandle(const SqliteHandle&) = delete;
  SqliteHandle& operator=(const SqliteHandle&) = delete;

  // `vfs`: a registered SQLite VFS name, empty for the default.
  Status Open(const std::string& path, int flags, const std::string& vfs = std::string());
  void Close();

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }

  Status Exec(std::string_view sql);
  // BEGIN IMMEDIATE and COMMIT, each prepared once on first use: the log opens a transaction per
  // group commit and per stored cursor, and parsing the two statements every time was most of
  // the cost of a stored cursor beside the commit's own writes (docs/performance.md, "Drain path
  // profile").
  Status BeginImmediate();
  Status Commit();
  Status Prepare(std::string_view sql, Statement* stmt);
  // Runs a statement that returns one integer (e.g. a PRAGMA).
  Status QueryInt(std::string_view sql, int64_t* value);

  // Turns an SQLite result code into a Status that says what was being done and on which file.
  Status Error(int rc, std::string_view what) const;

 private:
  // Steps *stmt (prepared from `sql` if it is not yet) once, to its end.
  Status StepCached(const char* sql, Statement* stmt);

  sqlite3* db_ = nullptr;
  std::string path_;
  Statement begin_;   // finalized by Close, before the connection
  Statement commit_;  // likewise
};

}  // namespace sluice::storage
