// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verifier.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware-sim/device_event.h"

namespace sluice::sim {
namespace {

VerifyRecord Ev(const std::string& device, uint32_t boot, uint64_t seq,
                std::optional<int64_t> latency_ms = std::nullopt) {
  VerifyRecord r;
  r.device = device;
  r.boot = boot;
  r.seq = seq;
  r.sent_ms = 1'764'000'000'000 + static_cast<int64_t>(seq);
  if (latency_ms) r.kafka_ts_ms = r.sent_ms + *latency_ms;
  return r;
}

RecordOrigin At(int64_t offset, std::optional<int64_t> timestamp_ms = std::nullopt) {
  RecordOrigin o;
  o.offset = offset;
  o.timestamp_ms = timestamp_ms;
  return o;
}

void AddSeqs(Verifier* v, const std::string& device, uint32_t boot, uint64_t first, uint64_t last) {
  for (uint64_t s = first; s <= last; ++s) v->Add(Ev(device, boot, s));
}

VerifyExpectation MustParse(const std::string& json) {
  VerifyExpectation e;
  Status s = VerifyExpectation::Parse(json, &e);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return e;
}

const DeviceResult& DeviceOf(const VerifyReport& r, const std::string& name) {
  auto it = std::find_if(r.devices.begin(), r.devices.end(),
                         [&](const DeviceResult& d) { return d.device == name; });
  REQUIRE_MESSAGE(it != r.devices.end(), "no device " << name << " in the report");
  return *it;
}

TEST_CASE("Verifier passes a clean interleaved stream from several devices") {
  Verifier v;
  for (uint64_t s = 1; s <= 100; ++s) {
    v.Add(Ev("dev-001", 1, s));
    v.Add(Ev("dev-002", 1, s));
  }
  const VerifyReport r = v.Finish();
  CHECK(r.totals.devices == 2);
  CHECK(r.totals.boots == 2);
  CHECK(r.totals.records == 200);
  CHECK(r.totals.unique == 200);
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.duplicates == 0);
  CHECK(r.totals.reordered == 0);
  CHECK(r.Passed({}));
  CHECK(DeviceOf(r, "dev-002").boots.at(0).highest_seq == 100);
}

TEST_CASE("Verifier fails a stream without a single device event") {
  Verifier v;
  v.AddForeign(0, 0, "not JSON");
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 0);
  CHECK(r.Failures({}) == std::vector<std::string>{"no device events read"});
}

TEST_CASE("Verifier reports a gap as lost with its ranges") {
  Verifier v;
  AddSeqs(&v, "dev-001", 1, 1, 16);
  AddSeqs(&v, "dev-001", 1, 21, 41);
  AddSeqs(&v, "dev-001", 1, 43, 50);
  AddSeqs(&v, "dev-002", 1, 1, 50);
  const VerifyReport r = v.Finish();
  const DeviceResult& d = DeviceOf(r, "dev-001");
  CHECK(d.lost == 5);
  REQUIRE(d.boots.size() == 1);
  CHECK(d.boots[0].lost_ranges == std::vector<SeqRange>{{17, 20}, {42, 42}});
  CHECK(DeviceOf(r, "dev-002").lost == 0);
  CHECK(r.totals.lost == 5);
  CHECK(r.totals.reordered == 0);
  CHECK(r.Failures({}) == std::vector<std::string>{"lost 5 events"});
}

TEST_CASE("Verifier counts a repeat as a duplicate only, and allows it unless told not to") {
  Verifier v;
  // sluice's at-least-once resend: 1 2 3, then 2 3 again, then on.
  for (uint64_t s : {1, 2, 3, 2, 3, 4}) v.Add(Ev("dev-001", 1, s));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.duplicates == 2);
  CHECK(r.totals.reordered == 0);
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.unique == 4);
  CHECK(r.Passed({}));
  VerifyReport::Policy strict_dups;
  strict_dups.fail_on_duplicates = true;
  CHECK(r.Failures(strict_dups) == std::vector<std::string>{"2 duplicates"});
}

