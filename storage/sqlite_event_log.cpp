// SPDX-License-Identifier: Apache-2.0

#include "storage/sqlite_event_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

namespace sluice::storage {

namespace {

constexpr char kSqliteMagic[] = "SQLite format 3";  // the first 16 bytes of every SQLite file

// The one upstream of formats 1 and 2: its cursor row and its dead letters keep this name.
constexpr char kLegacyCursor[] = "kafka";

constexpr char kDeadLettersTable[] =
    "CREATE TABLE dead_letters("
    " seq INTEGER NOT NULL,"
    " upstream TEXT NOT NULL,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " error TEXT NOT NULL,"
    " failed_ms INTEGER NOT NULL,"
    " retained INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(seq, upstream))";

constexpr char kReplaysTable[] =
    "CREATE TABLE replays("
    " id INTEGER PRIMARY KEY,"
    " upstream TEXT NOT NULL,"
    " from_seq INTEGER NOT NULL,"
    " through_seq INTEGER NOT NULL,"
    " position INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " done INTEGER NOT NULL DEFAULT 0)";

// Format 4 (docs/log-format.md). The columns of `events` that a migration added come last,
// because ALTER TABLE ... ADD COLUMN appends: `retained` (format 2), `kind` (format 3),
// `packet_id` (format 4).
const char* kSchema[] = {
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " retained INTEGER NOT NULL DEFAULT 0,"
    " kind INTEGER NOT NULL DEFAULT 0,"
    " packet_id INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE cursors(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    kDeadLettersTable,
    "CREATE TABLE log_identity(id TEXT NOT NULL)",
    kReplaysTable,
};

// Format 1 -> 2; followed by the identity row.
const char* kMigrateFrom1[] = {
    "ALTER TABLE events ADD COLUMN retained INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE dead_letters ADD COLUMN retained INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE log_identity(id TEXT NOT NULL)",
};

// Format 2 -> 3. A primary key cannot be altered, so dead_letters is copied into a new table;
// its rows were refused by the only upstream of format 2, whose cursor is named "kafka".
const char* kMigrateFrom2[] = {
    "ALTER TABLE events ADD COLUMN kind INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE dead_letters RENAME TO dead_letters_v2",
    kDeadLettersTable,
    "INSERT INTO dead_letters(seq, upstream, received_ms, qos, topic, payload, error, failed_ms, "
    "retained) SELECT seq, 'kafka', received_ms, qos, topic, payload, error, failed_ms, retained "
    "FROM dead_letters_v2",
    "DROP TABLE dead_letters_v2",
    kReplaysTable,
};

// Format 3 -> 4: rows written before have no packet id, and so are never taken for the stored copy
// of a redelivered message.
const char* kMigrateFrom3[] = {
    "ALTER TABLE events ADD COLUMN packet_id INTEGER NOT NULL DEFAULT 0",
};

// A row's accounted bytes without Event::kRowOverheadBytes; CAST so that a TEXT topic counts in
// bytes, not characters.
constexpr char kRowBytesSql[] = "(length(CAST(topic AS BLOB)) + length(payload))";
// How many dead-letter rows (one per refusing upstream) hold a copy of the row of `events`.
constexpr char kDeadCopiesSql[] = "(SELECT count(*) FROM dead_letters d WHERE d.seq = events.seq)";

// What a dead-letter row of table alias `t` counts for against max_bytes: its error text, plus
// its copy of the event's accounted bytes once the event has left `events` (until then the event
// already counts them).
std::string DeadLetterCostSql(const std::string& t) {
  return "length(CAST(" + t + ".error AS BLOB)) + CASE WHEN EXISTS(SELECT 1 FROM events e WHERE " +
         "e.seq = " + t + ".seq) THEN 0 ELSE length(CAST(" + t + ".topic AS BLOB)) + length(" + t +
         ".payload) + " + std::to_string(Event::kRowOverheadBytes) + " END";
}

std::string DroppedEventsKey(const std::string& cursor) {
  return "dropped_events:" + cursor;
}
std::string GapMarkersKey(const std::string& cursor) {
  return "gap_markers:" + cursor;
}

// 128 random bits as 32 lowercase hex digits.
Status RandomId(std::string* out) {
  unsigned char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    const ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(std::string("cannot read random bytes for the log identity: ") +
                             std::strerror(errno));
    }
    got += static_cast<size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out->clear();
  for (unsigned char b : bytes) {
    out->push_back(kHex[b >> 4]);
    out->push_back(kHex[b & 0xf]);
  }
  return Status::Ok();
}

std::string Errno(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// fsyncs `dir` and every directory above it up to and including `existing`, the deepest one that
// was there before: each new entry is made durable in its parent.
Status SyncNewDirectories(const std::filesystem::path& dir, const std::filesystem::path& existing) {
  for (std::filesystem::path p = dir;; p = p.parent_path()) {
    const std::string name = p.empty() ? std::string(".") : p.string();
    const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::IoError(Errno("cannot open directory " + name + " to sync it"));
    const int rc = ::fsync(fd);
    const int saved = errno;
    ::close(fd);
    errno = saved;
    if (rc != 0) return Status::IoError(Errno("cannot sync directory " + name));
    if (p == existing || p.empty() || p == p.parent_path()) return Status::Ok();
  }
}

// Binds text or blob without copying; the caller keeps the bytes alive until the step.
int BindBlob(sqlite3_stmt* st, int i, const std::string& bytes) {
  return sqlite3_bind_blob64(st, i, bytes.data(), bytes.size(), SQLITE_STATIC);
}
int BindText(sqlite3_stmt* st, int i, std::string_view text) {
  return sqlite3_bind_text64(st, i, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}
void BindU64(sqlite3_stmt* st, int i, uint64_t v) {
  sqlite3_bind_int64(st, i, static_cast<int64_t>(std::min<uint64_t>(v, INT64_MAX)));
}
uint64_t ColumnU64(sqlite3_stmt* st, int i) {
  const int64_t v = sqlite3_column_int64(st, i);
  return v < 0 ? 0 : static_cast<uint64_t>(v);
}

std::string ColumnBytes(sqlite3_stmt* st, int i) {
  const void* p = sqlite3_column_blob(st, i);
  int n = sqlite3_column_bytes(st, i);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

uint64_t Sub(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

std::string JoinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "(none)" : out;
}

// Rolls back an open transaction unless Commit() was reached.
class Transaction {
 public:
  explicit Transaction(SqliteHandle* db) : db_(db) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_->db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status Begin() {
    Status s = db_->BeginImmediate();
    open_ = s.ok();
    return s;
  }
  Status Commit() {
    Status s = db_->Commit();
    if (s.ok()) open_ = false;
    return s;
  }

 private:
  SqliteHandle* db_;
  bool open_ = false;
};

// The run of oldest rows that frees `need_bytes`: steps `st` (columns: seq, bytes freed by the
// row, rows oldest first) until the bytes added up reach it. SQLite steps lazily, so only that
// run is read. Returns the last sqlite3_step code (SQLITE_ROW when it stopped early).
struct OldestRun {
  uint64_t first = 0;
  uint64_t through = 0;
  uint64_t count = 0;
};
int StepOldestRun(sqlite3_stmt* st, uint64_t need_bytes, uint64_t* freed, OldestRun* run) {
  sqlite3_reset(st);
  int rc = SQLITE_DONE;
  int64_t net = 0;  // a row whose bytes go to dead-letter copies frees nothing or less
  while (net < static_cast<int64_t>(std::min<uint64_t>(need_bytes, INT64_MAX)) &&
         (rc = sqlite3_step(st)) == SQLITE_ROW) {
    run->through = ColumnU64(st, 0);
    if (run->count == 0) run->first = run->through;
    net += sqlite3_column_int64(st, 1);
    ++run->count;
  }
  sqlite3_reset(st);
  *freed = net > 0 ? static_cast<uint64_t>(net) : 0;
  return rc;
}

// Reads and checks the identification of an existing file on a connection that is not the log's
// (replay requests): a sluice log of exactly the current format.
Status CheckCurrentFormat(SqliteHandle* db, const std::string& path, int32_t app_id_want,
                          int version_want, int64_t* version_out) {
  int64_t app_id = 0;
  Status s = db->QueryInt("PRAGMA application_id", &app_id);
  if (!s.ok())
    return Status::Corruption("cannot read " + path + " as an SQLite database (" + s.message() +
                              ")");
  if (app_id != app_id_want)
    return Status::Corruption(path + " is not a sluice event log (application_id " +
                              std::to_string(app_id) + ")");
  s = db->QueryInt("PRAGMA user_version", version_out);
  if (!s.ok()) return s;
  if (*version_out > version_want) {
    return Status::Corruption(path + " has log format version " + std::to_string(*version_out) +
                              ", newer than this sluice understands (" +
                              std::to_string(version_want) + "); upgrade sluice");
  }
  return Status::Ok();
}

}  // namespace

const char* ToString(Overflow o) {
  return o == Overflow::kDropOldest ? "drop-oldest" : "reject-new";
}
const char* ToString(Sync s) {
  return s == Sync::kFull ? "full" : "normal";
}

SqliteEventLog::SqliteEventLog(SqliteEventLogOptions options)
    : options_(std::move(options)),
      log_(options_.logger),
      clock_(options_.clock != nullptr ? options_.clock : &system_clock_) {
  state_.stats.max_bytes = options_.max_bytes;
}

SqliteEventLog::~SqliteEventLog() {
  // The thread may be inside a checkpoint; it finishes before the writer's connection, closing
  // last, checkpoints the rest and removes the WAL.
  if (checkpointer_) checkpointer_->Stop();
  {
    std::lock_guard<std::mutex> r(read_mu_);
    read_from_ = Statement();
    recent_ingress_ = Statement();
    reader_.Close();
  }
  {
    std::lock_guard<std::mutex> w(write_mu_);
    ReportDropsLocked();
    for (Statement* st :
         {&insert_event_,    &delete_through_,      &delete_unkept_through_, &delete_range_,
          &upsert_cursor_,   &insert_dead_,         &oldest_waiting_,        &oldest_retained_,
          &oldest_dead_,     &delete_dead_through_, &delete_dead_seq_,       &delete_dead_one_,
          &event_exists_,    &upsert_meta_,         &count_range_,           &first_after_,
          &pending_replays_, &advance_replay_,      &stored_cursors_,        &last_seq_,
          &count_retained_,  &delete_retained_}) {
      *st = Statement();
    }
    writer_.Close();
  }
  if (lock_fd_ >= 0) close(lock_fd_);
}

Status SqliteEventLog::Open(SqliteEventLogOptions options, std::unique_ptr<SqliteEventLog>* out) {
  if (options.path.empty()) return Status::InvalidArgument("storage path is empty");
  if (!options.logger) return Status::InvalidArgument("SqliteEventLog needs a logger");
  for (size_t i = 0; i < options.cursors.size(); ++i) {
    const std::string& name = options.cursors[i];
    if (name.empty()) return Status::InvalidArgument("a cursor (upstream) name is empty");
    if (std::find(options.cursors.begin(), options.cursors.begin() + i, name) !=
        options.cursors.begin() + i)
      return Status::InvalidArgument("cursor (upstream) '" + name + "' is named twice");
  }
  std::unique_ptr<SqliteEventLog> log(new SqliteEventLog(std::move(options)));
  Status s = log->OpenFiles();
  if (!s.ok()) return s;
  *out = std::move(log);
  return Status::Ok();
}

Status SqliteEventLog::OpenFiles() {
  namespace fs = std::filesystem;
  const std::string& path = options_.path;
  const fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  if (!options_.read_only && !dir.empty() && !fs::exists(dir, ec)) {
    fs::path existing = dir.parent_path();
    while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
    fs::create_directories(dir, ec);
    if (ec)
      return Status::IoError("cannot create the log directory " + dir.string() + ": " +
                             ec.message());
    // SQLite fsyncs the directory that holds the log, but not the entries of directories created
    // here: without this a power cut could lose the new directories, and the log with them, after
    // events in it were acknowledged.
    Status s = SyncNewDirectories(dir, existing);
    if (!s.ok()) return s;
  }

  if (!options_.read_only) {
    const std::string lock_path = path + ".lock";
    lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (lock_fd_ < 0) return Status::IoError(Errno("cannot open lock file " + lock_path));
    if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        char buf[24] = {};
        const ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
        const long pid = n > 0 ? std::strtol(buf, nullptr, 10) : 0;
        return Status::Unavailable("the log " + path + " is in use by another sluice process (" +
                                   (pid > 0 ? "pid " + std::to_string(pid) + ", " : "") + "lock " +
                                   lock_path + ")");
      }
      return Status::IoError(Errno("cannot lock " + lock_path));
    }
    // The holder's pid, for the message above in a second process (`sluice dead-letters purge`
    // beside the daemon). Only read while the lock is held, so a stale one is never shown; a
    // failure to write it costs only that detail.
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock_fd_, 0) != 0 ||
        ::pwrite(lock_fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      log_->debug("cannot write the pid into {}: {}", lock_path, std::strerror(errno));
    }
  }

  struct stat st {};
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Status::IoError(Errno("cannot stat " + path));
  if (exists && !S_ISREG(st.st_mode))
    return Status::InvalidArgument(path + " is not a regular file");
  const bool fresh = !exists || st.st_size == 0;
  if (fresh && options_.read_only) return Status::NotFound("no event log at " + path);

  if (!fresh) {
    // Look at the header ourselves before SQLite touches the file, so that a file that is not a
    // database at all is refused without SQLite creating a journal or WAL beside it.
    std::ifstream in(path, std::ios::binary);
    char header[16] = {};
    in.read(header, sizeof header);
    // Except beside a hot rollback journal: a power cut while a new log is switched to WAL can
    // leave page 1 half-written, and SQLite restores it from the journal when it opens the file.
    struct stat journal {};
    const bool hot_journal =
        ::stat((path + "-journal").c_str(), &journal) == 0 && journal.st_size > 0;
    if (!hot_journal && (!in || std::memcmp(header, kSqliteMagic, sizeof kSqliteMagic) != 0)) {
      return Status::Corruption(path +
                                " is not an SQLite database (bad header); refusing to use or "
                                "change it. Move it away or point storage.path elsewhere");
    }
  }

  const int rw = options_.read_only ? SQLITE_OPEN_READONLY
                                    : SQLITE_OPEN_READWRITE | (fresh ? SQLITE_OPEN_CREATE : 0);
  Status s = writer_.Open(path, rw, options_.vfs);
  if (!s.ok()) return s;

  if (fresh) {
    s = CreateSchema();
  } else {
    s = VerifyExisting();
    // A read-only open (sluice status beside an older daemon) reads the old format as it is.
    if (s.ok() && file_version_ < kSchemaVersion && !options_.read_only)
      s = MigrateSchema(file_version_);
  }
  if (s.ok()) s = LoadIdentity();
  if (!s.ok()) return s;

  if (!options_.read_only) {
    // WAL: appends write sequentially to the WAL, readers never block the writer.
    // synchronous=NORMAL in WAL mode fsyncs only at checkpoints: a process crash loses nothing
    // committed, a power cut may lose the last transactions. FULL fsyncs the WAL on every commit.
    s = writer_.Exec("PRAGMA journal_mode=WAL");
    if (s.ok())
      s = writer_.Exec(options_.sync == Sync::kFull ? "PRAGMA synchronous=FULL"
                                                    : "PRAGMA synchronous=NORMAL");
    // Keeps the WAL file from growing without bound after a long burst (flash space).
    if (s.ok()) s = writer_.Exec("PRAGMA journal_size_limit=67108864");
    if (s.ok() && options_.checkpoint_inline) {
      s = writer_.Exec("PRAGMA wal_autocheckpoint=" + std::to_string(options_.checkpoint_pages));
    } else if (s.ok()) {
      // A checkpoint fsyncs the WAL and the database (5-90 ms measured on a shared disk); inside
      // the commit it would hold up every MQTT acknowledgement queued behind it. The pragma
      // replaces the WAL hook, so it comes first.
      s = writer_.Exec("PRAGMA wal_autocheckpoint=0");
      WalCheckpointerOptions c;
      c.path = path;
      c.vfs = options_.vfs;
      c.sync_full = options_.sync == Sync::kFull;
      c.threshold_pages = options_.checkpoint_pages;
      c.escalate_pages = options_.checkpoint_truncate_pages;
      // Never called while this thread holds write_mu_: the checkpointer's thread takes it, and
      // the writer only calls into the checkpointer (NoteWalPages), which takes no other lock.
      c.hold_writes = [this] { return std::unique_lock<std::mutex>(write_mu_); };
      c.clock = clock_;
      c.logger = log_;
      if (s.ok()) s = WalCheckpointer::Start(std::move(c), &checkpointer_);
      if (s.ok()) sqlite3_wal_hook(writer_.db(), &SqliteEventLog::OnWalCommit, this);
    }
    if (!s.ok()) return s;
  }

  s = reader_.Open(path, options_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE,
                   options_.vfs);
  if (!s.ok()) return s;
  s = PrepareStatements();
  if (!s.ok()) return s;
  return LoadState();
}

