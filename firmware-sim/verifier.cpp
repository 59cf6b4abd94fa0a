#include "firmware-sim/verifier.h"

#include <algorithm>
#include <iterator>
#include <limits>

#include "firmware-sim/device_event.h"

namespace sluice::sim {

namespace {

using SeqSet = std::map<uint64_t, uint64_t>;

// Adds `seq` to the set of ranges; false when it was already there. In-order streams always extend
// the last range, so the set stays one range per gap.
bool InsertSeq(SeqSet* set, uint64_t seq) {
  auto next = set->upper_bound(seq);
  if (next != set->begin()) {
    auto prev = std::prev(next);
    if (seq <= prev->second) return false;
    if (prev->second + 1 == seq) {
      prev->second = seq;
      // seq < next->first, so seq + 1 cannot overflow here.
      if (next != set->end() && next->first == seq + 1) {
        prev->second = next->second;
        set->erase(next);
      }
      return true;
    }
  }
  if (next != set->end() && next->first == seq + 1) {
    const uint64_t last = next->second;
    next = set->erase(next);
    set->emplace_hint(next, seq, last);
    return true;
  }
  set->emplace_hint(next, seq, seq);
  return true;
}

// A device's clock can claim any "ts", so the latency saturates rather than overflow.
int64_t SaturatingDifference(int64_t a, int64_t b) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  if (b < 0 && a > kMax + b) return kMax;
  if (b > 0 && a < kMin + b) return kMin;
  return a - b;
}

uint64_t Size(const SeqRange& r) {
  return r.last - r.first + 1;
}

// The parts of [lo, hi] that no range of `covered` (sorted by first) covers.
std::vector<SeqRange> Gaps(uint64_t lo, uint64_t hi, const std::vector<SeqRange>& covered) {
  std::vector<SeqRange> gaps;
  if (lo > hi) return gaps;
  uint64_t next = lo;  // the lowest seq of [lo, hi] not yet known to be covered
  for (const SeqRange& r : covered) {
    if (r.last < next) continue;
    if (r.first > hi) break;
    if (r.first > next) gaps.push_back({next, r.first - 1});
    if (r.last >= hi) return gaps;
    next = r.last + 1;
  }
  gaps.push_back({next, hi});
  return gaps;
}

}  // namespace

Verifier::Verifier(VerifyExpectation expectation)
    : with_expectation_(true), expectation_(std::move(expectation)) {}

Verifier::BootState& Verifier::BootFor(DeviceState& device, uint32_t boot) {
  auto [it, fresh] = device.boots.try_emplace(boot);
  if (fresh && device.expected != nullptr) {
    const auto& boots = device.expected->boots;
    auto e =
        std::lower_bound(boots.begin(), boots.end(), boot,
                         [](const VerifyExpectation::Boot& b, uint32_t n) { return b.boot < n; });
    if (e != boots.end() && e->boot == boot) it->second.expected = &*e;
  }
  return it->second;
}

bool Verifier::IsUnexpected(const BootState& boot, uint64_t seq) {
  const VerifyExpectation::Boot* e = boot.expected;
  if (e == nullptr) return true;
  if (seq < e->first_seq || seq > e->last_seq) return true;
  for (const SeqRange& r : e->dropped_by_device) {
    if (seq >= r.first && seq <= r.last) return true;
  }
  return false;
}

void Verifier::Add(const VerifyRecord& record) {
  records_++;
  auto it = devices_.find(record.device);
  if (it == devices_.end()) {
    it = devices_.try_emplace(record.device).first;
    const auto& expected = expectation_.devices;
    auto e = std::lower_bound(
        expected.begin(), expected.end(), record.device,
        [](const VerifyExpectation::Device& d, const std::string& n) { return d.device < n; });
    if (e != expected.end() && e->device == record.device) it->second.expected = &*e;
  }
  DeviceState& device = it->second;
  device.records++;
  device.partitions.insert(record.partition);
  BootState& boot = BootFor(device, record.boot);
  boot.records++;
  if (with_expectation_ && IsUnexpected(boot, record.seq)) boot.unexpected++;

  if (!InsertSeq(&boot.seen, record.seq)) {
    boot.duplicates++;
    return;
  }
  if (record.kafka_ts_ms.has_value()) {
    device.latencies_ms.push_back(SaturatingDifference(*record.kafka_ts_ms, record.sent_ms));
  }
  if (record.boot < device.highest_boot) {
    boot.reordered++;
    device.stale_boot++;
  } else if (record.seq < boot.highest) {
    boot.reordered++;
  }
  boot.highest = std::max(boot.highest, record.seq);
  device.highest_boot = std::max(device.highest_boot, record.boot);
}

