// SPDX-License-Identifier: Apache-2.0

#include "bench/fsync_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

namespace sluice::bench {
namespace {

Status Errno(const std::string& what) {
  return Status::IoError(what + ": " + std::strerror(errno));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Removes the probe's file on every way out of Run.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() { ::unlink(path_.c_str()); }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;

 private:
  const std::string path_;
};

// Bytes this process caused to be written to storage so far (/proc/self/io write_bytes).
Status ReadWriteBytes(uint64_t* out) {
  std::ifstream in("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "write_bytes:") {
      *out = value;
      return Status::Ok();
    }
  }
  return Status::IoError("/proc/self/io: no write_bytes (kernel without task I/O accounting?)");
}

// Bytes written to the block device `dev` so far (its stat file counts 512-byte sectors whatever
// the device's sector size); nullopt when `dev` is no block device (tmpfs, overlayfs).
std::optional<uint64_t> DeviceBytesWritten(dev_t dev) {
  std::ifstream in("/sys/dev/block/" + std::to_string(major(dev)) + ":" +
                   std::to_string(minor(dev)) + "/stat");
  std::array<uint64_t, 7> f{};
  for (auto& v : f) {
    if (!(in >> v)) return std::nullopt;
  }
  return f[6] * 512;
}

struct Mount {
  std::string fs_type = "unknown";
  std::string source = "unknown";
};

// The mount that holds `dir`: of the mountinfo lines with the directory's device number, the one
// whose mount point is the longest prefix of its real path (bind mounts share device numbers).
Mount MountOf(const std::string& dir, dev_t dev) {
  Mount best;
  std::error_code ec;
  const std::string real = std::filesystem::canonical(dir, ec).string();
  const std::string want = std::to_string(major(dev)) + ":" + std::to_string(minor(dev));
  std::ifstream in("/proc/self/mountinfo");
  size_t best_len = 0;
  for (std::string line; std::getline(in, line);) {
    // id parent major:minor root mount-point options [optional...] - fs-type source super-options
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (devno != want) continue;
    const bool under = real == point || point == "/" || real.rfind(point + "/", 0) == 0;
    if (!under || point.size() < best_len) continue;
    std::string field;
    while (fields >> field && field != "-") {
    }
    Mount m;
    fields >> m.fs_type >> m.source;
    best = m;
    best_len = point.size();
  }
  return best;
}

// Latencies in buckets 5 % wide from 1 us up: fixed memory whatever the rate.
class LatencyBuckets {
 public:
  void Add(double us) {
    const double v = std::max(us, 1.0);
    const auto i = static_cast<size_t>(std::log(v) / std::log(kStep));
    ++counts_[std::min(i, counts_.size() - 1)];
    max_ = std::max(max_, us);
    ++n_;
  }
  double Quantile(double q) const {
    if (n_ == 0) return 0;
    const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(n_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(std::pow(kStep, static_cast<double>(i + 1)), max_);
    }
    return max_;
  }
  double max() const { return max_; }

 private:
  static constexpr double kStep = 1.05;
  std::array<uint64_t, 520> counts_{};  // 1.05^520: beyond 10^11 us
  double max_ = 0;
  uint64_t n_ = 0;
};

}  // namespace