Status SqliteEventLog::VerifyExisting() {
  const std::string& path = options_.path;
  int64_t app_id = 0;
  Status s = writer_.QueryInt("PRAGMA application_id", &app_id);
  if (!s.ok()) {
    return Status::Corruption("cannot read " + path + " as an SQLite database (" + s.message() +
                              "); the file was left untouched");
  }
  if (app_id != kApplicationId) {
    // A power cut during the first start can leave the file with SQLite's header (written when
    // journal_mode=WAL is set) but without the schema transaction. Such a file holds no data, so
    // finishing the creation loses nothing; refusing it would keep the gateway down for good.
    int64_t tables = -1;
    if (app_id == 0 && !options_.read_only &&
        writer_.QueryInt("SELECT count(*) FROM sqlite_schema", &tables).ok() && tables == 0) {
      log_->warn("{} is an empty SQLite database (its creation was interrupted); creating the log",
                 path);
      return CreateSchema();
    }
    return Status::Corruption(path +
                              " is an SQLite database but not a sluice event log "
                              "(application_id " +
                              std::to_string(app_id) + "); refusing to use or change it");
  }
  int64_t version = 0;
  s = writer_.QueryInt("PRAGMA user_version", &version);
  if (!s.ok()) return s;
  if (version > kSchemaVersion) {
    return Status::Corruption(path + " has log format version " + std::to_string(version) +
                              ", newer than this sluice understands (" +
                              std::to_string(kSchemaVersion) + "); upgrade sluice");
  }
  if (version < 1) {
    return Status::Corruption(path + " carries the sluice id but no schema version; refusing it");
  }
  file_version_ = version;

  Statement check;
  s = writer_.Prepare("PRAGMA quick_check", &check);
  if (!s.ok()) return Status::Corruption(s.message() + "; the file was left untouched");
  int rc = sqlite3_step(check.get());
  if (rc != SQLITE_ROW) {
    return Status::Corruption(writer_.Error(rc, "checking the integrity").message() +
                              "; the file was left untouched");
  }
  const char* verdict = reinterpret_cast<const char*>(sqlite3_column_text(check.get(), 0));
  if (verdict == nullptr || std::strcmp(verdict, "ok") != 0) {
    return Status::Corruption(path +
                              " failed SQLite's integrity check: " + (verdict ? verdict : "?") +
                              ". The file was left untouched: move it aside for inspection and "
                              "recovery, or point storage.path at a new file");
  }
  return Status::Ok();
}

Status SqliteEventLog::WriteIdentity(std::string* id) {
  Status s = RandomId(id);
  // The id is 32 hex digits, safe to put into the statement as it is.
  if (s.ok()) s = writer_.Exec("INSERT INTO log_identity(id) VALUES('" + *id + "')");
  return s;
}

Status SqliteEventLog::CreateSchema() {
  // 4 KiB pages match flash erase-block friendly write sizes and SQLite's default.
  Status s = writer_.Exec("PRAGMA page_size=4096");
  if (s.ok()) s = writer_.Exec("PRAGMA journal_mode=WAL");
  if (!s.ok()) return s;
  Transaction txn(&writer_);
  s = txn.Begin();
  for (const char* sql : kSchema) {
    if (s.ok()) s = writer_.Exec(sql);
  }
  std::string id;
  if (s.ok()) s = WriteIdentity(&id);
  if (s.ok()) s = writer_.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
  if (s.ok()) s = writer_.Exec("PRAGMA application_id=" + std::to_string(kApplicationId));
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return s;
  file_version_ = kSchemaVersion;
  log_->info("created event log {} (format version {}, identity {})", options_.path, kSchemaVersion,
             id);
  return s;
}

Status SqliteEventLog::MigrateSchema(int64_t from_version) {
  // Every step in one transaction: a crash leaves either the old file or the new one, never a
  // file with some of the columns, or the columns but no identity.
  Transaction txn(&writer_);
  Status s = txn.Begin();
  std::string id;
  if (from_version < 2) {
    for (const char* sql : kMigrateFrom1) {
      if (s.ok()) s = writer_.Exec(sql);
    }
    if (s.ok()) s = WriteIdentity(&id);
  }
  if (from_version < 3) {
    for (const char* sql : kMigrateFrom2) {
      if (s.ok()) s = writer_.Exec(sql);
    }
  }
  for (const char* sql : kMigrateFrom3) {
    if (s.ok()) s = writer_.Exec(sql);
  }
  if (s.ok()) s = writer_.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
  if (s.ok()) s = txn.Commit();
  // The error names the file and the statement; the file is left at its old version.
  if (!s.ok()) return s;
  file_version_ = kSchemaVersion;
  log_->warn("migrated event log {} from format version {} to {}{}", options_.path, from_version,
             kSchemaVersion, id.empty() ? std::string() : " (new identity " + id + ")");
  return s;
}

Status SqliteEventLog::LoadIdentity() {
  if (file_version_ < 2) return Status::Ok();  // format 1, read-only: it has none yet
  Statement q;
  Status s = writer_.Prepare("SELECT id FROM log_identity", &q);
  if (!s.ok()) return s;
  int rc = sqlite3_step(q.get());
  if (rc == SQLITE_ROW) log_id_ = ColumnBytes(q.get(), 0);
  if (rc == SQLITE_ROW && sqlite3_step(q.get()) == SQLITE_DONE && log_id_.size() == 32)
    return Status::Ok();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return writer_.Error(rc, "reading the log identity");
  return Status::Corruption(options_.path +
                            " has no valid log identity (table log_identity must hold exactly "
                            "one id of 32 hex digits); refusing it");
}

