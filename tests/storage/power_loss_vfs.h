// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sluice::testing {

// An SQLite VFS for tests that simulates power loss, in the spirit of SQLite's crash-test VFS
// (src/test6.c) and LevelDB's FaultInjectionTestEnv. It wraps the default VFS and passes every
// call through, so the connections see their own writes exactly as they would through the OS page
// cache; beside that it remembers, per file, every write and truncate since the file's last
// xSync, with the bytes it replaced.
//
// A cut is armed with CutAtMutation(n): the n-th mutating call (xWrite, xTruncate, xSync on a
// database, WAL or journal file) and every later one, xDelete included, fail with an I/O error, as
// if the machine had stopped there. Once every connection is closed, RestoreAfterPowerLoss() puts
// each file back to what a disk could hold after the power came back: its content as of its last
// xSync, and with Loss::kTorn a random subset of the later writes, at 512-byte sector granularity
// and in issue order (a newer version of a sector wins over an older one only if both are kept).
//
// xSync is recorded but not passed down: the test machine does not lose power, and real fsyncs
// would only make hundreds of cuts slow.
//
// Simplifications, stated so that results are read correctly: a file's existence is durable from
// its creation and a deletion is durable at once (SQLite itself fsyncs the directory after
// creating a WAL or journal, and sluice's files are created before its first acknowledgement;
// see the power-loss tests); shared memory (-shm) is passed through, since SQLite rebuilds it
// from the WAL after a crash.
//
// Thread-safe. REQUIRES: outlives every connection opened through it; one instance per name.
class PowerLossVfs {
 public:
  enum class Loss {
    kUnsynced,  // every write since the last sync is lost
    kTorn,      // each sector written since the last sync is kept or lost at random
  };

  struct CutReport {
    size_t files = 0;         // files that had unsynced changes
    uint64_t ops_lost = 0;    // unsynced writes and truncates lost, wholly or in part
    uint64_t bytes_lost = 0;  // bytes written but not synced that did not survive
  };

  // Registers the VFS under `name` (not as the default). Throws std::runtime_error if SQLite
  // refuses.
  explicit PowerLossVfs(std::string name);
  ~PowerLossVfs();
  PowerLossVfs(const PowerLossVfs&) = delete;
  PowerLossVfs& operator=(const PowerLossVfs&) = delete;

  const std::string& name() const { return name_; }

  // The n-th mutating call from now on (1 = the next) cuts the power; 0 disarms.
  void CutAtMutation(uint64_t n);
  // Cuts the power now.
  void PowerOff();
  bool powered_off() const;
  // Mutating calls so far (writes, truncates, syncs), cut or not.
  uint64_t mutations() const;

  // REQUIRES: no connection is open through this VFS. Applies the loss to the files on disk
  // (skipping files removed since), forgets all tracking and powers the VFS on again. `seed`
  // drives kTorn's choices.
  CutReport RestoreAfterPowerLoss(Loss loss, uint64_t seed);

  // Our part of an open file (an implementation detail, public for the file-method helpers).
  struct File;

 private:
  struct Op {
    bool truncate = false;
    int64_t offset = 0;    // write: where; truncate: the new size
    std::string data;      // write: the bytes written
    std::string replaced;  // write: bytes it overwrote; truncate: bytes it cut off
    int64_t old_size = 0;  // the file's size before the op
  };
  struct FileState {
    std::vector<Op> unsynced;
  };

  // sqlite3_vfs and sqlite3_io_methods entry points.
  static int Open(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out);
  static int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir);
  static int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out);
  static int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out);
  static void* DlOpen(sqlite3_vfs* vfs, const char* name);
  static void DlError(sqlite3_vfs* vfs, int n, char* out);
  static void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void);
  static void DlClose(sqlite3_vfs* vfs, void* handle);
  static int Randomness(sqlite3_vfs* vfs, int n, char* out);
  static int Sleep(sqlite3_vfs* vfs, int micros);
  static int CurrentTime(sqlite3_vfs* vfs, double* out);
  static int GetLastError(sqlite3_vfs* vfs, int n, char* out);
  static int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out);

  static int Close(sqlite3_file* f);
  static int Read(sqlite3_file* f, void* buf, int n, sqlite3_int64 offset);
  static int Write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 offset);
  static int Truncate(sqlite3_file* f, sqlite3_int64 size);
  static int Sync(sqlite3_file* f, int flags);
  static int FileSize(sqlite3_file* f, sqlite3_int64* size);
  static int Lock(sqlite3_file* f, int level);
  static int Unlock(sqlite3_file* f, int level);
  static int CheckReservedLock(sqlite3_file* f, int* out);
  static int FileControl(sqlite3_file* f, int op, void* arg);
  static int SectorSize(sqlite3_file* f);
  static int DeviceCharacteristics(sqlite3_file* f);
  static int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out);
  static int ShmLock(sqlite3_file* f, int offset, int n, int flags);
  static void ShmBarrier(sqlite3_file* f);
  static int ShmUnmap(sqlite3_file* f, int delete_flag);
  static int Fetch(sqlite3_file* f, sqlite3_int64 offset, int n, void** out);
  static int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* p);

  // REQUIRES: mu_ held. False when the power is (or, with this call, goes) off.
  bool PowerForMutationLocked();

  static const sqlite3_io_methods kMethods;

  const std::string name_;
  sqlite3_vfs* base_;  // SQLite's default VFS, which does the real work
  sqlite3_vfs vfs_{};

  mutable std::mutex mu_;
  std::map<std::string, FileState> files_;  // GUARDED_BY(mu_) by full path
  uint64_t mutations_ = 0;                  // GUARDED_BY(mu_)
  uint64_t cut_at_ = 0;                     // GUARDED_BY(mu_) 0 = not armed
  bool off_ = false;                        // GUARDED_BY(mu_)
};

}  // namespace sluice::testing
