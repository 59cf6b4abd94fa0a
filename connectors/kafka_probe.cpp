// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_probe.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "connectors/kafka_conf.h"

namespace sluice::connectors {

namespace {

using Verdict = ProbeFinding::Verdict;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// How long one blocking librdkafka call waits before the probe serves its events again.
constexpr milliseconds kSlice{200};
constexpr const char* kStatsIntervalMs = "100";

std::string Seconds(milliseconds d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

milliseconds Left(SteadyClock::time_point deadline) {
  return std::max(milliseconds(0),
                  std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now()));
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What librdkafka reports through poll(), on the probe's thread: errors and statistics. Texts
// pass through WithoutPropertyValues before they are kept.
class Events final : public RdKafka::EventCb {
 public:
  explicit Events(const std::map<std::string, std::string>& properties) : properties_(properties) {}

  void event_cb(RdKafka::Event& event) override {
    if (event.type() == RdKafka::Event::EVENT_STATS) {
      stats = event.str();
      return;
    }
    if (event.type() != RdKafka::Event::EVENT_ERROR) return;
    const std::string text = WithoutPropertyValues(properties_, event.str());
    last_error = text;
    if (event.err() == RdKafka::ERR__AUTHENTICATION) auth_error = text;
    if (event.err() == RdKafka::ERR__SSL) tls_error = text;
  }

  std::string last_error;
  std::string auth_error;  // a SASL refusal: final for these credentials
  std::string tls_error;   // a TLS handshake failure: final for these settings
  std::string stats;       // the latest statistics document (JSON)

 private:
  const std::map<std::string, std::string>& properties_;  // the options outlive this
};

// The metadata of `topic` (null: of no topic, which still names the brokers) within `wait`.
RdKafka::ErrorCode Metadata(RdKafka::Producer* producer, RdKafka::Topic* topic, milliseconds wait,
                            std::unique_ptr<RdKafka::Metadata>* out) {
  RdKafka::Metadata* raw = nullptr;
  const RdKafka::ErrorCode err =
      producer->metadata(false, topic, &raw, static_cast<int>(std::max<int64_t>(wait.count(), 1)));
  out->reset(raw);
  return err;
}

template <typename T, void (*Free)(T*)>
struct AdminDeleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using AdminPtr = std::unique_ptr<T, AdminDeleter<T, Free>>;

// Whether broker `broker_id` creates missing topics (auto.create.topics.enable), from its
// configuration; nullopt, with *why, when it cannot be read (the principal lacks DESCRIBE_CONFIGS
// on the cluster, or no answer within `timeout`).
std::optional<bool> BrokerAutoCreates(RdKafka::Producer* producer, int32_t broker_id,
                                      milliseconds timeout, std::string* why) {
  rd_kafka_t* rk = producer->c_ptr();
  char errstr[512];
  const std::string id = std::to_string(broker_id);
  AdminPtr<rd_kafka_ConfigResource_t, rd_kafka_ConfigResource_destroy> resource(
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, id.c_str()));
  AdminPtr<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS));
  rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()),
                                            errstr, sizeof errstr);
  AdminPtr<rd_kafka_queue_t, rd_kafka_queue_destroy> queue(rd_kafka_queue_new(rk));
  rd_kafka_ConfigResource_t* resources[] = {resource.get()};
  rd_kafka_DescribeConfigs(rk, resources, 1, options.get(), queue.get());
  AdminPtr<rd_kafka_event_t, rd_kafka_event_destroy> ev(
      rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 500));
  if (!ev) {
    *why = "no answer within " + Seconds(timeout);
    return std::nullopt;
  }
  if (rd_kafka_event_error(ev.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *why = rd_kafka_event_error_string(ev.get());
    return std::nullopt;
  }
  size_t n = 0;
  const rd_kafka_ConfigResource_t** results = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(ev.get()), &n);
  if (n != 1) {
    *why = "no configuration in the answer";
    return std::nullopt;
  }
  if (rd_kafka_ConfigResource_error(results[0]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* text = rd_kafka_ConfigResource_error_string(results[0]);
    *why = text != nullptr ? text : rd_kafka_err2str(rd_kafka_ConfigResource_error(results[0]));
    return std::nullopt;
  }
  size_t count = 0;
  const rd_kafka_ConfigEntry_t** entries = rd_kafka_ConfigResource_configs(results[0], &count);
  for (size_t i = 0; i < count; ++i) {
    if (std::string_view(rd_kafka_ConfigEntry_name(entries[i])) != "auto.create.topics.enable") {
      continue;
    }
    const char* value = rd_kafka_ConfigEntry_value(entries[i]);
    return value != nullptr && Lower(value) == "true";
  }
  *why = "the broker does not report auto.create.topics.enable";
  return std::nullopt;
}

