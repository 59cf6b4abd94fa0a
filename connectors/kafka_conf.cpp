// SPDX-License-Identifier: Apache-2.0

#include "connectors/kafka_conf.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "connectors/kafka_sink.h"

namespace sluice::connectors {

namespace {

using Options = KafkaSinkOptions;

// Aliases are listed beside the key they stand for: librdkafka accepts either name for one
// setting. Only the canonical name that the sink sets has a value.
constexpr OwnedKafkaSetting kOwned[] = {
    // Delivery guarantees.
    {"enable.idempotence", [](const Options&) -> std::string { return "true"; },
     "sluice always enables the idempotent producer so that retries cannot duplicate or reorder "
     "events"},
    {"acks", [](const Options&) -> std::string { return "all"; },
     "sluice sets acks=all: an event leaves the local log only once every in-sync replica has it, "
     "and the idempotent producer requires it"},
    {"request.required.acks", nullptr,
     "it is an alias of acks, which sluice sets to all: an event leaves the local log only once "
     "every in-sync replica has it"},
    // Never give up on an event: an outage of days is retried for days, in order. A transactional
    // producer may not keep a record longer than its transaction; the abort that follows a timeout
    // sends the events again, in order.
    {"message.timeout.ms",
     [](const Options& o) -> std::string {
       return o.delivery == KafkaDelivery::kExactlyOnce ? std::to_string(o.transaction_timeout_ms)
                                                        : "0";
     },
     "sluice controls delivery timeouts itself; an event stays in the local log until Kafka "
     "confirms it, and a librdkafka timeout would break ordering"},
    {"delivery.timeout.ms", nullptr,
     "it is an alias of message.timeout.ms, which sluice controls: an event stays in the local "
     "log until Kafka confirms it"},
    {"max.in.flight.requests.per.connection", nullptr,
     "the idempotent producer keeps per-partition order only with at most 5, which librdkafka "
     "sets when sluice enables idempotence"},
    {"max.in.flight", nullptr,
     "it is an alias of max.in.flight.requests.per.connection, on which the idempotent "
     "producer's ordering depends"},
    {"retries", nullptr,
     "sluice relies on librdkafka retrying without limit inside the idempotent producer"},
    {"message.send.max.retries", nullptr,
     "it is an alias of retries; sluice relies on librdkafka retrying without limit"},
    {"delivery.report.only.error", nullptr,
     "sluice needs a delivery report for every event to know when it may delete it from the "
     "local log"},
    {"transactional.id",
     [](const Options& o) -> std::string {
       return o.delivery == KafkaDelivery::kExactlyOnce ? TransactionalId(o) : "";
     },
     "sluice derives it from the gateway id and the upstream's name when delivery = "
     "\"exactly-once\", and a transactional producer refuses every record sent outside a "
     "transaction; set delivery instead"},
    {"transaction.timeout.ms",
     [](const Options& o) -> std::string {
       return o.delivery == KafkaDelivery::kExactlyOnce ? std::to_string(o.transaction_timeout_ms)
                                                        : "";
     },
     "set transaction_timeout_ms instead"},
    // Key-to-partition placement. Each hashing partitioner keeps a key in one partition, in order;
    // their *_random forms differ only for empty keys, which sluice never produces
    // (docs/kafka-records.md). murmur2 stays open for agreeing with Java producers. sluice sets
    // none, so librdkafka's default, consistent_random (CRC32), applies.
    {"partitioner", nullptr,
     "only a partitioner that hashes the key keeps every event of a key in one partition, in "
     "order: consistent, consistent_random, murmur2, murmur2_random, fnv1a or fnv1a_random",
     "consistent|consistent_random|murmur2|murmur2_random|fnv1a|fnv1a_random"},
    {"partitioner_cb", nullptr, "sluice keeps every event of a key in one partition, in order"},
    {"queuing.strategy", nullptr,
     "anything but the default fifo reorders events, and the idempotent producer requires fifo"},
    {"msg_order_cmp", nullptr, "it reorders events inside the producer queue"},
    // Callbacks the sink installs through their own API.
    {"dr_cb", nullptr, "sluice installs its own delivery report callback"},
    {"dr_msg_cb", nullptr, "sluice installs its own delivery report callback"},
    // Settings with a typed key of their own.
    {"bootstrap.servers", [](const Options& o) { return o.brokers; }, "set kafka.brokers instead"},
    {"metadata.broker.list", nullptr, "set kafka.brokers instead"},
    {"compression.type", [](const Options& o) { return o.compression; },
     "set kafka.compression instead"},
    {"compression.codec", nullptr, "set kafka.compression instead"},
    {"linger.ms", [](const Options& o) { return std::to_string(o.linger_ms); },
     "set kafka.linger_ms instead"},
    {"queue.buffering.max.ms", nullptr, "set kafka.linger_ms instead"},
    {"batch.size", [](const Options& o) { return std::to_string(o.batch_bytes); },
     "set kafka.batch_bytes instead"},
    // The forwarder bounds what is in flight; the producer queue must never refuse within it.
    {"queue.buffering.max.messages",
     [](const Options& o) { return std::to_string(o.max_in_flight + 1000); },
     "sluice sizes the producer queue from kafka.max_in_flight_events; set that instead"},
    {"retry.backoff.ms", [](const Options& o) { return std::to_string(o.retry_backoff_ms); },
     "set kafka.retry_backoff_ms instead"},
    {"reconnect.backoff.max.ms",
     [](const Options& o) { return std::to_string(o.reconnect_max_ms); },
     "set kafka.reconnect_max_ms instead"},
    // An idle broker closes connections routinely; the sink reports broker state itself.
    {"log.connection.close", [](const Options&) -> std::string { return "false"; },
     "sluice reports broker connection state itself, throttled, and would otherwise log every "
     "idle disconnect as an error"},
};

}  // namespace

std::span<const OwnedKafkaSetting> OwnedKafkaSettings() {
  return kOwned;
}

const OwnedKafkaSetting* FindOwnedKafkaSetting(std::string_view name) {
  // librdkafka tries a name as a global property first, then as a topic property with any
  // "topic." prefix removed (rd_kafka_conf_set, rd_kafka_topic_conf_set).
  for (const std::string_view candidate :
       {name, name.starts_with("topic.") ? name.substr(6) : std::string_view()}) {
    if (candidate.empty()) continue;
    for (const OwnedKafkaSetting& s : kOwned) {
      if (s.key == candidate) return &s;
    }
  }
  return nullptr;
}

bool OwnedSettingAllows(const OwnedKafkaSetting& setting, std::string_view value) {
  std::string_view rest = setting.allowed;
  while (!rest.empty()) {
    const size_t bar = std::min(rest.find('|'), rest.size());
    if (rest.substr(0, bar) == value) return true;
    rest.remove_prefix(std::min(bar + 1, rest.size()));
  }
  return false;
}

KafkaSettings OwnedProducerSettings(const KafkaSinkOptions& options) {
  KafkaSettings out;
  for (const OwnedKafkaSetting& s : kOwned) {
    if (s.value == nullptr) continue;
    // An empty value: the setting does not apply to this delivery mode.
    if (std::string v = s.value(options); !v.empty()) out.emplace_back(std::string(s.key), v);
  }
  return out;
}

KafkaSettings ProducerSettings(const KafkaSinkOptions& options) {
  KafkaSettings settings = OwnedProducerSettings(options);
  if (options.properties.count("client.id") == 0) {
    settings.emplace_back("client.id", "sluice-" + options.gateway_id);
  }
  return settings;
}

std::string WithoutPropertyValues(const std::map<std::string, std::string>& properties,
                                  std::string msg) {
  auto is_word = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
  };
  for (const auto& [key, value] : properties) {
    if (value.empty()) continue;
    for (size_t at = msg.find(value); at != std::string::npos; at = msg.find(value, at + 1)) {
      const size_t end = at + value.size();
      if ((at > 0 && is_word(msg[at - 1]) && is_word(value.front())) ||
          (end < msg.size() && is_word(msg[end]) && is_word(value.back()))) {
        continue;
      }
      msg.replace(at, value.size(), "<" + key + ">");
      at += key.size() + 1;
    }
  }
  return msg;
}

