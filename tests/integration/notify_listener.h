// SPDX-License-Identifier: Apache-2.0

#pragma once

// systemd's side of the notification protocol (sd_notify(3)) for the integration tests: a real
// AF_UNIX datagram socket that a sluice child finds through NOTIFY_SOCKET. Header-only: every
// integration test executable may use it without a CMake change.

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::itest {

// Plays systemd's side of NOTIFY_SOCKET: a datagram socket that records every state line it
// receives ("READY=1", "STATUS=...", ...) with its arrival time.
class NotifyListener {
 public:
  struct Line {
    std::chrono::steady_clock::time_point at;
    std::string text;
  };

  explicit NotifyListener(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket(AF_UNIX): " + std::string(strerror(errno)));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) throw std::runtime_error("path too long: " + path_);
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind " + path_ + ": " + strerror(errno));
    }
    thread_ = std::thread([this] { Receive(); });
  }
  ~NotifyListener() {
    stop_ = true;
    thread_.join();
    close(fd_);
    unlink(path_.c_str());
  }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  std::string Env() const { return "NOTIFY_SOCKET=" + path_; }

  std::vector<Line> Lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // Lines that begin with `prefix`.
  std::vector<Line> With(const std::string& prefix) const {
    std::vector<Line> out;
    for (const Line& l : Lines()) {
      if (l.text.rfind(prefix, 0) == 0) out.push_back(l);
    }
    return out;
  }
  size_t Count(const std::string& prefix) const { return With(prefix).size(); }
  std::string Dump() const {
    std::string out;
    for (const Line& l : Lines()) out += l.text + "\n";
    return out;
  }

 private:
  void Receive() {
    char buf[4096];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      const auto now = std::chrono::steady_clock::now();
      std::istringstream in(std::string(buf, static_cast<size_t>(n)));
      std::string line;
      std::lock_guard<std::mutex> lock(mu_);
      while (std::getline(in, line)) lines_.push_back({now, line});
    }
  }

  const std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Line> lines_;  // GUARDED_BY(mu_)
};

}  // namespace sluice::itest