// The probe's producer and what it learnt so far.
class KafkaProbe {
 public:
  KafkaProbe(const KafkaSinkOptions& options, const std::string& where, milliseconds timeout)
      : options_(options), where_(where), timeout_(timeout), events_(options.properties) {}

  std::vector<ProbeFinding> Run(const std::vector<std::string>& topics) {
    if (!Create() || !Connect()) return std::move(out_);
    for (const std::string& topic : topics) CheckTopic(topic, /*checkpoint=*/false);
    if (options_.delivery == KafkaDelivery::kExactlyOnce) {
      InitTransactions();
      CheckTopic(options_.checkpoint_topic, /*checkpoint=*/true);
    } else {
      AwaitProducerId();
    }
    return std::move(out_);
  }

 private:
  void Add(Verdict v, std::string text) { out_.push_back({v, std::move(text)}); }
  std::string Property(const std::string& name, const std::string& otherwise = "") const {
    auto it = options_.properties.find(name);
    return it == options_.properties.end() ? otherwise : it->second;
  }

  bool Create() {
    KafkaSettings settings = ProducerSettings(options_);
    for (auto& [key, value] : settings) {
      if (key == "transactional.id") value = ProbeTransactionalId(options_);
    }
    settings.emplace_back("allow.auto.create.topics", "false");
    if (options_.delivery != KafkaDelivery::kExactlyOnce) {
      settings.emplace_back("statistics.interval.ms", kStatsIntervalMs);
    }
    std::unique_ptr<RdKafka::Conf> conf;
    Status s = BuildKafkaConf(options_.properties, settings, &conf);
    std::string err;
    if (s.ok() && conf->set("event_cb", static_cast<RdKafka::EventCb*>(&events_), err) !=
                      RdKafka::Conf::CONF_OK) {
      s = Status::InvalidArgument("event_cb: " + err);
    }
    if (s.ok()) {
      producer_.reset(RdKafka::Producer::create(conf.get(), err));
      if (!producer_) {
        s = Status::InvalidArgument(WithoutPropertyValues(options_.properties, err));
      }
    }
    if (!s.ok()) {
      Add(Verdict::kFail,
          fmt::format("cannot make a Kafka producer: {}; check {}", s.message(), where_));
    }
    return s.ok();
  }

  bool Connect() {
    const auto deadline = SteadyClock::now() + timeout_;
    std::unique_ptr<RdKafka::Metadata> md;
    RdKafka::ErrorCode err = RdKafka::ERR__TIMED_OUT;
    while (Left(deadline) > milliseconds(0)) {
      err = Metadata(producer_.get(), nullptr, std::min(Left(deadline), kSlice), &md);
      producer_->poll(0);
      if (err == RdKafka::ERR_NO_ERROR && md) break;
      if (!events_.auth_error.empty() || !events_.tls_error.empty()) break;
    }
    const std::string& brokers = options_.brokers;
    if (err != RdKafka::ERR_NO_ERROR || !md) {
      if (!events_.auth_error.empty()) {
        Add(Verdict::kFail,
            fmt::format("{} refuses sluice's credentials ({}): check sasl.mechanisms, "
                        "sasl.username and sasl_password_file (or sasl.password) in {}",
                        brokers, events_.auth_error, where_));
      } else if (!events_.tls_error.empty()) {
        Add(Verdict::kFail,
            fmt::format("TLS with {} failed ({}): check ssl.ca.location (the CA that signed the "
                        "brokers' certificates), that the certificates name the hosts in brokers, "
                        "and ssl.certificate.location/ssl.key.location in {}",
                        brokers, events_.tls_error, where_));
      } else {
        Add(Verdict::kFail,
            fmt::format("no broker of {} answered within {} (connect timed out; last error: {}): "
                        "are the brokers up, and are brokers and security.protocol in {} right?",
                        brokers, Seconds(timeout_),
                        events_.last_error.empty() ? RdKafka::err2str(err) : events_.last_error,
                        where_));
      }
      return false;
    }
    answered_by_ = md->orig_broker_id();
    const std::string protocol = Lower(Property("security.protocol", "plaintext"));
    std::string how = "security.protocol " + protocol;
    if (protocol.find("sasl") != std::string::npos) {
      // librdkafka takes the mechanism under either name.
      const std::string mechanism =
          Property("sasl.mechanisms", Property("sasl.mechanism", "GSSAPI"));
      const std::string user = Property("sasl.username");
      how += fmt::format(", SASL {}{} accepted", mechanism,
                         user.empty() ? std::string() : " user '" + user + "'");
    }
    const bool tls = protocol.find("ssl") != std::string::npos;
    const bool verify = Lower(Property("enable.ssl.certificate.verification", "true")) != "false";
    const bool host = Lower(Property("ssl.endpoint.identification.algorithm", "https")) != "none";
    if (tls && verify) how += host ? ", TLS certificate and host name verified" : ", TLS";
    Add(Verdict::kOk, fmt::format("connected to {}: {} broker(s) in the cluster ({})", brokers,
                                  md->brokers()->size(), how));
    if (tls && !verify) {
      Add(Verdict::kWarn,
          fmt::format("the brokers' certificates are not verified "
                      "(enable.ssl.certificate.verification = false in {}): anything on the path "
                      "can pose as the brokers",
                      where_));
    } else if (tls && !host) {
      Add(Verdict::kWarn, fmt::format("the brokers' host names are not verified "
                                      "(ssl.endpoint.identification.algorithm = none in {})",
                                      where_));
    }
    return true;
  }

