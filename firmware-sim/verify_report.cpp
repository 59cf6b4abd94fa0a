// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_report.h"

#include <algorithm>
#include <cstdio>

namespace sluice::sim {

namespace {

// Index of the nearest-rank percentile `per_mille`/1000 among n sorted samples: the sample at rank
// ceil(p * n), counted from 1. Integer arithmetic so that p99.9 of 1000 samples is exactly rank
// 999.
size_t RankIndex(size_t n, uint64_t per_mille) {
  const uint64_t rank = (per_mille * n + 999) / 1000;
  return rank == 0 ? 0 : static_cast<size_t>(rank - 1);
}

nlohmann::ordered_json LatencyJson(const LatencyStats& l) {
  nlohmann::ordered_json j;
  j["samples"] = l.samples;
  if (l.samples > 0) {
    j["min"] = l.min;
    j["p50"] = l.p50;
    j["p90"] = l.p90;
    j["p99"] = l.p99;
    j["p99_9"] = l.p999;
    j["max"] = l.max;
  }
  return j;
}

std::string RangeText(const SeqRange& r) {
  return r.first == r.last ? std::to_string(r.first)
                           : std::to_string(r.first) + "-" + std::to_string(r.last);
}

// "b1:17-20,42 b2:5 (+3 more)": what was lost, short enough for one table line.
std::string LostText(const DeviceResult& d, size_t max_ranges) {
  std::string out;
  size_t shown = 0;
  size_t hidden = 0;
  for (const BootResult& b : d.boots) {
    bool boot_started = false;
    for (const SeqRange& r : b.lost_ranges) {
      if (shown == max_ranges) {
        hidden++;
        continue;
      }
      if (!boot_started) {
        if (!out.empty()) out += ' ';
        // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string when
        // inlined into FormatTable.
        out += 'b';
        out += std::to_string(b.boot);
        out += ':';
        boot_started = true;
      } else {
        out += ',';
      }
      out += RangeText(r);
      shown++;
    }
  }
  if (hidden > 0) out += " (+" + std::to_string(hidden) + " more)";
  return out;
}

std::string Plural(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

LatencyStats LatencyStats::Of(std::vector<int64_t>* values) {
  LatencyStats l;
  if (values->empty()) return l;
  std::sort(values->begin(), values->end());
  const size_t n = values->size();
  l.samples = n;
  l.min = values->front();
  l.p50 = (*values)[RankIndex(n, 500)];
  l.p90 = (*values)[RankIndex(n, 900)];
  l.p99 = (*values)[RankIndex(n, 990)];
  l.p999 = (*values)[RankIndex(n, 999)];
  l.max = values->back();
  return l;
}

std::vector<std::string> VerifyReport::Failures(const Policy& policy) const {
  std::vector<std::string> out;
  const uint64_t read = totals.records + totals.foreign;
  if (read < policy.min_records) {
    out.push_back("read " + std::to_string(read) + " of the " + std::to_string(policy.min_records) +
                  " records expected");
  }
  // Nothing read proves nothing: a wrong topic or a gateway that forwarded nothing must not pass.
  if (totals.records == 0) out.push_back("no device events read");
  if (totals.lost > 0) out.push_back("lost " + Plural(totals.lost, "event", "events"));
  if (totals.reordered > 0)
    out.push_back(Plural(totals.reordered, "event", "events") + " reordered");
  if (policy.fail_on_duplicates && totals.duplicates > 0) {
    out.push_back(Plural(totals.duplicates, "duplicate", "duplicates"));
  }
  if (policy.strict && totals.foreign > 0) {
    out.push_back(Plural(totals.foreign, "foreign record", "foreign records"));
  }
  if (policy.strict && totals.unexpected > 0) {
    out.push_back(Plural(totals.unexpected, "unexpected record", "unexpected records"));
  }
  return out;
}

nlohmann::ordered_json VerifyReport::ToJson(const Policy& policy) const {
  nlohmann::ordered_json j;
  const std::vector<std::string> failures = Failures(policy);
  j["format"] = kFormatVersion;
  j["passed"] = failures.empty();
  j["failures"] = failures;
  j["expectation"] = with_expectation;
  j["totals"] = {{"devices", totals.devices},
                 {"boots", totals.boots},
                 {"records", totals.records},
                 {"unique", totals.unique},
                 {"lost", totals.lost},
                 {"dropped_reported", totals.dropped_reported},
                 {"duplicates", totals.duplicates},
                 {"reordered", totals.reordered},
                 {"stale_boot", totals.stale_boot},
                 {"dropped_by_device", totals.dropped_by_device},
                 {"unexpected", totals.unexpected},
                 {"foreign", totals.foreign},
                 {"aborted_records", aborted_records ? nlohmann::ordered_json(*aborted_records)
                                                     : nlohmann::ordered_json(nullptr)}};
  j["gaps"] = {{"records", gaps.records},
               {"repeats", gaps.repeats},
               {"events", gaps.events},
               {"accounted", gaps.accounted},
               {"by_count", gaps.by_count}};
  j["latency_ms"] = LatencyJson(latency);
  nlohmann::ordered_json jdevices = nlohmann::ordered_json::array();
  for (const DeviceResult& d : devices) {
    nlohmann::ordered_json jd;
    jd["device"] = d.device;
    jd["expected"] = d.expected;
    jd["records"] = d.records;
    jd["lost"] = d.lost;
    jd["dropped_reported"] = d.dropped_reported;
    jd["duplicates"] = d.duplicates;
    jd["reordered"] = d.reordered;
    jd["stale_boot"] = d.stale_boot;
    jd["dropped_by_device"] = d.dropped_by_device;
    jd["unexpected"] = d.unexpected;
    jd["partitions"] = d.partitions;
    jd["latency_ms"] = LatencyJson(d.latency);
    nlohmann::ordered_json jboots = nlohmann::ordered_json::array();
    for (const BootResult& b : d.boots) {
      nlohmann::ordered_json jb;
      jb["boot"] = b.boot;
      jb["expected"] = b.expected;
      jb["records"] = b.records;
      jb["unique"] = b.unique;
      jb["first_seq"] = b.first_seq;
      jb["last_seq"] = b.last_seq;
      jb["highest_seq"] = b.highest_seq;
      jb["lost"] = b.lost;
      nlohmann::ordered_json ranges = nlohmann::ordered_json::array();
      for (const SeqRange& r : b.lost_ranges) ranges.push_back({r.first, r.last});
      jb["lost_ranges"] = std::move(ranges);
      jb["dropped_reported"] = b.dropped_reported;
      nlohmann::ordered_json reported = nlohmann::ordered_json::array();
      for (const SeqRange& r : b.reported_ranges) reported.push_back({r.first, r.last});
      jb["reported_ranges"] = std::move(reported);
      jb["duplicates"] = b.duplicates;
      jb["reordered"] = b.reordered;
      jb["dropped_by_device"] = b.dropped_by_device;
      jb["unexpected"] = b.unexpected;
      jboots.push_back(std::move(jb));
    }
    jd["boots"] = std::move(jboots);
    jdevices.push_back(std::move(jd));
  }
  j["devices"] = std::move(jdevices);
  nlohmann::ordered_json jforeign = nlohmann::ordered_json::array();
  for (const ForeignRecord& f : foreign_examples) {
    jforeign.push_back({{"partition", f.partition}, {"offset", f.offset}, {"reason", f.reason}});
  }
  j["foreign_examples"] = std::move(jforeign);
  return j;
}

std::string VerifyReport::FormatTable(const Policy& policy, size_t max_ranges) const {
  size_t name_width = 6;  // "device"
  for (const DeviceResult& d : devices) name_width = std::max(name_width, d.device.size());
  const int w = static_cast<int>(name_width);

  std::string out;
  char line[512];
  auto latency_cells = [](const LatencyStats& l) {
    char cells[64];
    if (l.samples == 0) {
      std::snprintf(cells, sizeof(cells), "%7s %7s %7s", "-", "-", "-");
    } else {
      std::snprintf(cells, sizeof(cells), "%7lld %7lld %7lld", static_cast<long long>(l.p50),
                    static_cast<long long>(l.p99), static_cast<long long>(l.max));
    }
    return std::string(cells);
  };
  auto row = [&](const std::string& name, uint64_t boots, uint64_t records, uint64_t lost,
                 uint64_t dropped, uint64_t dups, uint64_t reordered, const LatencyStats& l,
                 const std::string& extra) {
    std::snprintf(line, sizeof(line), "%-*s %5llu %9llu %7llu %7llu %6llu %6llu %s", w,
                  name.c_str(), static_cast<unsigned long long>(boots),
                  static_cast<unsigned long long>(records), static_cast<unsigned long long>(lost),
                  static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(dups),
                  static_cast<unsigned long long>(reordered), latency_cells(l).c_str());
    out += line;
    if (!extra.empty()) out += "  " + extra;
    out += '\n';
  };

  std::snprintf(line, sizeof(line), "%-*s %5s %9s %7s %7s %6s %6s %7s %7s %7s  %s\n", w, "device",
                "boots", "events", "lost", "dropped", "dup", "reord", "p50ms", "p99ms", "maxms",
                "lost seqs");
  out += line;
  std::vector<const DeviceResult*> split;
  for (const DeviceResult& d : devices) {
    row(d.device, d.boots.size(), d.records, d.lost, d.dropped_reported, d.duplicates, d.reordered,
        d.latency, LostText(d, max_ranges));
    if (d.partitions.size() > 1) split.push_back(&d);
  }
  row("total", totals.boots, totals.records, totals.lost, totals.dropped_reported,
      totals.duplicates, totals.reordered, latency, "");

  if (latency.samples > 0) {
    std::snprintf(line, sizeof(line),
                  "latency ms (device ts -> Kafka timestamp, %llu events): p50 %lld  p90 %lld  "
                  "p99 %lld  p99.9 %lld  max %lld  min %lld\n",
                  static_cast<unsigned long long>(latency.samples),
                  static_cast<long long>(latency.p50), static_cast<long long>(latency.p90),
                  static_cast<long long>(latency.p99), static_cast<long long>(latency.p999),
                  static_cast<long long>(latency.max), static_cast<long long>(latency.min));
    out += line;
  } else {
    out += "latency: no samples (no device events with an upstream timestamp; MQTT has none)\n";
  }
  if (gaps.records > 0 || totals.dropped_reported > 0) {
    out += "dropped: " + std::to_string(totals.dropped_reported) +
           " missing events are accounted for by " + std::to_string(gaps.records) +
           " gap records of sluice (" + std::to_string(gaps.events) + " events reported dropped";
    if (gaps.repeats > 0) out += "; " + Plural(gaps.repeats, "repeat", "repeats") + " ignored";
    out += "); not counted as lost\n";
  }
  if (gaps.by_count) {
    out +=
        "note: records without sluice.seq (MQTT 3.1.1 carries no user properties): missing "
        "events next to them were matched to gap records by count only, not by log position\n";
  }
  if (aborted_records) {
    out += "aborted records: " + std::to_string(*aborted_records) +
           " (of aborted Kafka transactions: seen only by a read_uncommitted read, not counted "
           "as events or duplicates)\n";
  }
  std::string extras;
  if (totals.stale_boot > 0) {
    extras += " reordered after a newer boot " + std::to_string(totals.stale_boot) + ";";
  }
  if (with_expectation) {
    extras += " dropped by device " + std::to_string(totals.dropped_by_device) + "; unexpected " +
              std::to_string(totals.unexpected) + ";";
  }
  extras += " foreign " + std::to_string(totals.foreign) + " (not device events)";
  out += "also:" + extras + "\n";
  for (size_t i = 0; i < foreign_examples.size() && i < 3; ++i) {
    const ForeignRecord& f = foreign_examples[i];
    out += "  foreign at partition " + std::to_string(f.partition) + " offset " +
           std::to_string(f.offset) + ": " + f.reason + "\n";
  }
  for (const DeviceResult* d : split) {
    std::string parts;
    for (int32_t p : d->partitions) {
      if (!parts.empty()) parts += ',';
      parts += std::to_string(p);
    }
    out += "warning: " + d->device + " is on partitions " + parts +
           "; Kafka keeps no order across partitions, so its order check is not reliable\n";
  }

  const std::vector<std::string> failures = Failures(policy);
  if (failures.empty()) {
    out += "RESULT: PASS";
    if (totals.duplicates > 0) {
      out += " (" + Plural(totals.duplicates, "duplicate", "duplicates") + " allowed)";
    }
  } else {
    out += "RESULT: FAIL:";
    for (size_t i = 0; i < failures.size(); ++i) out += (i == 0 ? " " : ", ") + failures[i];
  }
  out += '\n';
  return out;
}

}  // namespace sluice::sim
