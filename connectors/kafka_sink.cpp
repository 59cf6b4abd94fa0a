#include "connectors/kafka_sink.h"

#include "connectors/kafka_conf.h"

#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace sluice::connectors {

namespace {

// Errors that no retry can cure: the event goes to the dead-letter table. Anything not listed is
// treated as transient, so an unknown error delays an event rather than dropping it.
bool IsPermanent(RdKafka::ErrorCode err) {
  switch (err) {
    case RdKafka::ERR_MSG_SIZE_TOO_LARGE:
    case RdKafka::ERR_RECORD_LIST_TOO_LARGE:
    case RdKafka::ERR_INVALID_MSG:
    case RdKafka::ERR_INVALID_RECORD:
    case RdKafka::ERR_INVALID_MSG_SIZE:
    case RdKafka::ERR_TOPIC_EXCEPTION:
    case RdKafka::ERR_POLICY_VIOLATION:
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
    case RdKafka::ERR__UNKNOWN_TOPIC:
    case RdKafka::ERR__UNKNOWN_PARTITION:
    case RdKafka::ERR__INVALID_ARG:
      return true;
    default:
      return false;
  }
}

// The broker's ACLs refuse sluice's principal. That is the operator's to fix, not the event's
// fault: the event is retried (and stays in the log) until the ACLs allow the write, and never
// dead-lettered.
bool IsAuthorization(RdKafka::ErrorCode err) {
  return err == RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED ||
         err == RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED;
}

void* SeqToOpaque(uint64_t seq) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(seq));
}
uint64_t OpaqueToSeq(void* p) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

}  // namespace

// librdkafka calls these from inside poll()/flush() on the forwarder thread only (delivery reports
// and events are queued and served by poll), so they may touch the sink's state without locks.
class KafkaSink::Callbacks final : public RdKafka::DeliveryReportCb, public RdKafka::EventCb {
 public:
  Callbacks(KafkaSink* sink) : sink_(sink) {}

  void dr_cb(RdKafka::Message& msg) override {
    Delivery d;
    d.seq = OpaqueToSeq(msg.msg_opaque());
    const RdKafka::ErrorCode err = msg.err();
    if (err == RdKafka::ERR_NO_ERROR) {
      d.outcome = Delivery::Outcome::kDelivered;
      sink_->connected_ = true;
      // Only a delivery proves the producer works again; a broker that answers metadata may
      // still refuse the producer's id.
      sink_->rebuild_backoff_.Reset();
    } else {
      d.outcome = IsPermanent(err) ? Delivery::Outcome::kRejected : Delivery::Outcome::kRetry;
      d.error = msg.topic_name() + ": " + RdKafka::err2str(err);
      if (IsAuthorization(err)) sink_->WarnAuthorization(msg.topic_name(), err);
    }
    if (sink_->in_flight_ > 0) sink_->in_flight_--;
    if (out_ != nullptr) out_->push_back(std::move(d));
  }

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR: {
        const auto err = event.err();
        if (err == RdKafka::ERR__ALL_BROKERS_DOWN) sink_->connected_ = false;
        // librdkafka repeats transport errors on every reconnect attempt; say each kind once per
        // interval, with how often it happened meanwhile.
        const auto now = std::chrono::steady_clock::now();
        auto& slot = last_logged_[static_cast<int>(err)];
        slot.count++;
        if (now - slot.at >= std::chrono::seconds(30) || slot.at.time_since_epoch().count() == 0) {
          sink_->log_->warn(
              "kafka {}: {}{} (retrying with backoff)", sink_->options_.brokers, event.str(),
              slot.count > 1 ? fmt::format(" [x{} since last report]", slot.count) : std::string());
          slot.at = now;
          slot.count = 0;
        }
        if (event.fatal()) fatal_ = true;
        break;
      }
      case RdKafka::Event::EVENT_LOG:
        if (event.severity() <= RdKafka::Event::EVENT_SEVERITY_WARNING) {
          sink_->log_->debug("librdkafka {}: {}", event.fac(), event.str());
        }
        break;
      default:
        break;
    }
  }

  std::vector<Delivery>* out_ = nullptr;
  bool fatal_ = false;

 private:
  struct Logged {
    std::chrono::steady_clock::time_point at{};
    uint64_t count = 0;
  };
  KafkaSink* sink_;
  std::unordered_map<int, Logged> last_logged_;
};