  void CheckTopic(const std::string& name, bool checkpoint) {
    const std::string what = fmt::format("{}topic '{}'", checkpoint ? "checkpoint " : "", name);
    std::string err;
    std::unique_ptr<RdKafka::Topic> topic(
        RdKafka::Topic::create(producer_.get(), name, nullptr, err));
    if (!topic) {
      Add(Verdict::kFail, fmt::format("{}: {}", what, err));
      return;
    }
    std::unique_ptr<RdKafka::Metadata> md;
    const RdKafka::ErrorCode rc = Metadata(producer_.get(), topic.get(), timeout_, &md);
    producer_->poll(0);
    const RdKafka::TopicMetadata* found = nullptr;
    if (rc == RdKafka::ERR_NO_ERROR && md) {
      for (const RdKafka::TopicMetadata* t : *md->topics()) {
        if (t->topic() == name) found = t;
      }
    }
    if (found == nullptr) {
      Add(Verdict::kFail, fmt::format("{}: no answer within {} ({})", what, Seconds(timeout_),
                                      RdKafka::err2str(rc)));
      return;
    }
    switch (found->err()) {
      case RdKafka::ERR_NO_ERROR: {
        size_t leaderless = 0;
        for (const RdKafka::PartitionMetadata* p : *found->partitions()) {
          if (p->leader() < 0) leaderless++;
        }
        if (leaderless > 0) {
          Add(Verdict::kWarn, fmt::format("{} exists, but {} of its {} partition(s) have no "
                                          "leader now",
                                          what, leaderless, found->partitions()->size()));
        } else {
          Add(Verdict::kOk,
              fmt::format("{} exists ({} partition(s))", what, found->partitions()->size()));
        }
        return;
      }
      case RdKafka::ERR_UNKNOWN_TOPIC_OR_PART:
        Missing(what, checkpoint);
        return;
      case RdKafka::ERR_TOPIC_AUTHORIZATION_FAILED:
        Add(Verdict::kFail,
            fmt::format("{}: not authorized (Kafka answers TOPIC_AUTHORIZATION_FAILED): the "
                        "cluster must grant sluice's principal DESCRIBE and WRITE on it",
                        what));
        return;
      default:
        Add(Verdict::kFail, fmt::format("{}: {}", what, RdKafka::err2str(found->err())));
    }
  }

  void Missing(const std::string& what, bool checkpoint) {
    if (checkpoint) {
      // KafkaCheckpoint::Prepare creates it through the admin API, compacted, at start.
      Add(Verdict::kWarn,
          fmt::format("{} does not exist yet: sluice creates it when it starts (compacted, one "
                      "partition), for which the cluster must grant CREATE",
                      what));
      return;
    }
    if (!auto_create_asked_) {
      auto_create_ = BrokerAutoCreates(producer_.get(), answered_by_, timeout_, &auto_create_why_);
      auto_create_asked_ = true;
    }
    const std::optional<bool>& creates = auto_create_;
    if (!creates.has_value()) {
      Add(Verdict::kFail,
          fmt::format("{} does not exist, and whether the broker would create it is unknown "
                      "(its auto.create.topics.enable cannot be read: {}): create the topic",
                      what, auto_create_why_));
    } else if (*creates) {
      Add(Verdict::kWarn,
          fmt::format("{} does not exist yet: the broker creates it with its defaults at the "
                      "first event (auto-create is on); better create it with the partitions and "
                      "replication it needs",
                      what));
    } else {
      Add(Verdict::kFail,
          fmt::format("{} does not exist (auto-create is off): create it, or correct the route",
                      what));
    }
  }