TEST_CASE("Verifier counts a first appearance below the highest seq as reordered, not lost") {
  Verifier v;
  for (uint64_t s : {1, 2, 4, 3, 5}) v.Add(Ev("dev-001", 1, s));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.reordered == 1);
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.duplicates == 0);
  CHECK_FALSE(r.Passed({}));
  CHECK(r.Failures({}) == std::vector<std::string>{"1 event reordered"});
}

TEST_CASE("Verifier does not treat a reboot that restarts seq at 1 as loss or reordering") {
  Verifier v;
  AddSeqs(&v, "dev-001", 1, 1, 5);
  AddSeqs(&v, "dev-001", 2, 1, 3);
  AddSeqs(&v, "dev-001", 3, 1, 1);
  const VerifyReport r = v.Finish();
  const DeviceResult& d = DeviceOf(r, "dev-001");
  CHECK(d.boots.size() == 3);
  CHECK(d.reordered == 0);
  CHECK(d.lost == 0);
  CHECK(d.stale_boot == 0);
  CHECK(r.Passed({}));
}

TEST_CASE("Verifier counts every event of an older boot after a newer boot as reordered") {
  Verifier v;
  AddSeqs(&v, "dev-001", 1, 1, 3);
  AddSeqs(&v, "dev-001", 2, 1, 2);
  v.Add(Ev("dev-001", 1, 4));
  v.Add(Ev("dev-001", 1, 5));
  // A resend of an old boot's event is a duplicate, not a further reorder.
  v.Add(Ev("dev-001", 1, 3));
  const VerifyReport r = v.Finish();
  const DeviceResult& d = DeviceOf(r, "dev-001");
  CHECK(d.reordered == 2);
  CHECK(d.stale_boot == 2);
  CHECK(d.duplicates == 1);
  CHECK(d.lost == 0);
  CHECK(d.boots.at(0).reordered == 2);
  CHECK(d.boots.at(1).reordered == 0);
  CHECK_FALSE(r.Passed({}));
}

TEST_CASE("Verifier finds no loss in any permutation, and counts each late arrival once") {
  std::vector<uint64_t> seqs(1000);
  std::iota(seqs.begin(), seqs.end(), 1);
  std::mt19937 rng(42);
  std::shuffle(seqs.begin(), seqs.end(), rng);
  Verifier v;
  uint64_t highest = 0;
  uint64_t late = 0;
  for (uint64_t s : seqs) {
    if (s < highest) late++;
    highest = std::max(highest, s);
    v.Add(Ev("dev-001", 1, s));
  }
  const VerifyReport r = v.Finish();
  CHECK(r.totals.unique == 1000);
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.duplicates == 0);
  CHECK(r.totals.reordered == late);
  CHECK(late > 0);
}

TEST_CASE(
    "Verifier with an expectation counts a missing tail and absent devices and boots as lost") {
  Verifier v(MustParse(R"({"devices":[
      {"device":"dev-001","boots":[{"boot":1,"first_seq":1,"last_seq":10},
                                   {"boot":2,"first_seq":1,"last_seq":4}]},
      {"device":"dev-002","boots":[{"boot":1,"first_seq":1,"last_seq":6}]}]})"));
  AddSeqs(&v, "dev-001", 1, 1, 7);
  const VerifyReport r = v.Finish();
  CHECK(r.with_expectation);
  const DeviceResult& d1 = DeviceOf(r, "dev-001");
  REQUIRE(d1.boots.size() == 2);
  CHECK(d1.boots[0].lost_ranges == std::vector<SeqRange>{{8, 10}});
  CHECK(d1.boots[1].lost_ranges == std::vector<SeqRange>{{1, 4}});
  CHECK(d1.boots[1].records == 0);
  const DeviceResult& d2 = DeviceOf(r, "dev-002");
  CHECK(d2.records == 0);
  CHECK(d2.lost == 6);
  CHECK(r.totals.lost == 3 + 4 + 6);
  CHECK(r.totals.devices == 2);
  CHECK(r.totals.unexpected == 0);
}

