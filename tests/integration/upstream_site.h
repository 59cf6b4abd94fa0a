// SPDX-License-Identifier: Apache-2.0

#pragma once

// What the daemon-level upstream tests (upstreams, rabbitmq, kinesis) share: one case's sluice
// with its metrics server, a simulated fleet (sluice-sim) publishing into the brokers fixture's
// Mosquitto, the log's cursors and metrics, and sluice-verify's report. Each suite derives its
// Site from UpstreamSite and adds its own broker and configuration. Not thread-safe: one case,
// one thread.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "storage/event_log.h"
#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"

namespace sluice::itest {

// The totals of one verifier report (sluice-verify --json, or the verifier library's ToJson).
struct Figures {
  int rc = -1;  // sluice-verify's exit status; 0 for the in-process verifier when it passed
  uint64_t records = 0, unique = 0, lost = 0, duplicates = 0, reordered = 0;
  uint64_t dropped_reported = 0, unexpected = 0, foreign = 0, gap_records = 0, gap_events = 0;
  std::string text;  // the verifier's table or failures, for the failure message
};

// The figures of a verifier report; rc and text are left for the caller.
Figures FiguresFromReport(const nlohmann::json& report);

// Prints `f` as one line, `scenario=<scenario> upstream=<upstream> records=..`, so that it can be
// quoted.
void PrintFigures(const std::string& scenario, const std::string& upstream, const Figures& f);

// Checks (without ending the case) that a verifier run found every one of the `sent` events, in
// order per device: it passed, `sent` unique, 0 lost, 0 reordered; duplicates are the caller's.
void CheckArrivedInOrder(const Figures& v, uint64_t sent);

// What a case's fleet publishes (sluice-sim's arguments), QoS 1 into the brokers fixture.
struct FleetPlan {
  std::string profiles;  // e.g. "telemetry:4"
  uint64_t events = 0;   // in all
  int rate = 0;          // events/s in all
  uint64_t seed = 0;
  bool progress = true;      // a progress line every 5 s
  size_t payload_bytes = 0;  // 0: sluice-sim's default
};

class UpstreamSite {
 public:
  // `family` keeps each suite's names apart on the shared brokers (SluiceFixture) and prefixes
  // the fleet's client ids; `scenario` names the case in the lines it prints. Throws
  // std::runtime_error when the environment lacks a variable.
  UpstreamSite(const std::string& family, const std::string& name, std::string scenario);

  std::string ConfigPath() const { return f.cfg.dir + "/sluice.toml"; }
  // Starts or restarts sluice on the configuration at ConfigPath() and waits for this run's
  // READY=1 and for /metrics to answer; with `series`, for /metrics to hold that series too.
  void Start(const std::string& series = "");

  std::unique_ptr<ChildProcess> LaunchFleet(const FleetPlan& plan) const;
  std::string Summary() const { return f.dir.File("fleet.json"); }
  // Waits for the fleet to finish; the events the local broker acknowledged to it.
  uint64_t FinishFleet(ChildProcess& fleet,
                       std::chrono::seconds timeout = std::chrono::seconds(120)) const;

  // The cursor of `upstream`; zeros while the log cannot be read or lacks it.
  storage::CursorStats Cursor(const std::string& upstream) const;
  // Exactly `upstreams` cursors, each at the end of a log whose last seq is at least `last`:
  // every upstream confirmed everything.
  bool AllDrained(uint64_t last, size_t upstreams) const;
  // The value of metric `name` for `upstream`; -1 when /metrics lacks it or did not answer.
  double Metric(const std::string& name, const std::string& upstream) const;

  // While `upstream` is cut off: waits (30 s) until the log took `events` more, checks that the
  // upstream's cursor stayed where it was, and returns how many events the log holds beyond it.
  uint64_t HeldWhileCut(const std::string& upstream, uint64_t events) const;
  // The cut healed at `healed`: waits for the fleet, then (90 s) until the one upstream confirmed
  // every event it sent, and prints how long that took after the heal with `held`, the events
  // held then. Returns what the fleet sent.
  uint64_t DrainAfterHeal(ChildProcess& fleet, uint64_t held,
                          std::chrono::steady_clock::time_point healed) const;

  // Runs sluice-verify with `args` (everything but --json) and reads its report, written to
  // <stem>.json, its output to <stem>.txt. Without a report only rc and text are set.
  Figures RunVerify(const std::string& args, const std::string& stem) const;

  SluiceFixture f;
  std::string sim_bin;
  std::string verify_bin;
  int metrics_port;
  std::string gateway;

 protected:
  std::string scenario_;
  std::string client_prefix_;  // <family>-<the gateway id's unique suffix>
};

}  // namespace sluice::itest