Status SqliteEventLog::PrepareStatements() {
  const std::string bytes = kRowBytesSql;
  // Files of an older format are read as they are only when opened read-only.
  const std::string retained = file_version_ >= 2 ? "retained" : "0";
  const std::string kind = file_version_ >= 3 ? "kind" : "0";
  const std::string packet_id = file_version_ >= 4 ? "packet_id" : "0";
  const std::string columns = "seq, received_ms, qos, topic, payload, " + retained + ", " + kind +
                              ", " + packet_id + " FROM events";
  Status s =
      reader_.Prepare("SELECT " + columns + " WHERE seq > ?1 ORDER BY seq LIMIT ?2", &read_from_);
  // Newest first, so that only the rows asked for are read.
  if (s.ok() && file_version_ >= 4)
    s = reader_.Prepare("SELECT " + columns + " WHERE packet_id != 0 ORDER BY seq DESC LIMIT ?1",
                        &recent_ingress_);
  // Both for the accounting at open (also read-only) and for each acknowledgement: the rows a
  // cursor passes, found through the primary key, so the cost follows the range, not the table.
  if (s.ok())
    s = writer_.Prepare(
        "SELECT count(*), COALESCE(sum(" + bytes + "), 0) FROM events WHERE seq > ?1 AND seq <= ?2",
        &count_range_);
  if (s.ok())
    s = writer_.Prepare("SELECT seq, received_ms FROM events WHERE seq > ?1 ORDER BY seq LIMIT 1",
                        &first_after_);
  if (s.ok()) s = writer_.Prepare("SELECT name, seq FROM cursors ORDER BY name", &stored_cursors_);
  // The next sequence number must exceed every number ever handed out, also when the rows that
  // carried the highest ones have left the log: hence the cursors, drops and dead letters count.
  if (s.ok())
    s = writer_.Prepare(
        "SELECT max((SELECT COALESCE(max(seq), 0) FROM events), (SELECT COALESCE(max(seq), 0) "
        "FROM cursors), (SELECT COALESCE(max(seq), 0) FROM dead_letters), (SELECT "
        "COALESCE(max(value), 0) FROM meta WHERE key = 'dropped_through'))",
        &last_seq_);
  if (s.ok() && file_version_ >= 3)
    s = writer_.Prepare(
        "SELECT id, upstream, from_seq, through_seq, position, created_ms, done FROM replays "
        "WHERE done = 0 ORDER BY id",
        &pending_replays_);
  if (!s.ok() || options_.read_only) return s;
  s = writer_.Prepare(
      "INSERT INTO events(seq, received_ms, qos, topic, payload, retained, kind, packet_id) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
      &insert_event_);
  // The second column: how many dead-letter rows take over the row's bytes once it is gone.
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM events WHERE seq <= ?1 RETURNING " + bytes + ", " + kDeadCopiesSql,
        &delete_through_);
  // Retention: the same, but for the rows kept for RecentIngress (?2: IngressFloorLocked).
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM events WHERE seq <= ?1 AND (packet_id = 0 OR seq < ?2) "
        "RETURNING " +
            bytes + ", " + kDeadCopiesSql,
        &delete_unkept_through_);
  // Without dead letters no row has copies to hand its bytes to, and a plain DELETE after a
  // count is about twice as fast as one with RETURNING, which SQLite buffers row by row in a
  // temporary table first (measured on 100,000 rows: 0.09 s against 0.18 s of CPU). ?2 as in
  // delete_unkept_through_, INT64_MAX to keep nothing.
  if (s.ok())
    s = writer_.Prepare("SELECT count(*), COALESCE(sum(" + bytes +
                            "), 0) FROM events WHERE seq <= ?1 AND (packet_id = 0 OR seq < ?2)",
                        &count_retained_);
  if (s.ok())
    s = writer_.Prepare("DELETE FROM events WHERE seq <= ?1 AND (packet_id = 0 OR seq < ?2)",
                        &delete_retained_);
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 RETURNING seq, kind, "
        "received_ms, topic, " +
            bytes + ", " + kDeadCopiesSql + ", CASE WHEN kind = 1 THEN payload END",
        &delete_range_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO cursors(name, seq) VALUES(?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        &upsert_cursor_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO dead_letters(seq, upstream, received_ms, qos, topic, payload, error, "
        "failed_ms, retained) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        &insert_dead_);
  // Bytes a dropped waiting row frees: a gap marker frees none, since the drop writes the marker
  // again (merged) at its new place.
  if (s.ok())
    s = writer_.Prepare("SELECT seq, CASE WHEN kind = 1 THEN 0 ELSE " + bytes + " + " +
                            std::to_string(Event::kRowOverheadBytes) +
                            " END FROM events WHERE seq > ?1 ORDER BY seq",
                        &oldest_waiting_);
  // Bytes an evicted retained row frees: its own, less a copy per dead-letter row that takes
  // them over; then its receive time, its own bytes (for storage.retain) and its packet id.
  if (s.ok())
    s = writer_.Prepare("SELECT seq, (" + bytes + " + " + std::to_string(Event::kRowOverheadBytes) +
                            ") * (1 - " + kDeadCopiesSql + "), received_ms, " + bytes + " + " +
                            std::to_string(Event::kRowOverheadBytes) +
                            ", packet_id FROM events WHERE seq <= ?1 ORDER BY seq",
                        &oldest_retained_);
  if (s.ok())
    s = writer_.Prepare("SELECT d.seq, " + DeadLetterCostSql("d") +
                            " FROM dead_letters d ORDER BY d.seq, d.upstream",
                        &oldest_dead_);
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM dead_letters WHERE seq <= ?1 RETURNING " + DeadLetterCostSql("dead_letters"),
        &delete_dead_through_);
  const std::string dead_row =
      " RETURNING upstream, received_ms, qos, topic, payload, error, failed_ms, retained, "
      "EXISTS(SELECT 1 FROM events e WHERE e.seq = dead_letters.seq)";
  if (s.ok())
    s = writer_.Prepare("DELETE FROM dead_letters WHERE seq = ?1" + dead_row, &delete_dead_seq_);
  if (s.ok())
    s = writer_.Prepare("DELETE FROM dead_letters WHERE seq = ?1 AND upstream = ?2" + dead_row,
                        &delete_dead_one_);
  if (s.ok()) s = writer_.Prepare("SELECT 1 FROM events WHERE seq = ?1", &event_exists_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO meta(key, value) VALUES(?1, ?2) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        &upsert_meta_);
  if (s.ok())
    s = writer_.Prepare("UPDATE replays SET position = max(position, ?2), done = ?3 WHERE id = ?1",
                        &advance_replay_);
  return s;
}

namespace {

Status MetaValue(SqliteHandle* db, const std::string& key, int64_t* value) {
  Statement q;
  Status s = db->Prepare("SELECT value FROM meta WHERE key = ?1", &q);
  if (!s.ok()) return s;
  BindText(q.get(), 1, key);
  const int rc = sqlite3_step(q.get());
  *value = rc == SQLITE_ROW ? sqlite3_column_int64(q.get(), 0) : 0;
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db->Error(rc, "reading meta " + key);
  return Status::Ok();
}

// `st`: SELECT name, seq FROM cursors.
Status StoredCursors(SqliteHandle* db, sqlite3_stmt* st,
                     std::vector<std::pair<std::string, uint64_t>>* out) {
  sqlite3_reset(st);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    out->emplace_back(ColumnBytes(st, 0), ColumnU64(st, 1));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db->Error(rc, "reading the cursors");
  return Status::Ok();
}

Status QueryU64(SqliteHandle* db, sqlite3_stmt* st, uint64_t* value) {
  sqlite3_reset(st);
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *value = ColumnU64(st, 0);
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return db->Error(rc, "reading the last assigned seq");
  return Status::Ok();
}

}  // namespace

Status SqliteEventLog::ReconcileCursors(std::vector<std::pair<std::string, uint64_t>>* out) {
  std::vector<std::pair<std::string, uint64_t>> stored;
  Status s = StoredCursors(&writer_, stored_cursors_.get(), &stored);
  if (!s.ok()) return s;
  const std::vector<std::string>& want = options_.cursors;
  auto stored_at = [&](const std::string& name) {
    return std::find_if(stored.begin(), stored.end(),
                        [&](const auto& c) { return c.first == name; });
  };
  out->clear();
  if (options_.read_only || want.empty()) {
    for (const std::string& name : want) {
      if (auto it = stored_at(name); it != stored.end()) out->push_back(*it);
    }
    for (const auto& c : stored) {
      if (std::find(want.begin(), want.end(), c.first) == want.end()) out->push_back(c);
    }
    // Formats 1 and 2 write the row with the first acknowledgement; before it the cursor is 0.
    if (out->empty() && file_version_ < 3) out->emplace_back(kLegacyCursor, 0);
    return Status::Ok();
  }
  // A new cursor starts where the lowest stored one is (also one being removed: a renamed
  // upstream then goes on where the old name was), so it receives what still waits.
  uint64_t lowest = 0;
  for (size_t i = 0; i < stored.size(); ++i)
    lowest = i == 0 ? stored[i].second : std::min(lowest, stored[i].second);
  std::vector<std::pair<std::string, uint64_t>> removed;
  for (const auto& c : stored) {
    if (std::find(want.begin(), want.end(), c.first) == want.end()) removed.push_back(c);
  }
  std::vector<std::string> added;
  for (const std::string& name : want) {
    if (auto it = stored_at(name); it != stored.end()) {
      out->push_back(*it);
    } else {
      out->emplace_back(name, lowest);
      added.push_back(name);
    }
  }
  if (removed.empty() && added.empty()) return Status::Ok();
  return StoreCursorChanges(removed, added, lowest);
}

Status SqliteEventLog::StoreCursorChanges(
    const std::vector<std::pair<std::string, uint64_t>>& removed,
    const std::vector<std::string>& added, uint64_t start) {
  Transaction txn(&writer_);
  Status s = txn.Begin();
  Statement del;
  if (s.ok()) s = writer_.Prepare("DELETE FROM cursors WHERE name = ?1", &del);
  Statement del_meta;
  if (s.ok()) s = writer_.Prepare("DELETE FROM meta WHERE key = ?1 OR key = ?2", &del_meta);
  for (size_t i = 0; s.ok() && i < removed.size(); ++i) {
    const std::string& name = removed[i].first;
    const std::string k1 = DroppedEventsKey(name), k2 = GapMarkersKey(name);
    sqlite3_reset(del.get());
    BindText(del.get(), 1, name);
    int rc = sqlite3_step(del.get());
    sqlite3_reset(del_meta.get());
    BindText(del_meta.get(), 1, k1);
    BindText(del_meta.get(), 2, k2);
    if (rc == SQLITE_DONE) rc = sqlite3_step(del_meta.get());
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "removing cursor " + name);
  }
  Statement ins;
  if (s.ok()) s = writer_.Prepare("INSERT INTO cursors(name, seq) VALUES(?1, ?2)", &ins);
  for (size_t i = 0; s.ok() && i < added.size(); ++i) {
    sqlite3_reset(ins.get());
    BindText(ins.get(), 1, added[i]);
    BindU64(ins.get(), 2, start);
    const int rc = sqlite3_step(ins.get());
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "adding cursor " + added[i]);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return s;
  for (const auto& [name, seq] : removed) {
    log_->warn(
        "event log {}: removed the cursor of upstream '{}' (it had confirmed through seq {}): it "
        "is no longer configured; events only it had not confirmed leave the log",
        options_.path, name, seq);
  }
  for (const std::string& name : added) {
    log_->info(
        "event log {}: new cursor for upstream '{}' starts at seq {} (it receives what "
        "still waits)",
        options_.path, name, start);
  }
  return Status::Ok();
}

Status SqliteEventLog::CountRangeLocked(SqliteHandle* db, uint64_t after, uint64_t through,
                                        uint64_t* rows, uint64_t* bytes) {
  sqlite3_stmt* st = count_range_.get();
  sqlite3_reset(st);
  BindU64(st, 1, after);
  BindU64(st, 2, through);
  const int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    *rows = ColumnU64(st, 0);
    *bytes = ColumnU64(st, 1) + *rows * Event::kRowOverheadBytes;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW) return db->Error(rc, "counting the rows after a cursor");
  return Status::Ok();
}

Status SqliteEventLog::FirstAfterLocked(uint64_t after, uint64_t* seq, int64_t* received_ms) {
  sqlite3_stmt* st = first_after_.get();
  sqlite3_reset(st);
  BindU64(st, 1, after);
  const int rc = sqlite3_step(st);
  *seq = rc == SQLITE_ROW ? ColumnU64(st, 0) : 0;
  *received_ms = rc == SQLITE_ROW ? sqlite3_column_int64(st, 1) : 0;
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return writer_.Error(rc, "finding the next row");
  return Status::Ok();
}

Status SqliteEventLog::LoadState() {
  std::lock_guard<std::mutex> lock(write_mu_);
  std::vector<std::pair<std::string, uint64_t>> cursors;
  Status s = ReconcileCursors(&cursors);
  if (!s.ok()) return s;
  SqliteHandle& db = writer_;
  State st;
  LogStats& ls = st.stats;
  ls.max_bytes = options_.max_bytes;
  int64_t v = 0;
  s = QueryU64(&db, last_seq_.get(), &ls.last_seq);
  for (const auto& [name, pos] : cursors) {
    Cursor c;
    c.stats.name = name;
    c.stats.cursor = pos;
    st.cursors.push_back(std::move(c));
  }
  if (st.cursors.empty()) {
    // No upstream (a maintenance open of a log that has no cursor yet): everything waits, as for
    // a cursor at 0 that never moves; it is not reported and cannot be acknowledged.
    st.cursors.emplace_back();
  }
  for (Cursor& c : st.cursors) {
    if (s.ok())
      s = CountRangeLocked(&db, c.stats.cursor, INT64_MAX, &c.stats.events, &c.stats.bytes);
    if (s.ok()) s = FirstAfterLocked(c.stats.cursor, &c.first_seq, &c.stats.oldest_received_ms);
    if (s.ok() && !c.stats.name.empty()) {
      s = MetaValue(&db, DroppedEventsKey(c.stats.name), &v);
      c.stats.dropped_events = static_cast<uint64_t>(v);
      if (s.ok()) s = MetaValue(&db, GapMarkersKey(c.stats.name), &v);
      c.stats.gap_markers = static_cast<uint64_t>(v);
    }
  }
  state_.cursors = st.cursors;  // LowestCursorLocked reads state_
  const uint64_t lowest = LowestCursorLocked();
  if (s.ok() && lowest > 0)
    s = CountRangeLocked(&db, 0, lowest, &ls.retained_events, &ls.retained_bytes);
  if (s.ok() && ls.retained_events > 0)
    s = FirstAfterLocked(0, &ls.first_retained_seq, &st.first_retained_ms);
  if (s.ok()) s = MetaValue(&db, "dropped_events", &v);
  ls.dropped_events = static_cast<uint64_t>(v);
  if (s.ok()) s = db.QueryInt("SELECT count(*) FROM dead_letters", &v);
  ls.dead_letters = static_cast<uint64_t>(v);
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE(sum(" + DeadLetterCostSql("d") + "), 0) FROM dead_letters d",
                    &v);
  ls.dead_letter_bytes = static_cast<uint64_t>(v);
  if (s.ok()) s = MetaValue(&db, "dropped_dead_letters", &v);
  ls.dropped_dead_letters = static_cast<uint64_t>(v);
  if (s.ok()) s = MetaValue(&db, "ingress_applied", &v);
  ls.ingress_applied = static_cast<uint64_t>(v);
  if (s.ok() && !options_.read_only) s = LoadIngressLocked(&st.ingress);
  if (!s.ok()) return s;
  state_ = std::move(st);
  RefreshWaitingLocked();
  if (!options_.read_only) {
    const LogStats& r = state_.stats;
    log_->info(
        "opened event log {} (identity {}): {} events waiting ({} bytes), {} retained ({} "
        "bytes), {} dead letters ({} bytes), max_bytes {}, lowest cursor {}, next seq {}, "
        "sync={}, overflow={}",
        options_.path, log_id_, r.events, r.bytes, r.retained_events, r.retained_bytes,
        r.dead_letters, r.dead_letter_bytes, r.max_bytes, r.cursor, r.last_seq + 1,
        ToString(options_.sync), ToString(options_.overflow));
  }
  return Status::Ok();
}