TEST_CASE("Verifier excludes seqs the device dropped from loss and reports them apart") {
  const std::string summary = R"({"devices":[{"device":"dev-001","boots":[
      {"boot":1,"first_seq":1,"last_seq":20,"dropped_by_device":[[4,5],[18,20]]}]}]})";
  SUBCASE("the rest arrived: passes") {
    Verifier v(MustParse(summary));
    AddSeqs(&v, "dev-001", 1, 1, 3);
    AddSeqs(&v, "dev-001", 1, 6, 17);
    const VerifyReport r = v.Finish();
    CHECK(r.totals.lost == 0);
    CHECK(r.totals.dropped_by_device == 5);
    CHECK(r.Passed({}));
  }
  SUBCASE("a gap next to a dropped range is lost, the dropped part is not") {
    Verifier v(MustParse(summary));
    AddSeqs(&v, "dev-001", 1, 1, 3);
    AddSeqs(&v, "dev-001", 1, 8, 16);
    const VerifyReport r = v.Finish();
    CHECK(DeviceOf(r, "dev-001").boots.at(0).lost_ranges ==
          std::vector<SeqRange>{{6, 7}, {17, 17}});
    CHECK(r.totals.lost == 3);
  }
  SUBCASE("a dropped seq that arrives anyway is unexpected, fatal only with --strict") {
    Verifier v(MustParse(summary));
    AddSeqs(&v, "dev-001", 1, 1, 17);
    const VerifyReport r = v.Finish();
    CHECK(r.totals.unexpected == 2);
    CHECK(r.totals.lost == 0);
    CHECK(r.Passed({}));
    VerifyReport::Policy strict;
    strict.strict = true;
    CHECK(r.Failures(strict) == std::vector<std::string>{"2 unexpected records"});
  }
}

TEST_CASE("Verifier with an expectation counts records it does not list as unexpected") {
  Verifier v(MustParse(
      R"({"devices":[{"device":"dev-001","boots":[{"boot":1,"first_seq":1,"last_seq":3}]}]})"));
  AddSeqs(&v, "dev-001", 1, 1, 4);  // 4 is past last_seq
  AddSeqs(&v, "dev-001", 2, 1, 2);  // boot 2 is not listed
  AddSeqs(&v, "dev-009", 1, 1, 2);  // nor is the device
  const VerifyReport r = v.Finish();
  CHECK(r.totals.unexpected == 5);
  CHECK(r.totals.lost == 0);
  CHECK_FALSE(DeviceOf(r, "dev-009").expected);
  CHECK(DeviceOf(r, "dev-001").expected);
}

TEST_CASE("Verifier counts payloads that are not device events as foreign") {
  Verifier v;
  DeviceEvent e;
  e.device = "dev-001";
  e.boot = 1;
  e.seq = 1;
  e.ts_ms = 1000;
  v.AddPayload(e.Encode(), At(0, 1250));
  v.AddPayload("hello", At(1));
  v.AddPayload(R"({"v":1,"device":"dev-001"})", At(2));
  const VerifyReport r = v.Finish();
  CHECK(v.records() == 3);
  CHECK(r.totals.records == 1);
  CHECK(r.totals.foreign == 2);
  REQUIRE(r.foreign_examples.size() == 2);
  CHECK(r.foreign_examples[1].offset == 2);
  CHECK(r.latency.samples == 1);
  CHECK(r.latency.max == 250);
  CHECK(r.Passed({}));
  VerifyReport::Policy strict;
  strict.strict = true;
  CHECK(r.Failures(strict) == std::vector<std::string>{"2 foreign records"});
}

