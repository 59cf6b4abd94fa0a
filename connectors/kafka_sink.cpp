// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_sink.h"

#include "connectors/gap_record.h"
#include "connectors/kafka_conf.h"
#include "connectors/kafka_error_model.h"

#include <librdkafka/rdkafka.h>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <unordered_map>

namespace sluice::connectors {

namespace {

void* SeqToOpaque(uint64_t seq) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(seq));
}
uint64_t OpaqueToSeq(void* p) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* h) const { rd_kafka_headers_destroy(h); }
};
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;

// A number as decimal text, on the stack.
class NumberText {
 public:
  template <typename T>
  explicit NumberText(T v) : end_(std::to_chars(buf_, buf_ + sizeof buf_, v).ptr) {}
  std::string_view view() const { return {buf_, static_cast<size_t>(end_ - buf_)}; }

 private:
  char buf_[24];
  char* end_;
};

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
      // Asked first: the topic's name is a new std::string each time, for every delivery.
      if (!sink_->holds_.Empty()) sink_->ClearHolds(msg.topic_name());
    } else {
      const std::string topic = msg.topic_name();
      d.error = topic + ": " + RdKafka::err2str(err);
      switch (ClassifyKafkaError(err).cls) {
        case KafkaErrorClass::kTransient:
          d.outcome = Delivery::Outcome::kRetry;
          break;
        case KafkaErrorClass::kHold:
          d.outcome = Delivery::Outcome::kHold;
          d.error = sink_->Hold(topic, err, RdKafka::err2str(err));
          break;
        case KafkaErrorClass::kRejected:
          d.outcome = Delivery::Outcome::kRejected;
          break;
        case KafkaErrorClass::kTooLarge:
          // An answer about the whole request: only the event alone can say it is too large.
          d.outcome = Delivery::Outcome::kTooLarge;
          break;
      }
    }
    if (sink_->transactional()) {
      sink_->OnTransactionalReport(d, err);
      return;
    }
    if (sink_->in_flight_ > 0) sink_->in_flight_--;
    if (out_ != nullptr) out_->push_back(std::move(d));
  }

  void event_cb(RdKafka::Event& event) override {
    switch (event.type()) {
      case RdKafka::Event::EVENT_ERROR: {
        const auto err = event.err();
        if (err == RdKafka::ERR__ALL_BROKERS_DOWN) sink_->connected_ = false;
        if (event.fatal()) {
          // Poll rebuilds the producer (or stops, if it was fenced) and says why.
          fatal_ = true;
          break;
        }
        if (ClassifyKafkaError(err).cls == KafkaErrorClass::kHold) {
          // Throttled there, and stated in HoldReason() until a delivery or probe succeeds.
          sink_->Hold("", err, event.str());
          break;
        }
        // librdkafka repeats transport errors on every reconnect attempt; say each kind once per
        // interval, with how often it happened meanwhile.
        const auto now = sink_->clock_->Now();
        auto& slot = last_logged_[static_cast<int>(err)];
        slot.count++;
        if (now - slot.at >= std::chrono::seconds(30) || slot.at.time_since_epoch().count() == 0) {
          sink_->log_->warn(
              "kafka {}: {}{} (retrying with backoff)", sink_->options_.brokers, event.str(),
              slot.count > 1 ? fmt::format(" [x{} since last report]", slot.count) : std::string());
          slot.at = now;
          slot.count = 0;
        }
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

KafkaSink::KafkaSink(KafkaSinkOptions options, const Router* router, const Clock* clock,
                     std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      routes_(router),
      clock_(clock != nullptr ? clock : &system_clock_),
      log_(std::move(logger)) {}

KafkaSink::~KafkaSink() {
  // What is still in flight stays in the log and is sent again by the next run.
  ReleaseProducer();
}

void KafkaSink::ReleaseProducer() {
  if (producer_ && transactional()) {
    // librdkafka 2.0 can abort the process (an assertion in rd_kafka_txn_handle_AddPartitionsToTxn)
    // when a transactional producer is destroyed while it still waits for a partition to join
    // the transaction. Ending the transaction first, and letting outstanding requests finish,
    // leaves nothing of the kind; neither call can make anything visible that was not committed.
    if (txn_state_ == TxnState::kOpen || txn_state_ == TxnState::kCommitting ||
        txn_state_ == TxnState::kAborting) {
      std::unique_ptr<RdKafka::Error> e(producer_->abort_transaction(2000));
    }
    producer_->flush(2000);
  }
  producer_.reset();
}

Status KafkaSink::Create(KafkaSinkOptions options, const Router* router, const Clock* clock,
                         std::shared_ptr<spdlog::logger> logger, std::unique_ptr<KafkaSink>* out) {
  std::unique_ptr<KafkaSink> sink(
      new KafkaSink(std::move(options), router, clock, std::move(logger)));
  sink->callbacks_ = std::make_unique<Callbacks>(sink.get());
  if (sink->transactional()) {
    sink->checkpoint_ = std::make_unique<KafkaCheckpoint>(sink->options_, sink->log_);
  }
  Status s = sink->BuildProducer();
  if (!s.ok()) return s;
  *out = std::move(sink);
  return Status::Ok();
}

Status KafkaSink::BuildProducer() {
  // The settings sluice owns, from the one table that the configuration also refuses.
  std::unique_ptr<RdKafka::Conf> conf;
  Status s = BuildKafkaConf(options_.properties, ProducerSettings(options_), &conf);
  if (!s.ok()) return s;
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(callbacks_.get()), err) !=
          RdKafka::Conf::CONF_OK ||
      conf->set("event_cb", static_cast<RdKafka::EventCb*>(callbacks_.get()), err) !=
          RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("kafka callbacks: " + err);
  }
  producer_.reset(RdKafka::Producer::create(conf.get(), err));
  if (!producer_) {
    // At creation librdkafka checks the properties together (e.g. sasl.oauthbearer.config) and
    // may quote one.
    return Status::InvalidArgument("cannot create Kafka producer: " +
                                   WithoutPropertyValues(options_.properties, err));
  }
  callbacks_->fatal_ = false;
  return Status::Ok();
}

Status KafkaSink::Send(const storage::Event& event) {
  if (!producer_) return error();
  if (transactional()) {
    if (txn_state_ == TxnState::kReady || txn_state_ == TxnState::kOpen) {
      if (event.seq <= committed_through_) {
        // Committed by an earlier run (or before a rebuild) after the local cursor was stored.
        settled_.push_back(Delivery{event.seq, Delivery::Outcome::kDelivered, {}});
        in_flight_++;
        return Status::Ok();
      }
    }
    switch (txn_state_) {
      case TxnState::kInit:
      case TxnState::kResync:
        return Status::Unavailable("kafka transactions are being set up");
      case TxnState::kCommitting:
      case TxnState::kAborting:
        return Status::Full("kafka transaction ending");
      case TxnState::kOpen:
        if (txn_doomed_ ||
            txn_seqs_.size() >= static_cast<size_t>(options_.transaction_max_events)) {
          return Status::Full("kafka transaction full");
        }
        break;
      case TxnState::kReady: {
        std::unique_ptr<RdKafka::Error> e(producer_->begin_transaction());
        if (e) {
          std::vector<Delivery> none;
          TransactionError("beginning a transaction", e.get(), &none);
          return Status::Unavailable("kafka transaction not begun: " + e->str());
        }
        txn_state_ = TxnState::kOpen;
        txn_began_ = clock_->Now();
        break;
      }
    }
  }
  // The record is built and produced through librdkafka's C API, which the C++ one wraps: the
  // C++ Headers take each name as a std::string and come in a wrapper object of their own, which
  // cost an allocation or two per header and per event (docs/performance.md, "Drain path
  // profile"). Numbers are formatted on the stack for the same reason.
  HeadersPtr headers(rd_kafka_headers_new(8));
  auto add = [&headers](const char* name, std::string_view v) {
    rd_kafka_header_add(headers.get(), name, -1, v.data(), static_cast<ssize_t>(v.size()));
  };
  const std::string* topic = nullptr;
  std::string_view key;
  const std::string* value = &event.payload;
  GapRecord gap;
  if (event.kind == storage::EventKind::kGap) {
    // One topic for every gap of this gateway, keyed by it, so that a consumer reads a gateway's
    // gaps in order (docs/kafka-records.md, "Gap records").
    gap = MakeGapRecord(event, options_.gateway_id, options_.log_id);
    topic = &options_.gap_topic;
    key = options_.gateway_id;
    value = &gap.value;
    for (const auto& [name, v] : gap.headers) add(name.c_str(), v);
  } else {
    const RouteCache::Entry& route = routes_.Find(event.topic);
    if (route.route == nullptr) {
      return Status::InvalidArgument("no route matches MQTT topic '" + event.topic + "'");
    }
    topic = &route.route->upstream_topic;
    key = route.key;
    NumberText qos(event.qos);
    NumberText seq(event.seq);
    NumberText received_ms(event.received_ms);
    add(kHeaderMqttTopic, event.topic);
    add(kHeaderMqttQos, qos.view());
    add(kHeaderGateway, options_.gateway_id);
    add(kHeaderSeq, seq.view());
    add(kHeaderReceivedMs, received_ms.view());
    add(kHeaderLogId, options_.log_id);
    if (event.retained) add(kHeaderMqttRetain, "1");
  }
  const auto rc = static_cast<RdKafka::ErrorCode>(rd_kafka_producev(
      producer_->c_ptr(), RD_KAFKA_V_TOPIC(topic->c_str()),
      RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(value->data()), value->size()),
      RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(headers.get()),
      RD_KAFKA_V_OPAQUE(SeqToOpaque(event.seq)), RD_KAFKA_V_END));
  if (rc == RdKafka::ERR_NO_ERROR) {
    headers.release();  // librdkafka owns them now
    in_flight_++;
    if (transactional()) txn_seqs_.push_back(event.seq);
    return Status::Ok();
  }
  if (rc == RdKafka::ERR__QUEUE_FULL) return Status::Full("kafka producer queue full");
  const std::string what = *topic + ": " + RdKafka::err2str(rc);
  switch (ClassifyKafkaError(rc).cls) {
    case KafkaErrorClass::kRejected:
    // From produce() itself, too large is librdkafka's check of this one record against
    // message.max.bytes: the event alone is too large.
    case KafkaErrorClass::kTooLarge:
      return Status::InvalidArgument(what);
    case KafkaErrorClass::kHold:
      return Status::Unavailable(Hold(*topic, rc, RdKafka::err2str(rc)));
    case KafkaErrorClass::kTransient:
      break;
  }
  return Status::Unavailable(what);
}

void KafkaSink::Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  if (!producer_) return;  // failed for good: error() says why, the forwarder stops
  if (transactional()) {
    // Nothing is reported before the commit: wait no longer than until it is due. In the other
    // states the calls that are retried are paced by their backoff, so waiting as asked is right.
    if (!settled_.empty() || (txn_state_ == TxnState::kOpen && txn_doomed_)) {
      timeout = std::chrono::milliseconds(0);
    } else if (txn_state_ == TxnState::kOpen) {
      timeout = std::min(timeout, UntilCommitDue());
    }
  }
  callbacks_->out_ = out;
  producer_->poll(static_cast<int>(timeout.count()));
  callbacks_->out_ = nullptr;
  if (transactional() && producer_) {
    AdvanceTransaction(out);
    in_flight_ -= std::min(in_flight_, settled_.size());
    for (Delivery& d : settled_) out->push_back(std::move(d));
    settled_.clear();
    if (!producer_) return;
  }
  if (in_flight_ == 0 && !connected_.load()) ProbeConnection();
  ProbeHeldTopics();
  std::string reason;
  // fatal_error() first: it supplies the reason even when the event callback saw the error.
  const bool fatal = producer_->fatal_error(reason) != RdKafka::ERR_NO_ERROR;
  if (fatal || callbacks_->fatal_) {
    // A fatal error that comes back at once (e.g. the cluster refuses the idempotent producer's id
    // for want of an ACL) would otherwise rebuild the producer in a tight loop.
    const auto now = clock_->Now();
    if (now < next_rebuild_) return;
    if (reason.empty()) reason = "fatal producer error";
    RebuildAfterFatal(reason, out);
    next_rebuild_ = now + rebuild_backoff_.Next();
  }
}

