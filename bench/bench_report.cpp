// SPDX-License-Identifier: Apache-2.0

#include "bench/bench_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace sluice::bench {

namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// j[a][b]... as a double, or NaN when any step is missing.
double Num(const json& j, std::initializer_list<const char*> path) {
  const json* p = &j;
  for (const char* k : path) {
    if (!p->is_object() || !p->contains(k)) return NAN;
    p = &(*p)[k];
  }
  return p->is_number() ? p->get<double>() : NAN;
}

json Or(double v) {
  return std::isnan(v) ? json(nullptr) : json(v);
}

double Rate(double events, double from_us, double to_us) {
  return to_us > from_us ? events / ((to_us - from_us) / 1e6) : NAN;
}

std::string Fmt(const json& v, int decimals = 0, const char* unit = "") {
  if (!v.is_number()) return "n/a";
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(decimals);
  out << v.get<double>() << unit;
  return out.str();
}

// How a figure is held against its limit.
enum class Bound { kAtLeast, kAtMost, kBelow };

const char* BoundSign(Bound b) {
  switch (b) {
    case Bound::kAtLeast:
      return ">=";
    case Bound::kAtMost:
      return "<=";
    case Bound::kBelow:
      return "<";
  }
  return "?";
}

std::string Verdict(const json& value, double limit, Bound bound) {
  if (!value.is_number()) return "n/a";
  const double v = value.get<double>();
  bool met = false;
  switch (bound) {
    case Bound::kAtLeast:
      met = v >= limit;
      break;
    case Bound::kAtMost:
      met = v <= limit;
      break;
    case Bound::kBelow:
      met = v < limit;
      break;
  }
  return met ? "met" : "MISSED";
}

// Median, minimum and maximum of the numbers among `values` (NaN when there is none).
struct Spread {
  double median = NAN;
  double min = NAN;
  double max = NAN;
};

Spread SpreadOf(std::vector<double> values) {
  std::erase_if(values, [](double v) { return std::isnan(v); });
  Spread out;
  if (values.empty()) return out;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  out.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  out.min = values.front();
  out.max = values.back();
  return out;
}

// row[key] = median, row[key_min], row[key_max] = the spread.
void PutSpread(ojson& row, const std::string& key, const Spread& s) {
  row[key] = Or(s.median);
  row[key + "_min"] = Or(s.min);
  row[key + "_max"] = Or(s.max);
}

// "median (min..max)", or the median alone when every repetition gave the same figure.
std::string FmtSpread(const json& row, const std::string& key, int decimals = 0) {
  const json& m = row.contains(key) ? row[key] : json(nullptr);
  const std::string mid = Fmt(m, decimals);
  if (!m.is_number() || !row.contains(key + "_min") || !row.contains(key + "_max")) return mid;
  const std::string lo = Fmt(row[key + "_min"], decimals);
  const std::string hi = Fmt(row[key + "_max"], decimals);
  return lo == hi ? mid : mid + " (" + lo + ".." + hi + ")";
}

// The figures of several repetitions in one: each number the median over the repetitions, except
// where the worst case is the honest figure (the peak RSS, the highest; losses and duplicates,
// the sum). A figure null in any repetition is null.
ojson Combine(const std::vector<ojson>& reps) {
  ojson out = reps.front();
  for (auto it = out.begin(); it != out.end(); ++it) {
    const std::string& key = it.key();
    std::vector<double> v;
    for (const ojson& r : reps) {
      const json x = r.contains(key) ? json(r[key]) : json(nullptr);
      v.push_back(x.is_number() ? x.get<double>() : NAN);
    }
    if (std::any_of(v.begin(), v.end(), [](double x) { return std::isnan(x); })) {
      it.value() = nullptr;
    } else if (key.starts_with("rss_")) {
      it.value() = *std::max_element(v.begin(), v.end());
    } else if (key.ends_with("_lost") || key.ends_with("_duplicated")) {
      double sum = 0;
      for (double x : v) sum += x;
      it.value() = sum;
    } else {
      it.value() = SpreadOf(v).median;
    }
  }
  return out;
}

// a[key] / b[key] per pair of repetitions, for the pairs where both are numbers and b is not 0.
std::vector<double> PairRatios(const std::vector<ojson>& a, const std::vector<ojson>& b,
                               const std::string& key) {
  std::vector<double> out;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const json x = a[i].contains(key) ? json(a[i][key]) : json(nullptr);
    const json y = b[i].contains(key) ? json(b[i][key]) : json(nullptr);
    if (x.is_number() && y.is_number() && y.get<double>() != 0)
      out.push_back(x.get<double>() / y.get<double>());
  }
  return out;
}

// Whether the run had `stage` (run.sh --stages, in sizes.json); a run without the list had all.
bool StageRan(const json& sizes, const char* stage) {
  if (!sizes.is_object() || !sizes.contains("stages")) return true;
  const json& st = sizes["stages"];
  return std::find(st.begin(), st.end(), stage) != st.end();
}

// The drains of run.sh's stages drain-kinesis and drain-rabbitmq: the stage, the key of its
// figures in results.json, the prefix of its raw files (<raw>.log.json, <raw>.proc.json), and its
// row and note under the table of drains.
struct UpstreamDrain {
  const char* stage;
  const char* key;
  const char* raw;
  const char* label;
  const char* note;
};
constexpr UpstreamDrain kUpstreamDrains[] = {
    {"drain-kinesis", "kinesis", "kinesis-drain",
     "Kinesis (kinesalite, HTTPS, a stream of 4 shards, 100 devices)",
     "kinesalite is a Node.js process on this machine: its row bounds the upstream's own cost, "
     "not Kinesis's rate."},
    {"drain-rabbitmq", "rabbitmq", "rabbitmq-drain", "RabbitMQ (a stream, publisher confirms)",
     "RabbitMQ's drain time includes the broker's boot."},
};

