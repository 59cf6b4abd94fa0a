#include "storage/sqlite_event_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sluice::storage {

namespace {

constexpr char kSqliteMagic[] = "SQLite format 3";  // the first 16 bytes of every SQLite file

// Format 2 (docs/log-format.md). The `retained` columns come last because format 1 files gain
// them through ALTER TABLE ... ADD COLUMN, which appends.
const char* kSchema[] = {
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " retained INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE cursors(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE dead_letters("
    " seq INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " error TEXT NOT NULL,"
    " failed_ms INTEGER NOT NULL,"
    " retained INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE log_identity(id TEXT NOT NULL)",
};

// Format 1 -> 2, run in one transaction together with the identity row and user_version.
const char* kMigrateFrom1[] = {
    "ALTER TABLE events ADD COLUMN retained INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE dead_letters ADD COLUMN retained INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE log_identity(id TEXT NOT NULL)",
};

// What a dead-letter row `d` counts for against max_bytes: its error text, plus the event's own
// accounted bytes once the event has left `events` (until then the event already counts them).
std::string DeadLetterCostSql() {
  return "length(CAST(d.error AS BLOB)) + CASE WHEN EXISTS(SELECT 1 FROM events e WHERE e.seq = "
         "d.seq) THEN 0 ELSE length(CAST(d.topic AS BLOB)) + length(d.payload) + " +
         std::to_string(Event::kRowOverheadBytes) + " END";
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

int64_t NowMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Binds text or blob without copying; the caller keeps the bytes alive until the step.
int BindBlob(sqlite3_stmt* st, int i, const std::string& bytes) {
  return sqlite3_bind_blob64(st, i, bytes.data(), bytes.size(), SQLITE_STATIC);
}
int BindText(sqlite3_stmt* st, int i, std::string_view text) {
  return sqlite3_bind_text64(st, i, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
}

std::string ColumnBytes(sqlite3_stmt* st, int i) {
  const void* p = sqlite3_column_blob(st, i);
  int n = sqlite3_column_bytes(st, i);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), n);
}

// Rolls back an open transaction unless Commit() was reached.
class Transaction {
 public:
  explicit Transaction(SqliteHandle* db) : db_(db) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_->db(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status Begin() {
    Status s = db_->Exec("BEGIN IMMEDIATE");
    open_ = s.ok();
    return s;
  }
  Status Commit() {
    Status s = db_->Exec("COMMIT");
    if (s.ok()) open_ = false;
    return s;
  }

 private:
  SqliteHandle* db_;
  bool open_ = false;
};

}  // namespace

const char* ToString(Overflow o) {
  return o == Overflow::kDropOldest ? "drop-oldest" : "reject-new";
}
const char* ToString(Sync s) {
  return s == Sync::kFull ? "full" : "normal";
}

SqliteEventLog::SqliteEventLog(SqliteEventLogOptions options)
    : options_(std::move(options)), log_(options_.logger) {
  stats_.max_bytes = options_.max_bytes;
}

SqliteEventLog::~SqliteEventLog() {
  // The thread may be inside a checkpoint; it finishes before the writer's connection, closing
  // last, checkpoints the rest and removes the WAL.
  if (checkpointer_) checkpointer_->Stop();
  {
    std::lock_guard<std::mutex> r(read_mu_);
    read_from_ = Statement();
    reader_.Close();
  }
  {
    std::lock_guard<std::mutex> w(write_mu_);
    ReportDropsLocked();
    insert_event_ = Statement();
    delete_through_ = Statement();
    upsert_cursor_ = Statement();
    insert_dead_ = Statement();
    oldest_sizes_ = Statement();
    oldest_dead_ = Statement();
    delete_dead_ = Statement();
    event_exists_ = Statement();
    upsert_meta_ = Statement();
    writer_.Close();
  }
  if (lock_fd_ >= 0) close(lock_fd_);
}

Status SqliteEventLog::Open(SqliteEventLogOptions options, std::unique_ptr<SqliteEventLog>* out) {
  if (options.path.empty()) return Status::InvalidArgument("storage path is empty");
  if (!options.logger) return Status::InvalidArgument("SqliteEventLog needs a logger");
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

Status SqliteEventLog::WriteIdentityAndVersion(std::string* id) {
  Status s = RandomId(id);
  // The id is 32 hex digits, safe to put into the statement as it is.
  if (s.ok()) s = writer_.Exec("INSERT INTO log_identity(id) VALUES('" + *id + "')");
  if (s.ok()) s = writer_.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
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
  if (s.ok()) s = WriteIdentityAndVersion(&id);
  if (s.ok()) s = writer_.Exec("PRAGMA application_id=" + std::to_string(kApplicationId));
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return s;
  file_version_ = kSchemaVersion;
  log_->info("created event log {} (format version {}, identity {})", options_.path, kSchemaVersion,
             id);
  return s;
}

Status SqliteEventLog::MigrateSchema(int64_t from_version) {
  // Only format 1 exists below this one. All of it in one transaction: a crash leaves either the
  // old file or the new one, never a file with the columns but no identity.
  Transaction txn(&writer_);
  Status s = txn.Begin();
  for (const char* sql : kMigrateFrom1) {
    if (s.ok()) s = writer_.Exec(sql);
  }
  std::string id;
  if (s.ok()) s = WriteIdentityAndVersion(&id);
  if (s.ok()) s = txn.Commit();
  // The error names the file and the statement; the file is left at its old version.
  if (!s.ok()) return s;
  file_version_ = kSchemaVersion;
  log_->warn("migrated event log {} from format version {} to {} (new identity {})", options_.path,
             from_version, kSchemaVersion, id);
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
  // A format-1 file is read as it is only when opened read-only; it has no retain flags.
  const std::string retained = file_version_ >= 2 ? "retained" : "0";
  Status s = reader_.Prepare("SELECT seq, received_ms, qos, topic, payload, " + retained +
                                 " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                             &read_from_);
  if (!s.ok() || options_.read_only) return s;
  s = writer_.Prepare(
      "INSERT INTO events(seq, received_ms, qos, topic, payload, retained) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
      &insert_event_);
  // The second column: the event has a dead-letter row, which takes over its bytes.
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM events WHERE seq <= ?1 RETURNING length(CAST(topic AS BLOB)) + "
        "length(payload), EXISTS(SELECT 1 FROM dead_letters d WHERE d.seq = events.seq)",
        &delete_through_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO cursors(name, seq) VALUES(?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        &upsert_cursor_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO dead_letters(seq, received_ms, qos, topic, payload, error, failed_ms, "
        "retained) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &insert_dead_);
  if (s.ok())
    s = writer_.Prepare(
        "SELECT d.seq, " + DeadLetterCostSql() + " FROM dead_letters d ORDER BY d.seq",
        &oldest_dead_);
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM dead_letters WHERE seq = ?1 RETURNING received_ms, qos, topic, payload, "
        "error, failed_ms, retained, EXISTS(SELECT 1 FROM events e WHERE e.seq = "
        "dead_letters.seq)",
        &delete_dead_);
  if (s.ok()) s = writer_.Prepare("SELECT 1 FROM events WHERE seq = ?1", &event_exists_);
  if (s.ok())
    s = writer_.Prepare(
        "SELECT seq, length(CAST(topic AS BLOB)) + length(payload) FROM events ORDER BY seq",
        &oldest_sizes_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO meta(key, value) VALUES(?1, ?2) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        &upsert_meta_);
  return s;
}

Status SqliteEventLog::LoadState() {
  std::lock_guard<std::mutex> lock(write_mu_);
  SqliteHandle& db = writer_;
  int64_t v = 0;
  LogStats st;
  st.max_bytes = options_.max_bytes;
  Status s = db.QueryInt("SELECT count(*) FROM events", &v);
  st.events = static_cast<uint64_t>(v);
  if (s.ok())
    s = db.QueryInt(
        "SELECT COALESCE(sum(length(CAST(topic AS BLOB)) + length(payload)), 0) FROM events", &v);
  st.bytes = static_cast<uint64_t>(v) + st.events * Event::kRowOverheadBytes;
  if (s.ok()) s = db.QueryInt("SELECT COALESCE(min(seq), 0) FROM events", &v);
  st.first_seq = static_cast<uint64_t>(v);
  // The next sequence number must exceed every number ever handed out, also when the events that
  // carried the highest ones have left the log: hence the cursor, drops and dead letters count.
  int64_t high = 0;
  if (s.ok()) s = db.QueryInt("SELECT COALESCE(max(seq), 0) FROM events", &v);
  high = std::max(high, v);
  if (s.ok()) s = db.QueryInt("SELECT COALESCE(max(seq), 0) FROM cursors", &v);
  high = std::max(high, v);
  if (s.ok()) s = db.QueryInt("SELECT COALESCE(max(seq), 0) FROM dead_letters", &v);
  high = std::max(high, v);
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE(max(value), 0) FROM meta WHERE key = 'dropped_through'", &v);
  high = std::max(high, v);
  st.last_seq = static_cast<uint64_t>(high);
  if (s.ok()) {
    Statement q;
    s = db.Prepare("SELECT seq FROM cursors WHERE name = ?1", &q);
    if (s.ok()) {
      BindText(q.get(), 1, options_.cursors.front());
      if (sqlite3_step(q.get()) == SQLITE_ROW) st.cursor = sqlite3_column_int64(q.get(), 0);
    }
  }
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE((SELECT received_ms FROM events ORDER BY seq LIMIT 1), 0)",
                    &v);
  st.oldest_received_ms = v;
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE(max(value), 0) FROM meta WHERE key = 'dropped_events'", &v);
  st.dropped_events = static_cast<uint64_t>(v);
  if (s.ok()) s = db.QueryInt("SELECT count(*) FROM dead_letters", &v);
  st.dead_letters = static_cast<uint64_t>(v);
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE(sum(" + DeadLetterCostSql() + "), 0) FROM dead_letters d", &v);
  st.dead_letter_bytes = static_cast<uint64_t>(v);
  if (s.ok())
    s = db.QueryInt("SELECT COALESCE(max(value), 0) FROM meta WHERE key = 'dropped_dead_letters'",
                    &v);
  st.dropped_dead_letters = static_cast<uint64_t>(v);
  if (!s.ok()) return s;
  stats_ = st;
  if (!options_.read_only) {
    log_->info(
        "opened event log {} (identity {}): {} events waiting ({} bytes), {} dead letters ({} "
        "bytes), max_bytes {}, cursor {}, next seq {}, sync={}, overflow={}",
        options_.path, log_id_, st.events, st.bytes, st.dead_letters, st.dead_letter_bytes,
        st.max_bytes, st.cursor, st.last_seq + 1, ToString(options_.sync),
        ToString(options_.overflow));
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

Status SqliteEventLog::SetMetaLocked(const char* key, int64_t value) {
  sqlite3_stmt* st = upsert_meta_.get();
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, value);
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return writer_.Error(rc, std::string("updating meta ") + key);
  return Status::Ok();
}

namespace {
// The run of oldest rows (seq, bytes) that frees `need_bytes`: steps `st`, whose rows come oldest
// first, until *freed (bytes plus `per_row` per row, added up) reaches it. SQLite steps lazily,
// so only that run is read. Returns the last sqlite3_step code (SQLITE_ROW when it stopped early).
struct OldestRun {
  uint64_t first = 0;
  uint64_t through = 0;
  uint64_t count = 0;
};
int StepOldestRun(sqlite3_stmt* st, uint64_t need_bytes, uint64_t per_row, uint64_t* freed,
                  OldestRun* run) {
  sqlite3_reset(st);
  int rc = SQLITE_DONE;
  while (*freed < need_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    run->through = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
    if (run->count == 0) run->first = run->through;
    *freed += static_cast<uint64_t>(sqlite3_column_int64(st, 1)) + per_row;
    ++run->count;
  }
  sqlite3_reset(st);
  return rc;
}
}  // namespace

Status SqliteEventLog::DropDeadLettersLocked(uint64_t need_bytes, uint64_t* freed_out) {
  uint64_t freed = 0;
  OldestRun run;
  int rc = StepOldestRun(oldest_dead_.get(), need_bytes, 0, &freed, &run);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest dead letters to drop");
  const uint64_t count = run.count;
  const uint64_t first = run.first;
  const uint64_t through = run.through;
  if (count == 0) return Status::Ok();
  Statement del;
  Status s = writer_.Prepare("DELETE FROM dead_letters WHERE seq <= ?1", &del);
  if (!s.ok()) return s;
  sqlite3_bind_int64(del.get(), 1, static_cast<int64_t>(through));
  rc = sqlite3_step(del.get());
  if (rc != SQLITE_DONE) return writer_.Error(rc, "dropping the oldest dead letters");
  s = SetMetaLocked("dropped_dead_letters",
                    static_cast<int64_t>(stats_.dropped_dead_letters + count));
  if (!s.ok()) return s;
  // The caller puts stats_ back as it was if the transaction does not commit.
  stats_.dead_letters -= std::min(stats_.dead_letters, count);
  stats_.dead_letter_bytes -= std::min(stats_.dead_letter_bytes, freed);
  stats_.dropped_dead_letters += count;
  if (uncommitted_dead_drop_) {
    uncommitted_dead_drop_->last = through;
    uncommitted_dead_drop_->count += count;
  } else {
    uncommitted_dead_drop_ = DropRange{first, through, count, ""};
  }
  *freed_out += freed;
  return Status::Ok();
}

Status SqliteEventLog::DropOldestLocked(uint64_t need_bytes, const char* reason) {
  // Dead letters are settled events, older than anything still waiting: they go first.
  uint64_t freed = 0;
  if (stats_.dead_letters > 0) {
    Status s = DropDeadLettersLocked(need_bytes, &freed);
    if (!s.ok()) return s;
    if (uncommitted_dead_drop_) uncommitted_dead_drop_->reason = reason;
    if (freed >= need_bytes) return Status::Ok();
  }
  // The shortest run of oldest events whose removal frees the rest.
  OldestRun run;
  int rc = StepOldestRun(oldest_sizes_.get(), need_bytes, Event::kRowOverheadBytes, &freed, &run);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest events to drop");
  const uint64_t count = run.count;
  const uint64_t through = run.through;
  if (count == 0) return Status::Ok();

  // Every dead letter is gone by now (they went first), so no dropped event hands its bytes over
  // to a dead-letter row; the check keeps the accounting exact all the same.
  uint64_t freed_events = 0;
  uint64_t moved_to_dead = 0;
  sqlite3_stmt* del = delete_through_.get();
  sqlite3_reset(del);
  sqlite3_bind_int64(del, 1, static_cast<int64_t>(through));
  while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
    const uint64_t bytes =
        static_cast<uint64_t>(sqlite3_column_int64(del, 0)) + Event::kRowOverheadBytes;
    freed_events += bytes;
    if (sqlite3_column_int(del, 1) != 0) moved_to_dead += bytes;
  }
  sqlite3_reset(del);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "dropping the oldest events");
  const uint64_t first = stats_.first_seq;
  Status s = SetMetaLocked("dropped_through", static_cast<int64_t>(through));
  if (s.ok())
    s = SetMetaLocked("dropped_events", static_cast<int64_t>(stats_.dropped_events + count));
  int64_t oldest = 0;
  if (s.ok())
    s = writer_.QueryInt(
        "SELECT COALESCE((SELECT received_ms FROM events ORDER BY seq LIMIT 1), 0)", &oldest);
  if (!s.ok()) return s;
  // The caller puts stats_ back as it was if the transaction does not commit.
  stats_.oldest_received_ms = oldest;
  stats_.events -= count;
  stats_.bytes -= std::min(stats_.bytes, freed_events);
  stats_.dead_letter_bytes += moved_to_dead;
  stats_.dropped_events += count;
  stats_.first_seq = through + 1;
  uncommitted_drop_ = DropRange{first, through, count, reason};
  return Status::Ok();
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
    if (!uncommitted_drop_ &&
        std::chrono::steady_clock::now() - drop_reported_at_ >= kDropReportInterval) {
      ReportDropsLocked();
    }
  }
  if (!uncommitted_drop_) return;
  const DropRange d = *uncommitted_drop_;
  uncommitted_drop_.reset();
  // Under a long outage every new event makes room by dropping one: one line per drop would be a
  // line per event. Contiguous drops are merged and reported at most once per interval, the
  // first at once; the report names the exact range.
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
  if (std::chrono::steady_clock::now() - drop_reported_at_ >= kDropReportInterval) {
    ReportDropsLocked();
  }
}

void SqliteEventLog::ReportDropsLocked() {
  const DropRange& dd = unreported_dead_drop_;
  if (dd.count > 0) {
    log_->warn("{} (max_bytes {}): dropped the {} oldest dead letters, seq {}..{}, to make room",
               dd.reason, options_.max_bytes, dd.count, dd.first, dd.last);
    drop_reported_at_ = std::chrono::steady_clock::now();
    unreported_dead_drop_ = DropRange{};
  }
  if (unreported_short_reasons_ > 0) {
    log_->warn(
        "log full (max_bytes {}): kept {} dead letters with their reason shortened to the room "
        "left",
        options_.max_bytes, unreported_short_reasons_);
    drop_reported_at_ = std::chrono::steady_clock::now();
    unreported_short_reasons_ = 0;
  }
  const DropRange& d = unreported_drop_;
  if (d.count == 0) return;
  log_->warn("{} (max_bytes {}): dropped the {} oldest events, seq {}..{}, to make room", d.reason,
             options_.max_bytes, d.count, d.first, d.last);
  drop_reported_at_ = std::chrono::steady_clock::now();
  unreported_drop_ = DropRange{};
}

Status SqliteEventLog::InsertLocked(std::span<Event> events, uint64_t incoming) {
  const LogStats before = stats_;
  const auto started = std::chrono::steady_clock::now();
  Transaction txn(&writer_);
  Status s = txn.Begin();
  if (s.ok() && options_.overflow == Overflow::kDropOldest &&
      UsedBytesLocked() + incoming > options_.max_bytes) {
    s = DropOldestLocked(UsedBytesLocked() + incoming - options_.max_bytes, "log full");
  }
  uint64_t seq = stats_.last_seq;
  sqlite3_stmt* st = insert_event_.get();
  for (size_t i = 0; s.ok() && i < events.size(); ++i) {
    Event& e = events[i];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, static_cast<int64_t>(seq + 1));
    sqlite3_bind_int64(st, 2, e.received_ms);
    sqlite3_bind_int(st, 3, e.qos);
    BindText(st, 4, e.topic);
    BindBlob(st, 5, e.payload);
    sqlite3_bind_int(st, 6, e.retained ? 1 : 0);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
      s = writer_.Error(rc, "appending an event");
      break;
    }
    e.seq = ++seq;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    // Nothing of the batch is in the log: no sequence number is used up and no event may be
    // reported as appended.
    uncommitted_drop_.reset();
    uncommitted_dead_drop_.reset();
    stats_ = before;
    for (Event& e : events) e.seq = 0;
    return s;
  }
  if (options_.commit_seconds != nullptr) {
    options_.commit_seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  if (stats_.events == 0) {
    stats_.first_seq = stats_.last_seq + 1;
    stats_.oldest_received_ms = events[0].received_ms;
  }
  stats_.events += events.size();
  stats_.bytes += incoming;
  stats_.last_seq = seq;
  stats_.commits++;
  NoteCommittedDropLocked();
  return Status::Ok();
}

