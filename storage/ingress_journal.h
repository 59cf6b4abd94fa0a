// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "storage/event.h"

struct sqlite3_file;
struct sqlite3_vfs;

namespace sluice::storage {

struct IngressJournalOptions {
  std::string path;  // usually the log's path + kPathSuffix
  // Registered SQLite VFS the file is opened through, as the log's files are (tests cut the
  // power on all of them alike); empty = SQLite's default.
  std::string vfs;
  // The file's size, header included. Preallocated, so that an append never changes the file's
  // size and an fdatasync writes data only.
  uint64_t capacity_bytes = 4 << 20;
  // fdatasync after every record: sync = "full". Without it a record survives a crash of the
  // process (it is in the page cache once write returns) but not a power loss, like a commit of
  // the log under sync = "normal".
  bool sync_each_record = false;
  std::shared_ptr<spdlog::logger> logger;  // REQUIRES: non-null
};

// The log's front door for acknowledged events (docs/ARCHITECTURE.md, "The ingress journal";
// the file format is in docs/log-format.md). Paho acknowledges a QoS 1 message when its callback
// returns, so the event must be durable by then; one SQLite transaction per event costs a WAL
// frame (4 KiB and more) and, under sync = "full", several fsyncs. Instead the callback appends
// the event to this preallocated file, one write (and one fdatasync under sync = "full"), and
// returns; the LogWriter moves the events into the log in group commits, and every append
// transaction stores the highest journal record number it holds (LogStats::ingress_applied).
//
// Records are numbered, consecutively, from where the log's number left off. The file is written
// from the front; a record that does not fit at the tail starts again at the front, which is
// allowed only once every record in the file is in the log (Append says Full until then). A
// reader follows the chain from the front while checksums hold and numbers are consecutive: a
// torn record or an older record left from before a wrap ends it.
//
// Thread-safety: Append, Reset and Close from one thread at a time (the LogWriter serialises
// them); MarkApplied and the accessors from any thread.
class IngressJournal {
 public:
  static constexpr char kPathSuffix[] = "-ingress";
  static constexpr uint32_t kFormatVersion = 1;
  static constexpr uint64_t kHeaderBytes = 512;
  // Per record: checksum, length, number, receive time, qos, retain, packet id, topic length.
  static constexpr uint64_t kRecordHeaderBytes = 4 + 4 + 8 + 8 + 1 + 1 + 2 + 2;
  static constexpr uint64_t kMinCapacityBytes = 64 << 10;

  // Opens the journal at options.path, creating it if missing, and returns in *pending the
  // events of its records numbered above `applied` (the log's LogStats::ingress_applied), oldest
  // first, each with Event::ingress set: acknowledged events that are not in the log yet. They
  // stay in the file until MarkApplied covers them. `log_id` is the log's identity: a journal
  // written for another log that still holds records is refused with Corruption and left as it
  // is (it may hold acknowledged events of that log), as is a file that is not a journal.
  // REQUIRES: the log's database file exists (SQLite's unix VFS opens a journal only beside the
  // database its name leads to, whose permissions it copies).
  static Status Open(IngressJournalOptions options, std::string_view log_id, uint64_t applied,
                     std::unique_ptr<IngressJournal>* out, std::vector<Event>* pending);
  // Reads the journal at `path` without changing it (read-only, for `sluice status` and tests):
  // the events of its records numbered above `applied`, oldest first, as Open would return
  // them. A missing file or one with no valid header holds none; NotFound if it is missing.
  static Status Peek(const std::string& path, const std::string& vfs, uint64_t applied,
                     std::vector<Event>* pending);
  ~IngressJournal();

  IngressJournal(const IngressJournal&) = delete;
  IngressJournal& operator=(const IngressJournal&) = delete;

  // Writes a record for `event`, sets event->ingress to its number and, under
  // sync_each_record, syncs it. InvalidArgument if the record can never fit (the caller commits
  // such an event to the log directly); Full if it does not fit at the tail and records not yet
  // applied remain (the caller gets them into the log and calls again). Any other error: the
  // journal is failed for good (fail-stop) and the event is not acknowledged.
  Status Append(Event* event);

  // Every record numbered up to `number` is in the log, durable to the log's sync mode.
  void MarkApplied(uint64_t number);

  // REQUIRES: every record applied. Ends the chain at the front, so that the next open finds
  // nothing to recover (a clean stop), and syncs it.
  Status Reset();

  uint64_t last_number() const { return last_.load(); }  // 0 before any record
  uint64_t applied() const { return applied_.load(); }
  uint64_t capacity_bytes() const { return capacity_; }
  // Records written and bytes appended (records only) since open, for metrics.
  uint64_t records_written() const { return records_written_.load(); }

 private:
  IngressJournal(IngressJournalOptions options, sqlite3_vfs* vfs);

  Status OpenFile();
  // Reads the file: checks its header against `log_id`, follows the chain and sets the write
  // position. May (re)initialise a file that holds no record.
  Status Load(std::string_view log_id, uint64_t applied, std::vector<Event>* pending);
  // Zeros the whole file, writes the header for `log_id` and syncs.
  Status Initialise(std::string_view log_id);
  Status Write(const void* data, uint64_t size, uint64_t offset, const char* what);
  Status Sync(const char* what);
  Status Fail(Status s);

  const IngressJournalOptions options_;
  sqlite3_vfs* const vfs_;
  // The name as xOpen takes it: SQLite may look past its end, so it ends with several NULs, and
  // it must outlive the open file.
  std::string name_;
  sqlite3_file* file_ = nullptr;  // owned; vfs_->szOsFile bytes
  bool open_ = false;
  uint64_t capacity_ = 0;
  uint64_t tail_ = kHeaderBytes;  // where the next record goes
  std::atomic<uint64_t> last_{0};
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> records_written_{0};
  std::string buffer_;  // the record being written, reused
  Status failed_;
};

}  // namespace sluice::storage