// Stages 3-5 under both delivery modes, side by side.
std::string ExactlyOnceMarkdown(const ojson& r) {
  const auto& alo_lat = r["latency"];
  const auto& eos_lat = r["exactly_once"]["latency"];
  const auto& alo = r["sluice"];
  const auto& eos = r["exactly_once"]["sluice"];
  std::ostringstream o;
  o << "\n### Exactly-once beside at-least-once (same run, QoS 1, 100 B, sync normal)\n\n"
       "| figure | at-least-once | exactly-once | exactly-once / at-least-once |\n"
       "|---|---|---|---|\n";
  auto line = [&](const std::string& label, const json& a, const json& e, int decimals) {
    const bool both = a.is_number() && e.is_number() && a.get<double>() != 0;
    o << "| " << label << " | " << Fmt(a, decimals) << " | " << Fmt(e, decimals) << " | "
      << (both ? Fmt(json(e.get<double>() / a.get<double>()), 2) : "n/a") << " |\n";
  };
  auto lat = [&](size_t row, const char* key) {
    return std::make_pair(alo_lat[row].value(key, json(nullptr)),
                          eos_lat[row].value(key, json(nullptr)));
  };
  struct LatLine {
    size_t row;
    const char* key;
    const char* label;
  };
  const LatLine lat_lines[] = {
      {0, "p50_ms", "p50 at 1,000 ev/s, publish -> Kafka append (ms)"},
      {0, "p99_ms", "p99 at 1,000 ev/s, publish -> Kafka append (ms)"},
      {0, "visible_p50_ms", "p50 at 1,000 ev/s, publish -> read_committed consumer (ms)"},
      {0, "visible_p99_ms", "p99 at 1,000 ev/s, publish -> read_committed consumer (ms)"},
      {1, "p99_ms", "p99 at 10,000 ev/s, publish -> Kafka append (ms)"},
  };
  for (const LatLine& l : lat_lines) {
    const auto [a, e] = lat(l.row, l.key);
    line(l.label, a, e, 1);
  }
  struct Line {
    const char* key;
    const char* label;
    int decimals;
  };
  const Line lines[] = {
      {"outage_ingest_events_per_s", "ingest during the outage (ev/s)", 0},
      {"drain_events_per_s", "drain rate, first to last drained event (ev/s)", 0},
      {"drain_seconds", "drain time from the upstream reported ready (s)", 1},
      {"drained_lost", "outage events lost", 0},
      {"drained_duplicated", "outage events duplicated", 0},
      {"live_during_drain_p99_ms", "live events during the drain: p99 latency (ms)", 0},
      {"store_cpu_s_per_million", "CPU-s per 1M events stored", 1},
      {"forward_cpu_s_per_million", "CPU-s per 1M events drained", 1},
      {"rss_peak_mib", "peak RSS over the outage and drain (MiB)", 1},
  };
  for (const Line& l : lines) {
    line(l.label, alo.value(l.key, json(nullptr)), eos.value(l.key, json(nullptr)), l.decimals);
  }
  return o.str();
}

}  // namespace

