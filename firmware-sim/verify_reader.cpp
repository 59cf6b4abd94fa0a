// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_reader.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "connectors/record_headers.h"

namespace sluice::sim {

namespace {

using Settings = std::vector<std::pair<std::string, std::string>>;

// The consumer's configuration: the user's properties first, then `fixed`, so that the settings a
// from-the-beginning, no-commit read rests on always win. As in the gateway's BuildKafkaConf, an
// error names the user's key but not its value (which may be a password), nor librdkafka's text
// for it (which quotes the value). Kept apart from the connectors: the verifier links no part of
// the gateway.
Status BuildConsumerConf(const std::map<std::string, std::string>& user, const Settings& fixed,
                         std::unique_ptr<RdKafka::Conf>* out) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [key, value] : user) {
    const RdKafka::Conf::ConfResult rc = conf->set(key, value, err);
    if (rc == RdKafka::Conf::CONF_OK) continue;
    if (rc == RdKafka::Conf::CONF_UNKNOWN) {
      return Status::InvalidArgument("kafka property '" + key + "' is not a librdkafka property");
    }
    return Status::InvalidArgument("kafka property '" + key +
                                   "': librdkafka refuses the value (not shown, as it may be a "
                                   "secret)");
  }
  for (const auto& [key, value] : fixed) {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("kafka setting '" + key + "': " + err);
    }
  }
  *out = std::move(conf);
  return Status::Ok();
}

// A header's value as text; empty when the record lacks it.
// The last header `name` of `msg`, pointing into the message itself: valid while `msg` lives. (The
// C++ API's Headers::get_last returns a Header that owns a copy of the value, which a view would
// outlive.)
std::string_view HeaderText(RdKafka::Message* msg, const char* name) {
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(msg->c_ptr(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
      value == nullptr) {
    return {};
  }
  return std::string_view(static_cast<const char*>(value), size);
}

// A group id no other consumer uses, so that a run never shares (or disturbs) a group's offsets.
// librdkafka's KafkaConsumer requires one even though this reader never joins the group.
std::string FreshGroupId() {
  std::random_device rd;
  std::uniform_int_distribution<uint64_t> dist;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "sluice-verify-%016llx",
                static_cast<unsigned long long>(dist(rd)));
  return buf;
}

// Errors after which reading cannot make progress, as opposed to a broker going away, which
// librdkafka rides out by itself.
bool IsPermanent(RdKafka::ErrorCode err) {
  switch (err) {
    case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
    case RdKafka::ERR__UNKNOWN_TOPIC:
    case RdKafka::ERR__UNKNOWN_PARTITION:
    case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
    case RdKafka::ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RdKafka::ERR__AUTHENTICATION:
    case RdKafka::ERR__FATAL:
      return true;
    default:
      return false;
  }
}

}  // namespace

// librdkafka calls event_cb for log lines from its internal threads and for errors from inside
// consume(); last_ is guarded by mu_. Kept only to give failures their cause ("Connection
// refused"), instead of letting librdkafka print to stderr on its own.
class VerifyReader::Events final : public RdKafka::EventCb {
 public:
  void event_cb(RdKafka::Event& event) override {
    const bool error = event.type() == RdKafka::Event::EVENT_ERROR;
    const bool bad_log = event.type() == RdKafka::Event::EVENT_LOG &&
                         event.severity() <= RdKafka::Event::EVENT_SEVERITY_ERROR;
    if (!error && !bad_log) return;
    std::lock_guard<std::mutex> lock(mu_);
    last_ = event.str();
  }

  std::string Last() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  mutable std::mutex mu_;
  std::string last_;  // GUARDED_BY(mu_)
};

VerifyReader::VerifyReader(VerifyReaderOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock), events_(std::make_unique<Events>()) {}

VerifyReader::~VerifyReader() {
  // Nothing was subscribed or committed, so close() has no group to leave and returns at once.
  if (consumer_) consumer_->close();
}

std::string VerifyReader::Where() const {
  return "topic '" + options_.topic + "' on brokers " + options_.brokers;
}

Status VerifyReader::Open(VerifyReaderOptions options, const Clock* clock,
                          std::unique_ptr<VerifyReader>* out) {
  if (options.topic.empty()) return Status::InvalidArgument("no topic given");
  if (options.brokers.empty()) return Status::InvalidArgument("no brokers given");
  std::unique_ptr<VerifyReader> reader(new VerifyReader(std::move(options), clock));
  Status s = reader->Connect();
  if (!s.ok()) return s;
  *out = std::move(reader);
  return Status::Ok();
}

