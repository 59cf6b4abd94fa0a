// SPDX-License-Identifier: Apache-2.0

#include "common/metrics_registry.h"

#include <doctest/doctest.h>

#include <stdexcept>

namespace sluice {
namespace {

TEST_CASE("MetricsRegistry renders each family once with HELP and TYPE, series by labels") {
  MetricsRegistry m;
  Counter* c = m.AddCounter("x_events_total", "Events seen.");
  c->Add(41);
  c->Add();
  m.AddGauge("x_up", "Up or not.", {{"peer", "kafka"}})->Set(1);
  double refused_small = 3;
  m.AddCounterFunction("x_refused_total", "Refused events.", {{"reason", "small"}},
                       [&] { return refused_small; });
  m.AddCounterFunction("x_refused_total", "Refused events.", {{"reason", "big"}},
                       [] { return 5.0; });
  m.AddGaugeFunction("x_age_seconds", "Age.", {}, [] { return 1.5; });
  refused_small = 4;  // read at rendering time, not at registration
  CHECK(m.ExpositionText() ==
        "# HELP x_events_total Events seen.\n"
        "# TYPE x_events_total counter\n"
        "x_events_total 42\n"
        "# HELP x_up Up or not.\n"
        "# TYPE x_up gauge\n"
        "x_up{peer=\"kafka\"} 1\n"
        "# HELP x_refused_total Refused events.\n"
        "# TYPE x_refused_total counter\n"
        "x_refused_total{reason=\"small\"} 4\n"
        "x_refused_total{reason=\"big\"} 5\n"
        "# HELP x_age_seconds Age.\n"
        "# TYPE x_age_seconds gauge\n"
        "x_age_seconds 1.5\n");
}

TEST_CASE(
    "MetricsRegistry renders a histogram as cumulative _bucket lines up to +Inf, _sum, _count") {
  MetricsRegistry m;
  Histogram* h = m.AddHistogram("x_latency_seconds", "Latency.", {0.005, 0.5, 1}, {{"q", "a"}});
  h->Observe(0.5);  // on a bound: counted in that bucket ("less than or equal")
  h->Observe(0.25);
  h->Observe(0.75);
  h->Observe(7);
  CHECK(m.ExpositionText() ==
        "# HELP x_latency_seconds Latency.\n"
        "# TYPE x_latency_seconds histogram\n"
        "x_latency_seconds_bucket{q=\"a\",le=\"0.005\"} 0\n"
        "x_latency_seconds_bucket{q=\"a\",le=\"0.5\"} 2\n"
        "x_latency_seconds_bucket{q=\"a\",le=\"1\"} 3\n"
        "x_latency_seconds_bucket{q=\"a\",le=\"+Inf\"} 4\n"
        "x_latency_seconds_sum{q=\"a\"} 8.5\n"
        "x_latency_seconds_count{q=\"a\"} 4\n");
}

TEST_CASE("MetricsRegistry escapes label values and help text as the text format requires") {
  CHECK(MetricsRegistry::EscapeLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  CHECK(MetricsRegistry::EscapeHelp("a\"b\\c\nd") == "a\"b\\\\c\\nd");
  MetricsRegistry m;
  m.AddGauge("x_info", "Line one\nline two \\ end.", {{"path", "C:\\dir \"x\""}})->Set(1);
  CHECK(m.ExpositionText() ==
        "# HELP x_info Line one\\nline two \\\\ end.\n"
        "# TYPE x_info gauge\n"
        "x_info{path=\"C:\\\\dir \\\"x\\\"\"} 1\n");
}

TEST_CASE("MetricsRegistry formats special and fractional values so Prometheus reads them back") {
  CHECK(MetricsRegistry::FormatValue(0) == "0");
  CHECK(MetricsRegistry::FormatValue(12345678) == "12345678");
  CHECK(MetricsRegistry::FormatValue(-3) == "-3");
  CHECK(MetricsRegistry::FormatValue(0.25) == "0.25");
  CHECK(MetricsRegistry::FormatValue(0.0005) == "0.0005");
  CHECK(std::stod(MetricsRegistry::FormatValue(1e-9)) == 1e-9);
  CHECK(std::stod(MetricsRegistry::FormatValue(1e300)) == 1e300);
  CHECK(std::stod(MetricsRegistry::FormatValue(1.0 / 3)) == 1.0 / 3);
  CHECK(MetricsRegistry::FormatValue(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(MetricsRegistry::FormatValue(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(MetricsRegistry::FormatValue(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE(
    "MetricsRegistry refuses bad names, type clashes, duplicate series and le on histograms") {
  MetricsRegistry m;
  CHECK_THROWS_AS(m.AddCounter("1x", "h"), std::invalid_argument);
  CHECK_THROWS_AS(m.AddCounter("x-y", "h"), std::invalid_argument);
  CHECK_THROWS_AS(m.AddGauge("x", "h", {{"bad-label", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(m.AddGauge("x", "h", {{"__reserved", "v"}}), std::invalid_argument);
  CHECK_THROWS_AS(m.AddHistogram("h_seconds", "h", {1}, {{"le", "1"}}), std::invalid_argument);
  m.AddCounter("x_total", "h", {{"a", "1"}});
  CHECK_THROWS_AS(m.AddGauge("x_total", "h"), std::invalid_argument);
  CHECK_THROWS_AS(m.AddCounter("x_total", "h", {{"a", "1"}}), std::invalid_argument);
  CHECK_NOTHROW(m.AddCounter("x_total", "h", {{"a", "2"}}));
}

}  // namespace
}  // namespace sluice