json BenchReport::Raw(const std::string& name) const {
  std::ifstream in(dir_ + "/raw/" + name);
  if (!in) return nullptr;
  json j = json::parse(in, nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

Status BenchReport::Build() {
  ojson r;
  r["machine"] = Raw("machine.json");
  r["sizes"] = Raw("sizes.json");

  const json& sizes = r["sizes"];
  auto ran = [&](const char* stage) { return StageRan(sizes, stage); };
  const int reps =
      sizes.is_object() ? std::max(1, sizes.value("repetitions", 1)) : 1;  // from run.sh
  const bool fsync_probe = sizes.is_object() && sizes.value("fsync_probe", false);

  // 1. Ingest into the durable log against the no-gateway ceiling: each repetition measures the
  // ceiling and then sluice, so that each ratio compares neighbours in time; the row holds the
  // medians and the spread (min..max) over the repetitions.
  ojson ingest = ojson::array();
  for (const char* sync : {"normal", "full"}) {
    for (int qos : {0, 1}) {
      for (int bytes : {100, 1024}) {
        const std::string s =
            std::string(sync) + "-q" + std::to_string(qos) + "-b" + std::to_string(bytes);
        const bool against_fsync = fsync_probe && std::string(sync) == "full" && qos == 1;
        std::vector<double> ceilings, sluices, ratios, bytes_per_event, cpu, probes, probe_ratios;
        double sent = 0, in_log = 0, ceiling_lost = 0;
        ojson runs = ojson::array();
        for (int i = 1; i <= reps; ++i) {
          const std::string rep = s + "-r" + std::to_string(i);
          const json cp = Raw("ceiling-" + rep + ".pub.json");
          const json cs = Raw("ceiling-" + rep + ".sub.json");
          const json ip = Raw("ingest-" + rep + ".pub.json");
          const json il = Raw("ingest-" + rep + ".log.json");
          const json pr = Raw("ingest-" + rep + ".proc.json");
          const double ceiling = Rate(Num(cs, {"events", "unique"}), Num(cp, {"start_us"}),
                                      Num(cs, {"events", "last_us"}));
          const double events = Num(pr, {"events_in_log"});
          const double rate = Rate(events, Num(ip, {"start_us"}), Num(il, {"reached_us"}));
          ceilings.push_back(ceiling);
          sluices.push_back(rate);
          ratios.push_back(rate / ceiling);
          bytes_per_event.push_back(Num(pr, {"write_bytes"}) / events);
          cpu.push_back(Num(pr, {"cpu_s"}) / events * 1e6);
          sent += Num(ip, {"sent"});
          in_log += events;
          ceiling_lost += Num(cs, {"events", "missing"});
          ojson run;
          run["ceiling_events_per_s"] = Or(ceiling);
          run["sluice_events_per_s"] = Or(rate);
          run["ratio"] = Or(rate / ceiling);
          if (against_fsync) {
            const double probe = Num(Raw("fsync-" + rep + ".json"), {"records_per_s"});
            probes.push_back(probe);
            probe_ratios.push_back(rate / probe);
            run["fsync_probe_records_per_s"] = Or(probe);
            run["ratio_to_fsync_probe"] = Or(rate / probe);
          }
          runs.push_back(run);
        }
        ojson row;
        row["sync"] = sync;
        row["qos"] = qos;
        row["payload_bytes"] = bytes;
        row["repetitions"] = reps;
        row["events_sent"] = Or(sent);
        row["events_in_log"] = Or(in_log);
        row["ceiling_lost"] = Or(ceiling_lost);
        PutSpread(row, "ceiling_events_per_s", SpreadOf(ceilings));
        PutSpread(row, "sluice_events_per_s", SpreadOf(sluices));
        PutSpread(row, "ratio", SpreadOf(ratios));
        row["write_bytes_per_event"] = Or(SpreadOf(bytes_per_event).median);
        row["cpu_s_per_million"] = Or(SpreadOf(cpu).median);
        if (against_fsync) {
          PutSpread(row, "fsync_probe_records_per_s", SpreadOf(probes));
          PutSpread(row, "ratio_to_fsync_probe", SpreadOf(probe_ratios));
        }
        row["runs"] = runs;
        ingest.push_back(row);
      }
    }
  }
  r["ingest"] = ingest;
  // Rows in the order above: sync normal QoS 0 100 B, 1024 B, QoS 1 ..., then sync full.
  auto ingest_row = [&](bool full, int qos, int bytes) -> const ojson& {
    return ingest[(full ? 4 : 0) + (qos == 1 ? 2 : 0) + (bytes == 1024 ? 1 : 0)];
  };
  auto ingest_value = [&](bool full, int qos, int bytes, const char* key) {
    const ojson& row = ingest_row(full, qos, bytes);
    return row.contains(key) ? json(row[key]) : json(nullptr);
  };

  // 2. Online latency, device publish to Kafka's append time.
  const ojson latency = LatencyRows("");
  r["latency"] = latency;

  // 3-6. Outage, drain, memory, CPU and writes, sluice beside Mosquitto's bridge, each repeated:
  // the figures combine the repetitions (Combine), and each ratio is the median of the ratios of
  // the repetitions taken pairwise (sluice's first drain with the bridge's first, and so on).
  std::vector<ojson> sluice_reps, bridge_reps;
  for (const std::string& sfx : Repetitions("drain.log.json"))
    sluice_reps.push_back(SluiceFigures("", sfx));
  for (const std::string& sfx : Repetitions("bridge-drain.sub.json"))
    bridge_reps.push_back(BridgeFigures(sfx));
  const ojson s = Combine(sluice_reps);
  r["sluice"] = s;
  const ojson b = Combine(bridge_reps);
  r["mosquitto_bridge"] = b;

  ojson ratio = ojson::object();  // an object even when empty: a partial run has no ratios
  for (auto it = s.begin(); it != s.end(); ++it) {
    const Spread q = SpreadOf(PairRatios(sluice_reps, bridge_reps, it.key()));
    if (!std::isnan(q.median)) ratio[it.key()] = q.median;
  }
  r["sluice_over_bridge"] = ratio;

  // The drain ceiling: a bare idempotent producer with the sink's settings on the same broker,
  // run before the first drain and after each (produce-probe-N.json), so that drain i lies between
  // probes i and i+1 and is held against their mean.
  std::vector<double> bare;
  ojson bare_runs = ojson::array();
  json bare_settings = nullptr;
  for (int i = 1; i <= 99; ++i) {
    const json p = Raw("produce-probe-" + std::to_string(i) + ".json");
    if (p.is_null()) break;
    bare.push_back(Num(p, {"records_per_s"}));
    bare_runs.push_back(ojson(Or(bare.back())));
    if (bare_settings.is_null() && p.contains("settings")) bare_settings = p["settings"];
  }
  std::vector<double> drains, over_bare;
  for (size_t i = 0; i < sluice_reps.size(); ++i) {
    const json d = sluice_reps[i].value("drain_events_per_s", json(nullptr));
    drains.push_back(d.is_number() ? d.get<double>() : NAN);
    double sum = 0;
    int n = 0;
    for (size_t k : {i, i + 1}) {
      if (k < bare.size() && !std::isnan(bare[k])) {
        sum += bare[k];
        ++n;
      }
    }
    if (d.is_number() && n > 0 && sum > 0) over_bare.push_back(d.get<double>() / (sum / n));
  }
  ojson dc;
  PutSpread(dc, "records_per_s", SpreadOf(bare));
  dc["runs"] = bare_runs;
  PutSpread(dc, "drain_events_per_s", SpreadOf(drains));
  std::vector<double> bridge_drains;
  for (const ojson& br : bridge_reps) {
    const json d = br.value("drain_events_per_s", json(nullptr));
    bridge_drains.push_back(d.is_number() ? d.get<double>() : NAN);
  }
  PutSpread(dc, "bridge_drain_events_per_s", SpreadOf(bridge_drains));
  PutSpread(dc, "drain_over_bare_producer", SpreadOf(over_bare));
  PutSpread(dc, "drain_over_bridge",
            SpreadOf(PairRatios(sluice_reps, bridge_reps, "drain_events_per_s")));
  dc["repetitions"] = sluice_reps.size();
  dc["settings"] = bare_settings;
  r["drain_ceiling"] = dc;

  // Targets (docs/performance.md and issue "QoS 1 at the broker's speed"): ratios in the same run,
  // absolute where the issue says so; each verdict is computed from the figures above.
  ojson t = ojson::array();
  auto target = [&](const std::string& what, const json& value, double limit, Bound bound) {
    t.push_back(
        {{"target", what},
         {"limit", std::string(BoundSign(bound)) + " " + Fmt(json(limit), limit < 10 ? 2 : 0)},
         {"value", value},
         {"verdict", Verdict(value, limit, bound)}});
  };
  auto per_bridge = [&](const char* key) { return json(ratio.value(key, json(nullptr))); };
  target("ingest QoS 0, sync normal, 100 B / ceiling", ingest_value(false, 0, 100, "ratio"), 0.9,
         Bound::kAtLeast);
  target("ingest QoS 1, sync normal, 100 B / ceiling", ingest_value(false, 1, 100, "ratio"), 0.9,
         Bound::kAtLeast);
  target("ingest QoS 1, sync normal, 1024 B / ceiling", ingest_value(false, 1, 1024, "ratio"), 0.9,
         Bound::kAtLeast);
  target("ingest QoS 1, sync full, 100 B / fsync probe",
         ingest_value(true, 1, 100, "ratio_to_fsync_probe"), 0.9, Bound::kAtLeast);
  target("bytes written per 100 B event, sync normal, QoS 0",
         ingest_value(false, 0, 100, "write_bytes_per_event"), 350, Bound::kAtMost);
  target("bytes written per 100 B event, sync normal, QoS 1",
         ingest_value(false, 1, 100, "write_bytes_per_event"), 600, Bound::kAtMost);
  target("CPU-s per 1M events stored / bridge", per_bridge("store_cpu_s_per_million"), 1.5,
         Bound::kAtMost);
  target("CPU-s per 1M events drained / bridge", per_bridge("forward_cpu_s_per_million"), 1.5,
         Bound::kAtMost);
  target("drain / bare idempotent producer", dc["drain_over_bare_producer"], 0.8, Bound::kAtLeast);
  target("drain / Mosquitto bridge", dc["drain_over_bridge"], 5, Bound::kAtLeast);
  target("online p99 at 1,000 ev/s (ms)", latency[0]["p99_ms"], 10, Bound::kBelow);
  target("online p99 at 10,000 ev/s (ms)", latency[1]["p99_ms"], 20, Bound::kBelow);
  target("RSS with the outage backlog buffered (MiB)", s["rss_buffered_mib"], 30, Bound::kBelow);
  target("peak RSS over the outage and drain (MiB)", s["rss_peak_mib"], 40, Bound::kAtMost);
  r["targets"] = t;

  // Stages 3-5 again with delivery = "exactly-once", when the run had them.
  const bool eos = ran("drain") && sizes.is_object() && sizes.value("exactly_once", false);
  if (eos)
    r["exactly_once"] = {{"latency", LatencyRows("eos-")}, {"sluice", SluiceFigures("eos-")}};

  // Figures a stage should have produced but did not (a smoke run fails on any).
  ojson missing = ojson::array();
  auto check = [&](const std::string& where, const ojson& obj) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.value().is_null()) missing.push_back(where + "." + it.key());
    }
  };
  if (ran("ingest")) {
    for (size_t i = 0; i < ingest.size(); ++i)
      check("ingest[" + std::to_string(i) + "]", ingest[i]);
  }
  if (ran("drain")) {
    for (size_t i = 0; i < latency.size(); ++i)
      check("latency[" + std::to_string(i) + "]", latency[i]);
    check("sluice", s);
    ojson probe = dc;
    for (const char* k : {"drain_over_bridge", "drain_over_bridge_min", "drain_over_bridge_max",
                          "bridge_drain_events_per_s", "bridge_drain_events_per_s_min",
                          "bridge_drain_events_per_s_max"})
      probe.erase(k);  // need the bridge stage too
    check("drain_ceiling", probe);
  }
  if (ran("bridge")) check("mosquitto_bridge", b);
  if (ran("drain") && ran("bridge"))
    check("drain_ceiling", {{"drain_over_bridge", dc["drain_over_bridge"]}});
  if (eos) {
    const auto& e = r["exactly_once"];
    for (size_t i = 0; i < e["latency"].size(); ++i)
      check("exactly_once.latency[" + std::to_string(i) + "]", e["latency"][i]);
    check("exactly_once.sluice", e["sluice"]);
  }
  // The same outage drained to the other upstreams (run.sh --stages drain-kinesis,
  // drain-rabbitmq), each held against Kafka's drain when the run had it.
  for (const UpstreamDrain& u : kUpstreamDrains) {
    if (!ran(u.stage)) continue;
    const ojson q = OtherDrainFigures(u.raw, Num(sizes, {"outage_events"}), s);
    ojson own = q;
    // Needs the drain stage too.
    if (!ran("drain")) own.erase("drain_over_kafka");
    check(u.key, own);
    r[u.key] = q;
  }
  r["missing"] = missing;
  results_ = r;

  std::ofstream(dir_ + "/results.json") << results_.dump(2) << '\n';
  std::ofstream md(dir_ + "/results.md");
  md << Markdown();
  if (!md) return Status::IoError("cannot write " + dir_ + "/results.md");
  return Status::Ok();
}

