#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/metrics_registry.h"
#include "common/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace sluice::gateway {

struct MetricsServerOptions {
  std::string address = "127.0.0.1";  // a host name or an IPv4/IPv6 address, no brackets
  uint16_t port = 9464;               // 0: any free port (see port())
};

// The daemon's HTTP endpoint, on cpp-httplib:
//   GET /metrics  the registry in the Prometheus text format 0.0.4,
//   GET /healthz  200 "ok" when `health` returns OK, else 503 with its message,
//   GET /readyz   the same for `ready`.
// The checks and the registry's functions run on the server's threads (two workers), so they
// must be thread-safe and quick; a scrape never touches the forwarding path's threads.
//
// Listen binds the socket, so that a port in use fails the daemon's start with a clear message;
// Start serves from a thread of its own; Stop closes the socket and returns once no handler runs
// any more. Thread-safety: Listen/Start/Stop from one thread. Lifetimes: `registry` and whatever
// the checks touch must stay valid until Stop returns.
class MetricsServer {
 public:
  using Check = std::function<Status()>;

  MetricsServer(MetricsServerOptions options, const MetricsRegistry* registry, Check health,
                Check ready, std::shared_ptr<spdlog::logger> logger);
  ~MetricsServer();

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and listens. Unavailable naming the address and the reason (e.g. address in use).
  Status Listen();
  // REQUIRES: Listen returned OK. Returns once the server accepts connections.
  void Start();
  void Stop();

  // The port bound by Listen (the one the kernel chose when the configured port is 0).
  uint16_t port() const { return port_; }

 private:
  const MetricsServerOptions options_;
  const MetricsRegistry* const registry_;
  const Check health_;
  const Check ready_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<bool> loop_exited_{false};
  uint16_t port_ = 0;
};

}  // namespace sluice::gateway
