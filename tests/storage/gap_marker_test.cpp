// SPDX-License-Identifier: Apache-2.0

#include "storage/gap_marker.h"

#include <doctest/doctest.h>

namespace sluice::storage {
namespace {

TEST_CASE("EncodeGapMarker and DecodeGapMarker round-trip every upstream's part") {
  GapParts parts;
  parts["central"] = GapRange{5, 90, 40, 1700000000000, 1700000009000};
  parts["cloud-2"] = GapRange{UINT64_MAX - 1, UINT64_MAX, 2, -5, INT64_MAX};
  const std::string payload = EncodeGapMarker(parts);
  CHECK(payload.find("\"v\":1") != std::string::npos);
  GapParts back;
  REQUIRE(DecodeGapMarker(payload, &back).ok());
  REQUIRE(back.size() == 2);
  const GapRange& c = back.at("central");
  CHECK(c.first_seq == 5);
  CHECK(c.last_seq == 90);
  CHECK(c.count == 40);
  CHECK(c.first_received_ms == 1700000000000);
  CHECK(c.last_received_ms == 1700000009000);
  CHECK(back.at("cloud-2").last_seq == UINT64_MAX);
  CHECK(back.at("cloud-2").first_received_ms == -5);
}

TEST_CASE("DecodeGapMarker refuses damaged payloads and newer versions") {
  GapParts out;
  out["stale"] = GapRange{1, 1, 1, 0, 0};
  for (const char* bad :
       {"", "not json", "[]", "{\"gaps\":{}}", "{\"v\":1}", "{\"v\":1,\"gaps\":{\"a\":[1,2,3]}}",
        "{\"v\":1,\"gaps\":{\"a\":[5,4,1,0,0]}}", "{\"v\":1,\"gaps\":{\"a\":[1,2,3,0,0]}}",
        "{\"v\":1,\"gaps\":{\"a\":[1,2,0,0,0]}}", "{\"v\":1,\"gaps\":{\"a\":[\"1\",2,1,0,0]}}"}) {
    INFO(bad);
    CHECK(DecodeGapMarker(bad, &out).IsCorruption());
    CHECK(out.empty());
  }
  Status s = DecodeGapMarker("{\"v\":2,\"gaps\":{}}", &out);
  CHECK(s.IsCorruption());
  CHECK(s.message().find("version 2") != std::string::npos);
}

TEST_CASE("MergeGapRange unites ranges and adds counts") {
  GapRange into;
  MergeGapRange(GapRange{10, 20, 5, 100, 200}, &into);
  CHECK(into.first_seq == 10);
  CHECK(into.count == 5);
  MergeGapRange(GapRange{3, 8, 2, 50, 60}, &into);
  CHECK(into.first_seq == 3);
  CHECK(into.last_seq == 20);
  CHECK(into.count == 7);
  CHECK(into.first_received_ms == 50);
  CHECK(into.last_received_ms == 200);
  MergeGapRange(GapRange{}, &into);  // an empty part changes nothing
  CHECK(into.count == 7);
}

}  // namespace
}  // namespace sluice::storage