Status SqliteEventLog::DropOldestForDiskLocked(uint64_t need_bytes) {
  const LogStats before = stats_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  if (s.ok()) s = DropOldestLocked(need_bytes, "disk full");
  if (s.ok()) s = txn.Commit();
  if (s.ok()) {
    NoteCommittedDropLocked();
  } else {
    uncommitted_drop_.reset();
    uncommitted_dead_drop_.reset();
    stats_ = before;
  }
  return s;
}

Status SqliteEventLog::Append(std::span<Event> events, size_t* appended) {
  *appended = 0;
  if (events.empty()) return Status::Ok();
  std::unique_lock<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");

  uint64_t incoming = 0;
  size_t take = events.size();
  if (options_.overflow == Overflow::kRejectNew) {
    const uint64_t used = UsedBytesLocked();
    uint64_t room = used < options_.max_bytes ? options_.max_bytes - used : 0;
    take = 0;
    for (const Event& e : events) {
      if (incoming + e.AccountedBytes() > room) break;
      incoming += e.AccountedBytes();
      ++take;
    }
    if (take == 0) {
      return Status::Full("event log " + options_.path + " is full (" + std::to_string(used) +
                          " of " + std::to_string(options_.max_bytes) +
                          " bytes, overflow = reject-new)");
    }
  } else {
    for (const Event& e : events) incoming += e.AccountedBytes();
  }

  Status s = InsertLocked(events.first(take), incoming);
  if (s.IsFull() && options_.overflow == Overflow::kDropOldest) {
    // The disk, not max_bytes, is full. Deleted rows leave free pages that SQLite reuses, so the
    // policy makes room on the disk the same way it does under max_bytes: it gives up the oldest
    // waiting events, each round twice as many bytes as the last, until the batch fits.
    uint64_t need = std::max<uint64_t>(incoming, kDiskFullDropMinBytes);
    while (s.IsFull() && (stats_.events > 0 || stats_.dead_letters > 0)) {
      Status d = DropOldestForDiskLocked(need);
      if (!d.ok()) break;  // no room even for the deletion: wait for space like reject-new
      s = InsertLocked(events.first(take), incoming);
      need *= 2;
    }
  }
  if (!s.ok()) {
    if (s.IsFull()) {
      stats_.disk_full_errors++;
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

Status SqliteEventLog::Read(uint64_t after_seq, size_t max_events, size_t max_bytes,
                            std::vector<Event>* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  sqlite3_stmt* st = read_from_.get();
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, static_cast<int64_t>(after_seq));
  sqlite3_bind_int64(st, 2, static_cast<int64_t>(max_events));
  size_t bytes = 0;
  int rc = SQLITE_DONE;
  while (bytes < max_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    Event e;
    e.seq = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
    e.received_ms = sqlite3_column_int64(st, 1);
    e.qos = sqlite3_column_int(st, 2);
    e.topic = ColumnBytes(st, 3);
    e.payload = ColumnBytes(st, 4);
    e.retained = sqlite3_column_int(st, 5) != 0;
    bytes += e.payload.size();
    out->push_back(std::move(e));
  }
  if (bytes < max_bytes && rc != SQLITE_DONE) {
    sqlite3_reset(st);
    return reader_.Error(rc, "reading events");
  }
  sqlite3_reset(st);
  return Status::Ok();
}

Status SqliteEventLog::Acknowledge(std::string_view cursor, uint64_t through_seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (cursor != options_.cursors.front()) {
    return Status::NotFound("no cursor '" + std::string(cursor) + "' in this log");
  }
  if (through_seq <= stats_.cursor) return Status::Ok();
  if (through_seq > stats_.last_seq) {
    return Status::InvalidArgument("acknowledge past the last assigned seq (" +
                                   std::to_string(through_seq) + " > " +
                                   std::to_string(stats_.last_seq) + ")");
  }
  Transaction txn(&writer_);
  Status s = txn.Begin();
  uint64_t freed = 0;
  uint64_t moved_to_dead = 0;  // bytes of dead-lettered events, now counted by their rows
  uint64_t count = 0;
  if (s.ok()) {
    sqlite3_stmt* del = delete_through_.get();
    sqlite3_reset(del);
    sqlite3_bind_int64(del, 1, static_cast<int64_t>(through_seq));
    int rc;
    while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
      const uint64_t bytes =
          static_cast<uint64_t>(sqlite3_column_int64(del, 0)) + Event::kRowOverheadBytes;
      freed += bytes;
      if (sqlite3_column_int(del, 1) != 0) moved_to_dead += bytes;
      ++count;
    }
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "removing acknowledged events");
  }
  if (s.ok()) {
    sqlite3_stmt* up = upsert_cursor_.get();
    sqlite3_reset(up);
    BindText(up, 1, options_.cursors.front());
    sqlite3_bind_int64(up, 2, static_cast<int64_t>(through_seq));
    int rc = sqlite3_step(up);
    sqlite3_reset(up);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "storing the cursor");
  }
  int64_t oldest = 0;
  if (s.ok())
    s = writer_.QueryInt(
        "SELECT COALESCE((SELECT received_ms FROM events ORDER BY seq LIMIT 1), 0)", &oldest);
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return FailLocked(s);
  if (unreported_drop_.count > 0 &&
      std::chrono::steady_clock::now() - drop_reported_at_ >= kDropReportInterval) {
    ReportDropsLocked();
  }
  stats_.cursor = through_seq;
  stats_.events -= std::min(stats_.events, count);
  stats_.bytes -= std::min(stats_.bytes, freed);
  stats_.dead_letter_bytes += moved_to_dead;
  stats_.first_seq = stats_.events == 0 ? 0 : std::max(stats_.first_seq, through_seq + 1);
  stats_.oldest_received_ms = oldest;
  return Status::Ok();
}