Status VerifyReader::Connect() {
  // User properties go first, so that the settings a from-the-beginning, no-commit read rests on
  // are applied last.
  const Settings settings = {
      {"bootstrap.servers", options_.brokers},
      {"group.id", FreshGroupId()},
      {"client.id", "sluice-verify"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      // End-of-partition events tell an idle partition from one whose first fetch is still due.
      {"enable.partition.eof", "true"},
      {"log.connection.close", "false"},
      {"isolation.level", options_.read_committed ? "read_committed" : "read_uncommitted"},
  };
  std::unique_ptr<RdKafka::Conf> conf;
  Status built = BuildConsumerConf(options_.properties, settings, &conf);
  if (!built.ok()) return built;
  std::string err;
  if (conf->set("event_cb", static_cast<RdKafka::EventCb*>(events_.get()), err) !=
      RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("kafka event_cb: " + err);
  }
  consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer_) return Status::InvalidArgument("cannot create Kafka consumer: " + err);
  if (options_.read_until) return AssignBounds();

  // The cluster may be reachable before the topic exists (created by sluice's first record) or
  // before its partitions have leaders, so ask again until the connect deadline.
  const auto deadline = clock_->Now() + options_.connect_timeout;
  std::vector<int32_t> ids;
  // Once the cluster has answered, a later timeout (the last attempt gets what is left of the
  // deadline) must not hide what it said.
  bool reached = false;
  bool topic_missing = false;
  std::string problem;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_->Now());
    RdKafka::Metadata* raw = nullptr;
    const RdKafka::ErrorCode rc = consumer_->metadata(
        true, nullptr, &raw, static_cast<int>(std::max<int64_t>(left.count(), 1)));
    std::unique_ptr<RdKafka::Metadata> md(raw);
    if (rc != RdKafka::ERR_NO_ERROR) {
      if (!reached) {
        const std::string last = events_->Last();
        problem = "cannot reach brokers " + options_.brokers + ": " + RdKafka::err2str(rc) +
                  (last.empty() ? "" : " (last broker error: " + last + ")");
      }
    } else {
      reached = true;
      const RdKafka::TopicMetadata* found = nullptr;
      std::vector<std::string> known;
      gap_partition_ids_.clear();
      for (const RdKafka::TopicMetadata* t : *md->topics()) {
        if (t->topic() == options_.topic) found = t;
        if (!options_.gap_topic.empty() && t->topic() == options_.gap_topic &&
            t->err() == RdKafka::ERR_NO_ERROR) {
          for (const RdKafka::PartitionMetadata* p : *t->partitions()) {
            gap_partition_ids_.push_back(p->id());
          }
        }
        if (t->topic().rfind("__", 0) != 0) known.push_back(t->topic());
      }
      topic_missing = found == nullptr;
      if (found == nullptr) {
        std::sort(known.begin(), known.end());
        std::string list;
        for (size_t i = 0; i < known.size() && i < 10; ++i) list += (i ? ", " : "") + known[i];
        if (known.size() > 10) list += ", ...";
        problem = "topic '" + options_.topic + "' does not exist on brokers " + options_.brokers +
                  " (topics there: " + (list.empty() ? "none" : list) + ")";
      } else if (found->err() != RdKafka::ERR_NO_ERROR || found->partitions()->empty()) {
        problem = Where() + ": metadata error: " + RdKafka::err2str(found->err());
      } else {
        for (const RdKafka::PartitionMetadata* p : *found->partitions()) ids.push_back(p->id());
        break;
      }
    }
    if (clock_->Now() >= deadline) {
      return topic_missing ? Status::NotFound(problem) : Status::Unavailable(problem);
    }
    // Pacing between metadata requests, not synchronisation: the cluster changes on its own.
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }

  std::sort(ids.begin(), ids.end());
  std::sort(gap_partition_ids_.begin(), gap_partition_ids_.end());
  std::vector<RdKafka::TopicPartition*> assignment;
  for (int32_t id : ids) {
    assignment.push_back(
        RdKafka::TopicPartition::create(options_.topic, id, RdKafka::Topic::OFFSET_BEGINNING));
  }
  for (int32_t id : gap_partition_ids_) {
    assignment.push_back(
        RdKafka::TopicPartition::create(options_.gap_topic, id, RdKafka::Topic::OFFSET_BEGINNING));
  }
  std::unique_ptr<RdKafka::Error> error(consumer_->incremental_assign(assignment));
  RdKafka::TopicPartition::destroy(assignment);
  if (error) {
    return Status::Unavailable(Where() + ": cannot assign partitions: " + error->str());
  }
  partition_ids_ = std::move(ids);
  return Status::Ok();
}

