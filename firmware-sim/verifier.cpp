// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verifier.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

#include "firmware-sim/device_event.h"

namespace sluice::sim {

namespace {

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

// Where a missing run of a device's events can have been logged: the log seqs strictly between
// `lo` and `hi` of log `log` (0: any log), an unset bound open.
struct LogWindow {
  uint32_t log = 0;
  std::optional<uint64_t> lo;
  std::optional<uint64_t> hi;
};

// A gap record's count, spent as it accounts for missing events.
struct GapBudget {
  uint32_t log = 0;  // index into the verifier's log ids; 0: the record named a log no event did
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t left = 0;
};

bool Meets(const LogWindow& w, const GapBudget& g) {
  if (w.log != 0 && w.log != g.log) return false;
  if (w.lo && g.last_seq <= *w.lo) return false;
  if (w.hi && g.first_seq >= *w.hi) return false;
  return true;
}

}  // namespace

bool Verifier::InsertSeq(SeqSet* set, uint64_t seq, const LogRef& ref) {
  // Adds `seq` to the set of runs; false when it was already there. In-order streams always
  // extend the last run, so the set stays one run per gap.
  auto next = set->upper_bound(seq);
  if (next != set->begin()) {
    auto prev = std::prev(next);
    if (seq <= prev->second.last) return false;
    if (prev->second.last + 1 == seq) {
      prev->second.last = seq;
      prev->second.last_ref = ref;
      // seq < next->first, so seq + 1 cannot overflow here.
      if (next != set->end() && next->first == seq + 1) {
        prev->second.last = next->second.last;
        prev->second.last_ref = next->second.last_ref;
        set->erase(next);
      }
      return true;
    }
  }
  if (next != set->end() && next->first == seq + 1) {
    SeenRange run = next->second;
    run.first_ref = ref;
    next = set->erase(next);
    set->emplace_hint(next, seq, run);
    return true;
  }
  set->emplace_hint(next, seq, SeenRange{seq, ref, ref});
  return true;
}

uint32_t Verifier::InternLog(const std::string& log_id) {
  if (log_id.empty()) return 0;
  auto it = log_index_.find(log_id);
  if (it != log_index_.end()) return it->second;
  const auto index = static_cast<uint32_t>(log_ids_.size());
  log_ids_.push_back(log_id);
  log_index_.emplace(log_id, index);
  return index;
}

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

