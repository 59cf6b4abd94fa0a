#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::connectors {

using KafkaSettings = std::vector<std::pair<std::string, std::string>>;

// Builds a librdkafka global configuration: the user's properties first, then `fixed`, so that
// the settings a component's guarantees rest on always win. The error names the key and value.
Status BuildKafkaConf(const std::map<std::string, std::string>& user, const KafkaSettings& fixed,
                      std::unique_ptr<RdKafka::Conf>* out);

}  // namespace sluice::connectors
