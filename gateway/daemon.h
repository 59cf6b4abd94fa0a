// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/metrics_registry.h"
#include "connectors/mqtt_source.h"
#include "connectors/router.h"
#include "gateway/config.h"
#include "gateway/metrics_server.h"
#include "gateway/service_notifier.h"
#include "gateway/upstream.h"
#include "storage/log_writer.h"
#include "storage/sqlite_event_log.h"

namespace sluice::gateway {

// Assembles the pipeline MQTT source -> LogWriter -> SqliteEventLog -> one Upstream per
// [upstream.NAME] (a forwarder over its own cursor, and a sink) from a Config, and takes it down in
// the order that loses nothing:
//   1. the source disconnects (no new events; unwritten QoS 1/2 events stay unacknowledged),
//   2. the writer commits what is queued,
//   3. each forwarder drains in-flight events for a bounded time and stores its cursor,
//   4. the log closes.
// A thread of its own picks up replay requests (`sluice replay`) from the log once a second.
// Thread-safety: Open/Shutdown from the main thread; Failed/Summary from any thread.
class Daemon {
 public:
  // `failpoint` arms fault injection for tests (gateway/failpoint.h); empty in production.
  Daemon(Config config, std::shared_ptr<spdlog::logger> logger, const Clock* clock,
         std::function<void(const char*)> failpoint = nullptr);
  ~Daemon();

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Opens the log and starts every part. An error here (bad log file, bad Kafka setting) is
  // returned with context; broker outages are not errors, they are retried in the background.
  Status Open();

  // Non-OK once a part failed for good (the log): the caller should shut down and exit non-zero.
  Status Failed() const;

  void Shutdown();

  // One line on the pipeline's state, for the periodic log line.
  std::string Summary() const;

  // Liveness (/healthz): OK while the log is usable (no part failed for good) and every
  // forwarder's loop made progress within the last kStallLimit. Otherwise Unavailable saying why.
  Status Health() const;
  // Readiness (/readyz): healthy, and the MQTT source is connected and subscribed, and every
  // upstream is reachable and takes events. Otherwise Unavailable naming what is missing, per
  // upstream.
  Status Readiness() const;

  static constexpr std::chrono::seconds kStallLimit{30};

  // Called (from the MQTT connector thread) each time the source has connected and made its
  // subscriptions, so events flow from then on. REQUIRES: before Open.
  void SetOnReady(std::function<void()> on_ready) { on_ready_ = std::move(on_ready); }

  // The pipeline's heartbeats for the service watchdog; empty when not running.
  std::vector<Heartbeat> Heartbeats() const;

 private:
  Config config_;
  std::shared_ptr<spdlog::logger> log_;
  const Clock* clock_;
  std::function<void(const char*)> failpoint_;
  std::function<void()> on_ready_;
  // Registers the metrics of docs/operations.md, read from the parts at scrape time.
  void RegisterMetrics();
  // The per-upstream metrics, labelled upstream="NAME"; `i` indexes upstreams_.
  void RegisterUpstreamMetrics(size_t i);
  Status OpenLog();
  void ReplayLoop();
  void ServeReplays();

  // Declared before the parts, so that it outlives the histograms' users.
  std::unique_ptr<MetricsRegistry> metrics_ = std::make_unique<MetricsRegistry>();
  Histogram* commit_seconds_ = nullptr;      // owned by metrics_
  std::vector<Histogram*> forward_latency_;  // per upstream, owned by metrics_
  std::unique_ptr<MetricsServer> metrics_server_;
  // Each upstream's view of the routes, for the log's gap accounting (which dropped events an
  // upstream would have received).
  std::map<std::string, std::unique_ptr<connectors::Router>, std::less<>> feeds_;
  std::unique_ptr<storage::SqliteEventLog> event_log_;
  std::unique_ptr<storage::IngressJournal> journal_;  // the log's front door; outlives writer_
  std::unique_ptr<storage::LogWriter> writer_;
  std::vector<std::unique_ptr<Upstream>> upstreams_;  // configuration order
  std::unique_ptr<connectors::MqttSource> source_;
  std::mutex replay_mu_;
  std::condition_variable replay_cv_;
  bool replay_stop_ = false;  // GUARDED_BY(replay_mu_)
  std::thread replay_thread_;
  mutable std::mutex fatal_mu_;
  Status fatal_;  // GUARDED_BY(fatal_mu_)
};

}  // namespace sluice::gateway