ojson BenchReport::OtherDrainFigures(const std::string& raw, double n, const ojson& kafka) const {
  const json log = Raw(raw + ".log.json");
  const json proc = Raw(raw + ".proc.json");
  // As for Kafka: from when the upstream's start returned (t0_us) or, if sluice confirmed events
  // before that, from the cursor's first move. RabbitMQ's t0_us is taken before its start, so its
  // time includes the broker's boot.
  const double up_us = std::min(Num(proc, {"t0_us"}), Num(log, {"cursor_moved_us"}));
  ojson q;
  q["outage_events"] = Or(n);
  q["drain_events_per_s"] = Or(Rate(n, Num(log, {"cursor_moved_us"}), Num(log, {"reached_us"})));
  q["drain_seconds"] = Or((Num(log, {"reached_us"}) - up_us) / 1e6);
  q["forward_cpu_s_per_million"] = Or(Num(proc, {"cpu_s"}) / n * 1e6);
  const json k = kafka.value("drain_events_per_s", json(nullptr));
  const json d = q["drain_events_per_s"];
  q["drain_over_kafka"] = k.is_number() && d.is_number() && k.get<double>() != 0
                              ? json(d.get<double>() / k.get<double>())
                              : json(nullptr);
  return q;
}

ojson BenchReport::LatencyRows(const std::string& px) const {
  ojson latency = ojson::array();
  for (const char* rate : {"1000", "10000"}) {
    const std::string stage = px + "latency-" + rate;
    const json k = Raw(stage + ".kafka.json");
    const json p = Raw(stage + ".pub.json");
    ojson row;
    row["target_rate"] = std::stoi(rate);
    row["achieved_rate"] = Or(Num(p, {"rate"}));
    row["sent"] = Or(Num(p, {"completed"}));
    row["arrived"] = Or(Num(k, {"events", "unique"}));
    row["lost"] = Or(Num(k, {"events", "missing"}));
    row["duplicated"] = Or(Num(k, {"events", "duplicates"}));
    for (const char* q : {"p50", "p99", "p999", "max"})
      row[std::string(q) + "_ms"] = Or(Num(k, {"events", "latency_ms", q}));
    // The p99 of each second of the run, lowest and highest: a tail that comes from a few bad
    // seconds (a stall on the shared machine) shows as a wide spread, one the path itself adds in
    // every second as a narrow one.
    double lo = NAN, hi = NAN;
    if (k.is_object() && k.contains("events") && k["events"].contains("per_second")) {
      for (const json& w : k["events"]["per_second"]) {
        const double p99 = Num(w, {"p99"});
        if (std::isnan(p99)) continue;
        lo = std::isnan(lo) ? p99 : std::min(lo, p99);
        hi = std::isnan(hi) ? p99 : std::max(hi, p99);
      }
    }
    row["p99_second_min_ms"] = Or(lo);
    row["p99_second_max_ms"] = Or(hi);
    // Kafka's own stop-the-world pauses within the run (run.sh: gc_pauses).
    const json gc = Raw(stage + ".gc.json");
    row["kafka_gc_pauses"] = Or(Num(gc, {"pauses"}));
    row["kafka_gc_max_ms"] = Or(Num(gc, {"max_ms"}));
    row["kafka_gc_total_ms"] = Or(Num(gc, {"total_ms"}));
    // sluice's own stalls meanwhile, from its /metrics before and after (run.sh commit_sample).
    const json sl = Raw(stage + ".sluice.json");
    row["sluice_commits"] = Or(Num(sl, {"commits"}));
    row["sluice_commits_over_50ms"] = Or(Num(sl, {"commits_over_50ms"}));
    row["sluice_commits_over_100ms"] = Or(Num(sl, {"commits_over_100ms"}));
    row["sluice_journal_waits"] = Or(Num(sl, {"journal_waits"}));
    // Split where sluice took each event from Mosquitto (kafka-latency: sluice.received_ms).
    for (const char* leg : {"to_sluice", "after_sluice"}) {
      for (const char* q : {"p50", "p99"})
        row[std::string(leg) + "_" + q + "_ms"] = Or(Num(k, {leg, "latency_ms", q}));
    }
    // Read while published (run.sh: at 1,000 ev/s only): to when a read_committed consumer got
    // each event, which under exactly-once includes the wait for the transaction's commit.
    if (k.is_object() && k.contains("visible")) {
      for (const char* q : {"p50", "p99", "p999", "max"})
        row[std::string("visible_") + q + "_ms"] = Or(Num(k, {"visible", "latency_ms", q}));
    }
    latency.push_back(row);
  }
  return latency;
}