int SqliteEventLog::OnWalCommit(void* self, sqlite3* /*db*/, const char* /*name*/, int pages) {
  // The commit has happened; an error returned here would be reported for it all the same.
  static_cast<SqliteEventLog*>(self)->checkpointer_->NoteWalPages(pages);
  return SQLITE_OK;
}

WalCheckpointer::Counters SqliteEventLog::CheckpointCounters() const {
  return checkpointer_ ? checkpointer_->counters() : WalCheckpointer::Counters{};
}

Status SqliteEventLog::FailLocked(Status s) {
  if (failed_.ok() && !s.IsFull()) {
    failed_ = s;
    log_->critical("event log failed and stops taking writes: {}", s.ToString());
  }
  return s;
}

void SqliteEventLog::RollbackStateLocked(State before) {
  uncommitted_drop_.reset();
  uncommitted_dead_drop_.reset();
  state_ = std::move(before);
}

Status SqliteEventLog::SetMetaLocked(const std::string& key, int64_t value) {
  sqlite3_stmt* st = upsert_meta_.get();
  sqlite3_reset(st);
  BindText(st, 1, key);
  sqlite3_bind_int64(st, 2, value);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "updating meta " + key);
  return Status::Ok();
}

SqliteEventLog::Cursor* SqliteEventLog::FindCursorLocked(std::string_view name) {
  if (name.empty()) return nullptr;  // the stand-in of a log without cursors
  for (Cursor& c : state_.cursors) {
    if (c.stats.name == name) return &c;
  }
  return nullptr;
}

uint64_t SqliteEventLog::LowestCursorLocked() const {
  uint64_t lowest = UINT64_MAX;
  for (const Cursor& c : state_.cursors) lowest = std::min(lowest, c.stats.cursor);
  return lowest == UINT64_MAX ? 0 : lowest;
}

void SqliteEventLog::RefreshWaitingLocked() {
  const Cursor* low = nullptr;
  for (const Cursor& c : state_.cursors) {
    if (low == nullptr || c.stats.cursor < low->stats.cursor) low = &c;
  }
  LogStats& st = state_.stats;
  st.cursor = low ? low->stats.cursor : 0;
  st.events = low ? low->stats.events : 0;
  st.bytes = low ? low->stats.bytes : 0;
  st.first_seq = low ? low->first_seq : 0;
  st.oldest_received_ms = low ? low->stats.oldest_received_ms : 0;
}

void SqliteEventLog::RemoveFromCursorsLocked(uint64_t seq, uint64_t bytes) {
  for (Cursor& c : state_.cursors) {
    if (c.stats.cursor >= seq) continue;
    c.stats.events = Sub(c.stats.events, 1);
    c.stats.bytes = Sub(c.stats.bytes, bytes);
  }
}

Status SqliteEventLog::RefreshFirstRowsLocked(uint64_t through) {
  uint64_t next = 0;
  int64_t next_ms = 0;
  bool looked = false;
  for (Cursor& c : state_.cursors) {
    if (c.first_seq == 0 || c.first_seq > through) continue;
    if (!looked) {
      Status s = FirstAfterLocked(through, &next, &next_ms);
      if (!s.ok()) return s;
      looked = true;
    }
    c.first_seq = next;
    c.stats.oldest_received_ms = next_ms;
  }
  return Status::Ok();
}

Status SqliteEventLog::MakeRoomLocked(uint64_t target_used, const char* reason, bool allow_dead,
                                      bool allow_waiting) {
  auto over = [&] { return Sub(UsedBytesLocked(), target_used); };
  Status s;
  // Retained events are confirmed by every upstream: a cache for replays, the first to go.
  if (over() > 0 && state_.stats.retained_events > 0) s = EvictRetainedLocked(over());
  // Dead letters are settled too, and older than anything that still waits.
  if (s.ok() && allow_dead && over() > 0 && state_.stats.dead_letters > 0) {
    uint64_t freed = 0;
    s = DropDeadLettersLocked(over(), &freed);
    if (uncommitted_dead_drop_) uncommitted_dead_drop_->reason = reason;
  }
  // The gap marker a drop leaves takes room as well; when it tips the balance, the next round
  // drops it again (merged into the next marker) together with one more run of events.
  while (s.ok() && allow_waiting && over() > 0 && state_.stats.events > 0) {
    uint64_t dropped = 0;
    s = DropWaitingLocked(over(), reason, &dropped);
    if (dropped == 0) break;  // nothing but a marker was left
  }
  return s;
}

Status SqliteEventLog::EvictRetainedLocked(uint64_t need_bytes) {
  sqlite3_stmt* st = oldest_retained_.get();
  sqlite3_reset(st);
  BindU64(st, 1, LowestCursorLocked());
  uint64_t freed = 0;
  OldestRun run;
  const int rc = StepOldestRun(st, need_bytes, &freed, &run);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest retained events");
  return run.count == 0 ? Status::Ok() : DeleteRetainedLocked(run.through, /*keep_ingress=*/false);
}

Status SqliteEventLog::TrimRetainedLocked() {
  LogStats& ls = state_.stats;
  // Decided from memory: nothing retained but the rows kept for RecentIngress.
  if (ls.retained_events <= IngressRetainedLocked()) return Status::Ok();
  const uint64_t lowest = LowestCursorLocked();
  if (options_.retain_bytes == 0) return DeleteRetainedLocked(lowest, /*keep_ingress=*/true);
  const int64_t cutoff = options_.retain_age.count() > 0
                             ? clock_->NowUnixMillis() - options_.retain_age.count()
                             : INT64_MIN;
  // The common case, decided from memory: nothing to trim.
  if (ls.retained_bytes <= options_.retain_bytes && state_.first_retained_ms >= cutoff)
    return Status::Ok();
  // Oldest first, while over the byte budget or older than the age bound. Receive times are not
  // strictly ordered by seq (a replayed dead letter keeps its own): the walk stops at the first
  // young row, and older ones behind it follow once it goes. Rows kept for RecentIngress count in
  // the budget but stay: the walk passes over them.
  sqlite3_stmt* st = oldest_retained_.get();
  sqlite3_reset(st);
  BindU64(st, 1, lowest);
  const uint64_t floor = IngressFloorLocked();
  uint64_t gone = 0;
  uint64_t through = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_int64(st, 4) != 0 && ColumnU64(st, 0) >= floor) continue;
    const bool over_bytes = Sub(ls.retained_bytes, gone) > options_.retain_bytes;
    if (!over_bytes && sqlite3_column_int64(st, 2) >= cutoff) break;
    through = ColumnU64(st, 0);
    gone += ColumnU64(st, 3);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding retained events to remove");
  return through == 0 ? Status::Ok() : DeleteRetainedLocked(through, /*keep_ingress=*/true);
}

Status SqliteEventLog::DeleteRetainedLocked(uint64_t through, bool keep_ingress) {
  uint64_t rows = 0;
  uint64_t bytes = 0;
  uint64_t moved = 0;  // handed over to the dead-letter rows that keep a copy
  // Every retained row is at or below the lowest cursor. Deleting through it, the rows still
  // retained afterwards are those the delete kept for RecentIngress (the newest rows with a packet
  // id, a few hundred at most), so they are counted after the delete instead of every deleted row
  // before it: in a drain that count was a third of the trim's cost (docs/performance.md, "Drain
  // path profile"). With dead letters the delete itself reports each row.
  const bool count_kept = state_.stats.dead_letters == 0 && through >= LowestCursorLocked();
  uint64_t kept_rows = 0;
  uint64_t kept_bytes = 0;
  if (state_.stats.dead_letters == 0) {
    const uint64_t floor = keep_ingress ? IngressFloorLocked() : UINT64_MAX;
    int rc;
    if (!count_kept) {
      sqlite3_stmt* count = count_retained_.get();
      sqlite3_reset(count);
      BindU64(count, 1, through);
      BindU64(count, 2, floor);
      rc = sqlite3_step(count);
      if (rc == SQLITE_ROW) {
        rows = ColumnU64(count, 0);
        bytes = ColumnU64(count, 1) + rows * Event::kRowOverheadBytes;
      }
      sqlite3_reset(count);
      if (rc != SQLITE_ROW) return writer_.Error(rc, "counting confirmed events");
    }
    sqlite3_stmt* del = delete_retained_.get();
    sqlite3_reset(del);
    BindU64(del, 1, through);
    BindU64(del, 2, floor);
    rc = sqlite3_step(del);
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) return writer_.Error(rc, "removing confirmed events");
    if (count_kept) {
      Status s = CountRangeLocked(&writer_, 0, through, &kept_rows, &kept_bytes);
      if (!s.ok()) return s;
    }
  } else {
    sqlite3_stmt* del = keep_ingress ? delete_unkept_through_.get() : delete_through_.get();
    sqlite3_reset(del);
    BindU64(del, 1, through);
    if (keep_ingress) BindU64(del, 2, IngressFloorLocked());
    int rc;
    while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
      const uint64_t b = ColumnU64(del, 0) + Event::kRowOverheadBytes;
      bytes += b;
      moved += b * ColumnU64(del, 1);
      ++rows;
    }
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) return writer_.Error(rc, "removing confirmed events");
  }
  // The caller puts state_ back as it was if the transaction does not commit.
  LogStats& ls = state_.stats;
  if (count_kept) {
    ls.retained_events = kept_rows;
    ls.retained_bytes = kept_bytes;
  } else {
    ls.retained_events = Sub(ls.retained_events, rows);
    ls.retained_bytes = Sub(ls.retained_bytes, bytes);
  }
  ls.dead_letter_bytes += moved;
  if (!keep_ingress) ForgetIngressLocked(0, through);
  if (ls.retained_events == 0) {
    ls.first_retained_seq = 0;
    state_.first_retained_ms = 0;
    return Status::Ok();
  }
  // Kept rows may stand below `through`; any row left at or below the lowest cursor is retained,
  // so the first row of the table is the first retained one.
  return FirstAfterLocked(0, &ls.first_retained_seq, &state_.first_retained_ms);
}

uint64_t SqliteEventLog::IngressFloorLocked() const {
  if (options_.recent_ingress_rows == 0) return UINT64_MAX;
  const std::deque<uint64_t>& in = state_.ingress;
  // Fewer than the window in the table: every row with a packet id is kept.
  return in.size() < options_.recent_ingress_rows ? 0 : in.front();
}

uint64_t SqliteEventLog::IngressRetainedLocked() const {
  const std::deque<uint64_t>& in = state_.ingress;
  return static_cast<uint64_t>(std::upper_bound(in.begin(), in.end(), LowestCursorLocked()) -
                               in.begin());
}

void SqliteEventLog::ForgetIngressLocked(uint64_t after, uint64_t through) {
  std::deque<uint64_t>& in = state_.ingress;
  in.erase(std::upper_bound(in.begin(), in.end(), after),
           std::upper_bound(in.begin(), in.end(), through));
}

Status SqliteEventLog::LoadIngressLocked(std::deque<uint64_t>* out) {
  out->clear();
  if (options_.recent_ingress_rows == 0) return Status::Ok();
  Statement q;
  Status s =
      writer_.Prepare("SELECT seq FROM events WHERE packet_id != 0 ORDER BY seq DESC LIMIT ?1", &q);
  if (!s.ok()) return s;
  BindU64(q.get(), 1, options_.recent_ingress_rows);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out->push_front(ColumnU64(q.get(), 0));
  if (rc != SQLITE_DONE) return writer_.Error(rc, "reading the newest events with a packet id");
  return Status::Ok();
}

