// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_report.h"

#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "firmware-sim/verifier.h"

namespace sluice::sim {
namespace {

VerifyRecord Ev(const std::string& device, uint32_t boot, uint64_t seq, int64_t latency_ms) {
  VerifyRecord r;
  r.device = device;
  r.boot = boot;
  r.seq = seq;
  r.sent_ms = 1'764'000'000'000;
  r.kafka_ts_ms = r.sent_ms + latency_ms;
  return r;
}

// dev-001 loses 17-20 and 42 of 1..50 and has a duplicate; dev-002 has one reordered event.
VerifyReport Sample() {
  Verifier v;
  for (uint64_t s = 1; s <= 50; ++s) {
    if ((s >= 17 && s <= 20) || s == 42) continue;
    v.Add(Ev("dev-001", 1, s, static_cast<int64_t>(s)));
  }
  v.Add(Ev("dev-001", 1, 5, 9999));
  for (uint64_t s : {1, 3, 2}) v.Add(Ev("dev-002", 1, s, 10));
  v.AddForeign(0, 77, "payload is not a JSON object");
  return v.Finish();
}

int CountLines(const std::string& text) {
  int n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

TEST_CASE("VerifyReport JSON holds totals, per-device and per-boot results and latency") {
  const VerifyReport report = Sample();
  const nlohmann::ordered_json j = report.ToJson({});
  CHECK(j["format"] == VerifyReport::kFormatVersion);
  CHECK(j["passed"] == false);
  CHECK(j["failures"] == nlohmann::json::array({"lost 5 events", "1 event reordered"}));
  CHECK(j["expectation"] == false);
  CHECK(j["totals"]["devices"] == 2);
  CHECK(j["totals"]["records"] == 49);
  CHECK(j["totals"]["lost"] == 5);
  CHECK(j["totals"]["duplicates"] == 1);
  CHECK(j["totals"]["reordered"] == 1);
  CHECK(j["totals"]["foreign"] == 1);
  for (const char* field : {"samples", "min", "p50", "p90", "p99", "p99_9", "max"}) {
    CHECK_MESSAGE(j["latency_ms"].contains(field), field);
  }
  CHECK(j["latency_ms"]["samples"] == 48);
  const auto& dev1 = j["devices"][0];
  CHECK(dev1["device"] == "dev-001");
  CHECK(dev1["lost"] == 5);
  CHECK(dev1["duplicates"] == 1);
  CHECK(dev1["partitions"] == nlohmann::json::array({0}));
  CHECK(dev1["latency_ms"]["max"] == 50);
  const auto& boot = dev1["boots"][0];
  CHECK(boot["boot"] == 1);
  CHECK(boot["highest_seq"] == 50);
  CHECK(boot["lost_ranges"] == nlohmann::json::parse("[[17,20],[42,42]]"));
  CHECK(j["devices"][1]["reordered"] == 1);
  CHECK(j["foreign_examples"][0]["offset"] == 77);
  // The document survives a round trip through text, as a consumer of --json reads it.
  CHECK(nlohmann::json::parse(j.dump())["totals"]["unique"] == 48);
}

TEST_CASE("VerifyReport JSON says passed under the policy it was rendered with") {
  Verifier v;
  v.Add(Ev("dev-001", 1, 1, 5));
  v.Add(Ev("dev-001", 1, 1, 5));
  const VerifyReport report = v.Finish();
  CHECK(report.ToJson({})["passed"] == true);
  VerifyReport::Policy strict_dups;
  strict_dups.fail_on_duplicates = true;
  CHECK(report.ToJson(strict_dups)["passed"] == false);
  VerifyReport::Policy want_more;
  want_more.min_records = 3;
  CHECK(report.Failures(want_more) == std::vector<std::string>{"read 2 of the 3 records expected"});
}

TEST_CASE("VerifyReport table has one line per device, a total and the verdict") {
  const std::string table = Sample().FormatTable({});
  std::istringstream lines(table);
  std::string header, dev1, dev2, total;
  std::getline(lines, header);
  std::getline(lines, dev1);
  std::getline(lines, dev2);
  std::getline(lines, total);
  CHECK(header.rfind("device", 0) == 0);
  CHECK(dev1.rfind("dev-001", 0) == 0);
  CHECK(dev1.find("b1:17-20,42") != std::string::npos);
  CHECK(dev2.rfind("dev-002", 0) == 0);
  CHECK(total.rfind("total", 0) == 0);
  CHECK(table.find("p99.9") != std::string::npos);
  CHECK(table.find("RESULT: FAIL: lost 5 events, 1 event reordered") != std::string::npos);
}

TEST_CASE("VerifyReport table stays compact for a fleet of 20 devices") {
  Verifier v;
  for (int d = 1; d <= 20; ++d) {
    char name[16];
    std::snprintf(name, sizeof(name), "dev-%03d", d);
    // Many small gaps: the table lists a few and counts the rest.
    for (uint64_t s = 1; s <= 100; ++s) {
      if (s % 10 != 0) v.Add(Ev(name, 1, s, 3));
    }
    v.Add(Ev(name, 1, 101, 3));
  }
  const std::string table = v.Finish().FormatTable({}, 3);
  // header, 20 devices, total, latency, extras, verdict
  CHECK(CountLines(table) == 25);
  CHECK(table.find("b1:10,20,30 (+7 more)") != std::string::npos);
  CHECK(table.find("RESULT: FAIL: lost 200 events") != std::string::npos);
}

TEST_CASE("VerifyReport table of a clean run says PASS and mentions allowed duplicates") {
  Verifier v;
  v.Add(Ev("dev-001", 1, 1, 5));
  v.Add(Ev("dev-001", 1, 2, 5));
  v.Add(Ev("dev-001", 1, 2, 5));
  const std::string table = v.Finish().FormatTable({});
  CHECK(table.find("RESULT: PASS (1 duplicate allowed)") != std::string::npos);
}

TEST_CASE("VerifyReport counts aborted records apart from duplicates, and fails on neither") {
  Verifier v;
  v.Add(Ev("dev-001", 1, 1, 5));
  v.Add(Ev("dev-001", 1, 2, 5));
  VerifyReport report = v.Finish();
  CHECK(report.ToJson({})["totals"]["aborted_records"].is_null());
  CHECK(report.FormatTable({}).find("aborted records") == std::string::npos);

  report.aborted_records = 3;
  VerifyReport::Policy no_dups;
  no_dups.fail_on_duplicates = true;
  const nlohmann::ordered_json j = report.ToJson(no_dups);
  CHECK(j["totals"]["aborted_records"] == 3);
  CHECK(j["totals"]["duplicates"] == 0);
  CHECK(j["passed"] == true);
  const std::string table = report.FormatTable(no_dups);
  CHECK(table.find("aborted records: 3 (") != std::string::npos);
  CHECK(table.find("RESULT: PASS\n") != std::string::npos);
}

TEST_CASE("VerifyReport with fail_on_duplicates fails on one duplicate beside aborted records") {
  Verifier v;
  v.Add(Ev("dev-001", 1, 1, 5));
  v.Add(Ev("dev-001", 1, 1, 5));
  VerifyReport report = v.Finish();
  report.aborted_records = 2;
  VerifyReport::Policy no_dups;
  no_dups.fail_on_duplicates = true;
  CHECK(report.Failures(no_dups) == std::vector<std::string>{"1 duplicate"});
  const std::string table = report.FormatTable(no_dups);
  CHECK(table.find("aborted records: 2 (") != std::string::npos);
  CHECK(table.find("RESULT: FAIL: 1 duplicate\n") != std::string::npos);
}

}  // namespace
}  // namespace sluice::sim
