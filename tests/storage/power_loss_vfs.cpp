// SPDX-License-Identifier: Apache-2.0

#include "tests/storage/power_loss_vfs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <random>
#include <stdexcept>

namespace sluice::testing {

namespace {

// The unit a disk writes atomically: a torn write keeps or loses whole sectors.
constexpr int64_t kSectorBytes = 512;

void CheckSys(bool ok, const std::string& what, const std::string& path) {
  if (!ok) {
    throw std::runtime_error("power-loss VFS: " + what + " " + path + ": " + std::strerror(errno));
  }
}

void PwriteAll(int fd, const std::string& bytes, int64_t offset, const std::string& path) {
  if (bytes.empty()) return;
  CheckSys(::pwrite(fd, bytes.data(), bytes.size(), offset) == static_cast<ssize_t>(bytes.size()),
           "pwrite", path);
}

}  // namespace

// Our part of an open file; the default VFS's own sqlite3_file follows at kRealOffset.
struct PowerLossVfs::File {
  sqlite3_file base{};  // first, so that a sqlite3_file* is a File*
  PowerLossVfs* owner = nullptr;
  sqlite3_file* real = nullptr;
  std::string path;  // empty: a file we do not track (temporary files)
};

namespace {
constexpr size_t kRealOffset = (sizeof(PowerLossVfs::File) + 15) / 16 * 16;
}  // namespace

const sqlite3_io_methods PowerLossVfs::kMethods = {
    3,
    &PowerLossVfs::Close,
    &PowerLossVfs::Read,
    &PowerLossVfs::Write,
    &PowerLossVfs::Truncate,
    &PowerLossVfs::Sync,
    &PowerLossVfs::FileSize,
    &PowerLossVfs::Lock,
    &PowerLossVfs::Unlock,
    &PowerLossVfs::CheckReservedLock,
    &PowerLossVfs::FileControl,
    &PowerLossVfs::SectorSize,
    &PowerLossVfs::DeviceCharacteristics,
    &PowerLossVfs::ShmMap,
    &PowerLossVfs::ShmLock,
    &PowerLossVfs::ShmBarrier,
    &PowerLossVfs::ShmUnmap,
    &PowerLossVfs::Fetch,
    &PowerLossVfs::Unfetch,
};

PowerLossVfs::PowerLossVfs(std::string name)
    : name_(std::move(name)), base_(sqlite3_vfs_find(nullptr)) {
  if (base_ == nullptr) throw std::runtime_error("power-loss VFS: SQLite has no default VFS");
  vfs_.iVersion = 2;
  vfs_.szOsFile = static_cast<int>(kRealOffset) + base_->szOsFile;
  vfs_.mxPathname = base_->mxPathname;
  vfs_.zName = name_.c_str();
  vfs_.pAppData = this;
  vfs_.xOpen = &PowerLossVfs::Open;
  vfs_.xDelete = &PowerLossVfs::Delete;
  vfs_.xAccess = &PowerLossVfs::Access;
  vfs_.xFullPathname = &PowerLossVfs::FullPathname;
  vfs_.xDlOpen = &PowerLossVfs::DlOpen;
  vfs_.xDlError = &PowerLossVfs::DlError;
  vfs_.xDlSym = &PowerLossVfs::DlSym;
  vfs_.xDlClose = &PowerLossVfs::DlClose;
  vfs_.xRandomness = &PowerLossVfs::Randomness;
  vfs_.xSleep = &PowerLossVfs::Sleep;
  vfs_.xCurrentTime = &PowerLossVfs::CurrentTime;
  vfs_.xGetLastError = &PowerLossVfs::GetLastError;
  vfs_.xCurrentTimeInt64 = &PowerLossVfs::CurrentTimeInt64;
  const int rc = sqlite3_vfs_register(&vfs_, 0);
  if (rc != SQLITE_OK) {
    throw std::runtime_error("power-loss VFS: cannot register '" + name_ +
                             "': " + sqlite3_errstr(rc));
  }
}

PowerLossVfs::~PowerLossVfs() {
  sqlite3_vfs_unregister(&vfs_);
}

void PowerLossVfs::CutAtMutation(uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  cut_at_ = n == 0 ? 0 : mutations_ + n;
}

void PowerLossVfs::PowerOff() {
  std::lock_guard<std::mutex> lock(mu_);
  off_ = true;
}

bool PowerLossVfs::powered_off() const {
  std::lock_guard<std::mutex> lock(mu_);
  return off_;
}

uint64_t PowerLossVfs::mutations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mutations_;
}

bool PowerLossVfs::PowerForMutationLocked() {
  if (off_) return false;
  ++mutations_;
  if (cut_at_ != 0 && mutations_ >= cut_at_) off_ = true;
  return !off_;
}