std::vector<std::string> BenchReport::Repetitions(const std::string& first_file) const {
  std::vector<std::string> out{""};
  const size_t dot = first_file.find('.');
  for (int i = 2; i <= 99; ++i) {
    const std::string sfx = "-r" + std::to_string(i);
    if (Raw(first_file.substr(0, dot) + sfx + first_file.substr(dot)).is_null()) break;
    out.push_back(sfx);
  }
  return out;
}

ojson BenchReport::BridgeFigures(const std::string& sfx) const {
  const json bop = Raw("bridge-outage" + sfx + ".pub.json");
  const json boproc = Raw("bridge-outage" + sfx + ".proc.json");
  const json bd = Raw("bridge-drain" + sfx + ".sub.json");
  const json bdproc = Raw("bridge-drain" + sfx + ".proc.json");
  const double bn = Num(bop, {"completed"});
  ojson b;
  b["outage_events"] = Or(bn);
  b["outage_ingest_events_per_s"] = Or(Num(bop, {"rate"}));
  b["drain_events_per_s"] = Or(Rate(Num(bd, {"events", "unique"}), Num(bd, {"events", "first_us"}),
                                    Num(bd, {"events", "last_us"})));
  b["drain_from_uplink_up_events_per_s"] = Or(
      Rate(Num(bd, {"events", "unique"}), Num(bdproc, {"t0_us"}), Num(bd, {"events", "last_us"})));
  b["drain_seconds"] = Or((Num(bd, {"events", "last_us"}) - Num(bdproc, {"t0_us"})) / 1e6);
  b["drained_arrived"] = Or(Num(bd, {"events", "unique"}));
  b["drained_lost"] = Or(Num(bd, {"events", "missing"}));
  b["drained_duplicated"] = Or(Num(bd, {"events", "duplicates"}));
  b["live_during_drain_p50_ms"] = Or(Num(bd, {"live", "latency_ms", "p50"}));
  b["live_during_drain_p99_ms"] = Or(Num(bd, {"live", "latency_ms", "p99"}));
  b["live_during_drain_max_ms"] = Or(Num(bd, {"live", "latency_ms", "max"}));
  b["live_lost"] = Or(Num(bd, {"live", "missing"}));
  b["rss_idle_mib"] = Or(Num(boproc, {"idle_rss_kib"}) / 1024);
  b["rss_buffered_mib"] = Or(Num(boproc, {"rss_kib"}) / 1024);
  b["rss_peak_mib"] = Or(Num(bdproc, {"hwm_kib"}) / 1024);
  b["store_write_bytes_per_event"] = Or(Num(boproc, {"write_bytes"}) / bn);
  b["store_cpu_s_per_million"] = Or(Num(boproc, {"cpu_s"}) / bn * 1e6);
  b["forward_cpu_s_per_million"] = Or(Num(bdproc, {"cpu_s"}) / bn * 1e6);
  b["forward_write_bytes_per_event"] = Or(Num(bdproc, {"write_bytes"}) / bn);
  return b;
}