// Found by tests/fuzz/verifier_fuzzer: these numbers reached unchecked conversions (1e300 to an
// integer is undefined behaviour) or came out as different numbers (-1 as boot 4294967295).
TEST_CASE("Verifier counts payloads with out-of-range or non-integer numbers as foreign") {
  Verifier v;
  for (const char* payload : {
           R"({"v":1,"device":"d","boot":1,"seq":1.5e300,"ts":1})",
           R"({"v":1,"device":"d","boot":1,"seq":1,"ts":1e300})",
           R"({"v":1,"device":"d","boot":-1,"seq":1,"ts":1})",
           R"({"v":1,"device":"d","boot":4294967296,"seq":1,"ts":1})",
           R"({"v":1,"device":"d","boot":1,"seq":-1,"ts":1})",
           R"({"v":1,"device":"d","boot":1,"seq":2,"ts":9223372036854775808})",
           R"({"v":1e300,"device":"d","boot":1,"seq":1,"ts":1})",
       }) {
    CAPTURE(payload);
    DeviceEvent e;
    CHECK_FALSE(DeviceEvent::Decode(payload, &e).ok());
    v.AddPayload(payload, At(0));
  }
  DeviceEvent e;
  REQUIRE(DeviceEvent::Decode(R"({"v":1,"device":"d","boot":4294967295,"seq":18446744073709551615,)"
                              R"("ts":-9223372036854775808})",
                              &e)
              .ok());
  CHECK(e.boot == 4294967295u);
  CHECK(e.seq == 18446744073709551615u);
  CHECK(e.ts_ms == INT64_MIN);
  const VerifyReport r = v.Finish();
  CHECK(r.totals.foreign == 7);
  CHECK(r.totals.records == 0);
}

TEST_CASE("Verifier saturates a latency that a device's clock pushes past 64 bits") {
  Verifier v;
  VerifyRecord past = Ev("d", 1, 1);
  past.sent_ms = INT64_MAX;
  past.kafka_ts_ms = INT64_MIN;
  v.Add(past);
  VerifyRecord future = Ev("d", 1, 2);
  future.sent_ms = INT64_MIN;
  future.kafka_ts_ms = 1;
  v.Add(future);
  const VerifyReport r = v.Finish();
  REQUIRE(r.latency.samples == 2);
  CHECK(r.latency.min == INT64_MIN);
  CHECK(r.latency.max == INT64_MAX);
}

TEST_CASE("Verifier computes nearest-rank latency percentiles over first appearances") {
  std::vector<int64_t> latencies(1000);
  std::iota(latencies.begin(), latencies.end(), 1);
  std::mt19937 rng(7);
  std::shuffle(latencies.begin(), latencies.end(), rng);
  Verifier v;
  uint64_t seq = 0;
  for (int64_t l : latencies) v.Add(Ev("dev-001", 1, ++seq, l));
  // Neither a resend (duplicate) nor a record without a timestamp is a latency sample.
  v.Add(Ev("dev-001", 1, 1, 1'000'000));
  v.Add(Ev("dev-001", 1, ++seq));
  const VerifyReport r = v.Finish();
  CHECK(r.latency.samples == 1000);
  CHECK(r.latency.min == 1);
  CHECK(r.latency.p50 == 500);
  CHECK(r.latency.p90 == 900);
  CHECK(r.latency.p99 == 990);
  CHECK(r.latency.p999 == 999);
  CHECK(r.latency.max == 1000);
  CHECK(DeviceOf(r, "dev-001").latency.p99 == 990);
}

TEST_CASE("LatencyStats picks actual samples by nearest rank on small sets") {
  std::vector<int64_t> one{42};
  const LatencyStats a = LatencyStats::Of(&one);
  CHECK(a.p50 == 42);
  CHECK(a.p999 == 42);
  std::vector<int64_t> four{40, -5, 20, 10};  // negative: device clock ahead of the gateway's
  const LatencyStats b = LatencyStats::Of(&four);
  CHECK(b.min == -5);
  CHECK(b.p50 == 10);  // rank ceil(0.5 * 4) = 2
  CHECK(b.p90 == 40);  // rank ceil(0.9 * 4) = 4
  CHECK(b.max == 40);
  std::vector<int64_t> none;
  CHECK(LatencyStats::Of(&none).samples == 0);
}

TEST_CASE("Verifier report notes a device spread over several partitions") {
  Verifier v;
  VerifyRecord a = Ev("dev-001", 1, 1);
  VerifyRecord b = Ev("dev-001", 1, 2);
  b.partition = 3;
  v.Add(a);
  v.Add(b);
  const VerifyReport r = v.Finish();
  CHECK(DeviceOf(r, "dev-001").partitions == std::vector<int32_t>{0, 3});
  CHECK(r.FormatTable({}).find("dev-001 is on partitions 0,3") != std::string::npos);
}

