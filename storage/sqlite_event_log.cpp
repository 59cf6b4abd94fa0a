#include "storage/sqlite_event_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sluice::storage {

namespace {

constexpr char kSqliteMagic[] = "SQLite format 3";  // the first 16 bytes of every SQLite file

const char* kSchema[] = {
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL)",
    "CREATE TABLE cursors(name TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE dead_letters("
    " seq INTEGER PRIMARY KEY,"
    " received_ms INTEGER NOT NULL,"
    " qos INTEGER NOT NULL,"
    " topic TEXT NOT NULL,"
    " payload BLOB NOT NULL,"
    " error TEXT NOT NULL,"
    " failed_ms INTEGER NOT NULL)",
};

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
        return Status::Unavailable("the log " + path +
                                   " is in use by another sluice process (lock " + lock_path + ")");
      }
      return Status::IoError(Errno("cannot lock " + lock_path));
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
  }
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
  if (s.ok()) s = writer_.Exec("PRAGMA application_id=" + std::to_string(kApplicationId));
  if (s.ok()) s = writer_.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
  if (s.ok()) s = txn.Commit();
  if (s.ok()) log_->info("created event log {} (format version {})", options_.path, kSchemaVersion);
  return s;
}

Status SqliteEventLog::PrepareStatements() {
  Status s = reader_.Prepare(
      "SELECT seq, received_ms, qos, topic, payload FROM events WHERE seq > ?1 ORDER BY seq "
      "LIMIT ?2",
      &read_from_);
  if (!s.ok() || options_.read_only) return s;
  s = writer_.Prepare(
      "INSERT INTO events(seq, received_ms, qos, topic, payload) VALUES(?1, ?2, ?3, ?4, ?5)",
      &insert_event_);
  if (s.ok())
    s = writer_.Prepare(
        "DELETE FROM events WHERE seq <= ?1 RETURNING length(CAST(topic AS BLOB)) + "
        "length(payload)",
        &delete_through_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT INTO cursors(name, seq) VALUES(?1, ?2) "
        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        &upsert_cursor_);
  if (s.ok())
    s = writer_.Prepare(
        "INSERT OR REPLACE INTO dead_letters(seq, received_ms, qos, topic, payload, error, "
        "failed_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &insert_dead_);
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
      BindText(q.get(), 1, options_.cursor_name);
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
  if (!s.ok()) return s;
  stats_ = st;
  if (!options_.read_only) {
    log_->info(
        "opened event log {}: {} events waiting ({} bytes of {}), cursor {}, next seq {}, "
        "sync={}, overflow={}",
        options_.path, st.events, st.bytes, st.max_bytes, st.cursor, st.last_seq + 1,
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

Status SqliteEventLog::DropOldestLocked(uint64_t need_bytes, const char* reason) {
  // The shortest run of oldest events whose removal frees need_bytes; SQLite steps lazily, so
  // only that run is read.
  uint64_t freed = 0;
  uint64_t count = 0;
  uint64_t through = 0;
  sqlite3_stmt* st = oldest_sizes_.get();
  sqlite3_reset(st);
  int rc = SQLITE_DONE;
  while (freed < need_bytes && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    through = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
    freed += static_cast<uint64_t>(sqlite3_column_int64(st, 1)) + Event::kRowOverheadBytes;
    ++count;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return writer_.Error(rc, "finding the oldest events to drop");
  if (count == 0) return Status::Ok();

  sqlite3_stmt* del = delete_through_.get();
  sqlite3_reset(del);
  sqlite3_bind_int64(del, 1, static_cast<int64_t>(through));
  while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
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
  stats_.bytes -= std::min(stats_.bytes, freed);
  stats_.dropped_events += count;
  stats_.first_seq = through + 1;
  uncommitted_drop_ = DropRange{first, through, count, reason};
  return Status::Ok();
}

void SqliteEventLog::NoteCommittedDropLocked() {
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
      stats_.bytes + incoming > options_.max_bytes) {
    s = DropOldestLocked(stats_.bytes + incoming - options_.max_bytes, "log full");
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
    uint64_t room = stats_.bytes < options_.max_bytes ? options_.max_bytes - stats_.bytes : 0;
    take = 0;
    for (const Event& e : events) {
      if (incoming + e.AccountedBytes() > room) break;
      incoming += e.AccountedBytes();
      ++take;
    }
    if (take == 0) {
      return Status::Full("event log " + options_.path + " is full (" +
                          std::to_string(stats_.bytes) + " of " +
                          std::to_string(options_.max_bytes) + " bytes, overflow = reject-new)");
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
    while (s.IsFull() && stats_.events > 0) {
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

Status SqliteEventLog::Acknowledge(uint64_t through_seq) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  if (through_seq <= stats_.cursor) return Status::Ok();
  if (through_seq > stats_.last_seq) {
    return Status::InvalidArgument("acknowledge past the last assigned seq (" +
                                   std::to_string(through_seq) + " > " +
                                   std::to_string(stats_.last_seq) + ")");
  }
  Transaction txn(&writer_);
  Status s = txn.Begin();
  uint64_t freed = 0;
  uint64_t count = 0;
  if (s.ok()) {
    sqlite3_stmt* del = delete_through_.get();
    sqlite3_reset(del);
    sqlite3_bind_int64(del, 1, static_cast<int64_t>(through_seq));
    int rc;
    while ((rc = sqlite3_step(del)) == SQLITE_ROW) {
      freed += static_cast<uint64_t>(sqlite3_column_int64(del, 0)) + Event::kRowOverheadBytes;
      ++count;
    }
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) s = writer_.Error(rc, "removing acknowledged events");
  }
  if (s.ok()) {
    sqlite3_stmt* up = upsert_cursor_.get();
    sqlite3_reset(up);
    BindText(up, 1, options_.cursor_name);
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
  stats_.first_seq = stats_.events == 0 ? 0 : std::max(stats_.first_seq, through_seq + 1);
  stats_.oldest_received_ms = oldest;
  return Status::Ok();
}

Status SqliteEventLog::DeadLetter(const Event& event, std::string_view error) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!failed_.ok()) return failed_;
  sqlite3_stmt* st = insert_dead_.get();
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, static_cast<int64_t>(event.seq));
  sqlite3_bind_int64(st, 2, event.received_ms);
  sqlite3_bind_int(st, 3, event.qos);
  BindText(st, 4, event.topic);
  BindBlob(st, 5, event.payload);
  BindText(st, 6, error);
  sqlite3_bind_int64(st, 7, NowMillis());
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return FailLocked(writer_.Error(rc, "recording a dead letter"));
  stats_.dead_letters++;
  if (static_cast<int64_t>(stats_.dead_letters) > kMaxDeadLetters) {
    Status s = writer_.Exec(
        "DELETE FROM dead_letters WHERE seq NOT IN (SELECT seq FROM dead_letters ORDER BY seq DESC "
        "LIMIT " +
        std::to_string(kMaxDeadLetters) + ")");
    if (!s.ok()) return FailLocked(s);
    stats_.dead_letters = kMaxDeadLetters;
  }
  return Status::Ok();
}

Status SqliteEventLog::ReadDeadLetters(size_t limit,
                                       std::vector<std::pair<Event, std::string>>* out) {
  std::lock_guard<std::mutex> lock(read_mu_);
  Statement q;
  Status s = reader_.Prepare(
      "SELECT seq, received_ms, qos, topic, payload, error FROM dead_letters ORDER BY seq LIMIT ?1",
      &q);
  if (!s.ok()) return s;
  sqlite3_bind_int64(q.get(), 1, static_cast<int64_t>(limit));
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    Event e;
    e.seq = static_cast<uint64_t>(sqlite3_column_int64(q.get(), 0));
    e.received_ms = sqlite3_column_int64(q.get(), 1);
    e.qos = sqlite3_column_int(q.get(), 2);
    e.topic = ColumnBytes(q.get(), 3);
    e.payload = ColumnBytes(q.get(), 4);
    out->emplace_back(std::move(e), ColumnBytes(q.get(), 5));
  }
  if (rc != SQLITE_DONE) return reader_.Error(rc, "reading dead letters");
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
