#include "gateway/daemon.h"

#include <fmt/format.h>

#include "sluice/version.h"

namespace sluice::gateway {

Daemon::Daemon(Config config, std::shared_ptr<spdlog::logger> logger, const Clock* clock,
               std::function<void(const char*)> failpoint)
    : config_(std::move(config)),
      log_(std::move(logger)),
      clock_(clock),
      failpoint_(std::move(failpoint)) {}

Daemon::~Daemon() {
  Shutdown();
}

Status Daemon::Open() {
  RegisterMetrics();
  if (config_.metrics.enabled) {
    // Bound first: a port in use stops the start before anything else is touched.
    MetricsServerOptions mso;
    mso.address = config_.metrics.address;
    mso.port = config_.metrics.port;
    metrics_server_ = std::make_unique<MetricsServer>(
        mso, metrics_.get(), [this] { return Health(); }, [this] { return Readiness(); }, log_);
    Status ms = metrics_server_->Listen();
    if (!ms.ok()) return ms;
  }
  // One upstream for now: the first, which must be Kafka (several upstreams: issue 12).
  if (config_.upstreams.empty() || config_.upstreams.front().kind != UpstreamKind::kKafka) {
    return Status::InvalidArgument("the first upstream must be of kind \"kafka\" (for now)");
  }
  const UpstreamConfig& upstream = config_.upstreams.front();
  std::vector<connectors::Route> routes;
  for (const RouteConfig& rc : config_.routes) {
    connectors::Route r;
    r.mqtt_filter = rc.mqtt_filter;
    for (const RouteTarget& t : rc.targets) {
      if (t.upstream == upstream.name) r.upstream_topic = t.target;
    }
    r.qos = rc.qos;
    r.forward_retain = rc.forward_retain;
    Status s = connectors::KeyPattern::Parse(rc.key_pattern, &r.key);
    if (!s.ok()) return s;
    routes.push_back(std::move(r));
  }
  router_ = std::make_unique<connectors::Router>(std::move(routes));

  storage::SqliteEventLogOptions lo = config_.storage;
  // Only the first upstream is forwarded to yet: a cursor nobody advances would hold every event.
  lo.cursors = {upstream.name};
  lo.logger = log_;
  lo.commit_seconds = commit_seconds_;
  Status s = storage::SqliteEventLog::Open(lo, &event_log_);
  if (!s.ok()) return s;

  writer_ = std::make_unique<storage::LogWriter>(event_log_.get(), config_.writer, log_);

  connectors::KafkaSinkOptions ko = upstream.kafka;
  ko.log_id = event_log_->LogId();
  s = connectors::KafkaSink::Create(ko, router_.get(), log_, &sink_);
  if (!s.ok()) return s;

  ForwarderOptions fo;
  fo.cursor = upstream.name;
  fo.max_in_flight = static_cast<size_t>(upstream.kafka.max_in_flight);
  fo.failpoint = failpoint_;
  fo.clock = clock_;
  fo.forward_latency_seconds = forward_latency_;
  forwarder_ = std::make_unique<Forwarder>(event_log_.get(), sink_.get(), fo, log_);

  connectors::MqttSourceOptions mo = config_.mqtt;
  for (const RouteConfig& rc : config_.routes) {
    // Paho C sends PUBREC for a QoS 2 message before the callback runs, so the broker would
    // forget it before it is in the log; QoS 1 is acknowledged only after the commit.
    if (rc.qos == 2) {
      log_->warn(
          "route '{}': qos 2 is subscribed as qos 1, whose acknowledgement waits for the "
          "log commit (docs/configuration.md)",
          rc.mqtt_filter);
    }
  }
  mo.failpoint = failpoint_;
  mo.on_ready = on_ready_;
  mo.on_fatal = [this](const Status& st) {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (fatal_.ok()) fatal_ = st;
  };
  source_ = std::make_unique<connectors::MqttSource>(mo, writer_.get(), clock_, log_);

  writer_->Start();
  forwarder_->Start();
  s = source_->Start();
  if (!s.ok()) return s;
  if (metrics_server_) metrics_server_->Start();
  log_->info("sluice started: gateway '{}', {} route(s), MQTT {}, Kafka {}", config_.gateway.id,
             config_.routes.size(), config_.mqtt.connection.url, upstream.kafka.brokers);
  return Status::Ok();
}

Status Daemon::Failed() const {
  {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (!fatal_.ok()) return fatal_;
  }
  if (forwarder_) return forwarder_->error();
  return Status::Ok();
}

void Daemon::Shutdown() {
  // First, so that no scrape reads a part while it is taken down.
  if (metrics_server_) {
    metrics_server_->Stop();
    metrics_server_.reset();
  }
  if (source_) {
    source_->Stop();
    source_.reset();
  }
  if (writer_) {
    writer_->Stop();
  }
  if (forwarder_) {
    forwarder_->Stop();
    forwarder_.reset();
  }
  sink_.reset();
  writer_.reset();
  if (event_log_) {
    const storage::LogStats st = event_log_->Stats();
    log_->info("sluice stopped: {} events left in the log for the next start, cursor {}", st.events,
               st.cursor);
    event_log_.reset();
  }
}

std::vector<Heartbeat> Daemon::Heartbeats() const {
  std::vector<Heartbeat> beats;
  if (forwarder_) {
    // The forwarder stamps steady-clock milliseconds after each pass of its loop.
    const auto last = std::chrono::steady_clock::time_point(
        std::chrono::milliseconds(forwarder_->Stats().last_progress_ms));
    beats.push_back({"forwarder", last});
  }
  return beats;
}

std::string Daemon::Summary() const {
  if (!event_log_ || !forwarder_ || !source_) return "not running";
  const storage::LogStats ls = event_log_->Stats();
  const ForwarderStats fs = forwarder_->Stats();
  const connectors::MqttSourceStats ms = source_->Stats();
  const int64_t age_s =
      ls.events == 0 ? 0 : (clock_->NowUnixMillis() - ls.oldest_received_ms) / 1000;
  return fmt::format(
      "mqtt {} received {} refused {}; log backlog {} events / {} bytes (oldest {} s), dropped {}; "
      "kafka {} delivered {} dead-lettered {}",
      source_->Ready() ? "up" : "DOWN", ms.received, ms.refused_too_large, ls.events, ls.bytes,
      age_s, ls.dropped_events, sink_ && sink_->Connected() ? "up" : "down", fs.delivered,
      fs.rejected);
}

Status Daemon::Health() const {
  Status s = Failed();
  if (!s.ok()) return Status::Unavailable("unhealthy: " + s.message());
  if (!event_log_ || !forwarder_) return Status::Unavailable("unhealthy: not running");
  // The forwarder stamps steady-clock milliseconds after each pass of its loop.
  const auto last = std::chrono::steady_clock::time_point(
      std::chrono::milliseconds(forwarder_->Stats().last_progress_ms));
  const auto idle = std::chrono::steady_clock::now() - last;
  if (idle > kStallLimit) {
    return Status::Unavailable(
        fmt::format("unhealthy: the forwarder loop made no progress for {} s",
                    std::chrono::duration_cast<std::chrono::seconds>(idle).count()));
  }
  return Status::Ok();
}

Status Daemon::Readiness() const {
  Status s = Health();
  if (!s.ok()) return s;
  std::string missing;
  if (!source_) {
    missing = "MQTT broker " + config_.mqtt.connection.url + " not connected and subscribed";
  } else if (!source_->Ready()) {
    missing = source_->NotReadyReason();
  }
  // A hold says more than "not reachable" (which broker refuses what, and the fix), so it stands
  // in for it.
  const std::string held = sink_ ? sink_->HoldReason() : std::string();
  if (!held.empty()) {
    missing += (missing.empty() ? "" : "; ") + held;
  } else if (!sink_ || !sink_->Connected()) {
    missing += (missing.empty() ? "" : "; ") + std::string("Kafka ") +
               config_.upstreams.front().kafka.brokers + " not reachable";
  }
  if (!missing.empty()) return Status::Unavailable("not ready: " + missing);
  return Status::Ok();
}

void Daemon::RegisterMetrics() {
  MetricsRegistry& m = *metrics_;
  // The functions run on the metrics server's threads, which only run between Open and the start
  // of Shutdown; the null checks cover an Open that failed half-way.
  auto log_stats = [this] { return event_log_ ? event_log_->Stats() : storage::LogStats{}; };
  auto fwd_stats = [this] { return forwarder_ ? forwarder_->Stats() : ForwarderStats{}; };
  auto src_stats = [this] { return source_ ? source_->Stats() : connectors::MqttSourceStats{}; };
  auto d = [](uint64_t v) { return static_cast<double>(v); };

  m.AddGauge("sluice_build_info", "Always 1; the version label names the running build.",
             {{"version", kVersion}})
      ->Set(1);
  m.AddCounterFunction("sluice_events_received_total",
                       "Messages the MQTT broker delivered to sluice, refused ones included.", {},
                       [=] { return d(src_stats().received); });
  m.AddCounterFunction("sluice_mqtt_retained_skipped_total",
                       "Retained MQTT messages acknowledged but not logged: sent again for a "
                       "subscription that was not new, or on a route with retained = \"skip\".",
                       {}, [=] { return d(src_stats().retained_skipped); });
  m.AddCounterFunction("sluice_events_committed_total",
                       "Events committed to the local log by this process.", {},
                       [this, d] { return d(writer_ ? writer_->Stats().written : 0); });
  m.AddCounterFunction("sluice_events_forwarded_total",
                       "Events Kafka confirmed (acks=all) to this process.", {},
                       [=] { return d(fwd_stats().delivered); });
  m.AddCounterFunction(
      "sluice_events_dropped_total",
      "Events dropped by overflow = drop-oldest since the log file was created (kept in the log).",
      {}, [=] { return d(log_stats().dropped_events); });
  const char* refused_help =
      "Events refused for good by this process: too_large (over storage.max_event_bytes, "
      "discarded) or upstream_rejected (refused by Kafka, moved to the dead-letter table).";
  m.AddCounterFunction("sluice_events_refused_total", refused_help, {{"reason", "too_large"}},
                       [=] { return d(src_stats().refused_too_large); });
  m.AddCounterFunction("sluice_events_refused_total", refused_help,
                       {{"reason", "upstream_rejected"}}, [=] { return d(fwd_stats().rejected); });
  m.AddCounterFunction("sluice_events_resent_total",
                       "Events handed to Kafka again after they were lost in flight.", {},
                       [=] { return d(fwd_stats().resent); });
  m.AddCounterFunction("sluice_forwarder_holds_total",
                       "Backoffs because Kafka held events until an operator acts.", {},
                       [=] { return d(fwd_stats().holds); });
  m.AddCounterFunction("sluice_forwarder_dropped_unconfirmed_total",
                       "Events drop-oldest deleted while sent and not yet confirmed by Kafka.", {},
                       [=] { return d(fwd_stats().dropped_unsent); });
  m.AddGaugeFunction("sluice_forwarder_window_events",
                     "Events sent and not yet passed by the cursor (at most 2 x max_in_flight).",
                     {}, [=] { return d(fwd_stats().window); });
  m.AddGaugeFunction("sluice_dead_letters",
                     "Events in the log's dead-letter table (counted against storage.max_bytes).",
                     {}, [=] { return d(log_stats().dead_letters); });
  m.AddGaugeFunction("sluice_dead_letter_bytes",
                     "Accounted bytes of the dead letters (event + reason), part of max_bytes.", {},
                     [=] { return d(log_stats().dead_letter_bytes); });
  m.AddCounterFunction("sluice_dead_letters_dropped_total",
                       "Dead letters dropped by overflow = drop-oldest since the log file was "
                       "created (kept in the log).",
                       {}, [=] { return d(log_stats().dropped_dead_letters); });
  m.AddGaugeFunction("sluice_backlog_events", "Events in the log not yet confirmed by Kafka.", {},
                     [=] { return d(log_stats().events); });
  m.AddGaugeFunction("sluice_backlog_bytes",
                     "Accounted bytes of the backlog (topic + payload + 32 per event).", {},
                     [=] { return d(log_stats().bytes); });
  m.AddGaugeFunction("sluice_backlog_max_bytes", "storage.max_bytes: the bound of the backlog.", {},
                     [=] { return d(log_stats().max_bytes); });
  m.AddGaugeFunction("sluice_backlog_oldest_age_seconds",
                     "Age of the oldest event in the backlog (since sluice received it); 0 when "
                     "the backlog is empty.",
                     {}, [this, log_stats] {
                       const storage::LogStats st = log_stats();
                       if (st.events == 0) return 0.0;
                       const int64_t age = clock_->NowUnixMillis() - st.oldest_received_ms;
                       return static_cast<double>(std::max<int64_t>(age, 0)) / 1000.0;
                     });
  m.AddGaugeFunction("sluice_upstream_connected", "1 while the Kafka sink reaches Kafka, else 0.",
                     {}, [this] { return sink_ && sink_->Connected() ? 1.0 : 0.0; });
  m.AddGaugeFunction("sluice_upstream_held",
                     "1 while Kafka refuses events until an operator acts (missing topic, ACL, "
                     "credentials; /readyz says what to do), else 0.",
                     {}, [this] { return sink_ && !sink_->HoldReason().empty() ? 1.0 : 0.0; });
  m.AddCounterFunction("sluice_upstream_holds_total",
                       "Times a Kafka refusal that an operator must fix began (per topic or for "
                       "the cluster).",
                       {}, [this, d] { return d(sink_ ? sink_->Holds() : 0); });
  m.AddGaugeFunction("sluice_mqtt_connected",
                     "1 while connected to the MQTT broker with the subscriptions made, else 0.",
                     {}, [this] { return source_ && source_->Ready() ? 1.0 : 0.0; });
  m.AddCounterFunction("sluice_mqtt_reconnects_total",
                       "Successful connections to the MQTT broker after the first one.", {}, [=] {
                         const uint64_t connects = src_stats().connects;
                         return d(connects > 0 ? connects - 1 : 0);
                       });
  m.AddCounterFunction("sluice_log_commits_total",
                       "Transactions that appended events to the log, since it was opened.", {},
                       [=] { return d(log_stats().commits); });
  commit_seconds_ = m.AddHistogram(
      "sluice_log_commit_duration_seconds",
      "Duration of each append transaction of the log, the fsync included (storage.sync).",
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  forward_latency_ = m.AddHistogram(
      "sluice_forward_latency_seconds",
      "Time from an event's receipt from MQTT to Kafka's confirmation of it, outages included.",
      {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600});
}

}  // namespace sluice::gateway
