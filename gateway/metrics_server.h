// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/metrics_registry.h"
#include "common/status.h"

namespace sluice::gateway {

struct MetricsServerOptions {
  std::string address = "127.0.0.1";  // a host name or an IPv4/IPv6 address, no brackets
  uint16_t port = 9464;               // 0: any free port (see port())
  // At most this many connections are open at once; beyond it the oldest is closed to make room
  // for the newest. Clamped at Listen to a quarter of RLIMIT_NOFILE, so that the endpoint can never
  // take the descriptors that MQTT, Kafka and SQLite need.
  size_t max_connections = 64;
  // A connection whose request head is not complete within this is closed unanswered.
  std::chrono::milliseconds request_timeout{2000};
  // A response the client does not read within this is abandoned.
  std::chrono::milliseconds write_timeout{5000};
  // listen(2) backlog: connections the kernel completes before sluice accepts them. Queued
  // connections hold no descriptor of the process, only kernel memory; when the queue is full the
  // kernel drops the handshake, and the client (a health check too) retries only after 1 s. A
  // backlog of 16, then 128, let /healthz miss its 1 s bound behind a 500-connection burst that
  // arrived while the thread waited for a core. So bounded, at a quarter of the kernel's default
  // somaxconn (4096, which also caps it), and deep enough for such a burst.
  int listen_backlog = 1024;
};

// What the endpoint did with the connections it accepted (for tests and diagnostics).
struct MetricsServerStats {
  uint64_t accepted = 0;
  uint64_t answered = 0;
  uint64_t evicted = 0;    // closed unanswered to make room at max_connections
  uint64_t timed_out = 0;  // closed unanswered after request_timeout or write_timeout
};

// The daemon's HTTP endpoint:
//   GET /metrics  the registry in the Prometheus text format 0.0.4,
//   GET /healthz  200 "ok" when `health` returns OK, else 503 with its message,
//   GET /readyz   the same for `ready`.
// Every response closes its connection (no keep-alive). One thread serves every connection
// through poll(2) with non-blocking sockets, so no client, however slow, can hold up another; the
// checks and the registry's functions run on that thread, so they must be thread-safe and quick,
// and a scrape never touches the forwarding path's threads. Bounded by MetricsServerOptions: a
// few hundred idle or slow connections neither delay /healthz nor take the process's descriptors
// (docs/operations.md, "The metrics endpoint").
//
// Listen binds the socket, so that a port in use fails the daemon's start with a clear message;
// Start serves from a thread of its own; Stop returns once no handler runs any more and every
// socket is closed. Thread-safety: Listen/Start/Stop from one thread; Stats from any. Lifetimes:
// `registry` and whatever the checks touch must stay valid until Stop returns.
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
  // REQUIRES: Listen returned OK. Connections are queued by the kernel from Listen on.
  void Start();
  void Stop();

  // The port bound by Listen (the one the kernel chose when the configured port is 0).
  uint16_t port() const { return port_; }
  // The connection cap in force: max_connections clamped by RLIMIT_NOFILE (valid after Listen).
  size_t max_connections() const { return max_connections_; }
  MetricsServerStats Stats() const;

 private:
  struct Connection;
  void Serve();
  void Respond(Connection& c);

  const MetricsServerOptions options_;
  const MetricsRegistry* const registry_;
  const Check health_;
  const Check ready_;
  std::shared_ptr<spdlog::logger> log_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop writes it to end the loop
  std::thread thread_;
  uint16_t port_ = 0;
  size_t max_connections_ = 0;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> answered_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<uint64_t> timed_out_{0};
};

}  // namespace sluice::gateway