void Verifier::AddPayload(std::string_view payload, std::optional<int64_t> kafka_ts_ms,
                          int32_t partition, int64_t offset) {
  DeviceEvent event;
  Status s = DeviceEvent::Decode(payload, &event);
  if (!s.ok()) {
    AddForeign(partition, offset, s.message());
    return;
  }
  VerifyRecord r;
  r.device = std::move(event.device);
  r.boot = event.boot;
  r.seq = event.seq;
  r.sent_ms = event.ts_ms;
  r.kafka_ts_ms = kafka_ts_ms;
  r.partition = partition;
  r.offset = offset;
  Add(r);
}

void Verifier::AddForeign(int32_t partition, int64_t offset, std::string reason) {
  records_++;
  foreign_++;
  if (foreign_examples_.size() < kMaxForeignExamples) {
    foreign_examples_.push_back({partition, offset, std::move(reason)});
  }
}

VerifyReport Verifier::Finish() const {
  VerifyReport report;
  report.with_expectation = with_expectation_;
  report.totals.foreign = foreign_;
  report.foreign_examples = foreign_examples_;

  std::set<std::string, std::less<>> names;
  for (const auto& [name, state] : devices_) names.insert(name);
  for (const auto& d : expectation_.devices) names.insert(d.device);

  std::vector<int64_t> all_latencies;
  for (const std::string& name : names) {
    auto state_it = devices_.find(name);
    const DeviceState* state = state_it == devices_.end() ? nullptr : &state_it->second;
    auto exp_it = std::lower_bound(
        expectation_.devices.begin(), expectation_.devices.end(), name,
        [](const VerifyExpectation::Device& d, const std::string& n) { return d.device < n; });
    const VerifyExpectation::Device* expected =
        exp_it != expectation_.devices.end() && exp_it->device == name ? &*exp_it : nullptr;

    DeviceResult d;
    d.device = name;
    d.expected = expected != nullptr;
    std::set<uint32_t> boot_numbers;
    if (state != nullptr) {
      for (const auto& [n, b] : state->boots) boot_numbers.insert(n);
      d.partitions.assign(state->partitions.begin(), state->partitions.end());
      d.stale_boot = state->stale_boot;
      std::vector<int64_t> latencies = state->latencies_ms;
      all_latencies.insert(all_latencies.end(), latencies.begin(), latencies.end());
      d.latency = LatencyStats::Of(&latencies);
    }
    if (expected != nullptr) {
      for (const auto& b : expected->boots) boot_numbers.insert(b.boot);
    }

    for (uint32_t n : boot_numbers) {
      const BootState* bs = nullptr;
      if (state != nullptr) {
        auto b = state->boots.find(n);
        if (b != state->boots.end()) bs = &b->second;
      }
      const VerifyExpectation::Boot* eb = nullptr;
      if (expected != nullptr) {
        for (const auto& b : expected->boots) {
          if (b.boot == n) eb = &b;
        }
      }

      BootResult r;
      r.boot = n;
      r.expected = eb != nullptr;
      std::vector<SeqRange> covered;
      if (bs != nullptr) {
        r.records = bs->records;
        r.duplicates = bs->duplicates;
        r.reordered = bs->reordered;
        r.unexpected = bs->unexpected;
        r.highest_seq = bs->highest;
        for (const auto& [first, last] : bs->seen) {
          covered.push_back({first, last});
          r.unique += last - first + 1;
        }
      }
      if (eb != nullptr) {
        r.first_seq = eb->first_seq;
        r.last_seq = eb->last_seq;
        for (const SeqRange& dropped : eb->dropped_by_device) {
          r.dropped_by_device += Size(dropped);
          covered.push_back(dropped);
        }
        std::sort(covered.begin(), covered.end(),
                  [](const SeqRange& x, const SeqRange& y) { return x.first < y.first; });
      } else {
        r.first_seq = 1;
        r.last_seq = r.highest_seq;
      }
      r.lost_ranges = Gaps(r.first_seq, r.last_seq, covered);
      for (const SeqRange& g : r.lost_ranges) r.lost += Size(g);

      d.records += r.records;
      d.duplicates += r.duplicates;
      d.reordered += r.reordered;
      d.lost += r.lost;
      d.dropped_by_device += r.dropped_by_device;
      d.unexpected += r.unexpected;
      report.totals.unique += r.unique;
      d.boots.push_back(std::move(r));
    }

    report.totals.devices++;
    report.totals.boots += d.boots.size();
    report.totals.records += d.records;
    report.totals.lost += d.lost;
    report.totals.duplicates += d.duplicates;
    report.totals.reordered += d.reordered;
    report.totals.stale_boot += d.stale_boot;
    report.totals.dropped_by_device += d.dropped_by_device;
    report.totals.unexpected += d.unexpected;
    report.devices.push_back(std::move(d));
  }
  report.latency = LatencyStats::Of(&all_latencies);
  return report;
}

}  // namespace sluice::sim