std::string KafkaSink::Hold(const std::string& topic, RdKafka::ErrorCode err,
                            const std::string& detail) {
  const KafkaErrorRule& rule = ClassifyKafkaError(err);
  const std::string name =
      rule.code == err ? rule.name : fmt::format("error {}", static_cast<int>(err));
  const std::string reason =
      topic.empty()
          ? fmt::format("Kafka {} refuses sluice ({}: {}): {}", options_.brokers, name, detail,
                        rule.action)
          : fmt::format("Kafka refuses topic '{}' ({}: {}): {}", topic, name, detail, rule.action);
  holds_.Add(topic, reason);
  return reason;
}

void KafkaSink::ClearHolds(const std::string& topic) {
  holds_.Erase(topic);
  holds_.Erase("");
}

std::string KafkaSink::HoldReason() const {
  return holds_.Reason();
}

Status KafkaSink::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void KafkaSink::ProbeHeldTopics() {
  // As ProbeConnection: brief, at most once a second, on the forwarder thread, and only while a
  // topic is held, when the forwarder has little to send anyway.
  constexpr auto kInterval = std::chrono::seconds(1);
  constexpr int kTimeoutMs = 250;
  std::vector<std::string> topics = holds_.Keys();
  std::erase(topics, std::string());
  if (topics.empty()) return;
  const auto now = clock_->Now();
  if (now < next_hold_probe_) return;
  next_hold_probe_ = now + kInterval;
  for (const std::string& name : topics) {
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(producer_.get(), name, nullptr, err));
    if (!topic) continue;
    RdKafka::Metadata* metadata = nullptr;
    // The answer updates librdkafka's view of the topic; the hold itself is cleared only by a
    // delivery, since a topic that exists may still refuse sluice.
    producer_->metadata(false, topic.get(), &metadata, kTimeoutMs);
    std::unique_ptr<RdKafka::Metadata> owned(metadata);
  }
}