  LogRef ref;
  if (record.log_seq.has_value()) {
    ref.known = true;
    ref.seq = *record.log_seq;
    ref.log = InternLog(record.log_id);
  }
  if (!InsertSeq(&boot.seen, record.seq, ref)) {
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

void Verifier::AddPayload(std::string_view payload, const RecordOrigin& origin) {
  DeviceEvent event;
  Status s = DeviceEvent::Decode(payload, &event);
  if (!s.ok()) {
    AddForeign(origin.partition, origin.offset, s.message());
    return;
  }
  VerifyRecord r;
  r.device = std::move(event.device);
  r.boot = event.boot;
  r.seq = event.seq;
  r.sent_ms = event.ts_ms;
  r.kafka_ts_ms = origin.timestamp_ms;
  r.partition = origin.partition;
  r.offset = origin.offset;
  r.log_seq = origin.log_seq;
  r.log_id = origin.log_id;
  Add(r);
}

void Verifier::AddGap(const VerifyGap& gap) {
  gap_records_++;
  gaps_.insert({gap.log, gap.first_seq, gap.last_seq, gap.count});
}

void Verifier::AddGapPayload(std::string_view payload, const RecordOrigin& origin) {
  VerifyGap gap;
  Status s = VerifyGap::Decode(payload, &gap);
  if (!s.ok()) {
    AddForeign(origin.partition, origin.offset, s.message());
    return;
  }
  AddGap(gap);
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

  // Gap records name logs by id; events by index into log_ids_. A log that no event named gets an
  // index of its own, so that only windows open to any log meet it.
  std::vector<GapBudget> budgets;
  std::map<std::string, uint32_t, std::less<>> unnamed_logs;
  for (const GapKey& g : gaps_) {
    uint32_t log = 0;
    if (auto it = log_index_.find(g.log); it != log_index_.end()) {
      log = it->second;
    } else {
      log = unnamed_logs
                .try_emplace(g.log, static_cast<uint32_t>(log_ids_.size() + unnamed_logs.size()))
                .first->second;
    }
    budgets.push_back({log, g.first_seq, g.last_seq, g.count});
    report.gaps.events += g.count;
  }
  report.gaps.records = gaps_.size();
  report.gaps.repeats = gap_records_ - gaps_.size();

  // Spends gap records' counts on up to `need` missing events whose window meets them.
  auto spend = [&budgets](const std::vector<LogWindow>& windows, uint64_t need) {
    uint64_t taken = 0;
    for (GapBudget& b : budgets) {
      if (taken == need) break;
      if (b.left == 0) continue;
      const bool meets = std::any_of(windows.begin(), windows.end(),
                                     [&b](const LogWindow& w) { return Meets(w, b); });
      if (!meets) continue;
      const uint64_t t = std::min(b.left, need - taken);
      b.left -= t;
      taken += t;
    }
    return taken;
  };

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

    // The boots in order, with what arrived of each, so that a missing run at the edge of a boot
    // finds its neighbours in the boots before and after.
    std::vector<const BootState*> states;
    for (uint32_t n : boot_numbers) {
      const BootState* bs = nullptr;
      if (state != nullptr) {
        auto b = state->boots.find(n);
        if (b != state->boots.end()) bs = &b->second;
      }
      states.push_back(bs);
    }
    std::vector<std::optional<LogRef>> before(states.size());
    std::vector<std::optional<LogRef>> after(states.size());
    for (size_t i = 1; i < states.size(); ++i) {
      const BootState* p = states[i - 1];
      before[i] =
          p != nullptr && !p->seen.empty() ? p->seen.rbegin()->second.last_ref : before[i - 1];
    }
    for (size_t i = states.size(); i-- > 1;) {
      const BootState* n = states[i];
      after[i - 1] =
          n != nullptr && !n->seen.empty() ? n->seen.begin()->second.first_ref : after[i];
    }

    size_t index = 0;
    for (uint32_t n : boot_numbers) {
      const size_t i = index++;
      const BootState* bs = states[i];
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
        for (const auto& [first, run] : bs->seen) {
          covered.push_back({first, run.last});
          r.unique += run.last - first + 1;
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

      for (const SeqRange& m : Gaps(r.first_seq, r.last_seq, covered)) {
        std::optional<LogRef> prev = before[i];
        std::optional<LogRef> next = after[i];
        if (bs != nullptr) {
          auto it = bs->seen.lower_bound(m.first);
          if (it != bs->seen.begin()) prev = std::prev(it)->second.last_ref;
          it = bs->seen.upper_bound(m.last);
          if (it != bs->seen.end()) next = it->second.first_ref;
        }
        const bool prev_known = prev && prev->known;
        const bool next_known = next && next->known;
        if ((prev && !prev_known) || (next && !next_known)) {
          if (!budgets.empty()) report.gaps.by_count = true;
        }
        std::vector<LogWindow> windows;
        if (prev_known && next_known && prev->log != next->log && prev->log != 0 &&
            next->log != 0) {
          // The log changed between them (a re-created log): the run was logged at the end of
          // the one or at the start of the other.
          windows.push_back({prev->log, prev->seq, std::nullopt});
          windows.push_back({next->log, std::nullopt, next->seq});
        } else {
          LogWindow w;
          w.log = prev_known && prev->log != 0 ? prev->log : next_known ? next->log : 0;
          if (prev_known) w.lo = prev->seq;
          if (next_known) w.hi = next->seq;
          // A resend logged again can put the neighbours out of log order; their hull holds both.
          if (w.lo && w.hi && *w.lo > *w.hi) std::swap(w.lo, w.hi);
          windows.push_back(w);
        }
        const uint64_t need = Size(m);
        const uint64_t taken = spend(windows, need);
        // Drop-oldest drops a device's older events first, so the reported part is the run's start.
        if (taken > 0) r.reported_ranges.push_back({m.first, m.first + taken - 1});
        if (taken < need) r.lost_ranges.push_back({m.first + taken, m.last});
        r.dropped_reported += taken;
        r.lost += need - taken;
      }

      d.records += r.records;
      d.duplicates += r.duplicates;
      d.reordered += r.reordered;
      d.lost += r.lost;
      d.dropped_reported += r.dropped_reported;
      d.dropped_by_device += r.dropped_by_device;
      d.unexpected += r.unexpected;
      report.totals.unique += r.unique;
      d.boots.push_back(std::move(r));
    }

    report.totals.devices++;
    report.totals.boots += d.boots.size();
    report.totals.records += d.records;
    report.totals.lost += d.lost;
    report.totals.dropped_reported += d.dropped_reported;
    report.totals.duplicates += d.duplicates;
    report.totals.reordered += d.reordered;
    report.totals.stale_boot += d.stale_boot;
    report.totals.dropped_by_device += d.dropped_by_device;
    report.totals.unexpected += d.unexpected;
    report.devices.push_back(std::move(d));
  }
  report.gaps.accounted = report.totals.dropped_reported;
  report.latency = LatencyStats::Of(&all_latencies);
  return report;
}

}  // namespace sluice::sim