Status SqliteEventLog::DropDeadLettersLocked(uint64_t need_bytes, uint64_t* freed_out) {
  uint64_t estimate = 0;
  OldestRun run;
  int rc = StepOldestRun(oldest_dead_.get(), need_bytes, &estimate, &run);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest dead letters to drop");
  if (run.count == 0) return Status::Ok();
  // Whole seqs go: a run ending inside one seq's rows takes the other upstreams' rows too, so
  // the rows and bytes are counted from what the deletion returns.
  sqlite3_stmt* del = delete_dead_through_.get();
  sqlite3_reset(del);
  BindU64(del, 1, run.through);
  uint64_t count = 0;
  uint64_t freed = 0;
  while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
    freed += ColumnU64(del, 0);
    ++count;
  }
  sqlite3_reset(del);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "dropping the oldest dead letters");
  LogStats& ls = state_.stats;
  Status s =
      SetMetaLocked("dropped_dead_letters", static_cast<int64_t>(ls.dropped_dead_letters + count));
  if (!s.ok()) return s;
  // The caller puts state_ back as it was if the transaction does not commit.
  ls.dead_letters = Sub(ls.dead_letters, count);
  ls.dead_letter_bytes = Sub(ls.dead_letter_bytes, freed);
  ls.dropped_dead_letters += count;
  if (uncommitted_dead_drop_) {
    uncommitted_dead_drop_->last = run.through;
    uncommitted_dead_drop_->count += count;
  } else {
    uncommitted_dead_drop_ = DropRange{run.first, run.through, count, "", {}};
  }
  *freed_out += freed;
  return Status::Ok();
}

Status SqliteEventLog::MergeDroppedMarkerLocked(uint64_t seq, const std::string& payload,
                                                GapParts* parts, std::set<std::string>* carried) {
  GapParts old;
  Status s = DecodeGapMarker(payload, &old);
  if (!s.ok()) {
    return Status::Corruption(options_.path + ": the gap marker at seq " + std::to_string(seq) +
                              " cannot be read: " + s.message());
  }
  // A part whose upstream has passed the marker was delivered already; one of an upstream that
  // left the configuration has nobody to go to.
  for (const auto& [name, range] : old) {
    const Cursor* c = FindCursorLocked(name);
    if (c != nullptr && c->stats.cursor < seq) {
      MergeGapRange(range, &(*parts)[name]);
      carried->insert(name);
    }
  }
  return Status::Ok();
}

Status SqliteEventLog::DropWaitingLocked(uint64_t need_bytes, const char* reason,
                                         uint64_t* dropped_events) {
  *dropped_events = 0;
  const uint64_t lowest = LowestCursorLocked();
  sqlite3_stmt* sel = oldest_waiting_.get();
  sqlite3_reset(sel);
  BindU64(sel, 1, lowest);
  uint64_t freed = 0;
  OldestRun run;
  const int rc = StepOldestRun(sel, need_bytes, &freed, &run);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest events to drop");
  if (run.count == 0) return Status::Ok();
  const uint64_t through = run.through;
  DropTally t;
  Status s = DeleteWaitingLocked(lowest, through, &t);
  LogStats& ls = state_.stats;
  if (s.ok()) s = SetMetaLocked("dropped_through", static_cast<int64_t>(through));
  if (s.ok())
    s = SetMetaLocked("dropped_events", static_cast<int64_t>(ls.dropped_events + t.events));
  for (const auto& [name, n] : t.lost) {
    Cursor* c = FindCursorLocked(name);
    c->stats.dropped_events += n;
    if (s.ok())
      s = SetMetaLocked(DroppedEventsKey(name), static_cast<int64_t>(c->stats.dropped_events));
  }
  if (s.ok())
    s = t.parts.empty() ? RefreshFirstRowsLocked(through)
                        : InsertGapMarkerLocked(through, t.parts, t.carried);
  if (!s.ok()) return s;
  // The caller puts state_ back as it was if the transaction does not commit.
  ls.dropped_events += t.events;
  ls.dead_letter_bytes += t.moved;
  RefreshWaitingLocked();
  if (t.events > 0) {
    if (!uncommitted_drop_) uncommitted_drop_ = DropRange{t.first, t.last, 0, reason, {}};
    DropRange& d = *uncommitted_drop_;
    d.first = std::min(d.first, t.first);
    d.last = std::max(d.last, t.last);
    d.count += t.events;
    for (const auto& [name, n] : t.lost) d.lost[name] += n;
  }
  *dropped_events = t.events;
  return Status::Ok();
}

Status SqliteEventLog::DeleteWaitingLocked(uint64_t after, uint64_t through, DropTally* t) {
  sqlite3_stmt* del = delete_range_.get();
  sqlite3_reset(del);
  BindU64(del, 1, after);
  BindU64(del, 2, through);
  Status s;
  int rc;
  while (s.ok() && (rc = sqlite3_step(del)) == SQLITE_ROW) {
    const uint64_t seq = ColumnU64(del, 0);
    const uint64_t bytes = ColumnU64(del, 4) + Event::kRowOverheadBytes;
    t->moved += bytes * ColumnU64(del, 5);
    RemoveFromCursorsLocked(seq, bytes);
    if (sqlite3_column_int(del, 1) == static_cast<int>(EventKind::kGap)) {
      s = MergeDroppedMarkerLocked(seq, ColumnBytes(del, 6), &t->parts, &t->carried);
      continue;
    }
    t->first = t->events == 0 ? seq : std::min(t->first, seq);
    t->last = std::max(t->last, seq);
    ++t->events;
    const int64_t ms = sqlite3_column_int64(del, 2);
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(del, 3));
    const std::string_view topic(text ? text : "", sqlite3_column_bytes(del, 3));
    for (const Cursor& c : state_.cursors) {
      if (c.stats.name.empty() || c.stats.cursor >= seq) continue;
      if (options_.feeds && !options_.feeds(c.stats.name, topic)) continue;
      MergeGapRange(GapRange{seq, seq, 1, ms, ms}, &t->parts[c.stats.name]);
      ++t->lost[c.stats.name];
    }
  }
  if (s.ok() && rc != SQLITE_DONE) s = writer_.Error(rc, "dropping the oldest events");
  sqlite3_reset(del);
  ForgetIngressLocked(after, through);
  return s;
}

Status SqliteEventLog::InsertRowLocked(const Event& e) {
  sqlite3_stmt* st = insert_event_.get();
  sqlite3_reset(st);
  BindU64(st, 1, e.seq);
  sqlite3_bind_int64(st, 2, e.received_ms);
  sqlite3_bind_int(st, 3, e.qos);
  BindText(st, 4, e.topic);
  BindBlob(st, 5, e.payload);
  sqlite3_bind_int(st, 6, e.retained ? 1 : 0);
  sqlite3_bind_int(st, 7, static_cast<int>(e.kind));
  sqlite3_bind_int(st, 8, e.packet_id);
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE)
    return writer_.Error(rc,
                         e.kind == EventKind::kGap ? "writing a gap marker" : "appending an event");
  return Status::Ok();
}

