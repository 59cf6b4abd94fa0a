// SPDX-License-Identifier: Apache-2.0

#include "common/metrics_registry.h"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace sluice {

namespace {

bool ValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool ValidLabelName(const std::string& name) {
  // Names starting with "__" are reserved for Prometheus itself.
  if (name.empty() || name.starts_with("__")) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

const char* TypeName(int type) {
  static constexpr const char* kNames[] = {"counter", "gauge", "histogram"};
  return kNames[type];
}

// `{a="x",b="y"}`, with `extra` (the histogram's le) last; empty when there are no labels.
std::string LabelSet(const MetricsRegistry::Labels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) return "";
  std::string out = "{";
  for (const auto& [k, v] : labels) {
    if (out.size() > 1) out += ',';
    out += k + "=\"" + MetricsRegistry::EscapeLabelValue(v) + "\"";
  }
  if (!extra.empty()) {
    if (out.size() > 1) out += ',';
    out += extra;
  }
  return out + "}";
}

}  // namespace

std::string MetricsRegistry::EscapeHelp(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string MetricsRegistry::EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string MetricsRegistry::FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counts are integers and read best as such; everything else in the shortest form that reads
  // back to the same double (Go's ParseFloat, which Prometheus uses, takes either notation).
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<long long>(v));
  }
  char buf[64];
  // Plain decimals ("0.0005" rather than "5e-04") where that stays short, as bucket bounds read
  // better so; still the shortest digits that read back to the same double.
  const double magnitude = std::fabs(v);
  const auto format =
      magnitude >= 1e-6 && magnitude < 1e15 ? std::chars_format::fixed : std::chars_format::general;
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, format);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

MetricsRegistry::Series& MetricsRegistry::AddSeriesLocked(const std::string& name,
                                                          const std::string& help, Type type,
                                                          Labels labels) {
  if (!ValidMetricName(name)) throw std::invalid_argument("invalid metric name '" + name + "'");
  for (const auto& [k, v] : labels) {
    (void)v;
    if (!ValidLabelName(k)) {
      throw std::invalid_argument("metric " + name + ": invalid label name '" + k + "'");
    }
    if (type == Type::kHistogram && k == "le") {
      throw std::invalid_argument("metric " + name + ": a histogram cannot have a label 'le'");
    }
  }
  Family* family = nullptr;
  for (Family& f : families_) {
    if (f.name == name) family = &f;
  }
  if (family == nullptr) {
    families_.push_back(Family{name, help, type, {}});
    family = &families_.back();
  } else if (family->type != type) {
    throw std::invalid_argument("metric " + name + " registered as " +
                                TypeName(static_cast<int>(family->type)) + " and as " +
                                TypeName(static_cast<int>(type)));
  }
  for (const Series& s : family->series) {
    if (s.labels == labels) {
      throw std::invalid_argument("metric " + name + LabelSet(labels) + " registered twice");
    }
  }
  family->series.push_back(Series{std::move(labels), nullptr, nullptr, nullptr, nullptr});
  return family->series.back();
}

Counter* MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                     Labels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = AddSeriesLocked(name, help, Type::kCounter, std::move(labels));
  s.counter = std::make_unique<Counter>();
  return s.counter.get();
}

Gauge* MetricsRegistry::AddGauge(const std::string& name, const std::string& help, Labels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = AddSeriesLocked(name, help, Type::kGauge, std::move(labels));
  s.gauge = std::make_unique<Gauge>();
  return s.gauge.get();
}

Histogram* MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                         std::vector<double> upper_bounds, Labels labels) {
  auto histogram = std::make_unique<Histogram>(std::move(upper_bounds));
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = AddSeriesLocked(name, help, Type::kHistogram, std::move(labels));
  s.histogram = std::move(histogram);
  return s.histogram.get();
}

void MetricsRegistry::AddCounterFunction(const std::string& name, const std::string& help,
                                         Labels labels, std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  AddSeriesLocked(name, help, Type::kCounter, std::move(labels)).read = std::move(read);
}

void MetricsRegistry::AddGaugeFunction(const std::string& name, const std::string& help,
                                       Labels labels, std::function<double()> read) {
  std::lock_guard<std::mutex> lock(mu_);
  AddSeriesLocked(name, help, Type::kGauge, std::move(labels)).read = std::move(read);
}

std::string MetricsRegistry::ExpositionText() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + TypeName(static_cast<int>(f.type)) + "\n";
    for (const Series& s : f.series) {
      if (s.histogram) {
        const Histogram::Snapshot snap = s.histogram->Collect();
        for (size_t i = 0; i <= snap.upper_bounds.size(); ++i) {
          const std::string le =
              i < snap.upper_bounds.size() ? FormatValue(snap.upper_bounds[i]) : "+Inf";
          out += f.name + "_bucket" + LabelSet(s.labels, "le=\"" + le + "\"") + " " +
                 std::to_string(snap.cumulative[i]) + "\n";
        }
        out += f.name + "_sum" + LabelSet(s.labels) + " " + FormatValue(snap.sum) + "\n";
        out += f.name + "_count" + LabelSet(s.labels) + " " + std::to_string(snap.count) + "\n";
        continue;
      }
      if (s.counter) {
        out += f.name + LabelSet(s.labels) + " " + std::to_string(s.counter->Value()) + "\n";
        continue;
      }
      double v = 0;
      if (s.gauge) {
        v = s.gauge->Value();
      } else if (s.read) {
        v = s.read();
      }
      out += f.name + LabelSet(s.labels) + " " + FormatValue(v) + "\n";
    }
  }
  return out;
}

}  // namespace sluice