void KafkaSink::ProbeConnection() {
  if (!producer_) return;
  // Only while idle and not known to be connected, at most once a second, and briefly: with
  // Kafka down the request waits out its timeout on the forwarder thread, which has nothing to
  // send meanwhile. Events in flight answer the question themselves through their reports.
  constexpr auto kInterval = std::chrono::seconds(1);
  constexpr int kTimeoutMs = 250;
  const auto now = clock_->Now();
  if (now < next_probe_) return;
  next_probe_ = now + kInterval;
  RdKafka::Metadata* metadata = nullptr;
  // Locally known topics only: the answer names the brokers, which is all that is asked.
  const RdKafka::ErrorCode err = producer_->metadata(false, nullptr, &metadata, kTimeoutMs);
  std::unique_ptr<RdKafka::Metadata> owned(metadata);
  if (err == RdKafka::ERR_NO_ERROR) {
    connected_ = true;
    // The cluster answers: a refusal of the cluster as a whole is over (topic holds are not).
    holds_.Erase("");
  }
}

void KafkaSink::RebuildAfterFatal(const std::string& reason, std::vector<Delivery>* out) {
  std::string why;
  if (transactional() && Fenced(producer_->fatal_error(why))) {
    // Another sluice took this gateway's transactional.id. Writing on beside it would duplicate
    // or interleave events, so this one stops for good; its open transaction was aborted by the
    // other's initialisation, and every unconfirmed event stays in the log.
    const Status fenced = Status::Fenced(
        "another sluice with gateway id '" + options_.gateway_id + "' took over Kafka upstream '" +
        options_.upstream + "' (transactional.id '" + TransactionalId(options_) + "': " + reason +
        "); this one stops forwarding. Give each gateway its own gateway.id");
    producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT |
                     RdKafka::Producer::PURGE_NON_BLOCKING);
    ReleaseProducer();
    connected_ = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.ok()) error_ = fenced;
    }
    log_->critical("{}", fenced.message());
    return;
  }
  uint64_t suppressed = 0;
  if (fatal_log_.Allow(&suppressed)) {
    log_->error(
        "kafka producer hit a fatal error ({}); rebuilding it and {} ({} more since the last "
        "report)",
        reason,
        transactional() ? "reading its checkpoint back before it sends again"
                        : "resending what was in flight (this may duplicate some events upstream)",
        suppressed);
  }
  producer_->purge(RdKafka::Producer::PURGE_QUEUE | RdKafka::Producer::PURGE_INFLIGHT |
                   RdKafka::Producer::PURGE_NON_BLOCKING);
  if (!transactional()) {
    callbacks_->out_ = out;
    const auto deadline = clock_->Now() + std::chrono::seconds(5);
    while (in_flight_ > 0 && clock_->Now() < deadline) producer_->poll(50);
    callbacks_->out_ = nullptr;
    // Any event whose report did not come back is resent by the forwarder's rewind.
    in_flight_ = 0;
  }
  ReleaseProducer();
  connected_ = false;
  Status s = BuildProducer();
  if (!s.ok()) {
    // Whatever BuildProducer left behind is not a usable producer; every method checks for null.
    producer_.reset();
    FailForGood(s);
  }
  if (transactional()) {
    // The transaction may have committed before the error: the checkpoint read back after the new
    // producer's initialisation (which completes or aborts it) settles its events.
    txn_state_ = TxnState::kInit;
    checkpoint_sent_ = false;
    commit_started_ = false;
    return;
  }
  out->push_back(Delivery{0, Delivery::Outcome::kRetry, "producer rebuilt: " + reason});
}