Status SqliteEventLog::InsertGapMarkerLocked(uint64_t seq, const GapParts& parts,
                                             const std::set<std::string>& carried) {
  Event m;
  m.seq = seq;
  m.kind = EventKind::kGap;
  m.qos = 1;
  m.payload = EncodeGapMarker(parts);
  // The oldest lost event's time: an upstream's "oldest waiting" age then tells how far back its
  // loss reaches.
  m.received_ms = INT64_MAX;
  for (const auto& [name, r] : parts) m.received_ms = std::min(m.received_ms, r.first_received_ms);
  Status s = InsertRowLocked(m);
  if (!s.ok()) return s;
  // Every row between these cursors and the marker was just dropped: the marker is their next.
  const uint64_t bytes = m.AccountedBytes();
  for (Cursor& c : state_.cursors) {
    if (c.stats.cursor >= seq) continue;
    c.stats.events++;
    c.stats.bytes += bytes;
    c.first_seq = seq;
    c.stats.oldest_received_ms = m.received_ms;
  }
  // A part carried over from a dropped marker replaces a record the upstream has not received:
  // it still gets one record for both losses.
  for (const auto& [name, r] : parts) {
    if (carried.count(name) > 0) continue;
    Cursor* c = FindCursorLocked(name);
    c->stats.gap_markers++;
    s = SetMetaLocked(GapMarkersKey(name), static_cast<int64_t>(c->stats.gap_markers));
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status SqliteEventLog::AppendOneLocked(const Event& e) {
  Status s = InsertRowLocked(e);
  if (!s.ok()) return s;
  const uint64_t bytes = e.AccountedBytes();
  for (Cursor& c : state_.cursors) {
    if (c.stats.events == 0) {
      c.first_seq = e.seq;
      c.stats.oldest_received_ms = e.received_ms;
    }
    c.stats.events++;
    c.stats.bytes += bytes;
  }
  state_.stats.last_seq = std::max(state_.stats.last_seq, e.seq);
  RefreshWaitingLocked();
  return Status::Ok();
}

bool SqliteEventLog::ReportDueLocked() const {
  return !drop_reported_at_ || clock_->Now() - *drop_reported_at_ >= kDropReportInterval;
}

void SqliteEventLog::NoteCommittedDropLocked() {
  if (uncommitted_dead_drop_) {
    const DropRange d = *uncommitted_dead_drop_;
    uncommitted_dead_drop_.reset();
    DropRange& u = unreported_dead_drop_;
    if (u.count == 0) {
      u = d;
    } else {
      u.first = std::min(u.first, d.first);
      u.last = std::max(u.last, d.last);
      u.count += d.count;
    }
    if (!uncommitted_drop_ && ReportDueLocked()) ReportDropsLocked();
  }
  if (!uncommitted_drop_) return;
  DropRange d = std::move(*uncommitted_drop_);
  uncommitted_drop_.reset();
  // Under a long outage every new event makes room by dropping one: one line per drop would be a
  // line per event. Contiguous drops are merged and reported at most once per interval, the
  // first at once; the report names the exact range and the upstreams that lost events.
  if (unreported_drop_.count > 0 && (d.first != unreported_drop_.last + 1 ||
                                     std::strcmp(d.reason, unreported_drop_.reason) != 0)) {
    ReportDropsLocked();
  }
  if (unreported_drop_.count == 0) {
    unreported_drop_.first = d.first;
    unreported_drop_.reason = d.reason;
  }
  unreported_drop_.last = d.last;
  unreported_drop_.count += d.count;
  for (const auto& [name, n] : d.lost) unreported_drop_.lost[name] += n;
  if (ReportDueLocked()) ReportDropsLocked();
}

void SqliteEventLog::ReportDropsLocked() {
  const DropRange& dd = unreported_dead_drop_;
  if (dd.count > 0) {
    log_->warn("{} (max_bytes {}): dropped the {} oldest dead letters, seq {}..{}, to make room",
               dd.reason, options_.max_bytes, dd.count, dd.first, dd.last);
    drop_reported_at_ = clock_->Now();
    unreported_dead_drop_ = DropRange{};
  }
  if (unreported_short_reasons_ > 0) {
    log_->warn(
        "log full (max_bytes {}): kept {} dead letters with their reason shortened to the room "
        "left",
        options_.max_bytes, unreported_short_reasons_);
    drop_reported_at_ = clock_->Now();
    unreported_short_reasons_ = 0;
  }
  const DropRange& d = unreported_drop_;
  if (d.count == 0) return;
  std::string lost;
  for (const auto& [name, n] : d.lost)
    lost += (lost.empty() ? "" : ", ") + name + " " + std::to_string(n);
  log_->warn("{} (max_bytes {}): dropped the {} oldest events, seq {}..{}, to make room; {}",
             d.reason, options_.max_bytes, d.count, d.first, d.last,
             lost.empty() ? std::string("no upstream that had not confirmed them was fed them")
                          : "not yet confirmed, per upstream (a gap record names them where they "
                            "were, unless the upstream already had them in flight): " +
                                lost);
  drop_reported_at_ = clock_->Now();
  unreported_drop_ = DropRange{};
}

Status SqliteEventLog::InsertLocked(std::span<Event> events, size_t* taken, bool* log_full) {
  // Under sync = "full" the ingress journal synced every event it holds before the event's
  // PUBACK: a commit of only those (and of QoS 0 events, which no sync mode promises across a
  // power cut) needs no fsync of its own, and the journal keeps them until Sync() has run. The
  // fsync per commit was what held QoS 1 ingest to half the disk's rate: it competed with the
  // journal's own fdatasyncs (docs/ARCHITECTURE.md, "The ingress journal").
  const bool defer = options_.sync == Sync::kFull &&
                     std::all_of(events.begin(), events.end(),
                                 [](const Event& e) { return e.ingress > 0 || e.qos == 0; });
  if (!defer) {
    Status s = InsertTxnLocked(events, taken, log_full);
    if (s.ok()) unsynced_ = false;  // a FULL commit syncs the whole WAL, earlier frames too
    return s;
  }
  const uint64_t synced_before = SyncedIngressLocked();
  Status s = writer_.Exec("PRAGMA synchronous=NORMAL");
  if (s.ok()) s = InsertTxnLocked(events, taken, log_full);
  // Every other commit must sync again: a connection left at NORMAL would break the promise
  // without a trace, so failing to switch back fails the log.
  Status back = writer_.Exec("PRAGMA synchronous=FULL");
  if (!back.ok()) {
    return FailLocked(Status::IoError("cannot set synchronous=FULL again on event log " +
                                      options_.path + ": " + back.message()));
  }
  if (s.ok()) {
    synced_ingress_ = synced_before;
    unsynced_ = true;
    state_.stats.deferred_commits++;
  }
  return s;
}

uint64_t SqliteEventLog::SyncedIngressLocked() const {
  return unsynced_ ? synced_ingress_ : state_.stats.ingress_applied;
}

uint64_t SqliteEventLog::SyncedIngress() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return SyncedIngressLocked();
}

Status SqliteEventLog::Sync() {
  if (!unsynced_.load()) return Status::Ok();
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (!unsynced_) return Status::Ok();
  // The WAL as the writing connection has it open, through the log's VFS (the power-loss tests
  // see this sync like SQLite's own). Held under write_mu_: no commit is half written.
  sqlite3_file* wal = nullptr;
  int rc = sqlite3_file_control(writer_.db(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
  if (rc == SQLITE_OK && (wal == nullptr || wal->pMethods == nullptr)) rc = SQLITE_MISUSE;
  if (rc == SQLITE_OK) rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) {
    return FailLocked(Status::IoError("cannot sync the WAL of event log " + options_.path + ": " +
                                      sqlite3_errstr(rc)));
  }
  unsynced_ = false;
  state_.stats.deferred_syncs++;
  return Status::Ok();
}

Status SqliteEventLog::InsertTxnLocked(std::span<Event> events, size_t* taken, bool* log_full) {
  *taken = 0;
  *log_full = false;
  uint64_t incoming = 0;
  for (const Event& e : events) incoming += e.AccountedBytes();
  const bool drop = options_.overflow == Overflow::kDropOldest;
  if (!drop && state_.stats.retained_events == 0 &&
      UsedBytesLocked() + events[0].AccountedBytes() > options_.max_bytes) {
    // Nothing could be evicted: refused without a transaction, as the writer retries often.
    *log_full = true;
    return Status::Full("event log " + options_.path + " is full (" +
                        std::to_string(UsedBytesLocked()) + " of " +
                        std::to_string(options_.max_bytes) + " bytes, overflow = reject-new)");
  }
  State before = state_;
  const auto started = clock_->Now();
  Transaction txn(&writer_);
  Status s = txn.Begin();
  if (s.ok()) s = TrimRetainedLocked();
  if (s.ok() && UsedBytesLocked() + incoming > options_.max_bytes)
    s = MakeRoomLocked(Sub(options_.max_bytes, incoming), "log full", drop, drop);
  size_t take = events.size();
  if (s.ok() && !drop) {
    // reject-new: the longest prefix that fits in the room left (after evicting retained rows).
    const uint64_t room = Sub(options_.max_bytes, UsedBytesLocked());
    incoming = 0;
    take = 0;
    for (const Event& e : events) {
      if (incoming + e.AccountedBytes() > room) break;
      incoming += e.AccountedBytes();
      ++take;
    }
    if (take == 0) {
      *log_full = true;
      s = Status::Full("event log " + options_.path + " is full (" +
                       std::to_string(UsedBytesLocked()) + " of " +
                       std::to_string(options_.max_bytes) + " bytes, overflow = reject-new)");
    }
  }
  uint64_t seq = state_.stats.last_seq;
  uint64_t ingress_applied = 0;
  std::deque<uint64_t>& ingress = state_.ingress;
  for (size_t i = 0; s.ok() && i < take; ++i) {
    events[i].seq = ++seq;
    events[i].kind = EventKind::kEvent;
    s = InsertRowLocked(events[i]);
    if (events[i].ingress > state_.stats.ingress_applied) ingress_applied = events[i].ingress;
    if (events[i].packet_id == 0 || options_.recent_ingress_rows == 0) continue;
    ingress.push_back(seq);
    if (ingress.size() > options_.recent_ingress_rows) ingress.pop_front();
  }
  // In the same transaction: after a crash, the journal's records up to here are in the log
  // exactly when these events are.
  if (s.ok() && ingress_applied > 0) {
    s = SetMetaLocked("ingress_applied", static_cast<int64_t>(ingress_applied));
    state_.stats.ingress_applied = ingress_applied;
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    // Nothing of the batch is in the log: no sequence number is used up and no event may be
    // reported as appended.
    RollbackStateLocked(std::move(before));
    for (Event& e : events) e.seq = 0;
    return s;
  }
  if (options_.commit_seconds != nullptr) {
    options_.commit_seconds->Observe(
        std::chrono::duration<double>(clock_->Now() - started).count());
  }
  for (Cursor& c : state_.cursors) {
    if (c.stats.events == 0) {
      c.first_seq = state_.stats.last_seq + 1;
      c.stats.oldest_received_ms = events[0].received_ms;
    }
    c.stats.events += take;
    c.stats.bytes += incoming;
  }
  state_.stats.last_seq = seq;
  state_.stats.commits++;
  RefreshWaitingLocked();
  NoteCommittedDropLocked();
  *taken = take;
  return Status::Ok();
}

Status SqliteEventLog::DropOldestForDiskLocked(uint64_t need_bytes) {
  State before = state_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  if (s.ok()) s = MakeRoomLocked(Sub(UsedBytesLocked(), need_bytes), "disk full", true, true);
  if (s.ok()) s = txn.Commit();
  if (s.ok()) {
    NoteCommittedDropLocked();
  } else {
    RollbackStateLocked(std::move(before));
  }
  return s;
}

Status SqliteEventLog::Append(std::span<Event> events, size_t* appended) {
  *appended = 0;
  if (events.empty()) return Status::Ok();
  std::unique_lock<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");

  size_t take = 0;
  bool log_full = false;
  Status s = InsertLocked(events, &take, &log_full);
  if (s.IsFull() && !log_full && options_.overflow == Overflow::kDropOldest) {
    // The disk, not max_bytes, is full. Deleted rows leave free pages that SQLite reuses, so the
    // policy makes room on the disk the same way it does under max_bytes: it gives up the oldest
    // rows (retained, dead letters, waiting), each round twice as many bytes as the last, until
    // the batch fits.
    uint64_t incoming = 0;
    for (const Event& e : events) incoming += e.AccountedBytes();
    uint64_t need = std::max<uint64_t>(incoming, kDiskFullDropMinBytes);
    while (s.IsFull() && UsedBytesLocked() > 0) {
      const uint64_t used = UsedBytesLocked();
      Status d = DropOldestForDiskLocked(need);
      // No room even for the deletion, or nothing left to free: wait for space like reject-new.
      if (!d.ok() || UsedBytesLocked() >= used) break;
      s = InsertLocked(events, &take, &log_full);
      need *= 2;
    }
  }
  if (!s.ok()) {
    if (s.IsFull() && !log_full) {
      state_.stats.disk_full_errors++;
      s = Status::Full("the disk holding event log " + options_.path +
                       " is full; no event was appended (" + s.message() + ")");
    }
    // A full disk is reported like a full log (FailLocked records nothing for Full): the writer
    // holds the source back and retries, and nothing of the batch was acknowledged.
    return FailLocked(s);
  }
  *appended = take;
  lock.unlock();
  appended_cv_.notify_all();
  if (take < events.size()) {
    return Status::Full("event log " + options_.path + " is full (overflow = reject-new)");
  }
  return Status::Ok();
}

namespace {

// Assigns column i to *out, reusing its buffer.
void AssignColumnBytes(sqlite3_stmt* st, int i, std::string* out) {
  const void* p = sqlite3_column_blob(st, i);
  const int n = sqlite3_column_bytes(st, i);
  if (p == nullptr) {
    out->clear();
  } else {
    out->assign(static_cast<const char*>(p), static_cast<size_t>(n));
  }
}

// One row of `events` as Read and RecentIngress select it (the columns of PrepareStatements), into
// *e. Every field of *e is set (those the row does not hold to their defaults), but its topic and
// payload keep their buffers: a drain reads millions of rows into the same Events.
void EventFromRow(sqlite3_stmt* st, Event* e) {
  Event row;
  row.topic = std::move(e->topic);
  row.payload = std::move(e->payload);
  row.seq = ColumnU64(st, 0);
  row.received_ms = sqlite3_column_int64(st, 1);
  row.qos = sqlite3_column_int(st, 2);
  AssignColumnBytes(st, 3, &row.topic);
  AssignColumnBytes(st, 4, &row.payload);
  row.retained = sqlite3_column_int(st, 5) != 0;
  row.kind = sqlite3_column_int(st, 6) == static_cast<int>(EventKind::kGap) ? EventKind::kGap
                                                                            : EventKind::kEvent;
  row.packet_id = static_cast<uint16_t>(sqlite3_column_int(st, 7));
  *e = std::move(row);
}

}  // namespace

Status SqliteEventLog::Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
                            std::vector<Event>* out) {
  // An upstream gets only durable rows: a power cut that took a commit would give its seqs to
  // other events, and an exactly-once checkpoint would then skip those.
  Status synced = Sync();
  if (!synced.ok()) return synced;
  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3_stmt* st = read_from_.get();
  sqlite3_reset(st);
  BindU64(st, 1, after_seq);
  BindU64(st, 2, max_events);
  size_t bytes = 0;
  size_t n = 0;
  int rc = SQLITE_DONE;
  while (bytes < max_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == out->size()) out->emplace_back();
    Event& e = (*out)[n++];
    EventFromRow(st, &e);
    bytes += e.payload.size();
  }
  out->resize(n);
  if (bytes < max_bytes && rc != SQLITE_DONE) {
    sqlite3_reset(st);
    return reader_.Error(rc, "reading events");
  }
  sqlite3_reset(st);
  return Status::Ok();
}

Status SqliteEventLog::RecentIngress(size_t max_rows, std::vector<Event>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3_stmt* st = recent_ingress_.get();
  if (st == nullptr) return Status::Ok();  // a file older than format 4, opened read-only
  sqlite3_reset(st);
  BindU64(st, 1, max_rows);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) EventFromRow(st, &out->emplace_back());
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return reader_.Error(rc, "reading the newest events with a packet id");
  std::reverse(out->begin(), out->end());
  return Status::Ok();
}

Status SqliteEventLog::UnknownCursorLocked(std::string_view name) const {
  std::vector<std::string> names;
  for (const Cursor& c : state_.cursors) {
    if (!c.stats.name.empty()) names.push_back(c.stats.name);
  }
  return Status::NotFound("no cursor '" + std::string(name) + "' in the event log " +
                          options_.path + " (its cursors: " + JoinNames(names) + ")");
}

