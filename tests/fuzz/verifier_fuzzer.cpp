// SPDX-License-Identifier: Apache-2.0

// Fuzzes what sluice-verify reads from outside: the simulator's summary (VerifyExpectation::Parse),
// every record value on the topic (Verifier::AddPayload, which decodes DeviceEvent JSON) with its
// sluice.seq / sluice.log, and gap records (Verifier::AddGapPayload, which decodes VerifyGap JSON).
// A topic can hold anything, so the verifier must neither crash nor miscount on it. Besides
// sanitizer findings, the report is checked against a plain recount of the decoded events: every
// record is counted exactly once, no event that arrived is reported lost or dropped, every missing
// seq is either lost or dropped-reported, and gap records never account for more events than they
// counted.
//
// Input: lines. The first line is the expectation (empty: none); each further line is one record
// value, optionally prefixed by "@<kafka timestamp ms> ", then by "#<sluice.seq>[:<sluice.log>] ";
// a line starting with "!" is a gap record's value.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "firmware-sim/device_event.h"
#include "firmware-sim/verifier.h"
#include "firmware-sim/verify_expectation.h"
#include "firmware-sim/verify_gap.h"
#include "firmware-sim/verify_report.h"

namespace sluice::sim {
namespace {

[[noreturn]] void Fail(const char* what, uint64_t a, uint64_t b) {
  std::fprintf(stderr, "verifier_fuzzer: %s (%llu vs %llu)\n", what,
               static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  std::abort();
}

void Expect(bool ok, const char* what, uint64_t a, uint64_t b) {
  if (!ok) Fail(what, a, b);
}

std::string_view NextLine(std::string_view* rest) {
  const size_t nl = rest->find('\n');
  const std::string_view line = rest->substr(0, nl);
  rest->remove_prefix(nl == std::string_view::npos ? rest->size() : nl + 1);
  return line;
}

// (device, boot) -> seqs of the records that decode as device events.
using Recount = std::map<std::pair<std::string, uint32_t>, std::set<uint64_t>>;

// Checks that `ranges` are sorted, disjoint, inside the boot, and hold no seq that arrived;
// returns how many seqs they hold.
uint64_t CheckRanges(const std::vector<SeqRange>& ranges, const BootResult& b,
                     const std::set<uint64_t>* seen, const char* what) {
  uint64_t total = 0;
  uint64_t previous_last = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const SeqRange& r = ranges[i];
    Expect(r.first <= r.last, what, r.first, r.last);
    Expect(r.first >= b.first_seq && r.last <= b.last_seq, what, r.first, r.last);
    if (i > 0) Expect(r.first > previous_last, what, r.first, previous_last);
    previous_last = r.last;
    if (seen != nullptr) {
      auto it = seen->lower_bound(r.first);
      Expect(it == seen->end() || *it > r.last, what, it == seen->end() ? 0 : *it, r.first);
    }
    total += r.last - r.first + 1;
  }
  return total;
}

void CheckReport(const VerifyReport& report, const Verifier& verifier, const Recount& recount,
                 uint64_t decoded, uint64_t foreign) {
  Expect(verifier.records() == decoded + foreign, "records() is not every record added",
         verifier.records(), decoded + foreign);
  Expect(report.totals.records == decoded, "totals.records", report.totals.records, decoded);
  Expect(report.totals.foreign == foreign, "totals.foreign", report.totals.foreign, foreign);

  uint64_t records = 0;
  for (const DeviceResult& d : report.devices) {
    uint64_t device_records = 0;
    for (const BootResult& b : d.boots) {
      // Every record of a boot is either the first appearance of its seq or a duplicate.
      Expect(b.records == b.unique + b.duplicates, "records != unique + duplicates", b.records,
             b.unique + b.duplicates);
      Expect(b.reordered <= b.unique, "more reordered than unique", b.reordered, b.unique);
      auto seen = recount.find({d.device, b.boot});
      const uint64_t distinct = seen == recount.end() ? 0 : seen->second.size();
      Expect(b.unique == distinct, "unique differs from a recount", b.unique, distinct);
      uint64_t previous_last = 0;
      for (size_t i = 0; i < b.lost_ranges.size(); ++i) {
        const SeqRange& r = b.lost_ranges[i];
        Expect(r.first <= r.last, "empty lost range", r.first, r.last);
        Expect(r.first >= b.first_seq && r.last <= b.last_seq, "lost range outside the boot",
               r.first, r.last);
        // Maximal ranges: the next one starts after a gap of at least one seq.
        if (i > 0) Expect(r.first > previous_last + 1, "lost ranges not disjoint", r.first, 0);
        previous_last = r.last;
        if (seen != recount.end()) {
          auto it = seen->second.lower_bound(r.first);
          Expect(it == seen->second.end() || *it > r.last, "an arrived seq is reported lost",
                 it == seen->second.end() ? 0 : *it, r.first);
        }
      }
      Expect(CheckRanges(b.lost_ranges, b, seen == recount.end() ? nullptr : &seen->second,
                         "a lost range is out of order, outside the boot or arrived") == b.lost,
             "lost differs from its ranges", b.lost, 0);
      Expect(CheckRanges(b.reported_ranges, b, seen == recount.end() ? nullptr : &seen->second,
                         "a reported range is out of order, outside the boot or arrived") ==
                 b.dropped_reported,
             "dropped_reported differs from its ranges", b.dropped_reported, 0);
      // Nothing is both lost and reported.
      for (const SeqRange& l : b.lost_ranges) {
        for (const SeqRange& r : b.reported_ranges) {
          Expect(l.last < r.first || r.last < l.first, "a seq is both lost and reported", l.first,
                 r.first);
        }
      }
      device_records += b.records;
    }
    Expect(d.records == device_records, "device records != sum of boots", d.records,
           device_records);
    records += d.records;
  }
  Expect(report.totals.records == records, "totals.records != sum of devices",
         report.totals.records, records);
  Expect(report.totals.dropped_reported <= report.gaps.events,
         "gap records account for more events than they counted", report.totals.dropped_reported,
         report.gaps.events);

  // Both renderings must cope with whatever device names and reasons a topic held.
  VerifyReport::Policy policy;
  (void)report.ToJson(policy).dump();
  (void)report.FormatTable(policy);
}

}  // namespace
}  // namespace sluice::sim

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  using namespace sluice::sim;
  std::string_view rest(reinterpret_cast<const char*>(bytes), size);
  const std::string_view expectation_text = NextLine(&rest);

  std::optional<Verifier> verifier_storage;
  VerifyExpectation expectation;
  if (!expectation_text.empty() && VerifyExpectation::Parse(expectation_text, &expectation).ok()) {
    verifier_storage.emplace(std::move(expectation));
  } else {
    verifier_storage.emplace();
  }
  Verifier& verifier = *verifier_storage;

  Recount recount;
  uint64_t decoded = 0;
  uint64_t foreign = 0;
  int64_t offset = 0;
  while (!rest.empty()) {
    std::string_view payload = NextLine(&rest);
    if (payload.starts_with('!')) {
      payload.remove_prefix(1);
      VerifyGap gap;
      if (!VerifyGap::Decode(payload, &gap).ok()) ++foreign;
      RecordOrigin origin;
      origin.offset = offset++;
      verifier.AddGapPayload(payload, origin);
      continue;
    }
    std::optional<int64_t> kafka_ts;
    if (payload.starts_with('@')) {
      int64_t ts = 0;
      const char* begin = payload.data() + 1;
      const char* end = payload.data() + payload.size();
      auto [ptr, ec] = std::from_chars(begin, end, ts);
      if (ec == std::errc() && ptr != end && *ptr == ' ') {
        kafka_ts = ts;
        payload.remove_prefix(static_cast<size_t>(ptr - payload.data()) + 1);
      }
    }
    RecordOrigin origin;
    origin.timestamp_ms = kafka_ts;
    if (payload.starts_with('#')) {
      uint64_t seq = 0;
      const char* begin = payload.data() + 1;
      const char* end = payload.data() + payload.size();
      auto [ptr, ec] = std::from_chars(begin, end, seq);
      if (ec == std::errc() && ptr != end && (*ptr == ' ' || *ptr == ':')) {
        origin.log_seq = seq;
        const std::string_view after(ptr, static_cast<size_t>(end - ptr));
        const size_t space = after.find(' ');
        if (space != std::string_view::npos) {
          if (after.front() == ':') origin.log_id = std::string(after.substr(1, space - 1));
          payload.remove_prefix(static_cast<size_t>(ptr - payload.data()) + space + 1);
        } else {
          origin.log_seq.reset();
        }
      }
    }
    DeviceEvent event;
    if (DeviceEvent::Decode(payload, &event).ok()) {
      ++decoded;
      recount[{event.device, event.boot}].insert(event.seq);
    } else {
      ++foreign;
    }
    origin.offset = offset++;
    verifier.AddPayload(payload, origin);
  }
  CheckReport(verifier.Finish(), verifier, recount, decoded, foreign);
  return 0;
}