Status FsyncProbe::Run(nlohmann::ordered_json* result) {
  const FsyncProbeOptions& o = options_;
  if (o.record_bytes == 0 || o.record_bytes > o.file_bytes || o.duration.count() <= 0) {
    return Status::InvalidArgument(
        "fsync-probe: need 0 < record bytes <= file bytes, duration > 0");
  }
  struct stat st {};
  if (::stat(o.dir.c_str(), &st) != 0) return Errno("fsync-probe: " + o.dir);
  const Mount mount = MountOf(o.dir, st.st_dev);

  const std::string path = o.dir + "/sluice-fsync-probe-" + std::to_string(::getpid()) + ".tmp";
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) return Errno("fsync-probe: cannot create " + path);
  RemoveOnExit remove(path);

  // Zeros written and synced with the directory, so that the appends find every block allocated
  // and initialised (no unwritten extents to convert) and fdatasync has no metadata to commit.
  // One page per write: the page cache sizes a folio after the write that creates it (ext4 has
  // large folios since Linux 6.16), and write_bytes charges a whole folio each time an append
  // dirties it again, so 1 MiB writes here made it report 1 MiB per 150-B record.
  std::vector<char> zeros(static_cast<size_t>(::sysconf(_SC_PAGESIZE)), 0);
  for (uint64_t off = 0; off < o.file_bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), o.file_bytes - off));
    const ssize_t w = ::pwrite(fd.get(), zeros.data(), n, static_cast<off_t>(off));
    if (w <= 0) return Errno("fsync-probe: preallocating " + path);
    off += static_cast<uint64_t>(w);
  }
  if (::fdatasync(fd.get()) != 0) return Errno("fsync-probe: fdatasync " + path);
  {
    Fd d(::open(o.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (d.get() < 0 || ::fsync(d.get()) != 0) return Errno("fsync-probe: fsync " + o.dir);
  }

  std::string record(o.record_bytes, '\0');
  uint64_t before = 0;
  Status s = ReadWriteBytes(&before);
  if (!s.ok()) return s;
  const std::optional<uint64_t> dev_before = DeviceBytesWritten(st.st_dev);

  LatencyBuckets latency;
  uint64_t records = 0;
  uint64_t off = 0;
  const auto start = clock_->Now();
  const auto deadline = start + o.duration;
  auto now = start;
  while (now < deadline) {
    // Distinct bytes per record, as events are: nothing below may elide an identical rewrite.
    std::memcpy(record.data(), &records, std::min<size_t>(sizeof records, record.size()));
    if (off + o.record_bytes > o.file_bytes) off = 0;
    const ssize_t w = ::pwrite(fd.get(), record.data(), record.size(), static_cast<off_t>(off));
    if (w != static_cast<ssize_t>(record.size())) {
      return w < 0 ? Errno("fsync-probe: pwrite " + path)
                   : Status::IoError("fsync-probe: short pwrite to " + path);
    }
    // A failed fdatasync may have dropped the pages it could not write: stop, never retry.
    if (::fdatasync(fd.get()) != 0) return Errno("fsync-probe: fdatasync " + path);
    off += o.record_bytes;
    ++records;
    const auto t = clock_->Now();
    latency.Add(std::chrono::duration<double, std::micro>(t - now).count());
    now = t;
  }
  const double seconds = std::chrono::duration<double>(now - start).count();
  uint64_t after = 0;
  s = ReadWriteBytes(&after);
  if (!s.ok()) return s;
  // The mtime updates fdatasync leaves behind belong to the workload too: commit them before the
  // device is read.
  if (::fsync(fd.get()) != 0) return Errno("fsync-probe: fsync " + path);
  const std::optional<uint64_t> dev_after = DeviceBytesWritten(st.st_dev);

  auto& r = *result;
  const auto per_record = [&](uint64_t bytes) {
    return records == 0 ? 0.0 : static_cast<double>(bytes) / static_cast<double>(records);
  };
  r["records_per_s"] = seconds > 0 ? static_cast<double>(records) / seconds : 0.0;
  r["records"] = records;
  r["seconds"] = seconds;
  r["record_bytes"] = o.record_bytes;
  r["bytes_written_per_record"] = per_record(after - before);
  if (dev_before && dev_after) {
    r["device_bytes_written_per_record"] = per_record(*dev_after - *dev_before);
  } else {
    r["device_bytes_written_per_record"] = nullptr;
  }
  r["latency_us"] = {
      {"p50", latency.Quantile(0.5)}, {"p99", latency.Quantile(0.99)}, {"max", latency.max()}};
  r["fs_type"] = mount.fs_type;
  r["device"] = mount.source;
  r["file_bytes"] = o.file_bytes;
  return Status::Ok();
}

}  // namespace sluice::bench