TEST_CASE("Verifier handles seqs far apart without listing every missing one") {
  Verifier v;
  v.Add(Ev("dev-001", 1, 1));
  v.Add(Ev("dev-001", 1, 1'000'000'000'000));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 999'999'999'998);
  CHECK(DeviceOf(r, "dev-001").boots.at(0).lost_ranges ==
        std::vector<SeqRange>{{2, 999'999'999'999}});
}

}  // namespace
}  // namespace sluice::sim

// --- Gap records: events sluice dropped and reported (Verifier's "dropped, reported") ---------

namespace sluice::sim {
namespace {

constexpr const char* kLog = "5d0c9a3e71b24f68a1e07c3b9d42f615";

// An event as sluice forwards it: the record carries its log position (sluice.seq, sluice.log).
VerifyRecord Logged(const std::string& device, uint32_t boot, uint64_t seq, uint64_t log_seq,
                    const std::string& log = kLog) {
  VerifyRecord r = Ev(device, boot, seq);
  r.log_seq = log_seq;
  r.log_id = log;
  return r;
}

VerifyGap Gap(uint64_t first, uint64_t last, uint64_t count, const std::string& log = kLog) {
  VerifyGap g;
  g.gateway = "plant-3";
  g.log = log;
  g.first_seq = first;
  g.last_seq = last;
  g.count = count;
  g.first_received_ms = 1'764'000'000'000;
  g.last_received_ms = 1'764'000'000'100;
  return g;
}

// dev-001 sends seqs 1..10, logged at 100 + seq; `skip` never arrive.
void AddLoggedExcept(Verifier* v, const std::set<uint64_t>& skip) {
  for (uint64_t s = 1; s <= 10; ++s) {
    if (skip.count(s) == 0) v->Add(Logged("dev-001", 1, s, 100 + s));
  }
}

TEST_CASE("Verifier counts events inside a reported gap as dropped, reported, not lost") {
  Verifier v;
  AddLoggedExcept(&v, {4, 5, 6});
  v.AddGap(Gap(104, 106, 3));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.dropped_reported == 3);
  CHECK(r.gaps.records == 1);
  CHECK(r.gaps.events == 3);
  CHECK(r.gaps.accounted == 3);
  CHECK_FALSE(r.gaps.by_count);
  const BootResult& b = DeviceOf(r, "dev-001").boots.at(0);
  CHECK(b.lost_ranges.empty());
  REQUIRE(b.reported_ranges.size() == 1);
  CHECK(b.reported_ranges[0].first == 4);
  CHECK(b.reported_ranges[0].last == 6);
  CHECK(r.Passed({}));
  const auto j = r.ToJson({});
  CHECK(j["totals"]["dropped_reported"] == 3);
  CHECK(j["devices"][0]["boots"][0]["reported_ranges"] == nlohmann::ordered_json::parse("[[4,6]]"));
  CHECK(r.FormatTable({}).find("dropped: 3 missing events are accounted for by 1 gap records") !=
        std::string::npos);
}

TEST_CASE("Verifier keeps a lost event next to a reported gap lost") {
  Verifier v;
  // 4-6 were dropped and reported; 8 vanished between log seqs 107 and 109, where no gap is.
  AddLoggedExcept(&v, {4, 5, 6, 8});
  v.AddGap(Gap(104, 106, 3));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.dropped_reported == 3);
  CHECK(r.totals.lost == 1);
  const BootResult& b = DeviceOf(r, "dev-001").boots.at(0);
  REQUIRE(b.lost_ranges.size() == 1);
  CHECK(b.lost_ranges[0].first == 8);
  CHECK(b.lost_ranges[0].last == 8);
  CHECK(r.Failures({}) == std::vector<std::string>{"lost 1 event"});
}

TEST_CASE("Verifier does not let a gap account for more events than it counted") {
  Verifier v;
  // Three events missing where the gap record says one was dropped: two of them are lost.
  AddLoggedExcept(&v, {4, 5, 6});
  v.AddGap(Gap(105, 105, 1));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.dropped_reported == 1);
  CHECK(r.totals.lost == 2);
  const BootResult& b = DeviceOf(r, "dev-001").boots.at(0);
  REQUIRE(b.reported_ranges.size() == 1);
  CHECK(b.reported_ranges[0].first == 4);
  CHECK(b.reported_ranges[0].last == 4);
  REQUIRE(b.lost_ranges.size() == 1);
  CHECK(b.lost_ranges[0].first == 5);
  CHECK(b.lost_ranges[0].last == 6);
}

