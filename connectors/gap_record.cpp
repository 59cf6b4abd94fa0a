// SPDX-License-Identifier: Apache-2.0

#include "connectors/gap_record.h"

#include <nlohmann/json.hpp>

namespace sluice::connectors {

GapRecord MakeGapRecord(const storage::Event& event, std::string_view gateway_id,
                        std::string_view log_id) {
  const storage::GapRange& g = event.gap;
  // ordered_json: the fields in the documented order, so that a human reading the topic sees the
  // same shape as the documentation.
  nlohmann::ordered_json j;
  j["type"] = "gap";
  j["gateway"] = gateway_id;
  j["log"] = log_id;
  j["first_seq"] = g.first_seq;
  j["last_seq"] = g.last_seq;
  j["count"] = g.count;
  j["first_received_ms"] = g.first_received_ms;
  j["last_received_ms"] = g.last_received_ms;
  GapRecord r;
  // A gateway id is configuration text and may not be valid UTF-8; replace rather than throw.
  r.value = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  r.headers = {{kHeaderGap, "1"},
               {kHeaderGateway, std::string(gateway_id)},
               {kHeaderLogId, std::string(log_id)},
               {kHeaderSeq, std::to_string(g.last_seq)}};
  return r;
}

}  // namespace sluice::connectors