KafkaSink::KafkaSink(KafkaSinkOptions options, const Router* router,
                     std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), router_(router), log_(std::move(logger)) {}

KafkaSink::~KafkaSink() {
  // What is still in flight stays in the log and is sent again by the next run.
  producer_.reset();
}

Status KafkaSink::Create(KafkaSinkOptions options, const Router* router,
                         std::shared_ptr<spdlog::logger> logger, std::unique_ptr<KafkaSink>* out) {
  std::unique_ptr<KafkaSink> sink(new KafkaSink(std::move(options), router, std::move(logger)));
  sink->callbacks_ = std::make_unique<Callbacks>(sink.get());
  Status s = sink->BuildProducer();
  if (!s.ok()) return s;
  *out = std::move(sink);
  return Status::Ok();
}

Status KafkaSink::BuildProducer() {
  connectors::KafkaSettings settings = {
      {"bootstrap.servers", options_.brokers},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      // Never give up on an event: an outage of days is retried for days, in order.
      {"message.timeout.ms", "0"},
      {"compression.type", options_.compression},
      {"linger.ms", std::to_string(options_.linger_ms)},
      {"batch.size", std::to_string(options_.batch_bytes)},
      {"queue.buffering.max.messages", std::to_string(options_.max_in_flight + 1000)},
      {"retry.backoff.ms", std::to_string(options_.retry_backoff_ms)},
      {"reconnect.backoff.max.ms", std::to_string(options_.reconnect_max_ms)},
      {"log.connection.close", "false"},
  };
  if (options_.properties.count("client.id") == 0) {
    settings.emplace_back("client.id", "sluice-" + options_.gateway_id);
  }
  std::unique_ptr<RdKafka::Conf> conf;
  Status s = BuildKafkaConf(options_.properties, settings, &conf);
  if (!s.ok()) return s;
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(callbacks_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(callbacks_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("kafka callbacks: " + err);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) return Status::InvalidArgument("cannot create Kafka producer: " + err);
  callbacks_->fatal_ = false;
  return Status::Ok();
}

Status KafkaSink::Send(const storage::Event& event) {
  const Route* route = router_->Find(event.topic);
  if (route == nullptr) {
    return Status::InvalidArgument("no route matches MQTT topic '" + event.topic + "'");
  }
  const std::string key = route->key.KeyFor(event.topic);
  std::unique_ptr<RdKafka::Headers> headers(RdKafka::Headers::create());
  headers->add(kHeaderMqttTopic, event.topic);
  headers->add(kHeaderMqttQos, std::to_string(event.qos));
  headers->add(kHeaderGateway, options_.gateway_id);
  headers->add(kHeaderSeq, std::to_string(event.seq));
  headers->add(kHeaderReceivedMs, std::to_string(event.received_ms));
  RdKafka::ErrorCode rc = producer_->produce(
      route->upstream_topic, RdKafka::Topic::PARTITION_UA, RdKafka::Producer::RK_MSG_COPY,
      const_cast<char*>(event.payload.data()), event.payload.size(), key.data(), key.size(), 0,
      headers.get(), SeqToOpaque(event.seq));
  if (rc == RdKafka::ERR_NO_ERROR) {
    headers.release();  // librdkafka owns them now
    in_flight_++;
    return Status::Ok();
  }
  if (rc == RdKafka::ERR__QUEUE_FULL) return Status::Full("kafka producer queue full");
  if (IsAuthorization(rc)) WarnAuthorization(route->upstream_topic, rc);
  if (IsPermanent(rc)) {
    return Status::InvalidArgument(route->upstream_topic + ": " + RdKafka::err2str(rc));
  }
  return Status::Unavailable(route->upstream_topic + ": " + RdKafka::err2str(rc));
}

void KafkaSink::Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  callbacks_->out_ = out;
  producer_->poll(static_cast<int>(timeout.count()));
  callbacks_->out_ = nullptr;
  if (in_flight_ == 0 && !connected_.load()) ProbeConnection();
  std::string reason;
  // fatal_error() first: it supplies the reason even when the event callback saw the error.
  const bool fatal = producer_->fatal_error(reason) != RdKafka::ERR_NO_ERROR;
  if (fatal || callbacks_->fatal_) {
    // A fatal error that comes back at once (e.g. the cluster refuses the idempotent producer's id
    // for want of an ACL) would otherwise rebuild the producer in a tight loop.
    const auto now = std::chrono::steady_clock::now();
    if (now < next_rebuild_) return;
    if (reason.empty()) reason = "fatal producer error";
    RebuildAfterFatal(reason, out);
    next_rebuild_ = now + rebuild_backoff_.Next();
  }
}

