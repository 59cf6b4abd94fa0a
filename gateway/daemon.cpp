// SPDX-License-Identifier: Apache-2.0

#include "gateway/daemon.h"

#include <fmt/format.h>

#include <algorithm>

#include "sluice/version.h"

namespace sluice::gateway {

namespace {

// How logs and /readyz name an upstream's kind ("Kafka", "RabbitMQ broker").
const char* UpstreamLabel(UpstreamKind kind, bool broker) {
  switch (kind) {
    case UpstreamKind::kKafka:
      return "Kafka";
    case UpstreamKind::kMqtt:
      return broker ? "MQTT broker" : "MQTT";
    case UpstreamKind::kKinesis:
      return "Kinesis";
    case UpstreamKind::kRabbitmq:
      return broker ? "RabbitMQ broker" : "RabbitMQ";
  }
  return "upstream";
}
// How often the replay thread looks for new requests (`sluice replay` writes them into the log).
constexpr std::chrono::seconds kReplayPollInterval{1};

double AsDouble(uint64_t v) {
  return static_cast<double>(v);
}

const storage::CursorStats* FindCursor(const storage::LogStats& st, const std::string& name) {
  for (const storage::CursorStats& c : st.cursors) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

double AgeSeconds(const Clock& clock, int64_t oldest_ms, uint64_t events) {
  if (events == 0 || oldest_ms == 0) return 0.0;
  const int64_t age = clock.NowUnixMillis() - oldest_ms;
  return static_cast<double>(std::max<int64_t>(age, 0)) / 1000.0;
}
}  // namespace

Daemon::Daemon(Config config, std::shared_ptr<spdlog::logger> logger, const Clock* clock,
               std::function<void(const char*)> failpoint)
    : config_(std::move(config)),
      log_(std::move(logger)),
      clock_(clock),
      failpoint_(std::move(failpoint)) {}

Daemon::~Daemon() {
  Shutdown();
}

Status Daemon::OpenLog() {
  storage::SqliteEventLogOptions lo = config_.storage;
  lo.cursors.clear();
  for (const UpstreamConfig& u : config_.upstreams) {
    lo.cursors.push_back(u.name);
    std::vector<connectors::Route> routes;
    Status s = RoutesFor(u.name, config_.routes, &routes);
    if (!s.ok()) return s;
    feeds_[u.name] = std::make_unique<connectors::Router>(std::move(routes));
  }
  // Only routes that feed an upstream count in its gap records: it would never have received the
  // others.
  lo.feeds = [this](std::string_view cursor, std::string_view topic) {
    auto it = feeds_.find(cursor);
    if (it == feeds_.end()) return true;
    const connectors::Route* r = it->second->Find(topic);
    return r == nullptr || !r->upstream_topic.empty();
  };
  lo.logger = log_;
  lo.clock = clock_;
  lo.commit_seconds = commit_seconds_;
  return storage::SqliteEventLog::Open(lo, &event_log_);
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
  Status s = OpenLog();
  if (!s.ok()) return s;

  // Acknowledged events that a crash left in the journal go into the log before anything new.
  storage::IngressJournalOptions jo = config_.journal;
  jo.path = config_.storage.path + storage::IngressJournal::kPathSuffix;
  jo.vfs = config_.storage.vfs;
  jo.sync_each_record = config_.storage.sync == storage::Sync::kFull;
  jo.logger = log_;
  std::vector<storage::Event> recovered;
  s = storage::IngressJournal::Open(jo, event_log_->LogId(), event_log_->Stats().ingress_applied,
                                    &journal_, &recovered);
  if (!s.ok()) return s;
  storage::LogWriterOptions wo = config_.writer;
  wo.clock = clock_;
  writer_ = std::make_unique<storage::LogWriter>(event_log_.get(), wo, log_, journal_.get());

  for (size_t i = 0; i < config_.upstreams.size(); ++i) {
    UpstreamEnvironment env;
    env.log = event_log_.get();
    env.log_id = event_log_->LogId();
    env.clock = clock_;
    env.logger = log_;
    env.failpoint = failpoint_;
    env.forward_latency_seconds = forward_latency_[i];
    std::unique_ptr<Upstream> u;
    s = Upstream::Create(config_.upstreams[i], config_.routes, env, &u);
    if (!s.ok()) return s.WithContext("upstream." + config_.upstreams[i].name);
    upstreams_.push_back(std::move(u));
  }

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
  // What the broker may redeliver after a crash is compared with what the log stored last.
  s = event_log_->RecentIngress(mo.redelivery_window, &mo.recent_ingress);
  if (!s.ok()) return s.WithContext("reading the newest MQTT events of the log");
  // Those the journal gave back are newer still.
  for (const storage::Event& e : recovered) {
    if (e.packet_id != 0) mo.recent_ingress.push_back(e);
  }
  if (mo.recent_ingress.size() > mo.redelivery_window) {
    mo.recent_ingress.erase(
        mo.recent_ingress.begin(),
        mo.recent_ingress.end() - static_cast<std::ptrdiff_t>(mo.redelivery_window));
  }
  mo.failpoint = failpoint_;
  mo.on_ready = on_ready_;
  mo.on_fatal = [this](const Status& st) {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (fatal_.ok()) fatal_ = st;
  };
  source_ = std::make_unique<connectors::MqttSource>(mo, writer_.get(), clock_, log_);

  writer_->Start(std::move(recovered));
  for (auto& u : upstreams_) u->Start();
  s = source_->Start();
  if (!s.ok()) return s;
  replay_thread_ = std::thread([this] { ReplayLoop(); });
  if (metrics_server_) metrics_server_->Start();
  std::string names;
  for (const auto& u : upstreams_) {
    names += fmt::format("{}{} ({} {})", names.empty() ? "" : ", ", u->name(),
                         UpstreamLabel(u->kind(), false), u->endpoint());
  }
  log_->info("sluice started: gateway '{}', {} route(s), MQTT {}, upstreams: {}",
             config_.gateway.id, config_.routes.size(), config_.mqtt.connection.url, names);
  return Status::Ok();
}

void Daemon::ReplayLoop() {
  std::unique_lock<std::mutex> lock(replay_mu_);
  while (!replay_stop_) {
    lock.unlock();
    ServeReplays();
    lock.lock();
    replay_cv_.wait_for(lock, kReplayPollInterval, [this] { return replay_stop_; });
  }
}

void Daemon::ServeReplays() {
  for (auto& u : upstreams_) u->ReapReplay();
  std::vector<storage::ReplayRequest> pending;
  Status s = event_log_->PendingReplays(&pending);
  if (!s.ok()) {
    log_->error("cannot read replay requests: {}", s.ToString());
    return;
  }
  for (const storage::ReplayRequest& r : pending) {
    auto it = std::find_if(upstreams_.begin(), upstreams_.end(),
                           [&](const auto& u) { return u->name() == r.upstream; });
    if (it == upstreams_.end()) {
      // Its upstream left the configuration: nothing can serve it.
      log_->warn("replay {} names upstream '{}', which is no longer configured; dropped", r.id,
                 r.upstream);
      Status d = event_log_->AdvanceReplay(r.id, r.position, true);
      if (!d.ok()) log_->error("cannot close replay {}: {}", r.id, d.ToString());
      continue;
    }
    if ((*it)->ReplayId() == 0) (*it)->StartReplay(r);
  }
}

Status Daemon::Failed() const {
  {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (!fatal_.ok()) return fatal_;
  }
  for (const auto& u : upstreams_) {
    Status s = u->error();
    if (!s.ok()) return s.WithContext("upstream " + u->name());
  }
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
  if (writer_) writer_->Stop();
  if (replay_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(replay_mu_);
      replay_stop_ = true;
    }
    replay_cv_.notify_all();
    replay_thread_.join();
  }
  // In parallel: each drains its in-flight events for up to drain_timeout, and one slow upstream
  // must not eat into the others' share of gateway.stop_timeout_s.
  std::vector<std::thread> stopping;
  for (auto& u : upstreams_) stopping.emplace_back([&u] { u->Stop(); });
  for (std::thread& t : stopping) t.join();
  upstreams_.clear();
  writer_.reset();
  journal_.reset();
  if (event_log_) {
    const storage::LogStats st = event_log_->Stats();
    log_->info("sluice stopped: {} events left in the log for the next start, cursor {}", st.events,
               st.cursor);
    event_log_.reset();
  }
}

std::vector<Heartbeat> Daemon::Heartbeats() const {
  std::vector<Heartbeat> beats;
  for (const auto& u : upstreams_) {
    // Each forwarder stamps steady-clock milliseconds after each pass of its loop.
    const auto last = std::chrono::steady_clock::time_point(
        std::chrono::milliseconds(u->Stats().last_progress_ms));
    beats.push_back({"forwarder to " + u->name(), last});
  }
  return beats;
}

std::string Daemon::Summary() const {
  if (!event_log_ || upstreams_.empty() || !source_) return "not running";
  const storage::LogStats ls = event_log_->Stats();
  const connectors::MqttSourceStats ms = source_->Stats();
  std::string out = fmt::format(
      "mqtt {} received {} refused {}; log backlog {} events / {} bytes (oldest {:.0f} s), "
      "dropped {}",
      source_->Ready() ? "up" : "DOWN", ms.received, ms.refused_too_large, ls.events, ls.bytes,
      AgeSeconds(*clock_, ls.oldest_received_ms, ls.events), ls.dropped_events);
  for (const auto& u : upstreams_) {
    const ForwarderStats fs = u->Stats();
    const storage::CursorStats* c = FindCursor(ls, u->name());
    out += fmt::format("; {} {} delivered {} dead-lettered {} backlog {}", u->name(),
                       u->sink().Connected() ? "up" : "down", fs.delivered, fs.rejected,
                       c != nullptr ? c->events : 0);
  }
  return out;
}

Status Daemon::Health() const {
  Status s = Failed();
  if (!s.ok()) return Status::Unavailable("unhealthy: " + s.message());
  if (!event_log_ || upstreams_.empty()) return Status::Unavailable("unhealthy: not running");
  for (const auto& u : upstreams_) {
    // The forwarder stamps steady-clock milliseconds after each pass of its loop.
    const auto last = std::chrono::steady_clock::time_point(
        std::chrono::milliseconds(u->Stats().last_progress_ms));
    const auto idle = std::chrono::steady_clock::now() - last;
    if (idle > kStallLimit) {
      return Status::Unavailable(
          fmt::format("unhealthy: the forwarder to {} made no progress for {} s", u->name(),
                      std::chrono::duration_cast<std::chrono::seconds>(idle).count()));
    }
  }
  return Status::Ok();
}

Status Daemon::Readiness() const {
  Status s = Health();
  if (!s.ok()) return s;
  std::vector<std::string> missing;
  if (!source_) {
    missing.push_back("MQTT broker " + config_.mqtt.connection.url +
                      " not connected and subscribed");
  } else if (!source_->Ready()) {
    missing.push_back(source_->NotReadyReason());
  }
  for (const auto& u : upstreams_) {
    // A hold says more than "not reachable" (which broker refuses what, and the fix), so it
    // stands in for it.
    const std::string held = u->sink().HoldReason();
    if (!held.empty()) {
      missing.push_back("upstream " + u->name() + ": " + held);
    } else if (!u->sink().Connected()) {
      missing.push_back(fmt::format("upstream {}: {} {} not reachable", u->name(),
                                    UpstreamLabel(u->kind(), true), u->endpoint()));
    }
  }
  if (missing.empty()) return Status::Ok();
  std::string text = "not ready: ";
  for (size_t i = 0; i < missing.size(); ++i) text += (i == 0 ? "" : "; ") + missing[i];
  return Status::Unavailable(text);
}

void Daemon::RegisterMetrics() {
  MetricsRegistry& m = *metrics_;
  // The functions run on the metrics server's threads, which only run between Open and the start
  // of Shutdown; the null checks cover an Open that failed half-way.
  auto log_stats = [this] { return event_log_ ? event_log_->Stats() : storage::LogStats{}; };
  auto src_stats = [this] { return source_ ? source_->Stats() : connectors::MqttSourceStats{}; };
  auto d = AsDouble;

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
  m.AddCounterFunction("sluice_mqtt_redeliveries_skipped_total",
                       "MQTT messages the broker delivered again (DUP) that were already in the "
                       "log: acknowledged, not stored again.",
                       {}, [=] { return d(src_stats().redeliveries_skipped); });
  m.AddCounterFunction("sluice_events_committed_total",
                       "Events committed to the local log by this process.", {},
                       [this, d] { return d(writer_ ? writer_->Stats().written : 0); });
  m.AddCounterFunction("sluice_journal_records_total",
                       "QoS 1/2 events acknowledged once in the ingress journal, by this process.",
                       {}, [this, d] { return d(writer_ ? writer_->Stats().journaled : 0); });
  m.AddCounterFunction("sluice_journal_waits_total",
                       "Times the ingress journal was full of events not yet in the log and an "
                       "acknowledgement waited for a commit.",
                       {}, [this, d] { return d(writer_ ? writer_->Stats().journal_waits : 0); });
  m.AddCounterFunction(
      "sluice_events_dropped_total",
      "Events dropped by overflow = drop-oldest since the log file was created (kept in the log).",
      {}, [=] { return d(log_stats().dropped_events); });
  m.AddCounterFunction("sluice_events_refused_total",
                       "Events refused for good by this process: too_large (over "
                       "storage.max_event_bytes, discarded).",
                       {{"reason", "too_large"}}, [=] { return d(src_stats().refused_too_large); });
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
  m.AddGaugeFunction("sluice_backlog_events",
                     "Events in the log not yet confirmed by every upstream.", {},
                     [=] { return d(log_stats().events); });
  m.AddGaugeFunction("sluice_backlog_bytes",
                     "Accounted bytes of the backlog (topic + payload + 32 per event).", {},
                     [=] { return d(log_stats().bytes); });
  m.AddGaugeFunction("sluice_backlog_max_bytes", "storage.max_bytes: the bound of the log.", {},
                     [=] { return d(log_stats().max_bytes); });
  m.AddGaugeFunction("sluice_backlog_oldest_age_seconds",
                     "Age of the oldest event some upstream has not confirmed (since sluice "
                     "received it); 0 when there is none.",
                     {}, [this, log_stats] {
                       const storage::LogStats st = log_stats();
                       return AgeSeconds(*clock_, st.oldest_received_ms, st.events);
                     });
  m.AddGaugeFunction(
      "sluice_retained_events",
      "Events every upstream confirmed, kept for `sluice replay` (storage.retain_*).", {},
      [=] { return d(log_stats().retained_events); });
  m.AddGaugeFunction("sluice_retained_bytes", "Accounted bytes of the retained events.", {},
                     [=] { return d(log_stats().retained_bytes); });
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
  for (size_t i = 0; i < config_.upstreams.size(); ++i) RegisterUpstreamMetrics(i);
}

void Daemon::RegisterUpstreamMetrics(size_t i) {
  MetricsRegistry& m = *metrics_;
  const std::string name = config_.upstreams[i].name;
  const MetricsRegistry::Labels label = {{"upstream", name}};
  auto d = AsDouble;
  // Null-safe views of this upstream's parts (see RegisterMetrics).
  auto fwd = [this, i] {
    return i < upstreams_.size() ? upstreams_[i]->Stats() : ForwarderStats{};
  };
  auto sink = [this, i]() -> const connectors::Sink* {
    return i < upstreams_.size() ? &upstreams_[i]->sink() : nullptr;
  };
  auto cursor = [this, name] {
    const storage::LogStats st = event_log_ ? event_log_->Stats() : storage::LogStats{};
    const storage::CursorStats* c = FindCursor(st, name);
    return c != nullptr ? *c : storage::CursorStats{};
  };

  m.AddCounterFunction("sluice_events_forwarded_total",
                       "Events the upstream confirmed (Kafka: acks=all; MQTT: PUBACK) to this "
                       "process.",
                       label, [=] { return d(fwd().delivered); });
  m.AddCounterFunction("sluice_events_upstream_rejected_total",
                       "Events the upstream refused for good, moved to the dead-letter table.",
                       label, [=] { return d(fwd().rejected); });
  m.AddCounterFunction("sluice_events_resent_total",
                       "Events handed to the upstream again after they were lost in flight.", label,
                       [=] { return d(fwd().resent); });
  m.AddCounterFunction("sluice_gap_records_total",
                       "Gap records the upstream confirmed: each names events drop-oldest "
                       "deleted before the upstream had them.",
                       label, [=] { return d(fwd().gap_records); });
  m.AddCounterFunction("sluice_forwarder_holds_total",
                       "Backoffs because the upstream held events until an operator acts.", label,
                       [=] { return d(fwd().holds); });
  m.AddCounterFunction("sluice_forwarder_dropped_unconfirmed_total",
                       "Events drop-oldest deleted while sent and not yet confirmed.", label,
                       [=] { return d(fwd().dropped_unsent); });
  m.AddGaugeFunction("sluice_forwarder_window_events",
                     "Events sent and not yet passed by the cursor (at most 2 x max_in_flight).",
                     label, [=] { return d(fwd().window); });
  m.AddGaugeFunction("sluice_upstream_backlog_events",
                     "Events in the log the upstream has not yet confirmed.", label,
                     [=] { return d(cursor().events); });
  m.AddGaugeFunction("sluice_upstream_backlog_bytes", "Accounted bytes of that backlog.", label,
                     [=] { return d(cursor().bytes); });
  m.AddGaugeFunction("sluice_upstream_backlog_oldest_age_seconds",
                     "Age of the oldest event the upstream has not confirmed; 0 when none.", label,
                     [this, cursor] {
                       const storage::CursorStats c = cursor();
                       return AgeSeconds(*clock_, c.oldest_received_ms, c.events);
                     });
  m.AddCounterFunction("sluice_upstream_dropped_total",
                       "Events drop-oldest deleted before the upstream confirmed them, since the "
                       "log was created (each reported to it by a gap record).",
                       label, [=] { return d(cursor().dropped_events); });
  m.AddGaugeFunction("sluice_upstream_connected", "1 while sluice reaches the upstream, else 0.",
                     label, [=] {
                       const connectors::Sink* s = sink();
                       return s != nullptr && s->Connected() ? 1.0 : 0.0;
                     });
  m.AddGaugeFunction("sluice_upstream_held",
                     "1 while the upstream refuses events until an operator acts (missing topic, "
                     "ACL, credentials; /readyz says what to do), else 0.",
                     label, [=] {
                       const connectors::Sink* s = sink();
                       return s != nullptr && !s->HoldReason().empty() ? 1.0 : 0.0;
                     });
  m.AddCounterFunction("sluice_upstream_holds_total",
                       "Times a refusal that an operator must fix began (per topic or for the "
                       "whole upstream).",
                       label, [=] {
                         const connectors::Sink* s = sink();
                         return d(s != nullptr ? s->Holds() : 0);
                       });
  m.AddCounterFunction("sluice_upstream_throttled_total",
                       "Records the upstream refused for lack of throughput and that were sent "
                       "again after a backoff (Kinesis).",
                       label, [=] {
                         const connectors::Sink* s = sink();
                         return d(s != nullptr ? s->Throttled() : 0);
                       });
  m.AddCounterFunction("sluice_kafka_transactions_committed_total",
                       "Kafka transactions committed, each with its checkpoint (delivery = "
                       "\"exactly-once\" only).",
                       label, [=] {
                         const connectors::Sink* s = sink();
                         return d(s != nullptr ? s->TransactionsCommitted() : 0);
                       });
  m.AddCounterFunction("sluice_kafka_transactions_aborted_total",
                       "Kafka transactions aborted; their events were sent again (delivery = "
                       "\"exactly-once\" only).",
                       label, [=] {
                         const connectors::Sink* s = sink();
                         return d(s != nullptr ? s->TransactionsAborted() : 0);
                       });
  m.AddGaugeFunction(
      "sluice_replay_running", "1 while a `sluice replay` runs to the upstream.", label,
      [this, i] { return i < upstreams_.size() && upstreams_[i]->ReplayId() != 0 ? 1.0 : 0.0; });
  forward_latency_.push_back(m.AddHistogram(
      "sluice_forward_latency_seconds",
      "Time from an event's receipt from MQTT to the upstream's confirmation of it, outages "
      "included.",
      {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}, label));
}

}  // namespace sluice::gateway
