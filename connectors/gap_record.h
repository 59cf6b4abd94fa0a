// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "connectors/record_headers.h"
#include "storage/event.h"

namespace sluice::connectors {

// What an upstream receives in place of events that the log's drop-oldest policy discarded
// before that upstream confirmed them: one record per gap marker, in order at the place of the
// hole (docs/kafka-records.md, "Gap records"). Both sinks send the same value and headers (Kafka
// headers, MQTT 5 user properties); only the topic and key differ.
struct GapRecord {
  // {"type":"gap","gateway":G,"log":L,"first_seq":a,"last_seq":b,"count":n,
  //  "first_received_ms":t1,"last_received_ms":t2}
  std::string value;
  // sluice.gap = "1", sluice.gateway, sluice.log, sluice.seq (= last_seq), in this order.
  std::vector<std::pair<std::string, std::string>> headers;
};

// The gap record for `event`, a gap marker as the forwarder hands it to one upstream (its
// `gap` holds that upstream's range). REQUIRES: event.kind == storage::EventKind::kGap.
GapRecord MakeGapRecord(const storage::Event& event, std::string_view gateway_id,
                        std::string_view log_id);

}  // namespace sluice::connectors
