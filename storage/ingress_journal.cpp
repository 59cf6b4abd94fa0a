// SPDX-License-Identifier: Apache-2.0

#include "storage/ingress_journal.h"

#include <sqlite3.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace sluice::storage {

namespace {

constexpr char kMagic[4] = {'S', 'L', 'C', 'J'};
// Header: magic, version, identity length, identity, ..., CRC-32 of the bytes before it.
constexpr uint64_t kHeaderCrcOffset = IngressJournal::kHeaderBytes - 4;
constexpr size_t kMaxLogIdBytes = 256;

void PutU16(std::string* b, uint16_t v) {
  for (int i = 0; i < 2; ++i) b->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU32(std::string* b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetLe(const unsigned char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
void SetU32(std::string* b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[at + i] = static_cast<char>(v >> (8 * i));
}

uint32_t Crc(const void* data, size_t size) {
  return static_cast<uint32_t>(
      crc32(crc32(0, nullptr, 0), static_cast<const Bytef*>(data), static_cast<uInt>(size)));
}

bool AllZero(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == 0; });
}

// One record as the chain reader finds it.
struct Record {
  uint64_t size = 0;  // bytes in the file, header included
  Event event;
};

// Decodes the record at `at`; false if none is there (torn, zeros, or cut off by the file end).
bool DecodeRecord(const std::string& file, uint64_t at, Record* out) {
  constexpr uint64_t kHead = IngressJournal::kRecordHeaderBytes;
  if (at + kHead > file.size()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(file.data() + at);
  const uint64_t size = GetLe(p + 4, 4);
  if (size < kHead || size > file.size() - at) return false;
  if (GetLe(p, 4) != Crc(p + 4, size - 4)) return false;
  const uint64_t number = GetLe(p + 8, 8);
  const uint64_t topic_size = GetLe(p + 28, 2);
  if (number == 0 || topic_size > size - kHead) return false;
  Event& e = out->event;
  e = Event{};
  e.ingress = number;
  e.received_ms = static_cast<int64_t>(GetLe(p + 16, 8));
  e.qos = p[24];
  e.retained = p[25] != 0;
  e.packet_id = static_cast<uint16_t>(GetLe(p + 26, 2));
  e.topic.assign(file, at + kHead, topic_size);
  e.payload.assign(file, at + kHead + topic_size, size - kHead - topic_size);
  out->size = size;
  return true;
}

bool HeaderValid(const std::string& data) {
  const auto* h = reinterpret_cast<const unsigned char*>(data.data());
  return data.size() >= IngressJournal::kHeaderBytes && std::memcmp(h, kMagic, 4) == 0 &&
         GetLe(h + kHeaderCrcOffset, 4) == Crc(h, kHeaderCrcOffset) &&
         GetLe(h + 4, 4) == IngressJournal::kFormatVersion && GetLe(h + 8, 2) <= kMaxLogIdBytes;
}

std::string HeaderLogId(const std::string& data) {
  return data.substr(10, GetLe(reinterpret_cast<const unsigned char*>(data.data()) + 8, 2));
}

// The chain: consecutive numbers from the front, up to the first torn or older record. Returns
// the offset after its last record.
uint64_t ReadChain(const std::string& data, std::vector<Event>* chain) {
  uint64_t at = IngressJournal::kHeaderBytes;
  Record r;
  while (DecodeRecord(data, at, &r)) {
    if (!chain->empty() && r.event.ingress != chain->back().ingress + 1) break;
    at += r.size;
    chain->push_back(std::move(r.event));
  }
  return at;
}

// Reads a whole file through `file`, one page per call (see IngressJournal::Initialise).
Status ReadWhole(sqlite3_file* file, const std::string& path, std::string* data) {
  sqlite3_int64 size = 0;
  int rc = file->pMethods->xFileSize(file, &size);
  if (rc != SQLITE_OK)
    return Status::IoError("cannot read the size of the ingress journal " + path);
  data->assign(static_cast<size_t>(size), '\0');
  constexpr sqlite3_int64 kPage = 4096;
  for (sqlite3_int64 at = 0; at < size; at += kPage) {
    const int n = static_cast<int>(std::min(kPage, size - at));
    rc = file->pMethods->xRead(file, data->data() + at, n, at);
    if (rc != SQLITE_OK) {
      return Status::IoError("cannot read the ingress journal " + path + " (SQLite error " +
                             std::to_string(rc) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace

Status IngressJournal::Peek(const std::string& path, const std::string& vfs_name, uint64_t applied,
                            std::vector<Event>* pending) {
  pending->clear();
  sqlite3_vfs* vfs = sqlite3_vfs_find(vfs_name.empty() ? nullptr : vfs_name.c_str());
  if (vfs == nullptr) return Status::InvalidArgument("unknown SQLite VFS '" + vfs_name + "'");
  int exists = 0;
  if (vfs->xAccess(vfs, path.c_str(), SQLITE_ACCESS_EXISTS, &exists) != SQLITE_OK || !exists) {
    return Status::NotFound("no ingress journal " + path);
  }
  std::string name = path;
  name.append(4, '\0');
  std::unique_ptr<sqlite3_file, decltype(&std::free)> file(
      static_cast<sqlite3_file*>(std::calloc(1, static_cast<size_t>(vfs->szOsFile))), &std::free);
  if (!file) return Status::IoError("out of memory reading the ingress journal");
  int flags = 0;
  if (vfs->xOpen(vfs, name.c_str(), file.get(), SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_JOURNAL,
                 &flags) != SQLITE_OK) {
    return Status::IoError("cannot open the ingress journal " + path);
  }
  std::string data;
  Status s = ReadWhole(file.get(), path, &data);
  if (file->pMethods != nullptr) file->pMethods->xClose(file.get());
  if (!s.ok() || !HeaderValid(data)) return s;
  std::vector<Event> chain;
  ReadChain(data, &chain);
  for (Event& e : chain) {
    if (e.ingress > applied) pending->push_back(std::move(e));
  }
  return Status::Ok();
}

IngressJournal::IngressJournal(IngressJournalOptions options, sqlite3_vfs* vfs)
    : options_(std::move(options)), vfs_(vfs) {
  name_ = options_.path;
  name_.append(4, '\0');
  file_ = static_cast<sqlite3_file*>(std::calloc(1, static_cast<size_t>(vfs_->szOsFile)));
}

IngressJournal::~IngressJournal() {
  if (open_ && file_->pMethods != nullptr) file_->pMethods->xClose(file_);
  std::free(file_);
}

Status IngressJournal::Open(IngressJournalOptions options, std::string_view log_id,
                            uint64_t applied, std::unique_ptr<IngressJournal>* out,
                            std::vector<Event>* pending) {
  pending->clear();
  if (options.capacity_bytes < kMinCapacityBytes) {
    return Status::InvalidArgument("ingress journal size " +
                                   std::to_string(options.capacity_bytes) +
                                   " is below the minimum of " + std::to_string(kMinCapacityBytes));
  }
  if (log_id.size() > kMaxLogIdBytes) {
    return Status::InvalidArgument("log identity too long for the ingress journal");
  }
  sqlite3_vfs* vfs = sqlite3_vfs_find(options.vfs.empty() ? nullptr : options.vfs.c_str());
  if (vfs == nullptr) return Status::InvalidArgument("unknown SQLite VFS '" + options.vfs + "'");
  std::unique_ptr<IngressJournal> j(new IngressJournal(std::move(options), vfs));
  if (j->file_ == nullptr) return Status::IoError("out of memory opening the ingress journal");
  Status s = j->OpenFile();
  if (s.ok()) s = j->Load(log_id, applied, pending);
  if (!s.ok()) return s;
  *out = std::move(j);
  return Status::Ok();
}

Status IngressJournal::OpenFile() {
  int out_flags = 0;
  const int rc = vfs_->xOpen(vfs_, name_.c_str(), file_,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MAIN_JOURNAL,
                             &out_flags);
  if (rc != SQLITE_OK) {
    return Status::IoError("cannot open the ingress journal " + options_.path + " (SQLite error " +
                           std::to_string(rc) + ")");
  }
  open_ = true;
  return Status::Ok();
}

Status IngressJournal::Fail(Status s) {
  if (failed_.ok()) failed_ = s;
  return s;
}

Status IngressJournal::Write(const void* data, uint64_t size, uint64_t offset, const char* what) {
  // SQLite's unix VFS writes at most 128 KiB - 1 per call (it never writes more than a page)
  // and reports a longer write as a full disk.
  constexpr uint64_t kChunk = 64 << 10;
  int rc = SQLITE_OK;
  for (uint64_t done = 0; rc == SQLITE_OK && done < size; done += kChunk) {
    rc = file_->pMethods->xWrite(file_, static_cast<const char*>(data) + done,
                                 static_cast<int>(std::min(kChunk, size - done)),
                                 static_cast<sqlite3_int64>(offset + done));
  }
  if (rc == SQLITE_OK) return Status::Ok();
  if ((rc & 0xff) == SQLITE_FULL) {
    return Fail(Status::IoError("the disk holding the ingress journal " + options_.path +
                                " is full while " + what));
  }
  return Fail(Status::IoError("cannot write the ingress journal " + options_.path + " while " +
                              what + " (SQLite error " + std::to_string(rc) + ")"));
}

Status IngressJournal::Sync(const char* what) {
  const int rc = file_->pMethods->xSync(file_, SQLITE_SYNC_NORMAL);
  if (rc == SQLITE_OK) return Status::Ok();
  return Fail(Status::IoError("cannot sync the ingress journal " + options_.path + " while " +
                              what + " (SQLite error " + std::to_string(rc) + ")"));
}

Status IngressJournal::Initialise(std::string_view log_id) {
  int rc = file_->pMethods->xTruncate(file_, 0);
  if (rc != SQLITE_OK) {
    return Fail(Status::IoError("cannot truncate the ingress journal " + options_.path +
                                " (SQLite error " + std::to_string(rc) + ")"));
  }
  // Real blocks, not a hole or unwritten extents: an append then changes no metadata, and its
  // fdatasync flushes the record alone. One page per write: the page cache may size its blocks
  // after the write that fills them, and a record dirtying a large block would write it all
  // back.
  const std::string zeros(4096, '\0');
  Status s;
  for (uint64_t at = 0; s.ok() && at < capacity_; at += zeros.size()) {
    s = Write(zeros.data(), std::min<uint64_t>(zeros.size(), capacity_ - at), at,
              "preallocating it");
  }
  // The header goes last: a cut before it leaves a file of zeros, which the next open starts
  // again.
  if (s.ok()) s = Sync("preallocating it");
  std::string header(kMagic, sizeof(kMagic));
  PutU32(&header, kFormatVersion);
  PutU16(&header, static_cast<uint16_t>(log_id.size()));
  header.append(log_id);
  header.resize(kHeaderCrcOffset, '\0');
  PutU32(&header, Crc(header.data(), kHeaderCrcOffset));
  if (s.ok()) s = Write(header.data(), header.size(), 0, "writing its header");
  if (s.ok()) s = Sync("writing its header");
  tail_ = kHeaderBytes;
  return s;
}

Status IngressJournal::Load(std::string_view log_id, uint64_t applied,
                            std::vector<Event>* pending) {
  std::string data;
  Status rs = ReadWhole(file_, options_.path, &data);
  if (!rs.ok()) return rs;
  const uint64_t size = data.size();
  applied_ = applied;
  last_ = applied;
  capacity_ = options_.capacity_bytes;
  const bool header_ok = HeaderValid(data);
  if (!header_ok) {
    // A cut while the file was being created leaves zeros: nothing was ever acknowledged.
    if (AllZero(data)) return Initialise(log_id);
    return Status::Corruption(
        "the ingress journal " + options_.path +
        " has no valid header (not a sluice journal, a newer format, or damaged); it may hold "
        "acknowledged events, so it is left as it is: move it away to start");
  }
  const std::string file_log_id = HeaderLogId(data);
  std::vector<Event> chain;
  const uint64_t at = ReadChain(data, &chain);
  if (file_log_id != log_id) {
    if (!chain.empty()) {
      return Status::Corruption(
          "the ingress journal " + options_.path + " belongs to the event log with identity " +
          file_log_id + ", not to this one (" + std::string(log_id) + "); it holds " +
          std::to_string(chain.size()) + " events (records " +
          std::to_string(chain.front().ingress) + ".." + std::to_string(chain.back().ingress) +
          ") that may be in no log. Left as it is: move it away (and keep it) to start");
    }
    options_.logger->info("ingress journal {} held no event of the log {}; starting it anew",
                          options_.path, file_log_id);
    return Initialise(log_id);
  }
  for (Event& e : chain) {
    if (e.ingress > applied) pending->push_back(std::move(e));
  }
  if (pending->empty()) {
    // Everything is in the log: writing starts at the front again. A size changed in the
    // configuration takes effect now, when no record needs the old one.
    if (size != options_.capacity_bytes) return Initialise(log_id);
    tail_ = kHeaderBytes;
    return Status::Ok();
  }
  capacity_ = size;
  if (capacity_ != options_.capacity_bytes) {
    options_.logger->info(
        "ingress journal {} keeps its size of {} bytes until its {} events are in the log",
        options_.path, capacity_, pending->size());
  }
  tail_ = at;
  last_ = pending->back().ingress;
  options_.logger->warn(
      "ingress journal {}: {} acknowledged events (records {}..{}) were not yet in the log; "
      "they go in first",
      options_.path, pending->size(), pending->front().ingress, pending->back().ingress);
  return Status::Ok();
}

Status IngressJournal::Append(Event* event) {
  if (!failed_.ok()) return failed_;
  const uint64_t size = kRecordHeaderBytes + event->topic.size() + event->payload.size();
  if (event->topic.size() > 0xffff || size > capacity_ - kHeaderBytes) {
    return Status::InvalidArgument("event of " + std::to_string(size) +
                                   " bytes does not fit in the ingress journal");
  }
  uint64_t at = tail_;
  if (at + size > capacity_) {
    if (applied_.load() < last_.load()) {
      return Status::Full("the ingress journal is full until its events are in the log");
    }
    at = kHeaderBytes;
  }
  const uint64_t number = last_.load() + 1;
  buffer_.clear();
  PutU32(&buffer_, 0);
  PutU32(&buffer_, static_cast<uint32_t>(size));
  PutU64(&buffer_, number);
  PutU64(&buffer_, static_cast<uint64_t>(event->received_ms));
  buffer_.push_back(static_cast<char>(event->qos));
  buffer_.push_back(static_cast<char>(event->retained ? 1 : 0));
  PutU16(&buffer_, event->packet_id);
  PutU16(&buffer_, static_cast<uint16_t>(event->topic.size()));
  buffer_.append(event->topic);
  buffer_.append(event->payload);
  SetU32(&buffer_, 0, Crc(buffer_.data() + 4, buffer_.size() - 4));
  Status s = Write(buffer_.data(), buffer_.size(), at, "appending an event");
  if (s.ok() && options_.sync_each_record) s = Sync("appending an event");
  if (!s.ok()) return s;
  tail_ = at + size;
  last_ = number;
  records_written_.fetch_add(1, std::memory_order_relaxed);
  event->ingress = number;
  return Status::Ok();
}

void IngressJournal::MarkApplied(uint64_t number) {
  uint64_t cur = applied_.load();
  while (cur < number && !applied_.compare_exchange_weak(cur, number)) {
  }
}

Status IngressJournal::Reset() {
  if (!failed_.ok()) return failed_;
  if (applied_.load() < last_.load()) {
    return Status::InvalidArgument("the ingress journal still holds events not in the log");
  }
  const std::string zeros(kRecordHeaderBytes, '\0');
  Status s = Write(zeros.data(), zeros.size(), kHeaderBytes, "emptying it");
  if (s.ok()) s = Sync("emptying it");
  if (s.ok()) tail_ = kHeaderBytes;
  return s;
}

}  // namespace sluice::storage
