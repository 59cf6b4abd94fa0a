// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_checkpoint.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <charconv>

#include "connectors/kafka_conf.h"
#include "connectors/kafka_sink.h"

namespace sluice::connectors {

namespace {

constexpr std::string_view kPrefix = "{\"v\":1,\"log\":\"";
constexpr std::string_view kSeqField = "\",\"seq\":";

// FNV-1a, 32 bits: stable across platforms and releases, unlike std::hash.
uint32_t Fnv1a(std::string_view s) {
  uint32_t h = 2166136261u;
  for (const char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

struct AdminDeleter {
  void operator()(rd_kafka_NewTopic_t* p) const { rd_kafka_NewTopic_destroy(p); }
  void operator()(rd_kafka_AdminOptions_t* p) const { rd_kafka_AdminOptions_destroy(p); }
  void operator()(rd_kafka_queue_t* p) const { rd_kafka_queue_destroy(p); }
  void operator()(rd_kafka_event_t* p) const { rd_kafka_event_destroy(p); }
};
template <typename T>
using AdminPtr = std::unique_ptr<T, AdminDeleter>;

}  // namespace

std::string EncodeCheckpoint(const Checkpoint& checkpoint) {
  // The log id is hex from the log itself; nothing in it needs escaping.
  std::string out(kPrefix);
  out += checkpoint.log_id;
  out += kSeqField;
  out += std::to_string(checkpoint.seq);
  out += '}';
  return out;
}

bool DecodeCheckpoint(std::string_view value, Checkpoint* out) {
  if (!value.starts_with(kPrefix) || !value.ends_with('}')) return false;
  value.remove_prefix(kPrefix.size());
  value.remove_suffix(1);
  const size_t field = value.find(kSeqField);
  if (field == std::string_view::npos || field == 0) return false;
  const std::string_view log_id = value.substr(0, field);
  if (log_id.find('"') != std::string_view::npos) return false;
  const std::string_view digits = value.substr(field + kSeqField.size());
  uint64_t seq = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) return false;
  out->log_id = std::string(log_id);
  out->seq = seq;
  return true;
}

// librdkafka's own lines about the reader (a broker down, say) go to the debug log: the sink
// reports, throttled, what a failed read means.
class KafkaCheckpoint::Events final : public RdKafka::EventCb {
 public:
  explicit Events(std::shared_ptr<spdlog::logger> log) : log_(std::move(log)) {}
  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_ERROR || event.type() == RdKafka::Event::EVENT_LOG) {
      log_->debug("checkpoint reader: {}", event.str());
    }
  }

 private:
  std::shared_ptr<spdlog::logger> log_;
};

KafkaCheckpoint::KafkaCheckpoint(const KafkaSinkOptions& options,
                                 std::shared_ptr<spdlog::logger> logger)
    : topic_(options.checkpoint_topic),
      key_(options.gateway_id + "/" + options.upstream),
      brokers_(options.brokers),
      gateway_id_(options.gateway_id),
      properties_(options.properties),
      log_(std::move(logger)) {}

KafkaCheckpoint::~KafkaCheckpoint() {
  if (consumer_) consumer_->close();
}

Status KafkaCheckpoint::MakeConsumer() {
  if (consumer_) return Status::Ok();
  // The user's properties carry the security settings; these, the reader's own, win.
  const KafkaSettings fixed = {
      {"bootstrap.servers", brokers_},
      {"client.id", "sluice-" + gateway_id_ + "-checkpoint"},
      // KafkaConsumer requires a group id; the reader assigns its partition and never joins.
      {"group.id", "sluice-checkpoint-reader"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"isolation.level", "read_committed"},
      {"enable.partition.eof", "true"},
      {"allow.auto.create.topics", "false"},
      {"log.connection.close", "false"},
  };
  std::unique_ptr<RdKafka::Conf> conf;
  Status s = BuildKafkaConf(properties_, fixed, &conf);
  if (!s.ok()) return s;
  std::string err;
  events_ = std::make_unique<Events>(log_);
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(events_.get()), err) !=
      RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("checkpoint reader: " + err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) return Status::Unavailable("cannot create the checkpoint reader: " + err);
  return Status::Ok();
}

