#include "connectors/kafka_conf.h"

namespace sluice::connectors {

Status BuildKafkaConf(const std::map<std::string, std::string>& user, const KafkaSettings& fixed,
                      std::unique_ptr<RdKafka::Conf>* out) {
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  std::string err;
  auto apply = [&](const std::string& key, const std::string& value) -> Status {
    if (conf->set(key, value, err) != RdKafka::Conf::CONF_OK) {
      return Status::InvalidArgument("kafka setting " + key + "=" + value + ": " + err);
    }
    return Status::Ok();
  };
  for (const auto& [k, v] : user) {
    Status s = apply(k, v);
    if (!s.ok()) return s;
  }
  for (const auto& [k, v] : fixed) {
    Status s = apply(k, v);
    if (!s.ok()) return s;
  }
  *out = std::move(conf);
  return Status::Ok();
}

}  // namespace sluice::connectors