Status SqliteEventLog::Acknowledge(std::string_view cursor, uint64_t through_seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  Cursor* c = FindCursorLocked(cursor);
  if (c == nullptr) return UnknownCursorLocked(cursor);
  if (through_seq <= c->stats.cursor) return Status::Ok();
  if (through_seq > state_.stats.last_seq) {
    return Status::InvalidArgument("acknowledge past the last assigned seq (" +
                                   std::to_string(through_seq) + " > " +
                                   std::to_string(state_.stats.last_seq) + ")");
  }
  State before = state_;
  const uint64_t old_lowest = LowestCursorLocked();
  Transaction txn(&writer_);
  Status s = txn.Begin();
  // The rows this cursor passes, counted through the primary key: the cost follows what is
  // acknowledged, not the size of the log.
  uint64_t rows = 0, bytes = 0;
  if (s.ok()) s = CountRangeLocked(&writer_, c->stats.cursor, through_seq, &rows, &bytes);
  if (s.ok()) {
    sqlite3_stmt* up = upsert_cursor_.get();
    sqlite3_reset(up);
    BindText(up, 1, cursor);
    BindU64(up, 2, through_seq);
    const int rc = sqlite3_step(up);
    sqlite3_reset(up);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "storing the cursor of " + std::string(cursor));
  }
  if (s.ok()) {
    c->stats.cursor = through_seq;
    c->stats.events = Sub(c->stats.events, rows);
    c->stats.bytes = Sub(c->stats.bytes, bytes);
    c->first_seq = 0;
    c->stats.oldest_received_ms = 0;
    if (c->stats.events > 0)
      s = FirstAfterLocked(through_seq, &c->first_seq, &c->stats.oldest_received_ms);
  }
  if (s.ok()) {
    RefreshWaitingLocked();
    // Rows every cursor has now passed are retained until TrimRetainedLocked lets them go. The
    // rows did not change, so those that stopped waiting are the difference of the two figures.
    LogStats& ls = state_.stats;
    if (LowestCursorLocked() > old_lowest && before.stats.events > ls.events) {
      if (ls.retained_events == 0) {
        ls.first_retained_seq = before.stats.first_seq;
        state_.first_retained_ms = before.stats.oldest_received_ms;
      }
      ls.retained_events += before.stats.events - ls.events;
      ls.retained_bytes += Sub(before.stats.bytes, ls.bytes);
    }
    s = TrimRetainedLocked();
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    RollbackStateLocked(std::move(before));
    return FailLocked(s);
  }
  if (unreported_drop_.count > 0 && ReportDueLocked()) ReportDropsLocked();
  return Status::Ok();
}

Status SqliteEventLog::CursorPosition(std::string_view cursor, uint64_t* seq) const {
  std::lock_guard<std::mutex> lock(write_mu_);
  for (const Cursor& c : state_.cursors) {
    if (!cursor.empty() && c.stats.name == cursor) {
      *seq = c.stats.cursor;
      return Status::Ok();
    }
  }
  return UnknownCursorLocked(cursor);
}

Status SqliteEventLog::DeleteDeadLettersLocked(uint64_t seq, const std::string_view* upstream,
                                               std::vector<DeadLetterRow>* rows, bool* in_events) {
  sqlite3_stmt* st = upstream != nullptr ? delete_dead_one_.get() : delete_dead_seq_.get();
  sqlite3_reset(st);
  BindU64(st, 1, seq);
  if (upstream != nullptr) BindText(st, 2, *upstream);
  LogStats& ls = state_.stats;
  size_t n = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    DeadLetterRow r;
    r.event.seq = seq;
    r.upstream = ColumnBytes(st, 0);
    r.event.received_ms = sqlite3_column_int64(st, 1);
    r.event.qos = sqlite3_column_int(st, 2);
    r.event.topic = ColumnBytes(st, 3);
    r.event.payload = ColumnBytes(st, 4);
    r.error = ColumnBytes(st, 5);
    r.failed_ms = sqlite3_column_int64(st, 6);
    r.event.retained = sqlite3_column_int(st, 7) != 0;
    *in_events = sqlite3_column_int(st, 8) != 0;
    // The caller puts state_ back as it was if the transaction does not commit.
    const uint64_t cost = r.error.size() + (*in_events ? 0 : r.event.AccountedBytes());
    ls.dead_letters = Sub(ls.dead_letters, 1);
    ls.dead_letter_bytes = Sub(ls.dead_letter_bytes, cost);
    ++n;
    if (rows != nullptr) rows->push_back(std::move(r));
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "deleting a dead letter");
  if (n == 0) {
    return Status::NotFound("no dead letter with seq " + std::to_string(seq) + " in " +
                            options_.path);
  }
  return Status::Ok();
}

Status SqliteEventLog::DeadLetter(std::string_view cursor, const Event& event,
                                  std::string_view error) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  if (FindCursorLocked(cursor) == nullptr) return UnknownCursorLocked(cursor);
  State before = state_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  // A refusal by the same upstream repeated after a restart (before its cursor passed the
  // event) replaces the earlier row and its bytes.
  bool in_events = false;
  bool had_row = false;
  if (s.ok()) {
    s = DeleteDeadLettersLocked(event.seq, &cursor, nullptr, &in_events);
    had_row = s.ok();
    if (s.code() == Status::Code::kNotFound) s = Status::Ok();
  }
  if (s.ok() && !had_row) {
    sqlite3_stmt* q = event_exists_.get();
    sqlite3_reset(q);
    BindU64(q, 1, event.seq);
    const int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW) {
      in_events = true;
    } else if (rc != SQLITE_DONE) {
      s = writer_.Error(rc, "looking up a refused event");
    }
  }
  // While the event waits in `events` its bytes are counted there, and its deletion hands them
  // to the row: moving an event into the dead letters needs room only for the reason. That room
  // is not taken from the waiting events (docs/log-format.md, "Dead letters and max_bytes").
  const uint64_t base = in_events ? 0 : event.AccountedBytes();
  const bool drop = options_.overflow == Overflow::kDropOldest;
  if (s.ok() && UsedBytesLocked() + base + error.size() > options_.max_bytes)
    s = MakeRoomLocked(Sub(options_.max_bytes, base + error.size()), "log full", drop, false);
  std::string_view reason = error;
  bool shortened = false;
  if (s.ok()) {
    const uint64_t room = Sub(options_.max_bytes, UsedBytesLocked());
    if (base > room) {
      if (drop) {
        // The only way an unsettled event leaves the log before its cursor passes it is
        // drop-oldest, which has counted and reported it as dropped already. Nothing of this
        // transaction is kept.
        RollbackStateLocked(std::move(before));
        return Status::Ok();
      }
      s = Status::Full("event log " + options_.path +
                       " is full: no room for the dead letter of seq " + std::to_string(event.seq) +
                       ", which is no longer in the log");
    } else if (base + reason.size() > room) {
      size_t cut = room - base;
      // Cut at a UTF-8 character boundary.
      while (cut > 0 && (static_cast<unsigned char>(reason[cut]) & 0xC0) == 0x80) --cut;
      reason = reason.substr(0, cut);
      shortened = true;
    }
  }
  if (s.ok()) {
    sqlite3_stmt* st = insert_dead_.get();
    sqlite3_reset(st);
    BindU64(st, 1, event.seq);
    BindText(st, 2, cursor);
    sqlite3_bind_int64(st, 3, event.received_ms);
    sqlite3_bind_int(st, 4, event.qos);
    BindText(st, 5, event.topic);
    BindBlob(st, 6, event.payload);
    BindText(st, 7, reason);
    sqlite3_bind_int64(st, 8, clock_->NowUnixMillis());
    sqlite3_bind_int(st, 9, event.retained ? 1 : 0);
    const int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "recording a dead letter");
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    RollbackStateLocked(std::move(before));
    return FailLocked(s);
  }
  state_.stats.dead_letters++;
  state_.stats.dead_letter_bytes += base + reason.size();
  if (shortened) unreported_short_reasons_++;
  NoteCommittedDropLocked();
  if (shortened && ReportDueLocked()) ReportDropsLocked();
  return Status::Ok();
}

namespace {

// `where` binds ?1 and ?2.
Status ReadDeadLetterRows(SqliteHandle* db, int64_t file_version, const std::string& where,
                          int64_t a, int64_t b, std::vector<DeadLetterRow>* out) {
  // Older formats are read as they are on a read-only open: no upstream (it was "kafka"), and
  // format 1 without the retain flag.
  const std::string upstream = file_version >= 3 ? "upstream" : "'kafka'";
  Statement q;
  Status s = db->Prepare("SELECT seq, received_ms, qos, topic, payload, error, failed_ms, " +
                             std::string(file_version >= 2 ? "retained" : "0") + ", " + upstream +
                             " AS up FROM dead_letters " + where,
                         &q);
  if (!s.ok()) return s;
  sqlite3_bind_int64(q.get(), 1, a);
  sqlite3_bind_int64(q.get(), 2, b);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    DeadLetterRow r;
    r.event.seq = ColumnU64(q.get(), 0);
    r.event.received_ms = sqlite3_column_int64(q.get(), 1);
    r.event.qos = sqlite3_column_int(q.get(), 2);
    r.event.topic = ColumnBytes(q.get(), 3);
    r.event.payload = ColumnBytes(q.get(), 4);
    r.error = ColumnBytes(q.get(), 5);
    r.failed_ms = sqlite3_column_int64(q.get(), 6);
    r.event.retained = sqlite3_column_int(q.get(), 7) != 0;
    r.upstream = ColumnBytes(q.get(), 8);
    out->push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return db->Error(rc, "reading dead letters");
  return Status::Ok();
}

}  // namespace

Status SqliteEventLog::ReadDeadLetters(uint64_t after_seq, size_t limit,
                                       std::vector<DeadLetterRow>* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  return ReadDeadLetterRows(
      &reader_, file_version_,
      "WHERE seq > ?1 AND seq <= (SELECT max(seq) FROM (SELECT seq FROM dead_letters WHERE seq > "
      "?1 ORDER BY seq LIMIT ?2)) ORDER BY seq, up",
      static_cast<int64_t>(std::min<uint64_t>(after_seq, INT64_MAX)),
      static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)), out);
}

Status SqliteEventLog::ReadDeadLetter(uint64_t seq, DeadLetterRow* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  std::vector<DeadLetterRow> rows;
  Status s = ReadDeadLetterRows(&reader_, file_version_, "WHERE seq = ?1 ORDER BY up LIMIT ?2",
                                static_cast<int64_t>(std::min<uint64_t>(seq, INT64_MAX)), 1, &rows);
  if (!s.ok()) return s;
  if (rows.empty()) {
    return Status::NotFound("no dead letter with seq " + std::to_string(seq) + " in " +
                            options_.path);
  }
  *out = std::move(rows[0]);
  return Status::Ok();
}

Status SqliteEventLog::SelectDeadLettersLocked(std::span<const uint64_t> seqs, bool all,
                                               std::vector<uint64_t>* out) {
  // Maintenance commands only (no daemon runs): prepared per call.
  Statement q;
  Status s = writer_.Prepare(all ? "SELECT DISTINCT seq FROM dead_letters ORDER BY seq"
                                 : "SELECT 1 FROM dead_letters WHERE seq = ?1 LIMIT 1",
                             &q);
  if (!s.ok()) return s;
  int rc;
  if (all) {
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out->push_back(ColumnU64(q.get(), 0));
    if (rc != SQLITE_DONE) return writer_.Error(rc, "listing dead letters");
    return Status::Ok();
  }
  std::vector<uint64_t> wanted(seqs.begin(), seqs.end());
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (uint64_t seq : wanted) {
    sqlite3_reset(q.get());
    BindU64(q.get(), 1, seq);
    rc = sqlite3_step(q.get());
    if (rc == SQLITE_DONE) {
      return Status::NotFound("no dead letter with seq " + std::to_string(seq) + " in " +
                              options_.path + "; nothing was changed");
    }
    if (rc != SQLITE_ROW) return writer_.Error(rc, "looking up a dead letter");
    out->push_back(seq);
  }
  return Status::Ok();
}

Status SqliteEventLog::ReplayDeadLetters(std::span<const uint64_t> seqs, bool all,
                                         std::vector<std::pair<uint64_t, uint64_t>>* replayed) {
  std::unique_lock<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  State before = state_;
  std::vector<std::pair<uint64_t, uint64_t>> done;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  std::vector<uint64_t> chosen;
  if (s.ok()) s = SelectDeadLettersLocked(seqs, all, &chosen);
  for (size_t i = 0; s.ok() && i < chosen.size(); ++i) {
    const uint64_t seq = chosen[i];
    std::vector<DeadLetterRow> rows;
    bool in_events = false;
    s = DeleteDeadLettersLocked(seq, nullptr, &rows, &in_events);
    if (!s.ok()) break;
    // Still ahead of every refusing upstream's cursor: each sends it again from its place.
    bool waits = in_events;
    for (const DeadLetterRow& r : rows) {
      const Cursor* c = FindCursorLocked(r.upstream);
      if (c == nullptr || c->stats.cursor >= seq) waits = false;
    }
    if (waits) {
      done.emplace_back(seq, 0);
      continue;
    }
    // A new seq at the end: the numbers below last_seq are handed out already, and a consumer
    // de-duplicating on (log identity, seq) must see the replay as a new record.
    Event e = std::move(rows.front().event);
    e.seq = state_.stats.last_seq + 1;
    e.kind = EventKind::kEvent;
    s = AppendOneLocked(e);
    if (s.ok()) done.emplace_back(seq, e.seq);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    RollbackStateLocked(std::move(before));
    return s.code() == Status::Code::kNotFound ? s : FailLocked(s);
  }
  *replayed = std::move(done);
  lock.unlock();
  appended_cv_.notify_all();
  return Status::Ok();
}