Status KafkaCheckpoint::Prepare(RdKafka::Producer* producer, std::chrono::milliseconds timeout) {
  Status s = MakeConsumer();
  if (!s.ok()) return s;
  // Created here rather than by the broker's auto-creation, which would make it a topic that
  // deletes old records instead of compacting them.
  std::string create_error;
  {
    char errstr[512];
    rd_kafka_t* rk = producer->c_ptr();
    AdminPtr<rd_kafka_NewTopic_t> topic(
        rd_kafka_NewTopic_new(topic_.c_str(), 1, -1, errstr, sizeof errstr));
    if (!topic) return Status::InvalidArgument("checkpoint topic '" + topic_ + "': " + errstr);
    rd_kafka_NewTopic_set_config(topic.get(), "cleanup.policy", "compact");
    AdminPtr<rd_kafka_AdminOptions_t> options(
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
    rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()),
                                              errstr, sizeof errstr);
    AdminPtr<rd_kafka_queue_t> queue(rd_kafka_queue_new(rk));
    rd_kafka_NewTopic_t* topics[] = {topic.get()};
    rd_kafka_CreateTopics(rk, topics, 1, options.get(), queue.get());
    AdminPtr<rd_kafka_event_t> ev(
        rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000));
    if (!ev) {
      create_error = "no answer";
    } else if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      create_error = rd_kafka_event_error_string(ev.get());
    } else {
      size_t n = 0;
      const rd_kafka_topic_result_t** results =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev.get()), &n);
      const rd_kafka_resp_err_t err =
          n == 1 ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR__FAIL;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_->info("created the compacted checkpoint topic '{}'", topic_);
      } else if (err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* text = n == 1 ? rd_kafka_topic_result_error_string(results[0]) : nullptr;
        create_error = text != nullptr ? text : rd_kafka_err2str(err);
      }
    }
  }
  // The partition count, from the reader, which never asks the broker to create a topic.
  std::unique_ptr<RdKafka::Topic> handle;
  {
    std::string err;
    handle.reset(RdKafka::Topic::create(consumer_.get(), topic_, nullptr, err));
    if (!handle) return Status::Unavailable("checkpoint topic '" + topic_ + "': " + err);
  }
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode err =
      consumer_->metadata(false, handle.get(), &raw, static_cast<int>(timeout.count()));
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  size_t partitions = 0;
  RdKafka::ErrorCode topic_err = err;
  if (err == RdKafka::ERR_NO_ERROR && metadata) {
    for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
      if (t->topic() != topic_) continue;
      topic_err = t->err();
      partitions = t->partitions()->size();
    }
  }
  if (topic_err != RdKafka::ERR_NO_ERROR || partitions == 0) {
    return Status::Unavailable(
        "the checkpoint topic '" + topic_ + "' cannot be used (" + RdKafka::err2str(topic_err) +
        (create_error.empty() ? "" : "; creating it: " + create_error) +
        "): create it with cleanup.policy=compact, or let sluice create it (CreateTopics on it)");
  }
  partition_ = static_cast<int32_t>(Fnv1a(key_) % partitions);
  return Status::Ok();
}

Status KafkaCheckpoint::Read(std::chrono::milliseconds timeout, std::optional<Checkpoint>* out) {
  using std::chrono::steady_clock;
  out->reset();
  const auto deadline = steady_clock::now() + timeout;
  auto left = [&] {
    return static_cast<int>(std::max<int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now())
            .count(),
        1));
  };
  int64_t low = 0;
  int64_t high = 0;
  RdKafka::ErrorCode err =
      consumer_->query_watermark_offsets(topic_, partition_, &low, &high, left());
  if (err != RdKafka::ERR_NO_ERROR) {
    return Status::Unavailable("reading the checkpoint topic '" + topic_ +
                               "': " + RdKafka::err2str(err));
  }
  // Every committed checkpoint of this upstream lies below `high`: the caller initialised the
  // transactional producer first, which completes or aborts the last transaction. The key's last
  // record is usually near the end; read backwards in growing chunks until it turns up.
  int64_t end = high;
  int64_t chunk = 256;
  while (end > low) {
    const int64_t start = std::max(low, end - chunk);
    std::unique_ptr<RdKafka::TopicPartition> tp(
        RdKafka::TopicPartition::create(topic_, partition_, start));
    std::vector<RdKafka::TopicPartition*> assignment = {tp.get()};
    err = consumer_->assign(assignment);
    if (err != RdKafka::ERR_NO_ERROR) {
      return Status::Unavailable("reading the checkpoint topic '" + topic_ +
                                 "': " + RdKafka::err2str(err));
    }
    std::optional<Checkpoint> found;
    for (;;) {
      if (steady_clock::now() >= deadline) {
        consumer_->unassign();
        // With read_committed the partition can be read only up to its last stable offset,
        // which another producer's open transaction holds back.
        return Status::Unavailable("reading the checkpoint topic '" + topic_ + "' up to offset " +
                                   std::to_string(end) + " took longer than " +
                                   std::to_string(timeout.count()) +
                                   " ms (another producer's open transaction may hold it back)");
      }
      std::unique_ptr<RdKafka::Message> msg(consumer_->consume(std::min(left(), 200)));
      if (!msg || msg->err() == RdKafka::ERR__TIMED_OUT) continue;
      if (msg->err() == RdKafka::ERR__PARTITION_EOF) {
        if (msg->offset() >= end) break;
        continue;
      }
      if (msg->err() != RdKafka::ERR_NO_ERROR) {
        consumer_->unassign();
        return Status::Unavailable("reading the checkpoint topic '" + topic_ +
                                   "': " + msg->errstr());
      }
      if (msg->offset() >= end) break;
      const std::string* key = msg->key();
      if (key == nullptr || *key != key_) {
        if (msg->offset() + 1 >= end) break;
        continue;
      }
      Checkpoint c;
      const std::string_view value(static_cast<const char*>(msg->payload()), msg->len());
      if (DecodeCheckpoint(value, &c)) {
        found = std::move(c);
      } else {
        log_->warn(
            "checkpoint topic '{}' offset {}: a record for {} that this sluice cannot read; "
            "ignored",
            topic_, msg->offset(), key_);
      }
      if (msg->offset() + 1 >= end) break;
    }
    consumer_->unassign();
    if (found) {
      *out = std::move(found);
      return Status::Ok();
    }
    end = start;
    chunk *= 4;
  }
  return Status::Ok();
}

}  // namespace sluice::connectors