bool KafkaSink::Fenced(RdKafka::ErrorCode err) const {
  return err == RdKafka::ERR__FENCED || err == RdKafka::ERR_PRODUCER_FENCED;
}

void KafkaSink::OnTransactionalReport(const Delivery& d, RdKafka::ErrorCode err) {
  if (err == RdKafka::ERR_NO_ERROR) return;  // confirmed only by the commit
  // Purged by an abort or a rebuild: settled by the checkpoint read back afterwards.
  if (err == RdKafka::ERR__PURGE_QUEUE || err == RdKafka::ERR__PURGE_INFLIGHT) return;
  txn_doomed_ = true;
  if (d.seq != 0 && d.outcome != Delivery::Outcome::kRetry) txn_refusals_[d.seq] = d;
  uint64_t suppressed = 0;
  if (txn_log_.Allow(&suppressed)) {
    log_->warn("kafka transaction of {} events must abort: {} ({} more since the last report)",
               txn_seqs_.size(), d.seq == 0 ? "the checkpoint record failed: " + d.error : d.error,
               suppressed);
  }
}

std::chrono::milliseconds KafkaSink::UntilCommitDue() const {
  if (txn_seqs_.size() >= static_cast<size_t>(options_.transaction_max_events)) {
    return std::chrono::milliseconds(0);
  }
  const auto due = txn_began_ + std::chrono::milliseconds(options_.transaction_interval_ms);
  const auto now = clock_->Now();
  if (now >= due) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(due - now);
}