TEST_CASE("Verifier ignores a gap of another log, and a gap record read twice counts once") {
  SUBCASE("another log") {
    Verifier v;
    AddLoggedExcept(&v, {4, 5, 6});
    v.AddGap(Gap(104, 106, 3, "another-log"));
    const VerifyReport r = v.Finish();
    CHECK(r.totals.dropped_reported == 0);
    CHECK(r.totals.lost == 3);
  }
  SUBCASE("a repeat") {
    Verifier v;
    AddLoggedExcept(&v, {3, 4, 5, 6, 7, 8});
    v.AddGap(Gap(103, 108, 3));
    v.AddGap(Gap(103, 108, 3));
    const VerifyReport r = v.Finish();
    CHECK(v.gap_records() == 2);
    CHECK(r.gaps.records == 1);
    CHECK(r.gaps.repeats == 1);
    CHECK(r.totals.dropped_reported == 3);
    CHECK(r.totals.lost == 3);
  }
}

TEST_CASE("Verifier accounts one gap over the interleaved events of several devices") {
  Verifier v;
  // Two devices alternate in the log: dev-a at odd, dev-b at even log seqs. Log seqs 21..30
  // (five events of each) were dropped.
  uint64_t log_seq = 0;
  for (uint64_t s = 1; s <= 20; ++s) {
    for (const char* dev : {"dev-a", "dev-b"}) {
      ++log_seq;
      if (log_seq >= 21 && log_seq <= 30) continue;
      v.Add(Logged(dev, 1, s, log_seq));
    }
  }
  v.AddGap(Gap(21, 30, 10));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.dropped_reported == 10);
  CHECK(DeviceOf(r, "dev-a").dropped_reported == 5);
  CHECK(DeviceOf(r, "dev-b").dropped_reported == 5);
}

TEST_CASE("Verifier leaves the interval open at the stream's edges") {
  // The expectation says seqs 1..12 were sent; 1-2 and 11-12 never arrived. A gap before the first
  // arrived event and one after the last account for them.
  Verifier v(MustParse(R"({"devices":[{"device":"dev-001","boots":[
      {"boot":1,"first_seq":1,"last_seq":12,"dropped_by_device":[]}]}]})"));
  for (uint64_t s = 3; s <= 10; ++s) v.Add(Logged("dev-001", 1, s, 100 + s));
  v.AddGap(Gap(50, 60, 2));
  v.AddGap(Gap(200, 201, 2));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.dropped_reported == 4);

  SUBCASE("but a gap inside the arrived run does not reach the edges") {
    Verifier w(MustParse(R"({"devices":[{"device":"dev-001","boots":[
        {"boot":1,"first_seq":1,"last_seq":12,"dropped_by_device":[]}]}]})"));
    for (uint64_t s = 3; s <= 10; ++s) w.Add(Logged("dev-001", 1, s, 100 + s));
    w.AddGap(Gap(105, 105, 1));  // another device's event, dropped between dev-001's
    const VerifyReport q = w.Finish();
    CHECK(q.totals.dropped_reported == 0);
    CHECK(q.totals.lost == 4);
  }
}