Status SqliteEventLog::DeleteDeadLetterLocked(uint64_t seq, DeadLetterRow* row, bool* in_events) {
  sqlite3_stmt* st = delete_dead_.get();
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, static_cast<int64_t>(seq));
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return Status::NotFound("no dead letter with seq " + std::to_string(seq) + " in " +
                            options_.path);
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return writer_.Error(rc, "deleting a dead letter");
  }
  DeadLetterRow r;
  r.event.seq = seq;
  r.event.received_ms = sqlite3_column_int64(st, 0);
  r.event.qos = sqlite3_column_int(st, 1);
  r.event.topic = ColumnBytes(st, 2);
  r.event.payload = ColumnBytes(st, 3);
  r.error = ColumnBytes(st, 4);
  r.failed_ms = sqlite3_column_int64(st, 5);
  r.event.retained = sqlite3_column_int(st, 6) != 0;
  *in_events = sqlite3_column_int(st, 7) != 0;
  rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return writer_.Error(rc, "deleting a dead letter");
  const uint64_t cost = r.error.size() + (*in_events ? 0 : r.event.AccountedBytes());
  stats_.dead_letters -= std::min<uint64_t>(stats_.dead_letters, 1);
  stats_.dead_letter_bytes -= std::min(stats_.dead_letter_bytes, cost);
  if (row != nullptr) *row = std::move(r);
  return Status::Ok();
}