bool KafkaSink::TransactionError(const char* what, const RdKafka::Error* error,
                                 std::vector<Delivery>* out) {
  if (error->is_fatal()) {
    RebuildAfterFatal(std::string(what) + ": " + error->str(), out);
    return false;
  }
  if (error->txn_requires_abort()) {
    txn_doomed_ = true;
    return false;
  }
  const RdKafka::ErrorCode code = error->code();
  if (ClassifyKafkaError(code).cls == KafkaErrorClass::kHold) {
    Hold("", code, error->str());
  } else {
    uint64_t suppressed = 0;
    if (txn_log_.Allow(&suppressed)) {
      log_->warn("kafka {}: {} (retrying with backoff; {} more since the last report)", what,
                 error->str(), suppressed);
    }
  }
  next_txn_try_ = clock_->Now() + txn_backoff_.Next();
  return true;
}

void KafkaSink::AdvanceTransaction(std::vector<Delivery>* out) {
  // Each blocking call below waits at most this long, so that the forwarder's loop (and its
  // heartbeat) goes on while Kafka is away; a call that timed out is made again later.
  constexpr int kCallTimeoutMs = 2000;
  const auto now = clock_->Now();
  if (txn_state_ == TxnState::kInit) {
    if (now < next_txn_try_) return;
    std::unique_ptr<RdKafka::Error> e(producer_->init_transactions(kCallTimeoutMs));
    if (e) {
      TransactionError("initialising transactions", e.get(), out);
      return;
    }
    txn_state_ = TxnState::kResync;
  }
  if (txn_state_ == TxnState::kResync) {
    if (now < next_txn_try_ && txn_backoff_.attempts() > 0) return;
    if (!Resync(out)) return;
    txn_backoff_.Reset();
    txn_state_ = TxnState::kReady;
    return;
  }
  if (txn_state_ == TxnState::kOpen && !txn_doomed_ &&
      UntilCommitDue() == std::chrono::milliseconds(0)) {
    txn_state_ = TxnState::kCommitting;
  }
  if (txn_state_ == TxnState::kOpen && txn_doomed_) txn_state_ = TxnState::kAborting;
  if (txn_state_ == TxnState::kCommitting) {
    if (!txn_doomed_ && !checkpoint_sent_ && txn_seqs_.empty()) {
      // Begun for an event that produce() then refused at once (too large, a held topic): the
      // transaction holds nothing, and a checkpoint would claim a position nothing reached.
      checkpoint_sent_ = true;
    }
    if (!txn_doomed_ && !checkpoint_sent_) {
      const std::string value = EncodeCheckpoint({options_.log_id, txn_seqs_.back()});
      const RdKafka::ErrorCode rc = producer_->produce(
          checkpoint_->topic(), checkpoint_->partition(), RdKafka::Producer::RK_MSG_COPY,
          const_cast<char*>(value.data()), value.size(), checkpoint_->key().data(),
          checkpoint_->key().size(), 0, nullptr);
      if (rc == RdKafka::ERR_NO_ERROR) {
        checkpoint_sent_ = true;
      } else if (rc != RdKafka::ERR__QUEUE_FULL) {
        OnTransactionalReport(Delivery{0, Delivery::Outcome::kRetry, RdKafka::err2str(rc)}, rc);
      }
    }
    // A commit that timed out is still in progress inside librdkafka: it must be called again
    // until it ends, even if a record failed meanwhile (any other call is refused as a conflict);
    // librdkafka then says whether the transaction must abort.
    if ((!txn_doomed_ || commit_started_) && checkpoint_sent_) {
      if (now < next_txn_try_ && txn_backoff_.attempts() > 0) return;
      commit_started_ = true;
      std::unique_ptr<RdKafka::Error> e(producer_->commit_transaction(kCallTimeoutMs));
      if (!e || !e->is_retriable()) commit_started_ = false;
      if (!e) {
        for (uint64_t seq : txn_seqs_) {
          out->push_back(Delivery{seq, Delivery::Outcome::kDelivered, {}});
        }
        in_flight_ -= std::min(in_flight_, txn_seqs_.size());
        if (!txn_seqs_.empty()) {
          committed_through_ = std::max(committed_through_, txn_seqs_.back());
          txn_commits_++;
        }
        txn_seqs_.clear();
        txn_refusals_.clear();
        checkpoint_sent_ = false;
        txn_backoff_.Reset();
        connected_ = true;
        rebuild_backoff_.Reset();
        txn_state_ = TxnState::kReady;
        return;
      }
      if (TransactionError("committing a transaction", e.get(), out) || !producer_ ||
          txn_state_ == TxnState::kInit) {
        return;
      }
    }
    if (txn_doomed_ && !commit_started_) txn_state_ = TxnState::kAborting;
  }
  if (txn_state_ == TxnState::kAborting) {
    if (now < next_txn_try_ && txn_backoff_.attempts() > 0) return;
    std::unique_ptr<RdKafka::Error> e(producer_->abort_transaction(kCallTimeoutMs));
    if (e && e->code() == RdKafka::ERR__CONFLICT) {
      // A commit is still in progress inside librdkafka: see it through first.
      commit_started_ = true;
      txn_state_ = TxnState::kCommitting;
      return;
    }
    if (e) {
      TransactionError("aborting a transaction", e.get(), out);
      return;
    }
    txn_backoff_.Reset();
    checkpoint_sent_ = false;
    txn_aborts_++;
    txn_state_ = TxnState::kResync;
    if (Resync(out)) txn_state_ = TxnState::kReady;
  }
}