Status SqliteEventLog::PurgeDeadLetters(std::span<const uint64_t> seqs, bool all,
                                        uint64_t* purged) {
  *purged = 0;
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  State before = state_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  std::vector<uint64_t> chosen;
  if (s.ok()) s = SelectDeadLettersLocked(seqs, all, &chosen);
  std::vector<DeadLetterRow> rows;
  for (size_t i = 0; s.ok() && i < chosen.size(); ++i) {
    bool in_events = false;
    s = DeleteDeadLettersLocked(chosen[i], nullptr, &rows, &in_events);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    RollbackStateLocked(std::move(before));
    return s.code() == Status::Code::kNotFound ? s : FailLocked(s);
  }
  *purged = rows.size();
  return Status::Ok();
}

namespace {

ReplayRequest ReplayRow(sqlite3_stmt* st) {
  ReplayRequest r;
  r.id = sqlite3_column_int64(st, 0);
  r.upstream = ColumnBytes(st, 1);
  r.from_seq = ColumnU64(st, 2);
  r.through_seq = ColumnU64(st, 3);
  r.position = ColumnU64(st, 4);
  r.created_ms = sqlite3_column_int64(st, 5);
  r.done = sqlite3_column_int(st, 6) != 0;
  return r;
}

// What the log holds, for the message that refuses a replay range: "the log holds seq a..b
// (n of them retained ...)".
std::string DescribeHeld(SqliteHandle* db) {
  int64_t first = 0, last = 0, lowest = 0, retained = 0;
  db->QueryInt("SELECT COALESCE(min(seq), 0) FROM events", &first);
  db->QueryInt("SELECT COALESCE(max(seq), 0) FROM events", &last);
  db->QueryInt("SELECT COALESCE(min(seq), 0) FROM cursors", &lowest);
  db->QueryInt(
      "SELECT count(*) FROM events WHERE seq <= (SELECT COALESCE(min(seq), 0) FROM "
      "cursors)",
      &retained);
  if (first == 0) return "the log holds no events";
  return "the log holds seq " + std::to_string(first) + ".." + std::to_string(last) + " (" +
         std::to_string(retained) + " of them retained after every upstream confirmed them, " +
         "through seq " + std::to_string(lowest) + "; storage.retain_bytes and retain_age_s " +
         "bound what is kept)";
}

Status CursorOf(SqliteHandle* db, const std::string& path, const std::string& upstream,
                uint64_t* seq) {
  std::vector<std::pair<std::string, uint64_t>> cursors;
  Statement q;
  Status s = db->Prepare("SELECT name, seq FROM cursors ORDER BY name", &q);
  if (s.ok()) s = StoredCursors(db, q.get(), &cursors);
  if (!s.ok()) return s;
  std::vector<std::string> names;
  for (const auto& [name, pos] : cursors) {
    if (name == upstream) {
      *seq = pos;
      return Status::Ok();
    }
    names.push_back(name);
  }
  return Status::NotFound("no upstream '" + upstream + "' in the event log " + path +
                          " (its upstreams: " + JoinNames(names) + ")");
}

// The first seq of the range: from_seq as given, or the first event received at or after
// since_ms; either must still be in the log.
Status ReplayStart(SqliteHandle* db, const ReplayRequestOptions& o, uint64_t through,
                   uint64_t* from) {
  const std::string to = " to upstream '" + o.upstream + "'";
  Statement q;
  Status s = db->Prepare("SELECT seq, received_ms FROM events ORDER BY seq LIMIT 1", &q);
  if (!s.ok()) return s;
  int rc = sqlite3_step(q.get());
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db->Error(rc, "finding the oldest event");
  const uint64_t oldest = rc == SQLITE_ROW ? ColumnU64(q.get(), 0) : 0;
  const int64_t oldest_ms = rc == SQLITE_ROW ? sqlite3_column_int64(q.get(), 1) : 0;
  if (o.from_seq) {
    *from = *o.from_seq;
    if (*from > through) {
      return Status::InvalidArgument("nothing to replay" + to + " from seq " +
                                     std::to_string(*from) + ": it has confirmed " +
                                     "only through seq " + std::to_string(through) +
                                     ", and what follows is sent to it anyway");
    }
    if (oldest == 0 || *from < oldest) {
      return Status::InvalidArgument("cannot replay from seq " + std::to_string(*from) + to +
                                     ": it is no longer in the log " + o.path + "; " +
                                     DescribeHeld(db));
    }
    return Status::Ok();
  }
  // Rows before the oldest one left the log: if that one is younger than the start asked for,
  // some of what was received since may be gone, and a replay would silently be partial.
  if (oldest > 1 && oldest_ms > *o.since_ms) {
    return Status::InvalidArgument(
        "cannot replay" + to + " everything received since " + std::to_string(*o.since_ms) +
        " ms: the oldest event left in the log " + o.path + " (seq " + std::to_string(oldest) +
        ") was received at " + std::to_string(oldest_ms) + " ms; " + DescribeHeld(db) +
        ". Use a later time, or the first seq to replay what is there");
  }
  Statement first;
  s = db->Prepare(
      "SELECT seq FROM events WHERE seq <= ?1 AND received_ms >= ?2 ORDER BY seq LIMIT 1", &first);
  if (!s.ok()) return s;
  BindU64(first.get(), 1, through);
  sqlite3_bind_int64(first.get(), 2, *o.since_ms);
  rc = sqlite3_step(first.get());
  if (rc == SQLITE_DONE) {
    return Status::InvalidArgument("nothing to replay" + to + ": no event it confirmed (through " +
                                   "seq " + std::to_string(through) + ") was received since " +
                                   std::to_string(*o.since_ms) + " ms; " + DescribeHeld(db));
  }
  if (rc != SQLITE_ROW) return db->Error(rc, "finding the first event to replay");
  *from = ColumnU64(first.get(), 0);
  return Status::Ok();
}

// Opens an existing log for a request beside the daemon: no lock file, no WAL setup (the file
// is in WAL mode already, and the daemon's settings stay its own).
Status OpenBeside(const std::string& path, const std::string& vfs, bool write, SqliteHandle* db) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_size == 0)
    return Status::NotFound("no event log at " + path);
  return db->Open(path, write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, vfs);
}

}  // namespace

Status SqliteEventLog::RequestReplay(const ReplayRequestOptions& o, ReplayRequest* out) {
  if (o.upstream.empty()) return Status::InvalidArgument("name the upstream to replay to");
  if (o.from_seq.has_value() == o.since_ms.has_value())
    return Status::InvalidArgument("a replay starts at a seq or at a time: give exactly one");
  if (o.from_seq && *o.from_seq == 0) return Status::InvalidArgument("sequence numbers start at 1");
  SqliteHandle db;
  // SQLite's locks order this short transaction with the daemon's commits; the handle's busy
  // timeout waits out a commit in progress.
  Status s = OpenBeside(o.path, o.vfs, true, &db);
  int64_t version = 0;
  if (s.ok()) s = CheckCurrentFormat(&db, o.path, kApplicationId, kSchemaVersion, &version);
  if (s.ok() && version < 3) {
    return Status::InvalidArgument(o.path + " has log format version " + std::to_string(version) +
                                   ", which has no replays; run this sluice on it once to "
                                   "migrate it to format " +
                                   std::to_string(kSchemaVersion));
  }
  Transaction txn(&db);
  if (s.ok()) s = txn.Begin();
  ReplayRequest r;
  r.upstream = o.upstream;
  if (s.ok()) s = CursorOf(&db, o.path, o.upstream, &r.through_seq);
  if (s.ok()) s = ReplayStart(&db, o, r.through_seq, &r.from_seq);
  SystemClock system_clock;
  r.position = r.from_seq - 1;
  r.created_ms = (o.clock != nullptr ? o.clock : &system_clock)->NowUnixMillis();
  Statement ins;
  if (s.ok())
    s = db.Prepare(
        "INSERT INTO replays(upstream, from_seq, through_seq, position, created_ms, done) "
        "VALUES(?1, ?2, ?3, ?4, ?5, 0)",
        &ins);
  if (s.ok()) {
    BindText(ins.get(), 1, r.upstream);
    BindU64(ins.get(), 2, r.from_seq);
    BindU64(ins.get(), 3, r.through_seq);
    BindU64(ins.get(), 4, r.position);
    sqlite3_bind_int64(ins.get(), 5, r.created_ms);
    const int rc = sqlite3_step(ins.get());
    if (rc != SQLITE_DONE) s = db.Error(rc, "storing the replay request");
    r.id = sqlite3_last_insert_rowid(db.db());
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return s;
  if (o.logger) {
    o.logger->info("event log {}: replay request {} for upstream '{}', seq {}..{}", o.path, r.id,
                   r.upstream, r.from_seq, r.through_seq);
  }
  *out = std::move(r);
  return Status::Ok();
}

Status SqliteEventLog::ListReplays(const std::string& path, const std::string& vfs,
                                   std::vector<ReplayRequest>* out) {
  out->clear();
  SqliteHandle db;
  Status s = OpenBeside(path, vfs, false, &db);
  int64_t version = 0;
  if (s.ok()) s = CheckCurrentFormat(&db, path, kApplicationId, kSchemaVersion, &version);
  if (!s.ok() || version < 3) return s;
  Statement q;
  s = db.Prepare(
      "SELECT id, upstream, from_seq, through_seq, position, created_ms, done FROM replays "
      "ORDER BY id",
      &q);
  if (!s.ok()) return s;
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) out->push_back(ReplayRow(q.get()));
  if (rc != SQLITE_DONE) return db.Error(rc, "reading the replay requests");
  return Status::Ok();
}

Status SqliteEventLog::PendingReplays(std::vector<ReplayRequest>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(write_mu_);
  sqlite3_stmt* st = pending_replays_.get();
  if (st == nullptr) return Status::Ok();  // a file of an older format, read-only
  // Requests come from other processes (RequestReplay), so they are read from the file.
  sqlite3_reset(st);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) out->push_back(ReplayRow(st));
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "reading the replay requests");
  return Status::Ok();
}

Status SqliteEventLog::AdvanceReplay(int64_t id, uint64_t position, bool done) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  sqlite3_stmt* st = advance_replay_.get();
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, id);
  BindU64(st, 2, position);
  sqlite3_bind_int(st, 3, done ? 1 : 0);
  const int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return FailLocked(writer_.Error(rc, "recording a replay's progress"));
  if (sqlite3_changes(writer_.db()) == 0) {
    return Status::NotFound("no replay request " + std::to_string(id) + " in " + options_.path);
  }
  return Status::Ok();
}

Status SqliteEventLog::RefreshPositions() {
  if (!options_.read_only) {
    return Status::InvalidArgument(
        "RefreshPositions is for a read-only log; a read-write log's figures are always current");
  }
  std::lock_guard<std::mutex> lock(write_mu_);
  uint64_t last = 0;
  std::vector<std::pair<std::string, uint64_t>> stored;
  Status s = QueryU64(&writer_, last_seq_.get(), &last);
  if (s.ok()) s = StoredCursors(&writer_, stored_cursors_.get(), &stored);
  if (!s.ok()) return s;
  state_.stats.last_seq = last;
  // The daemon may have been restarted with other upstreams since the open.
  if (!stored.empty()) {
    std::erase_if(state_.cursors, [&](const Cursor& c) {
      return std::none_of(stored.begin(), stored.end(),
                          [&](const auto& p) { return p.first == c.stats.name; });
    });
  }
  for (const auto& [name, pos] : stored) {
    Cursor* c = FindCursorLocked(name);
    if (c == nullptr) {
      state_.cursors.emplace_back();
      c = &state_.cursors.back();
      c->stats.name = name;
    }
    c->stats.cursor = pos;
  }
  RefreshWaitingLocked();
  return Status::Ok();
}

Status SqliteEventLog::WriterPragma(std::string_view name, int64_t* value) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return writer_.QueryInt("PRAGMA " + std::string(name), value);
}

bool SqliteEventLog::WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(write_mu_);
  return appended_cv_.wait_for(lock, timeout, [&] { return state_.stats.last_seq > after_seq; });
}

LogStats SqliteEventLog::Stats() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  LogStats st = state_.stats;
  st.cursors.reserve(state_.cursors.size());
  for (const Cursor& c : state_.cursors) {
    if (!c.stats.name.empty()) st.cursors.push_back(c.stats);
  }
  return st;
}

}  // namespace sluice::storage