Status VerifyReader::AssignBounds() {
  std::vector<RdKafka::TopicPartition*> assignment;
  for (const auto& [where, bound] : *options_.read_until) {
    if (bound <= 0) continue;
    assignment.push_back(RdKafka::TopicPartition::create(where.first, where.second,
                                                         RdKafka::Topic::OFFSET_BEGINNING));
    if (where.first == options_.topic) partition_ids_.push_back(where.second);
    if (where.first == options_.gap_topic) gap_partition_ids_.push_back(where.second);
  }
  std::unique_ptr<RdKafka::Error> error(consumer_->incremental_assign(assignment));
  RdKafka::TopicPartition::destroy(assignment);
  if (error) {
    return Status::Unavailable(Where() + ": cannot assign partitions: " + error->str());
  }
  return Status::Ok();
}

bool VerifyReader::AssignGapTopic(std::chrono::milliseconds timeout) {
  if (options_.gap_topic.empty()) return false;
  if (!gap_partition_ids_.empty()) return true;
  RdKafka::Metadata* raw = nullptr;
  // Asks for every topic: asking for one by name would have the broker create it.
  const RdKafka::ErrorCode rc =
      consumer_->metadata(true, nullptr, &raw, static_cast<int>(timeout.count()));
  std::unique_ptr<RdKafka::Metadata> md(raw);
  if (rc != RdKafka::ERR_NO_ERROR) return false;
  std::vector<int32_t> ids;
  for (const RdKafka::TopicMetadata* t : *md->topics()) {
    if (t->topic() != options_.gap_topic || t->err() != RdKafka::ERR_NO_ERROR) continue;
    for (const RdKafka::PartitionMetadata* p : *t->partitions()) ids.push_back(p->id());
  }
  if (ids.empty()) return false;
  std::sort(ids.begin(), ids.end());
  std::vector<RdKafka::TopicPartition*> added;
  for (int32_t id : ids) {
    added.push_back(
        RdKafka::TopicPartition::create(options_.gap_topic, id, RdKafka::Topic::OFFSET_BEGINNING));
  }
  std::unique_ptr<RdKafka::Error> error(consumer_->incremental_assign(added));
  RdKafka::TopicPartition::destroy(added);
  if (error) return false;
  gap_partition_ids_ = std::move(ids);
  return true;
}