Status SqliteEventLog::CursorPosition(std::string_view cursor, uint64_t* seq) const {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (cursor != options_.cursors.front()) {
    return Status::NotFound("no cursor '" + std::string(cursor) + "' in this log");
  }
  *seq = stats_.cursor;
  return Status::Ok();
}

Status SqliteEventLog::PendingReplays(std::vector<ReplayRequest>* out) {
  out->clear();
  return Status::Ok();
}

Status SqliteEventLog::AdvanceReplay(int64_t, uint64_t, bool) {
  return Status::InvalidArgument("replay is not implemented yet");
}

Status SqliteEventLog::DeadLetter(std::string_view cursor, const Event& event,
                                  std::string_view error) {
  (void)cursor;
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (options_.read_only) return Status::InvalidArgument("the log is open read-only");
  const LogStats before = stats_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  // A refusal repeated after a restart (before the cursor passed the event) replaces the earlier
  // row and its bytes.
  bool in_events = false;
  bool had_row = false;
  if (s.ok()) {
    s = DeleteDeadLetterLocked(event.seq, nullptr, &in_events);
    had_row = s.ok();
    if (s.code() == Status::Code::kNotFound) s = Status::Ok();
  }
  if (s.ok() && !had_row) {
    sqlite3_stmt* q = event_exists_.get();
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, static_cast<int64_t>(event.seq));
    const int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc == SQLITE_ROW) {
      in_events = true;
    } else if (rc != SQLITE_DONE) {
      s = writer_.Error(rc, "looking up a refused event");
    }
  }
  // While the event waits in `events` its bytes are counted there, and Acknowledge hands them to
  // the row: moving an event into the dead letters needs room only for the reason. That room is
  // not taken from the waiting events (docs/log-format.md, "Dead letters and max_bytes").
  const uint64_t base = in_events ? 0 : event.AccountedBytes();
  if (s.ok() && options_.overflow == Overflow::kDropOldest &&
      UsedBytesLocked() + base + error.size() > options_.max_bytes) {
    uint64_t freed = 0;
    s = DropDeadLettersLocked(UsedBytesLocked() + base + error.size() - options_.max_bytes, &freed);
    if (uncommitted_dead_drop_) uncommitted_dead_drop_->reason = "log full";
  }
  std::string_view reason = error;
  bool shortened = false;
  if (s.ok()) {
    const uint64_t used = UsedBytesLocked();
    const uint64_t room = used < options_.max_bytes ? options_.max_bytes - used : 0;
    if (base > room) {
      if (options_.overflow == Overflow::kDropOldest) {
        // The only way an unsettled event leaves the log before the cursor passes it is
        // drop-oldest, which has counted and reported it as dropped already. Nothing of this
        // transaction is kept.
        uncommitted_dead_drop_.reset();
        stats_ = before;
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
    sqlite3_bind_int64(st, 1, static_cast<int64_t>(event.seq));
    sqlite3_bind_int64(st, 2, event.received_ms);
    sqlite3_bind_int(st, 3, event.qos);
    BindText(st, 4, event.topic);
    BindBlob(st, 5, event.payload);
    BindText(st, 6, reason);
    sqlite3_bind_int64(st, 7, NowMillis());
    sqlite3_bind_int(st, 8, event.retained ? 1 : 0);
    const int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "recording a dead letter");
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    uncommitted_dead_drop_.reset();
    stats_ = before;
    return FailLocked(s);
  }
  stats_.dead_letters++;
  stats_.dead_letter_bytes += base + reason.size();
  if (shortened) unreported_short_reasons_++;
  NoteCommittedDropLocked();
  if (shortened && std::chrono::steady_clock::now() - drop_reported_at_ >= kDropReportInterval) {
    ReportDropsLocked();
  }
  return Status::Ok();
}