void KafkaSink::WarnAuthorization(const std::string& topic, RdKafka::ErrorCode err) {
  uint64_t suppressed = 0;
  if (!authorization_log_.Allow(&suppressed)) return;
  log_->error(
      "kafka {} refuses sluice access to topic '{}': {} ({} more since the last report); the "
      "events stay in the log and are retried until the broker's ACLs allow this client to "
      "write (WRITE and DESCRIBE on the topic, IDEMPOTENT_WRITE on the cluster)",
      options_.brokers, topic, RdKafka::err2str(err), suppressed);
}

void KafkaSink::ProbeConnection() {
  // Only while idle and not known to be connected, at most once a second, and briefly: with
  // Kafka down the request waits out its timeout on the forwarder thread, which has nothing to
  // send meanwhile. Events in flight answer the question themselves through their reports.
  constexpr auto kInterval = std::chrono::seconds(1);
  constexpr int kTimeoutMs = 250;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_probe_) return;
  next_probe_ = now + kInterval;
  RdKafka::Metadata* metadata = nullptr;
  // Locally known topics only: the answer names the brokers, which is all that is asked.
  const RdKafka::ErrorCode err = producer_->metadata(false, nullptr, &metadata, kTimeoutMs);
  std::unique_ptr<RdKafka::Metadata> owned(metadata);
  if (err == RdKafka::ERR_NO_ERROR) connected_ = true;
}

void KafkaSink::RebuildAfterFatal(const std::string& reason, std::vector<Delivery>* out) {
  uint64_t suppressed = 0;
  if (fatal_log_.Allow(&suppressed)) {
    log_->error(
        "kafka producer hit a fatal error ({}); rebuilding it and resending what was in "
        "flight (this may duplicate some events upstream) ({} more since the last report)",
        reason, suppressed);
  }
  producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT |
                   RdKafka::Producer::PURGE_NON_BLOCKING);
  callbacks_->out_ = out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) producer_->poll(50);
  callbacks_->out_ = nullptr;
  // Any event whose report did not come back is resent by the forwarder's rewind.
  in_flight_ = 0;
  producer_.reset();
  connected_ = false;
  Status s = BuildProducer();
  if (!s.ok()) log_->critical("cannot rebuild the kafka producer: {}", s.ToString());
  out->push_back(Delivery{0, Delivery::Outcome::kRetry, "producer rebuilt: " + reason});
}

void KafkaSink::Drain(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight_ > 0 && std::chrono::steady_clock::now() < deadline) {
    Poll(std::chrono::milliseconds(50), out);
  }
}

}  // namespace sluice::connectors