Status BuildKafkaConf(const std::map<std::string, std::string>& user, const KafkaSettings& fixed,
                      std::unique_ptr<RdKafka::Conf>* out, std::string* bad_key) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  for (const auto& [key, value] : user) {
    const RdKafka::Conf::ConfResult rc = conf->set(key, value, err);
    if (rc == RdKafka::Conf::CONF_OK) continue;
    if (bad_key != nullptr) *bad_key = key;
    // librdkafka's text is left out on purpose: for an enum, a flag list or a number out of range
    // it quotes the value, and the value may be a secret set under a wrong name.
    if (rc == RdKafka::Conf::CONF_UNKNOWN) {
      return Status::InvalidArgument("kafka property '" + key +
                                     "' is not a librdkafka property (librdkafka's "
                                     "CONFIGURATION.md lists them)");
    }
    return Status::InvalidArgument("kafka property '" + key +
                                   "': librdkafka refuses the value (not shown, as it may be a "
                                   "secret); librdkafka's CONFIGURATION.md lists what it takes");
  }
  for (const auto& [key, value] : fixed) {
    // sluice's own values: librdkafka's text helps and holds no secret.
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("kafka setting '" + key + "': " + err);
    }
  }
  *out = std::move(conf);
  return Status::Ok();
}

std::vector<std::string> KafkaPropertyNames() {
  // Conf::dump() leaves out every property without a default (sasl.password among them), so the
  // names come from librdkafka's own table, printed as CONFIGURATION.md prints it:
  // "name | C/P | range | default | importance | description", after a header and a rule.
  char* text = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&text, &size);
  if (out == nullptr) return {};
  rd_kafka_conf_properties_show(out);
  std::fclose(out);
  std::unique_ptr<char, decltype(&std::free)> owned(text, &std::free);
  std::vector<std::string> names;
  std::string_view rest(text, size);
  while (!rest.empty()) {
    const size_t end = std::min(rest.find('\n'), rest.size());
    const std::string_view line = rest.substr(0, end);
    rest.remove_prefix(std::min(end + 1, rest.size()));
    const size_t bar = line.find(" |");
    if (bar == std::string_view::npos || line.starts_with("Property ") || line.starts_with("-")) {
      continue;
    }
    std::string_view name = line.substr(0, bar);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (!name.empty()) names.emplace_back(name);
  }
  return names;
}

}  // namespace sluice::connectors