bool KafkaSink::Resync(std::vector<Delivery>* out) {
  constexpr auto kTimeout = std::chrono::seconds(10);
  Status s = checkpoint_->Prepare(producer_.get(), std::chrono::milliseconds(2000));
  std::optional<Checkpoint> checkpoint;
  if (s.ok()) s = checkpoint_->Read(kTimeout, &checkpoint);
  if (!s.ok()) {
    uint64_t suppressed = 0;
    if (txn_log_.Allow(&suppressed)) {
      log_->warn("kafka upstream '{}': {}; events wait in the log ({} more since the last report)",
                 options_.upstream, s.message(), suppressed);
    }
    next_txn_try_ = clock_->Now() + txn_backoff_.Next();
    return false;
  }
  uint64_t through = 0;
  if (checkpoint && checkpoint->log_id == options_.log_id) {
    through = checkpoint->seq;
  } else if (checkpoint && !foreign_checkpoint_logged_) {
    // A re-created log starts its sequence numbers again: the old log's position means nothing
    // for it, and applying it would skip events.
    foreign_checkpoint_logged_ = true;
    log_->warn(
        "kafka upstream '{}': the checkpoint in '{}' belongs to log {} (seq {}), not to this log "
        "{}; not applied, forwarding resumes from the local cursor",
        options_.upstream, checkpoint_->topic(), checkpoint->log_id, checkpoint->seq,
        options_.log_id);
  }
  if (options_.log_last_seq) {
    if (const uint64_t last = options_.log_last_seq(); through > last) {
      log_->error(
          "kafka upstream '{}': the checkpoint says Kafka has this log's events up to seq {}, but "
          "the log's last event is seq {}: the log lost its newest events (a power cut under "
          "sync = \"normal\"?). New events reuse those seqs and are all forwarded; Kafka keeps "
          "the old ones under the same seqs",
          options_.upstream, through, last);
      through = last;
    }
  }
  committed_through_ = through;
  if (!txn_seqs_.empty()) {
    uint64_t committed = 0;
    for (uint64_t seq : txn_seqs_) {
      if (seq <= through) {
        out->push_back(Delivery{seq, Delivery::Outcome::kDelivered, {}});
        committed++;
      } else if (auto it = txn_refusals_.find(seq); it != txn_refusals_.end()) {
        out->push_back(it->second);
      } else {
        out->push_back(Delivery{seq, Delivery::Outcome::kRetry, "kafka transaction aborted"});
      }
    }
    log_->info(
        "kafka upstream '{}': of the {} events of the last transaction, {} were committed "
        "(checkpoint seq {}); the others are sent again",
        options_.upstream, txn_seqs_.size(), committed, through);
    in_flight_ -= std::min(in_flight_, txn_seqs_.size());
    txn_seqs_.clear();
  }
  txn_refusals_.clear();
  txn_doomed_ = false;
  return true;
}

void KafkaSink::FailForGood(const Status& s) {
  // BuildProducer's errors are already free of property values.
  Status failed = Status::Unavailable(
      "cannot rebuild the Kafka producer after a fatal error (" + s.message() +
      "); check the [kafka] settings and the files they name, then restart sluice");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_.ok()) return;
    error_ = failed;
  }
  log_->critical("{}", failed.message());
}

void KafkaSink::InjectFatalErrorForTesting() {
  if (producer_) {
    rd_kafka_test_fatal_error(producer_->c_ptr(), RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "injected by a test");
  }
}

void KafkaSink::Drain(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  if (!producer_) return;
  const auto deadline = clock_->Now() + timeout;
  while (in_flight_ > 0 && clock_->Now() < deadline) {
    Poll(std::chrono::milliseconds(50), out);
  }
}

}  // namespace sluice::connectors