ojson BenchReport::SluiceFigures(const std::string& px, const std::string& sfx) const {
  const json op = Raw(px + "outage" + sfx + ".pub.json");
  const json olog = Raw(px + "outage" + sfx + ".log.json");
  const json oproc = Raw(px + "outage" + sfx + ".proc.json");
  const json dlog = Raw(px + "drain" + sfx + ".log.json");
  const json dproc = Raw(px + "drain" + sfx + ".proc.json");
  const json dk = Raw(px + "drain" + sfx + ".kafka.json");
  const json lk = Raw(px + "live" + sfx + ".kafka.json");
  const json sl = Raw(px + "sluice.proc.json");
  const double n = Num(op, {"completed"});
  ojson s;
  s["outage_events"] = Or(n);
  s["outage_ingest_events_per_s"] = Or(Rate(n, Num(op, {"start_us"}), Num(olog, {"reached_us"})));
  s["drain_events_per_s"] = Or(Rate(n, Num(dlog, {"cursor_moved_us"}), Num(dlog, {"reached_us"})));
  // The uplink is up from when kafka.sh start returned or, if sluice reconnected and confirmed
  // events before that (a small backlog can drain entirely first), from the cursor's first move.
  const double uplink_up_us = std::min(Num(dproc, {"t0_us"}), Num(dlog, {"cursor_moved_us"}));
  s["drain_from_uplink_up_events_per_s"] = Or(Rate(n, uplink_up_us, Num(dlog, {"reached_us"})));
  s["drain_seconds"] = Or((Num(dlog, {"reached_us"}) - uplink_up_us) / 1e6);
  s["drained_arrived"] = Or(Num(dk, {"events", "unique"}));
  s["drained_lost"] = Or(Num(dk, {"events", "missing"}));
  s["drained_duplicated"] = Or(Num(dk, {"events", "duplicates"}));
  s["live_during_drain_p50_ms"] = Or(Num(lk, {"events", "latency_ms", "p50"}));
  s["live_during_drain_p99_ms"] = Or(Num(lk, {"events", "latency_ms", "p99"}));
  s["live_during_drain_max_ms"] = Or(Num(lk, {"events", "latency_ms", "max"}));
  s["live_lost"] = Or(Num(lk, {"events", "missing"}));
  s["rss_idle_mib"] = Or(Num(sl, {"idle_rss_kib"}) / 1024);
  s["rss_load_peak_mib"] = Or(Num(sl, {"load_hwm_kib"}) / 1024);
  s["rss_buffered_mib"] = Or(Num(oproc, {"rss_kib"}) / 1024);
  s["rss_peak_mib"] = Or(Num(dproc, {"hwm_kib"}) / 1024);
  s["store_write_bytes_per_event"] = Or(Num(oproc, {"write_bytes"}) / n);
  s["store_cpu_s_per_million"] = Or(Num(oproc, {"cpu_s"}) / n * 1e6);
  s["forward_cpu_s_per_million"] = Or(Num(dproc, {"cpu_s"}) / n * 1e6);
  s["forward_write_bytes_per_event"] = Or(Num(dproc, {"write_bytes"}) / n);
  return s;
}

