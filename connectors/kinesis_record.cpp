// SPDX-License-Identifier: Apache-2.0

#include "connectors/kinesis_record.h"

#include <nlohmann/json.hpp>

namespace sluice::connectors {

std::string EncodeKinesisRecord(const std::vector<std::pair<std::string, std::string>>& headers,
                                std::string_view payload) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& [name, value] : headers) j[name] = value;
  // The gateway id and MQTT topic are configuration and broker text; replace rather than throw.
  const std::string h = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  const auto n = static_cast<uint32_t>(h.size());
  std::string out;
  out.reserve(kKinesisRecordFrameBytes + h.size() + payload.size());
  out += kKinesisRecordMagic;
  out += static_cast<char>(n >> 24 & 0xff);
  out += static_cast<char>(n >> 16 & 0xff);
  out += static_cast<char>(n >> 8 & 0xff);
  out += static_cast<char>(n & 0xff);
  out += h;
  out += payload;
  return out;
}

}  // namespace sluice::connectors
