// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"

namespace sluice::bench {

// Turns the raw measurements that bench/run.sh leaves in <out>/raw (one JSON file per probe and
// stage) into results.json and results.md: the figures, the ratios to the no-gateway ceiling and
// to Mosquitto's bridge, and each target met or missed. A missing file leaves its figures null
// ("n/a" in the table) instead of failing, so a partial run still reports what it measured.
class BenchReport {
 public:
  explicit BenchReport(std::string out_dir) : dir_(std::move(out_dir)) {}

  Status Build();  // reads <dir>/raw, writes <dir>/results.json and <dir>/results.md
  const nlohmann::ordered_json& results() const { return results_; }

 private:
  nlohmann::json Raw(const std::string& name) const;  // null if absent or unreadable
  // Stages 3-5 of one delivery mode, from the raw files named with `prefix` ("" at-least-once,
  // "eos-" exactly-once): the latency rows, and sluice's outage, drain and process figures.
  nlohmann::ordered_json LatencyRows(const std::string& prefix) const;
  // `suffix` names one repetition of the outage and drain (run.sh's rep_suffix: "" the first,
  // "-r2", "-r3", ... the others).
  nlohmann::ordered_json SluiceFigures(const std::string& prefix,
                                       const std::string& suffix = "") const;
  // Mosquitto bridge's outage and drain, one repetition.
  nlohmann::ordered_json BridgeFigures(const std::string& suffix) const;
  // Every repetition of a stage whose first repetition's marker file is `first_file`: the
  // suffixes of those that left their marker (always at least the first, so that a missing stage
  // still reports its figures as null).
  std::vector<std::string> Repetitions(const std::string& first_file) const;
  // The drain of `outage_events` to another upstream, from <raw>.log.json and <raw>.proc.json,
  // held against Kafka's drain (`kafka`: SluiceFigures("")).
  nlohmann::ordered_json OtherDrainFigures(const std::string& raw, double outage_events,
                                           const nlohmann::ordered_json& kafka) const;
  std::string Markdown() const;

  const std::string dir_;
  nlohmann::ordered_json results_;
};

}  // namespace sluice::bench
