// SPDX-License-Identifier: Apache-2.0

#include "connectors/gap_record.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using sluice::connectors::GapRecord;
using sluice::connectors::MakeGapRecord;

TEST_CASE("A gap record names the range, count and times of one upstream's part of a marker") {
  sluice::storage::Event e;
  e.seq = 120;
  e.kind = sluice::storage::EventKind::kGap;
  e.gap = {100, 118, 7, 1732560000123, 1732560009999};
  const GapRecord r = MakeGapRecord(e, "plant-3", "5d0c9a3e");
  CHECK(r.value ==
        R"({"type":"gap","gateway":"plant-3","log":"5d0c9a3e","first_seq":100,"last_seq":118,)"
        R"("count":7,"first_received_ms":1732560000123,"last_received_ms":1732560009999})");
  const std::vector<std::pair<std::string, std::string>> headers = {{"sluice.gap", "1"},
                                                                    {"sluice.gateway", "plant-3"},
                                                                    {"sluice.log", "5d0c9a3e"},
                                                                    {"sluice.seq", "118"}};
  CHECK(r.headers == headers);
}

TEST_CASE("A gap record stays valid JSON whatever the gateway id holds") {
  sluice::storage::Event e;
  e.kind = sluice::storage::EventKind::kGap;
  e.gap = {1, 1, 1, 0, 0};
  const GapRecord r = MakeGapRecord(e, "gw \"1\"\\\n\xff", "log");
  const auto j = nlohmann::json::parse(r.value);
  CHECK(j["type"] == "gap");
  CHECK(j["gateway"].get<std::string>().rfind("gw \"1\"\\\n", 0) == 0);
  CHECK(j["count"] == 1);
}