namespace {

Status ReadDeadLetterRows(SqliteHandle* db, int64_t file_version, const std::string& where,
                          int64_t a, int64_t b, std::vector<DeadLetterRow>* out) {
  Statement q;
  Status s = db->Prepare("SELECT seq, received_ms, qos, topic, payload, error, failed_ms, " +
                             std::string(file_version >= 2 ? "retained" : "0") +
                             " FROM dead_letters " + where,
                         &q);
  if (!s.ok()) return s;
  sqlite3_bind_int64(q.get(), 1, a);
  sqlite3_bind_int64(q.get(), 2, b);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    DeadLetterRow r;
    r.event.seq = static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0));
    r.event.received_ms = sqlite3_column_int64(q.get(), 1);
    r.event.qos = sqlite3_column_int(q.get(), 2);
    r.event.topic = ColumnBytes(q.get(), 3);
    r.event.payload = ColumnBytes(q.get(), 4);
    r.error = ColumnBytes(q.get(), 5);
    r.failed_ms = sqlite3_column_int64(q.get(), 6);
    r.event.retained = sqlite3_column_int(q.get(), 7) != 0;
    out->push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return db->Error(rc, "reading dead letters");
  return Status::Ok();
}

}  // namespace

Status SqliteEventLog::ReadDeadLetters(uint64_t after_seq, size_t limit,
                                       std::vector<DeadLetterRow>* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  return ReadDeadLetterRows(&reader_, file_version_, "WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                            static_cast<int64_t>(after_seq),
                            static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)), out);
}

