// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/histogram.h"
#include "common/status.h"
#include "connectors/router.h"
#include "connectors/sink.h"
#include "gateway/config.h"
#include "gateway/forwarder.h"
#include "storage/event_log.h"

namespace sluice::gateway {

// What every upstream gets from the daemon.
struct UpstreamEnvironment {
  storage::EventLog* log = nullptr;  // must outlive the upstream
  std::string log_id;                // the log's identity, sent with every record
  const Clock* clock = nullptr;      // must outlive the upstream
  std::shared_ptr<spdlog::logger> logger;
  std::function<void(const char*)> failpoint;  // test hook; empty in production
  // Observes each confirmed event's time from receipt to confirmation; may be null.
  Histogram* forward_latency_seconds = nullptr;
};

// One [upstream.NAME]: its sink, its view of the routes, and the forwarder that moves the log to
// it over its own cursor. Upstreams never wait for each other: each forwarder runs on a thread of
// its own, so one that is down only lets its own backlog grow.
//
// A replay (`sluice replay`) runs beside live forwarding, on a second sink of the same upstream
// and a forwarder of its own over the requested range; one replay at a time per upstream.
//
// Threads: Start/Stop/StartReplay/ReapReplay from the daemon's threads; the accessors from any.
class Upstream {
 public:
  static Status Create(const UpstreamConfig& config, const std::vector<RouteConfig>& routes,
                       const UpstreamEnvironment& env, std::unique_ptr<Upstream>* out);
  ~Upstream();

  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  void Start();
  void Stop();  // stops a running replay too

  const std::string& name() const { return config_.name; }
  UpstreamKind kind() const { return config_.kind; }
  // Where it sends: the Kafka bootstrap servers, the MQTT or RabbitMQ broker's URL, or the
  // Kinesis endpoint.
  const std::string& endpoint() const;
  const connectors::Sink& sink() const { return *sink_; }
  ForwarderStats Stats() const { return forwarder_->Stats(); }
  // The first error that stopped forwarding to it; OK while healthy.
  Status error() const { return forwarder_->error(); }

  // Starts sending `request`'s range again; false if a replay is already running.
  bool StartReplay(const storage::ReplayRequest& request);
  // Ends a replay whose range is done or whose forwarder failed; true while one still runs.
  bool ReapReplay();
  // The running replay's id and statistics; id 0 if none runs.
  int64_t ReplayId() const;

 private:
  Upstream(UpstreamConfig config, const UpstreamEnvironment& env);

  Status MakeSink(bool replay, std::unique_ptr<connectors::Sink>* out) const;
  ForwarderOptions MakeForwarderOptions() const;

  const UpstreamConfig config_;
  const UpstreamEnvironment env_;
  const std::string kinesis_endpoint_;  // the configured one, or the region's
  std::unique_ptr<connectors::Router> router_;
  std::unique_ptr<connectors::Sink> sink_;
  std::unique_ptr<Forwarder> forwarder_;

  mutable std::mutex replay_mu_;
  int64_t replay_id_ = 0;                          // GUARDED_BY(replay_mu_)
  std::unique_ptr<Forwarder> replay_forwarder_;    // GUARDED_BY(replay_mu_)
  std::unique_ptr<connectors::Sink> replay_sink_;  // GUARDED_BY(replay_mu_)
};

// Builds one upstream's view of the routes: every route, in order (the first route whose filter
// matches an MQTT topic decides for every upstream), with this upstream's target or an empty one
// where the route does not feed it.
Status RoutesFor(const std::string& upstream, const std::vector<RouteConfig>& routes,
                 std::vector<connectors::Route>* out);

}  // namespace sluice::gateway