  void AwaitProducerId() {
    const auto deadline = SteadyClock::now() + timeout_;
    std::string state = "unknown";
    for (;;) {
      std::string reason;
      if (producer_->fatal_error(reason) != RdKafka::ERR_NO_ERROR) {
        Add(Verdict::kFail,
            fmt::format("the cluster refuses sluice's idempotent producer ({}): grant sluice's "
                        "principal IDEMPOTENT_WRITE on the cluster (or, on recent Kafka versions, "
                        "WRITE on its topics)",
                        WithoutPropertyValues(options_.properties, reason)));
        return;
      }
      if (!events_.stats.empty()) {
        const nlohmann::json doc = nlohmann::json::parse(events_.stats, nullptr, false);
        if (doc.is_object() && doc.contains("eos") && doc["eos"].is_object()) {
          const nlohmann::json& eos = doc["eos"];
          state = eos.value("idemp_state", state);
          if (state == "Assigned") {
            Add(Verdict::kOk,
                fmt::format("idempotent producer id {} granted: the cluster lets sluice produce "
                            "(WRITE on each topic is not checked: only producing would tell)",
                            eos.value("producer_id", int64_t{-1})));
            return;
          }
        }
      }
      if (Left(deadline) <= milliseconds(0)) break;
      producer_->poll(static_cast<int>(std::min(Left(deadline), kSlice).count()));
    }
    Add(Verdict::kFail,
        fmt::format("no idempotent producer id within {} (state {}; last error: {})",
                    Seconds(timeout_), state,
                    events_.last_error.empty() ? "none" : events_.last_error));
  }

  void InitTransactions() {
    const std::string id = ProbeTransactionalId(options_);
    std::unique_ptr<RdKafka::Error> e(
        producer_->init_transactions(static_cast<int>(timeout_.count())));
    producer_->poll(0);
    if (!e) {
      Add(Verdict::kOk,
          fmt::format("transactions initialised under the probe's own transactional id '{}' "
                      "(sluice's '{}' is left alone: a running sluice is not fenced)",
                      id, TransactionalId(options_)));
      return;
    }
    const std::string text = WithoutPropertyValues(options_.properties, e->str());
    if (e->code() == RdKafka::ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED) {
      Add(Verdict::kFail,
          fmt::format("the cluster refuses transactional id '{}' ({}): grant sluice's principal "
                      "WRITE and DESCRIBE on the transactional ids with prefix '{}' (a literal "
                      "ACL on '{}' does not cover the probe's)",
                      id, text, TransactionalId(options_), TransactionalId(options_)));
    } else if (e->code() == RdKafka::ERR__TIMED_OUT) {
      Add(Verdict::kFail,
          fmt::format("transactions not initialised within {} ({})", Seconds(timeout_), text));
    } else {
      Add(Verdict::kFail,
          fmt::format("transactions not initialised (transactional id '{}'): {}", id, text));
    }
  }

  const KafkaSinkOptions& options_;
  const std::string where_;
  const milliseconds timeout_;
  Events events_;  // before producer_: librdkafka calls it until the producer is gone
  std::unique_ptr<RdKafka::Producer> producer_;
  int32_t answered_by_ = -1;  // the broker that answered the first metadata request
  // Whether that broker creates missing topics, asked once, at the first missing topic.
  bool auto_create_asked_ = false;
  std::optional<bool> auto_create_;
  std::string auto_create_why_;  // why auto_create_ is unknown
  std::vector<ProbeFinding> out_;
};

}  // namespace

std::string ProbeTransactionalId(const KafkaSinkOptions& options) {
  return TransactionalId(options) + ".probe";
}

std::vector<ProbeFinding> ProbeKafka(const KafkaSinkOptions& options,
                                     const std::vector<std::string>& topics,
                                     const std::string& where, milliseconds timeout) {
  KafkaProbe probe(options, where, timeout);
  return probe.Run(topics);
}

}  // namespace sluice::connectors