PowerLossVfs::CutReport PowerLossVfs::RestoreAfterPowerLoss(Loss loss, uint64_t seed) {
  std::lock_guard<std::mutex> lock(mu_);
  std::mt19937_64 rng(seed);
  CutReport report;
  for (auto& [path, state] : files_) {
    if (state.unsynced.empty()) continue;
    ++report.files;
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) continue;  // removed by the test since, with its directory
    CheckSys(fd >= 0, "open", path);
    // Back to the content of the last sync, undoing the newest change first.
    for (auto it = state.unsynced.rbegin(); it != state.unsynced.rend(); ++it) {
      if (it->truncate) {
        CheckSys(::ftruncate(fd, it->old_size) == 0, "ftruncate", path);
        PwriteAll(fd, it->replaced, it->offset, path);
      } else {
        PwriteAll(fd, it->replaced, it->offset, path);
        CheckSys(::ftruncate(fd, it->old_size) == 0, "ftruncate", path);
      }
    }
    for (const Op& op : state.unsynced) {
      if (loss == Loss::kUnsynced) {
        ++report.ops_lost;
        report.bytes_lost += op.data.size();
        continue;
      }
      if (op.truncate) {
        if (rng() & 1) {
          CheckSys(::ftruncate(fd, op.offset) == 0, "ftruncate", path);
        } else {
          ++report.ops_lost;
        }
        continue;
      }
      bool lost_any = false;
      const int64_t end = op.offset + static_cast<int64_t>(op.data.size());
      for (int64_t pos = op.offset; pos < end;) {
        const int64_t next = std::min(end, (pos / kSectorBytes + 1) * kSectorBytes);
        if (rng() & 1) {
          PwriteAll(fd, op.data.substr(pos - op.offset, next - pos), pos, path);
        } else {
          lost_any = true;
          report.bytes_lost += next - pos;
        }
        pos = next;
      }
      if (lost_any) ++report.ops_lost;
    }
    CheckSys(::close(fd) == 0, "close", path);
  }
  files_.clear();
  off_ = false;
  cut_at_ = 0;
  return report;
}

// --- sqlite3_vfs ------------------------------------------------------------------------------

int PowerLossVfs::Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags,
                       int* out) {
  auto* self = static_cast<PowerLossVfs*>(vfs->pAppData);
  auto* f = new (file) File();
  f->owner = self;
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  const int rc = self->base_->xOpen(self->base_, name, f->real, flags, out);
  if (rc != SQLITE_OK) {
    f->~File();
    file->pMethods = nullptr;
    return rc;
  }
  if (name != nullptr &&
      (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)) != 0) {
    f->path = name;
    std::lock_guard<std::mutex> lock(self->mu_);
    self->files_.try_emplace(f->path);
  }
  file->pMethods = &kMethods;
  return SQLITE_OK;
}

int PowerLossVfs::Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  auto* self = static_cast<PowerLossVfs*>(vfs->pAppData);
  std::lock_guard<std::mutex> lock(self->mu_);
  if (self->off_) return SQLITE_IOERR_DELETE;
  const int rc = self->base_->xDelete(self->base_, name, sync_dir);
  if (rc == SQLITE_OK) self->files_.erase(name);
  return rc;
}

int PowerLossVfs::Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xAccess(base, name, flags, out);
}

int PowerLossVfs::FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xFullPathname(base, name, n, out);
}

void* PowerLossVfs::DlOpen(sqlite3_vfs* vfs, const char* name) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xDlOpen(base, name);
}

void PowerLossVfs::DlError(sqlite3_vfs* vfs, int n, char* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  base->xDlError(base, n, out);
}

void (*PowerLossVfs::DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xDlSym(base, handle, symbol);
}

void PowerLossVfs::DlClose(sqlite3_vfs* vfs, void* handle) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  base->xDlClose(base, handle);
}

int PowerLossVfs::Randomness(sqlite3_vfs* vfs, int n, char* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xRandomness(base, n, out);
}

int PowerLossVfs::Sleep(sqlite3_vfs* vfs, int micros) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xSleep(base, micros);
}

int PowerLossVfs::CurrentTime(sqlite3_vfs* vfs, double* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xCurrentTime(base, out);
}

int PowerLossVfs::GetLastError(sqlite3_vfs* vfs, int n, char* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xGetLastError(base, n, out);
}

int PowerLossVfs::CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  auto* base = static_cast<PowerLossVfs*>(vfs->pAppData)->base_;
  return base->xCurrentTimeInt64(base, out);
}

// --- sqlite3_io_methods -----------------------------------------------------------------------

namespace {
PowerLossVfs::File* AsFile(sqlite3_file* f) {
  return reinterpret_cast<PowerLossVfs::File*>(f);
}
}  // namespace

int PowerLossVfs::Close(sqlite3_file* file) {
  File* f = AsFile(file);
  const int rc = f->real->pMethods->xClose(f->real);
  f->~File();
  return rc;
}

int PowerLossVfs::Read(sqlite3_file* file, void* buf, int n, sqlite3_int64 offset) {
  File* f = AsFile(file);
  return f->real->pMethods->xRead(f->real, buf, n, offset);
}