std::string BenchReport::Markdown() const {
  const auto& r = results_;
  auto ran = [&](const char* stage) { return StageRan(r["sizes"], stage); };
  std::ostringstream o;
  // Sections of stages that did not run are left out; the targets table always lists every target.
  if (ran("ingest")) {
    o << "### Ingest into the durable log (events/s; ceiling = publisher -> Mosquitto -> plain "
         "subscriber)\n\n";
    o << "Each figure is the median of " << r["ingest"][0].value("repetitions", 1)
      << " repetitions, each a ceiling run followed by a sluice run; (min..max) is the spread over "
         "the repetitions, the ratio taken per repetition.\n\n";
    o << "| sync | QoS | payload | ceiling ev/s | sluice ev/s | ratio | bytes written/event | "
         "CPU-s per 1M | target |\n|---|---|---|---|---|---|---|---|---|\n";
    // The targets that concern one row of this table, from the targets list (one place).
    auto row_target = [&](const json& row) -> std::string {
      const bool normal = row["sync"] == "normal";
      const int qos = row["qos"].get<int>();
      const int bytes = row["payload_bytes"].get<int>();
      std::string out;
      for (const auto& t : r["targets"]) {
        const std::string what = t["target"].get<std::string>();
        const std::string head = "ingest QoS " + std::to_string(qos) + ", sync " +
                                 (normal ? "normal" : "full") + ", " + std::to_string(bytes) +
                                 " B /";
        const std::string bytes_head = "bytes written per " + std::to_string(bytes) +
                                       " B event, sync " + (normal ? "normal" : "full") + ", QoS " +
                                       std::to_string(qos);
        if (what.rfind(head, 0) == 0 || what == bytes_head) {
          if (!out.empty()) out += "; ";
          out += (what == bytes_head ? std::string("bytes/event ")
                                     : what.substr(head.size() + 1) + " ") +
                 t["limit"].get<std::string>() + ": " + t["verdict"].get<std::string>();
        }
      }
      return out;
    };
    for (const auto& row : r["ingest"]) {
      o << "| " << row["sync"].get<std::string>() << " | " << row["qos"] << " | "
        << row["payload_bytes"] << " B | " << FmtSpread(row, "ceiling_events_per_s") << " | "
        << FmtSpread(row, "sluice_events_per_s") << " | " << FmtSpread(row, "ratio", 2) << " | "
        << Fmt(row["write_bytes_per_event"]) << " | " << Fmt(row["cpu_s_per_million"], 1) << " | "
        << row_target(row) << " |\n";
    }
    o << "\n### QoS 1, sync full, against the fsync probe (records of 150 B, each followed by "
         "fdatasync, in the log's directory)\n\n"
         "| payload | fsync probe records/s | sluice ev/s | sluice / probe |\n|---|---|---|---|\n";
    for (const auto& row : r["ingest"]) {
      if (row["sync"] != "full" || row["qos"] != 1) continue;
      o << "| " << row["payload_bytes"] << " B | " << FmtSpread(row, "fsync_probe_records_per_s")
        << " | " << FmtSpread(row, "sluice_events_per_s") << " | "
        << FmtSpread(row, "ratio_to_fsync_probe", 2) << " |\n";
    }
  }
  if (ran("drain")) {
    o << "\n### Online latency, device publish -> Kafka append (QoS 1, 100 B, sync normal)\n\n";
    o << "| rate | achieved | sent | arrived | lost | dup | p50 | p99 | p99.9 | max | p99 of each "
         "second, min..max |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& row : r["latency"]) {
      o << "| " << row["target_rate"] << " ev/s | " << Fmt(row["achieved_rate"]) << " | "
        << Fmt(row["sent"]) << " | " << Fmt(row["arrived"]) << " | " << Fmt(row["lost"]) << " | "
        << Fmt(row["duplicated"]) << " | " << Fmt(row["p50_ms"], 1, " ms") << " | "
        << Fmt(row["p99_ms"], 1, " ms") << " | " << Fmt(row["p999_ms"], 1, " ms") << " | "
        << Fmt(row["max_ms"], 1, " ms") << " | " << Fmt(row["p99_second_min_ms"], 1) << ".."
        << Fmt(row["p99_second_max_ms"], 1, " ms") << " |\n";
    }
    for (const auto& row : r["latency"]) {
      if (!row["after_sluice_p99_ms"].is_number()) continue;
      o << "\nSplit where sluice took each event from Mosquitto (its `sluice.received_ms` header, "
           "in whole ms, so up to 1 ms early), at "
        << row["target_rate"] << " ev/s: publish -> sluice p50 "
        << Fmt(row["to_sluice_p50_ms"], 1, " ms") << ", p99 "
        << Fmt(row["to_sluice_p99_ms"], 1, " ms") << "; sluice -> Kafka append p50 "
        << Fmt(row["after_sluice_p50_ms"], 1, " ms") << ", p99 "
        << Fmt(row["after_sluice_p99_ms"], 1, " ms") << ".";
      if (row["kafka_gc_pauses"].is_number()) {
        o << " Kafka's garbage-collection pauses meanwhile: " << Fmt(row["kafka_gc_pauses"]) << ", "
          << Fmt(row["kafka_gc_total_ms"], 1, " ms") << " in all, the longest "
          << Fmt(row["kafka_gc_max_ms"], 1, " ms") << ".";
      }
      if (row["sluice_commits"].is_number()) {
        o << " sluice's append commits meanwhile: " << Fmt(row["sluice_commits"]) << ", "
          << Fmt(row["sluice_commits_over_50ms"]) << " of them over 50 ms and "
          << Fmt(row["sluice_commits_over_100ms"])
          << " over 100 ms; acknowledgements waited for the ingress journal "
          << Fmt(row["sluice_journal_waits"]) << " times.";
      }
      o << "\n";
    }
    const auto& first = r["latency"][0];
    if (first.contains("visible_p50_ms")) {
      o << "\nRead while published, to when a read_committed consumer got each event, at "
        << first["target_rate"] << " ev/s: p50 " << Fmt(first["visible_p50_ms"], 1, " ms")
        << ", p99 " << Fmt(first["visible_p99_ms"], 1, " ms") << ".\n";
    }
  }
  const auto& s = r["sluice"];
  if (ran("drain") || ran("bridge")) {
    o << "\n### Outage and drain, sluice beside Mosquitto's bridge (QoS 1, 100 B)\n\n";
    const json& sz = r["sizes"];
    const std::string kind = sz.is_object() ? sz.value("outage", std::string()) : std::string();
    if (kind == "network-cut") {
      o << "sluice's uplink went away as a network cut (nftables resets its connections to Kafka "
           "and refuses new ones while the broker runs on); the bridge's as its upstream Mosquitto "
           "stopped.\n\n";
    } else if (kind == "kafka-restart") {
      o << "sluice's uplink went away as Kafka stopped and started again; the bridge's as its "
           "upstream Mosquitto stopped.\n\n";
    }
    const size_t n = r["drain_ceiling"].value("repetitions", size_t{1});
    if (n > 1) {
      o << "Each outage and drain ran " << n
        << " times, each time with its own backlog; each figure is the median of the repetitions "
           "(peak and buffered RSS: the highest; losses and duplicates: the sum), each ratio the "
           "median of the repetitions' ratios, sluice's i-th drain against the bridge's i-th.";
      o << "\n\n";
    }
    o << "| figure | sluice | Mosquitto bridge | sluice / bridge |\n|---|---|---|---|\n";
    const auto& b = r["mosquitto_bridge"];
    const auto& q = r["sluice_over_bridge"];
    struct Line {
      const char* key;
      const char* label;
      int decimals;
    };
    const Line lines[] = {
        {"outage_events", "events buffered during the outage", 0},
        {"outage_ingest_events_per_s", "ingest during the outage (ev/s)", 0},
        {"drain_events_per_s", "drain rate, first to last drained event (ev/s)", 0},
        {"drain_seconds", "drain time from the upstream reported ready (s)", 1},
        {"drained_lost", "outage events lost", 0},
        {"drained_duplicated", "outage events duplicated", 0},
        {"live_during_drain_p50_ms", "live events during the drain: p50 latency (ms)", 0},
        {"live_during_drain_p99_ms", "live events during the drain: p99 latency (ms)", 0},
        {"live_lost", "live events lost", 0},
        {"rss_idle_mib", "RSS idle (MiB)", 1},
        {"rss_load_peak_mib", "peak RSS under load (MiB)", 1},
        {"rss_buffered_mib", "RSS with the backlog buffered (MiB)", 1},
        {"rss_peak_mib", "peak RSS over the whole outage and drain (MiB)", 1},
        {"store_write_bytes_per_event", "bytes written per event while storing", 0},
        {"forward_write_bytes_per_event", "bytes written per event while draining", 0},
        {"store_cpu_s_per_million", "CPU-s per 1M events stored", 1},
        {"forward_cpu_s_per_million", "CPU-s per 1M events drained", 1},
    };
    for (const Line& l : lines) {
      o << "| " << l.label << " | " << Fmt(s.value(l.key, json(nullptr)), l.decimals) << " | "
        << Fmt(b.value(l.key, json(nullptr)), l.decimals) << " | "
        << Fmt(q.value(l.key, json(nullptr)), 2) << " |\n";
    }
  }
  const auto& dc = r["drain_ceiling"];
  if (ran("drain")) {
    o << "\n### Drain ceiling: a bare idempotent producer with the sink's settings (same broker, "
         "same run, before the first drain and after each)\n\n"
         "Each drain is held against the mean of the bare-producer runs just before and just "
         "after it; medians over the repetitions, (min..max) the spread.\n\n"
         "| figure | value |\n|---|---|\n"
      << "| bare producer, records/s (median of " << dc["runs"].size() << ", min..max) | "
      << FmtSpread(dc, "records_per_s") << " |\n"
      << "| sluice drain, ev/s (median of " << dc.value("repetitions", size_t{1}) << ") | "
      << FmtSpread(dc, "drain_events_per_s") << " |\n"
      << "| Mosquitto bridge drain, ev/s | " << FmtSpread(dc, "bridge_drain_events_per_s") << " |\n"
      << "| drain / bare producer | " << FmtSpread(dc, "drain_over_bare_producer", 2) << " |\n"
      << "| drain / Mosquitto bridge | " << FmtSpread(dc, "drain_over_bridge", 2) << " |\n";
    if (dc["settings"].is_object()) {
      o << "\nProducer settings:";
      for (auto it = dc["settings"].begin(); it != dc["settings"].end(); ++it) {
        if (it.key() == "bootstrap.servers" || it.key() == "client.id") continue;
        o << " `" << it.key() << "=" << it.value().get<std::string>() << "`";
      }
      o << ".\n";
    }
  }
  if (r.contains("exactly_once")) o << ExactlyOnceMarkdown(r);
  if (std::any_of(std::begin(kUpstreamDrains), std::end(kUpstreamDrains),
                  [&](const UpstreamDrain& u) { return r.contains(u.key); })) {
    o << "\n### The outage drained to each upstream (QoS 1, 100 B)\n\n"
         "| upstream | events | drain rate, first to last drained event (ev/s) | drain time "
         "from the upstream's start (s) | CPU-s per 1M events drained | drain / Kafka's |\n"
         "|---|---|---|---|---|---|\n";
    auto row = [&](const std::string& label, const ojson& q, const json& over_kafka) {
      o << "| " << label << " | " << Fmt(q.value("outage_events", json(nullptr))) << " | "
        << Fmt(q.value("drain_events_per_s", json(nullptr))) << " | "
        << Fmt(q.value("drain_seconds", json(nullptr)), 1) << " | "
        << Fmt(q.value("forward_cpu_s_per_million", json(nullptr)), 1) << " | "
        << Fmt(over_kafka, 2) << " |\n";
    };
    std::string notes;
    if (ran("drain")) {
      row("Kafka (at-least-once)", s, json(1.0));
      notes += " Kafka's drain has live traffic beside it (" +
               Fmt(Or(Num(r["sizes"], {"live_rate"}))) + " events/s), the others none.";
    }
    for (const UpstreamDrain& u : kUpstreamDrains) {
      if (!r.contains(u.key)) continue;
      row(u.label, r[u.key], r[u.key]["drain_over_kafka"]);
      notes += std::string(" ") + u.note;
    }
    o << "\n" << notes.substr(1) << "\n";
  }
  o << "\n### Targets\n\n| target | limit | value | verdict |\n|---|---|---|---|\n";
  for (const auto& t : r["targets"]) {
    o << "| " << t["target"].get<std::string>() << " | " << t["limit"].get<std::string>() << " | "
      << Fmt(t["value"], 2) << " | " << t["verdict"].get<std::string>() << " |\n";
  }
  return o.str();
}

}  // namespace sluice::bench
