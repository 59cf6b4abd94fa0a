#include "gateway/daemon.h"

#include <fmt/format.h>

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
  std::vector<connectors::Route> routes;
  for (const RouteConfig& rc : config_.routes) {
    connectors::Route r;
    r.mqtt_filter = rc.mqtt_filter;
    r.upstream_topic = rc.kafka_topic;
    r.qos = rc.qos;
    Status s = connectors::KeyPattern::Parse(rc.key_pattern, &r.key);
    if (!s.ok()) return s;
    routes.push_back(std::move(r));
  }
  router_ = std::make_unique<connectors::Router>(std::move(routes));

  storage::SqliteEventLogOptions lo;
  lo.path = config_.storage.path;
  lo.max_bytes = config_.storage.max_bytes;
  lo.overflow = config_.storage.overflow == OverflowPolicy::kDropOldest
                    ? storage::Overflow::kDropOldest
                    : storage::Overflow::kRejectNew;
  lo.sync = config_.storage.sync == SyncMode::kFull ? storage::Sync::kFull : storage::Sync::kNormal;
  lo.logger = log_;
  Status s = storage::SqliteEventLog::Open(lo, &event_log_);
  if (!s.ok()) return s;

  storage::LogWriterOptions wo;
  wo.commit_interval = std::chrono::milliseconds(config_.storage.commit_interval_ms);
  wo.commit_max_events = config_.storage.commit_max_events;
  wo.queue_capacity = std::max<size_t>(wo.commit_max_events * 10, 1000);
  writer_ = std::make_unique<storage::LogWriter>(event_log_.get(), wo, log_);

  connectors::KafkaSinkOptions ko;
  ko.brokers = config_.kafka.brokers;
  ko.compression = config_.kafka.compression;
  ko.linger_ms = static_cast<int>(config_.kafka.linger_ms);
  ko.batch_bytes = static_cast<int>(config_.kafka.batch_bytes);
  ko.max_in_flight = static_cast<int>(config_.kafka.max_in_flight_events);
  ko.retry_backoff_ms = static_cast<int>(config_.kafka.retry_backoff_ms);
  ko.reconnect_max_ms = static_cast<int>(config_.kafka.reconnect_max_ms);
  ko.gateway_id = config_.gateway.id;
  ko.properties = config_.kafka.properties;
  s = connectors::KafkaSink::Create(ko, router_.get(), log_, &sink_);
  if (!s.ok()) return s;

  ForwarderOptions fo;
  fo.max_in_flight = config_.kafka.max_in_flight_events;
  forwarder_ = std::make_unique<Forwarder>(event_log_.get(), sink_.get(), fo, log_);

  connectors::MqttSourceOptions mo;
  mo.url = config_.mqtt.url;
  mo.client_id = config_.mqtt.client_id;
  mo.username = config_.mqtt.username;
  mo.password = config_.mqtt.password;
  mo.tls = config_.mqtt.tls.enabled;
  mo.ca_file = config_.mqtt.tls.ca_file;
  mo.cert_file = config_.mqtt.tls.cert_file;
  mo.key_file = config_.mqtt.tls.key_file;
  mo.tls_verify = config_.mqtt.tls.verify;
  mo.keepalive = std::chrono::seconds(config_.mqtt.keepalive_s);
  mo.reconnect_min = std::chrono::milliseconds(config_.mqtt.reconnect_min_ms);
  mo.reconnect_max = std::chrono::milliseconds(config_.mqtt.reconnect_max_ms);
  mo.max_event_bytes = config_.storage.max_event_bytes;
  for (const RouteConfig& rc : config_.routes) {
    // Paho C sends PUBREC for a QoS 2 message before the callback runs, so the broker would
    // forget it before it is in the log; QoS 1 is acknowledged only after the commit.
    if (rc.qos == 2) {
      log_->warn(
          "route '{}': qos 2 is subscribed as qos 1, whose acknowledgement waits for the "
          "log commit (docs/configuration.md)",
          rc.mqtt_filter);
    }
    mo.subscriptions.push_back({rc.mqtt_filter, std::min(rc.qos, 1)});
  }
  mo.failpoint = failpoint_;
  mo.on_fatal = [this](const Status& st) {
    std::lock_guard<std::mutex> lock(fatal_mu_);
    if (fatal_.ok()) fatal_ = st;
  };
  source_ = std::make_unique<connectors::MqttSource>(mo, writer_.get(), clock_, log_);

  writer_->Start();
  forwarder_->Start();
  s = source_->Start();
  if (!s.ok()) return s;
  log_->info("sluice started: gateway '{}', {} route(s), MQTT {}, Kafka {}", config_.gateway.id,
             config_.routes.size(), config_.mqtt.url, config_.kafka.brokers);
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

}  // namespace sluice::gateway
