// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/upstream_site.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "tests/test_util.h"

namespace sluice::itest {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

Figures FiguresFromReport(const nlohmann::json& report) {
  Figures f;
  const auto& t = report.at("totals");
  f.records = t.at("records").get<uint64_t>();
  f.unique = t.at("unique").get<uint64_t>();
  f.lost = t.at("lost").get<uint64_t>();
  f.duplicates = t.at("duplicates").get<uint64_t>();
  f.reordered = t.at("reordered").get<uint64_t>();
  f.dropped_reported = t.at("dropped_reported").get<uint64_t>();
  f.unexpected = t.at("unexpected").get<uint64_t>();
  f.foreign = t.at("foreign").get<uint64_t>();
  f.gap_records = report.at("gaps").at("records").get<uint64_t>();
  f.gap_events = report.at("gaps").at("events").get<uint64_t>();
  return f;
}

void CheckArrivedInOrder(const Figures& v, uint64_t sent) {
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.unique == sent);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
}

void PrintFigures(const std::string& scenario, const std::string& upstream, const Figures& f) {
  std::printf(
      "scenario=%s upstream=%s records=%llu unique=%llu lost=%llu duplicates=%llu "
      "reordered=%llu dropped_reported=%llu gap_records=%llu gap_events=%llu foreign=%llu "
      "unexpected=%llu verdict=%d\n",
      scenario.c_str(), upstream.c_str(), static_cast<unsigned long long>(f.records),
      static_cast<unsigned long long>(f.unique), static_cast<unsigned long long>(f.lost),
      static_cast<unsigned long long>(f.duplicates), static_cast<unsigned long long>(f.reordered),
      static_cast<unsigned long long>(f.dropped_reported),
      static_cast<unsigned long long>(f.gap_records), static_cast<unsigned long long>(f.gap_events),
      static_cast<unsigned long long>(f.foreign), static_cast<unsigned long long>(f.unexpected),
      f.rc);
  std::fflush(stdout);
}

UpstreamSite::UpstreamSite(const std::string& family, const std::string& name, std::string scenario)
    : f(family, name),
      sim_bin(MustEnv("SLUICE_SIM_BIN")),
      verify_bin(MustEnv("SLUICE_VERIFY_BIN")),
      metrics_port(MetricsPortFromEnvironment()),
      gateway(f.cfg.gateway_id),
      scenario_(std::move(scenario)) {
  client_prefix_ = family + "-" + gateway.substr(name.size() + 1);
}

void UpstreamSite::Start(const std::string& series) {
  f.StartSluice({}, ReadFile(ConfigPath()));
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        if (!series.empty()) return MetricValue(metrics_port, series) >= 0;
                        return HttpGet(metrics_port, "/metrics").status == 200;
                      },
                      30s, 20ms),
                  f.Log());
}

std::unique_ptr<ChildProcess> UpstreamSite::LaunchFleet(const FleetPlan& plan) const {
  std::vector<std::string> args = {"--url",           f.env.mqtt_url,
                                   "--profiles",      plan.profiles,
                                   "--events",        std::to_string(plan.events),
                                   "--total-rate",    std::to_string(plan.rate),
                                   "--seed",          std::to_string(plan.seed),
                                   "--client-prefix", client_prefix_,
                                   "--summary-json",  Summary(),
                                   "--qos-door",      "1"};
  if (plan.progress) {
    args.push_back("--progress-interval");
    args.push_back("5");
  }
  args.push_back("--flush-timeout");
  args.push_back("30");
  // Room for every event in each device's queue: a stall of the shared CI machine (the sanitizer
  // builds run beside these tests) once held the publishes back for over a second, and the
  // devices dropped 1,169 events of 8,000 before sluice ever saw them. The tests measure sluice.
  args.push_back("--queue");
  args.push_back(std::to_string(std::max<uint64_t>(plan.events, 1000)));
  if (plan.payload_bytes > 0) {
    args.push_back("--payload-bytes");
    args.push_back(std::to_string(plan.payload_bytes));
  }
  return std::make_unique<ChildProcess>(sim_bin, args, f.dir.File("fleet.log"));
}

uint64_t UpstreamSite::FinishFleet(ChildProcess& fleet, std::chrono::seconds timeout) const {
  auto status = fleet.Wait(timeout);
  REQUIRE_MESSAGE(status.has_value(), ReadFile(fleet.log_path()));
  REQUIRE_MESSAGE(*status == 0, ReadFile(fleet.log_path()));
  const auto totals = nlohmann::json::parse(ReadFile(Summary()))["totals"];
  std::printf("scenario=%s fleet %s\n", scenario_.c_str(), totals.dump().c_str());
  return totals["sent"].get<uint64_t>();
}

uint64_t UpstreamSite::HeldWhileCut(const std::string& upstream, uint64_t events) const {
  const uint64_t held_cursor = Cursor(upstream).cursor;
  const uint64_t logged = f.LastSeq();
  REQUIRE_MESSAGE(sluice::testing::WaitFor([&] { return f.LastSeq() >= logged + events; },
                                           std::chrono::seconds(30), std::chrono::milliseconds(20)),
                  f.Log());
  CHECK(Cursor(upstream).cursor == held_cursor);
  return f.LastSeq() - held_cursor;
}

uint64_t UpstreamSite::DrainAfterHeal(ChildProcess& fleet, uint64_t held,
                                      std::chrono::steady_clock::time_point healed) const {
  const uint64_t sent = FinishFleet(fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(sluice::testing::WaitFor([&] { return AllDrained(sent, 1); },
                                           std::chrono::seconds(90), std::chrono::milliseconds(20)),
                  f.Log());
  std::printf(
      "scenario=%s %llu events held when the link healed, all %llu confirmed %.1f s later\n",
      scenario_.c_str(), static_cast<unsigned long long>(held),
      static_cast<unsigned long long>(sent), Seconds(std::chrono::steady_clock::now() - healed));
  return sent;
}

storage::CursorStats UpstreamSite::Cursor(const std::string& upstream) const {
  auto st = f.MaybeStats();
  if (!st) return {};
  for (const auto& c : st->cursors) {
    if (c.name == upstream) return c;
  }
  return {};
}

bool UpstreamSite::AllDrained(uint64_t last, size_t upstreams) const {
  auto st = f.MaybeStats();
  if (!st || st->last_seq < last) return false;
  for (const auto& c : st->cursors) {
    if (c.cursor != st->last_seq || c.events != 0) return false;
  }
  return st->cursors.size() == upstreams;
}

double UpstreamSite::Metric(const std::string& name, const std::string& upstream) const {
  return MetricValue(metrics_port, name + "{upstream=\"" + upstream + "\"}");
}

Figures UpstreamSite::RunVerify(const std::string& args, const std::string& stem) const {
  const std::string json = f.dir.File(stem + ".json");
  const std::string out = f.dir.File(stem + ".txt");
  const int rc = Shell(verify_bin + args + " --json " + json + " >" + out + " 2>&1");
  const std::string report = ReadFile(json);
  Figures v = report.empty() ? Figures{} : FiguresFromReport(nlohmann::json::parse(report));
  v.rc = rc;
  v.text = ReadFile(out);
  return v;
}

}  // namespace sluice::itest
