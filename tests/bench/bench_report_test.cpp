// SPDX-License-Identifier: Apache-2.0

#include "bench/bench_report.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace sluice::bench {
namespace {

using nlohmann::json;

// A run directory holding raw files as bench/run.sh leaves them.
class RunDir {
 public:
  RunDir() { std::filesystem::create_directories(dir_.path() / "raw"); }
  void Put(const std::string& name, const json& j) const {
    std::ofstream(dir_.File("raw/" + name)) << j.dump();
  }
  std::string Markdown() const {
    std::ifstream in(dir_.File("results.md"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  std::string path() const { return dir_.path().string(); }

 private:
  sluice::testing::TempDir dir_;
};

constexpr double kEvents = 20000;

// A drain of kEvents: the cursor moved at `moved_us` and reached the end `seconds` later.
void PutDrain(const RunDir& run, const std::string& prefix, double moved_us, double seconds,
              double cpu_s) {
  run.Put(
      prefix + ".log.json",
      {{"reached", true}, {"cursor_moved_us", moved_us}, {"reached_us", moved_us + seconds * 1e6}});
  run.Put(prefix + ".proc.json", {{"cpu_s", cpu_s}, {"t0_us", moved_us - 500000}});
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

bool Contains(const json& list, const std::string& item) {
  for (const auto& e : list) {
    if (e == item) return true;
  }
  return false;
}

TEST_CASE("BenchReport sets the Kinesis and RabbitMQ drains beside Kafka's") {
  RunDir run;
  run.Put("sizes.json",
          {{"stages", {"drain", "drain-kinesis", "drain-rabbitmq"}}, {"outage_events", kEvents}});
  run.Put("outage.pub.json", {{"completed", kEvents}, {"start_us", 1e12}});
  PutDrain(run, "drain", 2e12, 0.8, 1.2);
  PutDrain(run, "kinesis-drain", 3e12, 2.5, 0.44);
  PutDrain(run, "rabbitmq-drain", 4e12, 1.25, 0.3);
  BenchReport report(run.path());
  REQUIRE(report.Build().ok());
  const auto& r = report.results();

  const double kafka = kEvents / 0.8;
  CHECK(r["sluice"]["drain_events_per_s"].get<double>() == doctest::Approx(kafka));
  const struct {
    const char* key;
    const char* label;
    double seconds;
    double cpu_s;
  } upstreams[] = {{"kinesis", "| Kinesis", 2.5, 0.44}, {"rabbitmq", "| RabbitMQ", 1.25, 0.3}};
  const std::string md = run.Markdown();
  for (const auto& u : upstreams) {
    CAPTURE(u.key);
    REQUIRE(r.contains(u.key));
    const auto& q = r[u.key];
    const double rate = kEvents / u.seconds;
    CHECK(q["outage_events"].get<double>() == kEvents);
    CHECK(q["drain_events_per_s"].get<double>() == doctest::Approx(rate));
    // From the upstream's start (0.5 s before the cursor moved) to the end.
    CHECK(q["drain_seconds"].get<double>() == doctest::Approx(u.seconds + 0.5));
    CHECK(q["forward_cpu_s_per_million"].get<double>() == doctest::Approx(u.cpu_s / kEvents * 1e6));
    CHECK(q["drain_over_kafka"].get<double>() == doctest::Approx(rate / kafka));
    // Its row in the table of drains: rate, time, CPU and the ratio to Kafka's drain.
    const size_t at = md.find(u.label);
    REQUIRE_MESSAGE(at != std::string::npos, md);
    const std::string line = md.substr(at, md.find('\n', at) - at);
    CHECK_MESSAGE(line.find("| " + Fixed(rate, 0) + " | " + Fixed(u.seconds + 0.5, 1) + " | " +
                            Fixed(u.cpu_s / kEvents * 1e6, 1) + " | " + Fixed(rate / kafka, 2) +
                            " |") != std::string::npos,
                  line);
  }
  CHECK_MESSAGE(
      md.find("| Kafka (at-least-once) | 20000 | " + Fixed(kafka, 0)) != std::string::npos, md);
  for (const auto& m : r["missing"]) {
    CHECK_MESSAGE(m.get<std::string>().rfind("kinesis.", 0) != 0, m);
    CHECK_MESSAGE(m.get<std::string>().rfind("rabbitmq.", 0) != 0, m);
  }
}

TEST_CASE("BenchReport lists a drain stage's figures missing when it wrote none") {
  RunDir run;
  run.Put("sizes.json", {{"stages", {"drain-kinesis"}}, {"outage_events", kEvents}});
  BenchReport report(run.path());
  REQUIRE(report.Build().ok());
  const auto& r = report.results();
  CHECK(Contains(r["missing"], "kinesis.drain_events_per_s"));
  CHECK(Contains(r["missing"], "kinesis.forward_cpu_s_per_million"));
  // Kafka's drain was not part of the run: no ratio is owed.
  CHECK_FALSE(Contains(r["missing"], "kinesis.drain_over_kafka"));
  CHECK_FALSE(r.contains("rabbitmq"));
  const std::string md = run.Markdown();
  CHECK_MESSAGE(md.find("| Kinesis") != std::string::npos, md);
  CHECK_MESSAGE(md.find("RabbitMQ (") == std::string::npos, md);
  CHECK_MESSAGE(md.find("| Kafka (") == std::string::npos, md);
}

TEST_CASE("BenchReport shows the spread of the online p99 over the seconds of the run") {
  RunDir run;
  run.Put("sizes.json", {{"stages", {"drain"}}, {"outage_events", kEvents}});
  for (const char* rate : {"1000", "10000"}) {
    const std::string stage = std::string("latency-") + rate;
    run.Put(stage + ".pub.json", {{"rate", std::stod(rate)}, {"completed", 3000}});
    run.Put(stage + ".kafka.json",
            {{"events",
              {{"unique", 3000},
               {"missing", 0},
               {"duplicates", 0},
               {"latency_ms", {{"p50", 11.5}, {"p99", 40.3}, {"p999", 50.0}, {"max", 60.0}}},
               {"per_second",
                {{{"second", 0}, {"count", 1000}, {"p99", 18.2}, {"max", 21.0}},
                 {{"second", 1}, {"count", 1000}, {"p99", 45.5}, {"max", 60.0}},
                 {{"second", 2}, {"count", 1000}, {"p99", 17.7}, {"max", 20.0}}}}}},
             {"to_sluice", {{"latency_ms", {{"p50", 0.6}, {"p99", 2.1}}}}},
             {"after_sluice", {{"latency_ms", {{"p50", 10.9}, {"p99", 38.2}}}}}});
  }
  run.Put("latency-10000.gc.json", {{"pauses", 2}, {"total_ms", 230.5}, {"max_ms", 219.6}});
  BenchReport report(run.path());
  REQUIRE(report.Build().ok());
  const auto& row = report.results()["latency"][1];
  CHECK(row["kafka_gc_pauses"].get<double>() == 2);
  CHECK(row["kafka_gc_max_ms"].get<double>() == 219.6);
  CHECK(row["p99_ms"].get<double>() == 40.3);
  CHECK(row["p99_second_min_ms"].get<double>() == 17.7);
  CHECK(row["p99_second_max_ms"].get<double>() == 45.5);
  const std::string md = run.Markdown();
  CHECK_MESSAGE(md.find("| 10000 ev/s | 10000 | 3000 | 3000 | 0 | 0 | 11.5 ms | 40.3 ms | 50.0 ms "
                        "| 60.0 ms | 17.7..45.5 ms |") != std::string::npos,
                md);
  CHECK_MESSAGE(
      md.find("at 10000 ev/s: publish -> sluice p50 0.6 ms, p99 2.1 ms; sluice -> Kafka "
              "append p50 10.9 ms, p99 38.2 ms. Kafka's garbage-collection pauses "
              "meanwhile: 2, 230.5 ms in all, the longest 219.6 ms.") != std::string::npos,
      md);
}

}  // namespace
}  // namespace sluice::bench