Status VerifyReader::Read(const std::function<void(const ConsumedRecord&)>& on_record,
                          const std::function<void(const std::string&)>& on_warning, Stats* stats) {
  using std::chrono::milliseconds;
  *stats = Stats();
  const auto start = clock_->Now();
  const auto deadline = start + options_.timeout;
  auto last_record = start;
  // How often to look for a gap topic that did not exist yet: sluice creates it with its first
  // gap record, which may come at any time during the run.
  constexpr milliseconds kGapTopicRecheck{2000};
  auto gap_checked = start;
  // Idle counts only once every partition has reported its end: right after assign(), partitions
  // start one after another, and one that has not started yet is not idle. Keyed by (gap topic?,
  // partition).
  std::map<std::pair<bool, int32_t>, bool> at_end;
  for (int32_t p : partition_ids_) at_end[{false, p}] = false;
  auto track_gap_partitions = [&] {
    for (int32_t p : gap_partition_ids_) at_end.try_emplace({true, p}, false);
  };
  track_gap_partitions();
  int ends = 0;
  // read_until: the partitions not yet read up to their bound.
  PartitionOffsets short_of;
  if (options_.read_until) {
    for (const auto& [where, bound] : *options_.read_until) {
      if (bound > 0) short_of.emplace(where, bound);
    }
  }
  auto advance = [&](const std::string& topic, int32_t partition, int64_t position) {
    const auto where = std::make_pair(topic, partition);
    auto [it, added] = stats->positions.try_emplace(where, position);
    if (!added) it->second = std::max(it->second, position);
    auto bound = short_of.find(where);
    if (bound != short_of.end() && it->second >= bound->second) short_of.erase(bound);
  };
  std::set<int> warned;
  auto finish = [&](StopReason reason) {
    stats->stop = reason;
    stats->elapsed = std::chrono::duration_cast<milliseconds>(clock_->Now() - start);
    stats->partitions_at_end = ends;
  };
  for (;;) {
    if (options_.max_records > 0 && stats->records >= options_.max_records) {
      finish(StopReason::kCount);
      return Status::Ok();
    }
    if (options_.read_until && short_of.empty()) {
      finish(StopReason::kBounds);
      return Status::Ok();
    }
    auto now = clock_->Now();
    if (now >= deadline) {
      finish(StopReason::kTimeout);
      return Status::Ok();
    }
    // A bounded read knows where it ends; idleness says nothing about it.
    const auto idle_end = options_.read_until ? deadline : last_record + options_.idle_timeout;
    const bool all_at_end = ends == static_cast<int>(at_end.size());
    if (!options_.read_until && !options_.gap_topic.empty() && gap_partition_ids_.empty() &&
        (now - gap_checked >= kGapTopicRecheck || (now >= idle_end && all_at_end))) {
      if (AssignGapTopic(milliseconds(500))) track_gap_partitions();
      gap_checked = now = clock_->Now();
    }
    if (now >= idle_end && ends == static_cast<int>(at_end.size())) {
      finish(StopReason::kIdle);
      return Status::Ok();
    }
    // Short waits so that the deadlines above are checked often enough to stop on time.
    auto wait =
        std::min(std::chrono::duration_cast<milliseconds>(deadline - now), milliseconds(200));
    if (now < idle_end) {
      wait = std::min(wait, std::chrono::duration_cast<milliseconds>(idle_end - now));
    }
    std::unique_ptr<RdKafka::Message> msg(
        consumer_->consume(static_cast<int>(std::max<int64_t>(wait.count(), 1))));
    if (!msg) continue;
    const RdKafka::ErrorCode err = msg->err();
    if (err == RdKafka::ERR__TIMED_OUT) continue;
    const bool from_gap_topic =
        !options_.gap_topic.empty() && msg->topic_name() == options_.gap_topic;
    if (err == RdKafka::ERR__PARTITION_EOF) {
      advance(msg->topic_name(), msg->partition(), msg->offset());
      auto it = at_end.find({from_gap_topic, msg->partition()});
      if (it != at_end.end() && !it->second) {
        it->second = true;
        ends++;
      }
      continue;
    }
    if (err == RdKafka::ERR_NO_ERROR) {
      const std::string topic = msg->topic_name();
      advance(topic, msg->partition(), msg->offset() + 1);
      if (options_.read_until) {
        auto bound = options_.read_until->find({topic, msg->partition()});
        if (bound == options_.read_until->end() || msg->offset() >= bound->second) continue;
      }
      ConsumedRecord r;
      r.topic = topic;
      if (msg->key_pointer() != nullptr) {
        r.key = std::string_view(static_cast<const char*>(msg->key_pointer()), msg->key_len());
      }
      if (msg->payload() != nullptr) {
        r.value = std::string_view(static_cast<const char*>(msg->payload()), msg->len());
      }
      r.partition = msg->partition();
      r.offset = msg->offset();
      const RdKafka::MessageTimestamp ts = msg->timestamp();
      if (ts.type != RdKafka::MessageTimestamp::MSG_TIMESTAMP_NOT_AVAILABLE) {
        r.timestamp_ms = ts.timestamp;
      }
      r.gap = from_gap_topic || HeaderText(msg.get(), connectors::kHeaderGap) == "1";
      r.log_seq = ParseHeaderNumber(HeaderText(msg.get(), connectors::kHeaderSeq));
      r.log_id = HeaderText(msg.get(), connectors::kHeaderLogId);
      r.received_ms = ParseHeaderNumber(HeaderText(msg.get(), connectors::kHeaderReceivedMs));
      on_record(r);
      if (!r.gap) stats->records++;
      if (r.gap) stats->gap_records++;
      last_record = clock_->Now();
      auto it = at_end.find({from_gap_topic, r.partition});
      if (it != at_end.end() && it->second) {
        it->second = false;
        ends--;
      }
      continue;
    }
    std::string reason = msg->errstr();
    if (err == RdKafka::ERR__FATAL) {
      std::string fatal;
      consumer_->fatal_error(fatal);
      if (!fatal.empty()) reason = fatal;
    }
    if (IsPermanent(err)) {
      finish(StopReason::kTimeout);
      return Status::Unavailable(Where() + ": reading stopped: " + reason);
    }
    stats->transient_errors++;
    if (warned.insert(static_cast<int>(err)).second) {
      on_warning(Where() + ": " + reason +
                 " (librdkafka retries; further errors of this kind are "
                 "not shown)");
    }
  }
}

}  // namespace sluice::sim