int PowerLossVfs::Write(sqlite3_file* file, const void* buf, int n, sqlite3_int64 offset) {
  File* f = AsFile(file);
  if (f->path.empty()) return f->real->pMethods->xWrite(f->real, buf, n, offset);
  PowerLossVfs* self = f->owner;
  std::lock_guard<std::mutex> lock(self->mu_);
  if (!self->PowerForMutationLocked()) return SQLITE_IOERR_WRITE;
  Op op;
  op.offset = offset;
  op.data.assign(static_cast<const char*>(buf), n);
  sqlite3_int64 size = 0;
  int rc = f->real->pMethods->xFileSize(f->real, &size);
  if (rc != SQLITE_OK) return rc;
  op.old_size = size;
  if (offset < size) {
    op.replaced.resize(static_cast<size_t>(std::min<sqlite3_int64>(n, size - offset)));
    rc = f->real->pMethods->xRead(f->real, op.replaced.data(), static_cast<int>(op.replaced.size()),
                                  offset);
    if (rc != SQLITE_OK) return rc;
  }
  rc = f->real->pMethods->xWrite(f->real, buf, n, offset);
  if (rc == SQLITE_OK) self->files_[f->path].unsynced.push_back(std::move(op));
  return rc;
}

int PowerLossVfs::Truncate(sqlite3_file* file, sqlite3_int64 size) {
  File* f = AsFile(file);
  if (f->path.empty()) return f->real->pMethods->xTruncate(f->real, size);
  PowerLossVfs* self = f->owner;
  std::lock_guard<std::mutex> lock(self->mu_);
  if (!self->PowerForMutationLocked()) return SQLITE_IOERR_TRUNCATE;
  Op op;
  op.truncate = true;
  op.offset = size;
  sqlite3_int64 old_size = 0;
  int rc = f->real->pMethods->xFileSize(f->real, &old_size);
  if (rc != SQLITE_OK) return rc;
  op.old_size = old_size;
  if (size < old_size) {
    op.replaced.resize(static_cast<size_t>(old_size - size));
    rc = f->real->pMethods->xRead(f->real, op.replaced.data(), static_cast<int>(op.replaced.size()),
                                  size);
    if (rc != SQLITE_OK) return rc;
  }
  rc = f->real->pMethods->xTruncate(f->real, size);
  if (rc == SQLITE_OK) self->files_[f->path].unsynced.push_back(std::move(op));
  return rc;
}

int PowerLossVfs::Sync(sqlite3_file* file, int flags) {
  File* f = AsFile(file);
  if (f->path.empty()) return f->real->pMethods->xSync(f->real, flags);
  PowerLossVfs* self = f->owner;
  std::lock_guard<std::mutex> lock(self->mu_);
  if (!self->PowerForMutationLocked()) return SQLITE_IOERR_FSYNC;
  self->files_[f->path].unsynced.clear();
  return SQLITE_OK;
}

int PowerLossVfs::FileSize(sqlite3_file* file, sqlite3_int64* size) {
  File* f = AsFile(file);
  return f->real->pMethods->xFileSize(f->real, size);
}

int PowerLossVfs::Lock(sqlite3_file* file, int level) {
  File* f = AsFile(file);
  return f->real->pMethods->xLock(f->real, level);
}

int PowerLossVfs::Unlock(sqlite3_file* file, int level) {
  File* f = AsFile(file);
  return f->real->pMethods->xUnlock(f->real, level);
}

int PowerLossVfs::CheckReservedLock(sqlite3_file* file, int* out) {
  File* f = AsFile(file);
  return f->real->pMethods->xCheckReservedLock(f->real, out);
}

int PowerLossVfs::FileControl(sqlite3_file* file, int op, void* arg) {
  File* f = AsFile(file);
  return f->real->pMethods->xFileControl(f->real, op, arg);
}

int PowerLossVfs::SectorSize(sqlite3_file* file) {
  File* f = AsFile(file);
  return f->real->pMethods->xSectorSize(f->real);
}

int PowerLossVfs::DeviceCharacteristics(sqlite3_file* file) {
  File* f = AsFile(file);
  return f->real->pMethods->xDeviceCharacteristics(f->real);
}

int PowerLossVfs::ShmMap(sqlite3_file* file, int region, int size, int extend,
                         void volatile** out) {
  File* f = AsFile(file);
  return f->real->pMethods->xShmMap(f->real, region, size, extend, out);
}

int PowerLossVfs::ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  File* f = AsFile(file);
  return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

void PowerLossVfs::ShmBarrier(sqlite3_file* file) {
  File* f = AsFile(file);
  f->real->pMethods->xShmBarrier(f->real);
}

int PowerLossVfs::ShmUnmap(sqlite3_file* file, int delete_flag) {
  File* f = AsFile(file);
  return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

int PowerLossVfs::Fetch(sqlite3_file* file, sqlite3_int64 offset, int n, void** out) {
  File* f = AsFile(file);
  return f->real->pMethods->xFetch(f->real, offset, n, out);
}

int PowerLossVfs::Unfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  File* f = AsFile(file);
  return f->real->pMethods->xUnfetch(f->real, offset, p);
}

}  // namespace sluice::testing