TEST_CASE("Verifier finds a missing run's neighbours across a reboot and a re-created log") {
  Verifier v;
  // Boot 1: seqs 1..5 in log A at 11..15. Boot 2: seqs 1..2 missing, 3..5 in log B at 3..5. The
  // log was re-created in between; B's first two events were dropped and reported.
  for (uint64_t s = 1; s <= 5; ++s) v.Add(Logged("dev-001", 1, s, 10 + s, "log-A"));
  for (uint64_t s = 3; s <= 5; ++s) v.Add(Logged("dev-001", 2, s, s, "log-B"));
  // Boot 2 seqs 1-2 are not seen as missing without an expectation unless lower seqs arrived:
  // [1, highest] is checked, so they are.
  v.AddGap(Gap(1, 2, 2, "log-B"));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.lost == 0);
  CHECK(r.totals.dropped_reported == 2);
  const BootResult& b2 = DeviceOf(r, "dev-001").boots.at(1);
  REQUIRE(b2.reported_ranges.size() == 1);
  CHECK(b2.reported_ranges[0].first == 1);
  CHECK(b2.reported_ranges[0].last == 2);

  SUBCASE("a gap at the end of the old log accounts for them too") {
    Verifier w;
    for (uint64_t s = 1; s <= 5; ++s) w.Add(Logged("dev-001", 1, s, 10 + s, "log-A"));
    for (uint64_t s = 3; s <= 5; ++s) w.Add(Logged("dev-001", 2, s, s, "log-B"));
    w.AddGap(Gap(16, 17, 2, "log-A"));
    CHECK(w.Finish().totals.dropped_reported == 2);
  }
  SUBCASE("a gap early in the old log does not") {
    Verifier w;
    for (uint64_t s = 1; s <= 5; ++s) w.Add(Logged("dev-001", 1, s, 10 + s, "log-A"));
    for (uint64_t s = 3; s <= 5; ++s) w.Add(Logged("dev-001", 2, s, s, "log-B"));
    w.AddGap(Gap(1, 9, 2, "log-A"));
    CHECK(w.Finish().totals.lost == 2);
  }
}

TEST_CASE("Verifier without sluice.seq matches missing events to gap records by count only") {
  Verifier v;
  // MQTT 3.1.1: no user properties, so no log positions. Five events missing, four reported.
  for (uint64_t s = 1; s <= 10; ++s) {
    if (s != 3 && s != 4 && s != 5) v.Add(Ev("dev-a", 1, s));
    if (s != 7 && s != 8) v.Add(Ev("dev-b", 1, s));
  }
  v.AddGap(Gap(500, 520, 3));
  v.AddGap(Gap(900, 900, 1));
  const VerifyReport r = v.Finish();
  CHECK(r.gaps.by_count);
  CHECK(r.gaps.events == 4);
  CHECK(r.totals.dropped_reported == 4);
  CHECK(r.totals.lost == 1);
  CHECK(r.Failures({}) == std::vector<std::string>{"lost 1 event"});
  CHECK(r.ToJson({})["gaps"]["by_count"] == true);
  CHECK(r.FormatTable({}).find("matched to gap records by count only") != std::string::npos);

  SUBCASE("and without gap records, nothing is said about counting") {
    Verifier w;
    for (uint64_t s : {1, 2, 4}) w.Add(Ev("dev-a", 1, s));
    const VerifyReport q = w.Finish();
    CHECK_FALSE(q.gaps.by_count);
    CHECK(q.totals.lost == 1);
    CHECK(q.FormatTable({}).find("dropped:") == std::string::npos);
  }
}

TEST_CASE("Verifier counts a gap record it cannot decode as foreign") {
  Verifier v;
  v.Add(Logged("dev-001", 1, 1, 1));
  v.AddGapPayload(R"({"type":"gap","gateway":"g","log":"l","first_seq":5,"last_seq":4,)"
                  R"("count":1,"first_received_ms":0,"last_received_ms":0})",
                  At(7));
  v.AddGapPayload(R"({"type":"gap","gateway":"g","log":"l","first_seq":4,"last_seq":5,)"
                  R"("count":2,"first_received_ms":0,"last_received_ms":0})",
                  At(8));
  const VerifyReport r = v.Finish();
  CHECK(r.totals.foreign == 1);
  REQUIRE(r.foreign_examples.size() == 1);
  CHECK(r.foreign_examples[0].offset == 7);
  CHECK(r.foreign_examples[0].reason.find("first_seq 5 > last_seq 4") != std::string::npos);
  CHECK(r.gaps.records == 1);
  CHECK(v.gap_records() == 1);
}

}  // namespace
}  // namespace sluice::sim