Status SqliteEventLog::ReadDeadLetter(uint64_t seq, DeadLetterRow* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  std::vector<DeadLetterRow> rows;
  Status s = ReadDeadLetterRows(&reader_, file_version_, "WHERE seq = ?1 LIMIT ?2",
                                static_cast<int64_t>(seq), 1, &rows);
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
  Statement q;
  Status s = writer_.Prepare(all ? "SELECT seq FROM dead_letters ORDER BY seq"
                                 : "SELECT seq FROM dead_letters WHERE seq = ?1",
                             &q);
  if (!s.ok()) return s;
  int rc;
  if (all) {
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW)
      out->push_back(static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0)));
    if (rc != SQLITE_DONE) return writer_.Error(rc, "listing dead letters");
    return Status::Ok();
  }
  std::vector<uint64_t> wanted(seqs.begin(), seqs.end());
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (uint64_t seq : wanted) {
    sqlite3_reset(q.get());
    sqlite3_bind_int64(q.get(), 1, static_cast<int64_t>(seq));
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
  const LogStats before = stats_;
  std::vector<std::pair<uint64_t, uint64_t>> done;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  std::vector<uint64_t> chosen;
  if (s.ok()) s = SelectDeadLettersLocked(seqs, all, &chosen);
  sqlite3_stmt* ins = insert_event_.get();
  for (size_t i = 0; s.ok() && i < chosen.size(); ++i) {
    DeadLetterRow row;
    bool in_events = false;
    s = DeleteDeadLetterLocked(chosen[i], &row, &in_events);
    if (!s.ok()) break;
    if (in_events) {  // still waiting: forwarded again from its own place
      done.emplace_back(chosen[i], 0);
      continue;
    }
    // A new seq at the end: the numbers below last_seq are handed out already, and a consumer
    // de-duplicating on (log identity, seq) must see the replay as a new record.
    const uint64_t seq = stats_.last_seq + 1;
    const Event& e = row.event;
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, static_cast<int64_t>(seq));
    sqlite3_bind_int64(ins, 2, e.received_ms);
    sqlite3_bind_int(ins, 3, e.qos);
    BindText(ins, 4, e.topic);
    BindBlob(ins, 5, e.payload);
    sqlite3_bind_int(ins, 6, e.retained ? 1 : 0);
    const int rc = sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    if (rc != SQLITE_DONE) {
      s = writer_.Error(rc, "replaying a dead letter");
      break;
    }
    if (stats_.events == 0) {
      stats_.first_seq = seq;
      stats_.oldest_received_ms = e.received_ms;
    }
    stats_.events++;
    stats_.bytes += e.AccountedBytes();
    stats_.last_seq = seq;
    done.emplace_back(chosen[i], seq);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    stats_ = before;
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
  const LogStats before = stats_;
  Transaction txn(&writer_);
  Status s = txn.Begin();
  std::vector<uint64_t> chosen;
  if (s.ok()) s = SelectDeadLettersLocked(seqs, all, &chosen);
  for (size_t i = 0; s.ok() && i < chosen.size(); ++i) {
    bool in_events = false;
    s = DeleteDeadLetterLocked(chosen[i], nullptr, &in_events);
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    stats_ = before;
    return s.code() == Status::Code::kNotFound ? s : FailLocked(s);
  }
  *purged = chosen.size();
  return Status::Ok();
}

Status SqliteEventLog::WriterPragma(std::string_view name, int64_t* value) {
  std::lock_guard<std::mutex> lock(write_mu_);
  return writer_.QueryInt("PRAGMA " + std::string(name), value);
}

bool SqliteEventLog::WaitForEventsAfter(uint64_t after_seq, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(write_mu_);
  return appended_cv_.wait_for(lock, timeout, [&] { return stats_.last_seq > after_seq; });
}

LogStats SqliteEventLog::Stats() const {
  std::lock_guard<std::mutex> lock(write_mu_);
  return stats_;
}

}  // namespace sluice::storage
