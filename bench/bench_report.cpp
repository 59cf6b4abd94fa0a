#include "bench/bench_report.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

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

std::string Verdict(const json& value, double limit, bool at_least) {
  if (!value.is_number()) return "n/a";
  const double v = value.get<double>();
  return (at_least ? v >= limit : v < limit) ? "met" : "MISSED";
}

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

  // 1. Ingest into the durable log against the no-gateway ceiling.
  ojson ingest = ojson::array();
  for (const char* sync : {"normal", "full"}) {
    for (int qos : {0, 1}) {
      for (int bytes : {100, 1024}) {
        const std::string c = "q" + std::to_string(qos) + "-b" + std::to_string(bytes);
        const std::string s = std::string(sync) + "-" + c;
        const json cp = Raw("ceiling-" + c + ".pub.json");
        const json cs = Raw("ceiling-" + c + ".sub.json");
        const json ip = Raw("ingest-" + s + ".pub.json");
        const json il = Raw("ingest-" + s + ".log.json");
        const json pr = Raw("ingest-" + s + ".proc.json");
        const double ceiling = Rate(Num(cs, {"events", "unique"}), Num(cp, {"start_us"}),
                                    Num(cs, {"events", "last_us"}));
        const double events = Num(pr, {"events_in_log"});
        const double sluice = Rate(events, Num(ip, {"start_us"}), Num(il, {"reached_us"}));
        ojson row;
        row["sync"] = sync;
        row["qos"] = qos;
        row["payload_bytes"] = bytes;
        row["events_sent"] = Or(Num(ip, {"sent"}));
        row["events_in_log"] = Or(events);
        row["ceiling_events_per_s"] = Or(ceiling);
        row["ceiling_lost"] = Or(Num(cs, {"events", "missing"}));
        row["sluice_events_per_s"] = Or(sluice);
        row["ratio"] = Or(sluice / ceiling);
        row["write_bytes_per_event"] = Or(Num(pr, {"write_bytes"}) / events);
        row["cpu_s_per_million"] = Or(Num(pr, {"cpu_s"}) / events * 1e6);
        ingest.push_back(row);
      }
    }
  }
  r["ingest"] = ingest;

  // 2. Online latency, device publish to Kafka's append time.
  const ojson latency = LatencyRows("");
  r["latency"] = latency;

  // 3-6. Outage, drain, memory, CPU and writes, sluice beside Mosquitto's bridge.
  const ojson s = SluiceFigures("");
  r["sluice"] = s;
  const json bop = Raw("bridge-outage.pub.json");
  const json boproc = Raw("bridge-outage.proc.json");
  const json bd = Raw("bridge-drain.sub.json");
  const json bdproc = Raw("bridge-drain.proc.json");

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
  r["mosquitto_bridge"] = b;

  ojson ratio = ojson::object();  // an object even when empty: a partial run has no ratios
  for (auto it = s.begin(); it != s.end(); ++it) {
    if (b.contains(it.key()) && it.value().is_number() && b[it.key()].is_number() &&
        b[it.key()].get<double>() != 0) {
      ratio[it.key()] = it.value().get<double>() / b[it.key()].get<double>();
    }
  }
  r["sluice_over_bridge"] = ratio;

  // Targets (docs/performance.md): ratios in the same run, absolute where the issue says so.
  ojson t = ojson::array();
  auto target = [&](const std::string& what, const json& value, double limit, bool at_least) {
    t.push_back({{"target", what}, {"value", value}, {"verdict", Verdict(value, limit, at_least)}});
  };
  target("ingest QoS 0, sync normal, 100 B: >= 0.90 of the ceiling", ingest[0]["ratio"], 0.9, true);
  target("ingest QoS 1, sync normal, 100 B: >= 0.90 of the ceiling", ingest[2]["ratio"], 0.9, true);
  target("drain >= 5x Mosquitto bridge", ratio.value("drain_events_per_s", json(nullptr)), 5, true);
  target("online p99 at 1,000 ev/s < 10 ms", latency[0]["p99_ms"], 10, false);
  target("RSS with the outage backlog buffered < 30 MiB", s["rss_buffered_mib"], 30, false);
  target("bytes written per 100 B event, sync normal, QoS 0: < 400",
         ingest[0]["write_bytes_per_event"], 400, false);
  target("bytes written per 100 B event, sync normal, QoS 1: < 400",
         ingest[2]["write_bytes_per_event"], 400, false);
  r["targets"] = t;

  // Stages 3-5 again with delivery = "exactly-once", when the run had them.
  const bool eos = r["sizes"].is_object() && r["sizes"].value("exactly_once", false);
  if (eos)
    r["exactly_once"] = {{"latency", LatencyRows("eos-")}, {"sluice", SluiceFigures("eos-")}};

  // Figures a stage should have produced but did not (a smoke run fails on any).
  ojson missing = ojson::array();
  auto check = [&](const std::string& where, const ojson& obj) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.value().is_null()) missing.push_back(where + "." + it.key());
    }
  };
  for (size_t i = 0; i < ingest.size(); ++i) check("ingest[" + std::to_string(i) + "]", ingest[i]);
  for (size_t i = 0; i < latency.size(); ++i)
    check("latency[" + std::to_string(i) + "]", latency[i]);
  check("sluice", s);
  check("mosquitto_bridge", b);
  if (eos) {
    const auto& e = r["exactly_once"];
    for (size_t i = 0; i < e["latency"].size(); ++i)
      check("exactly_once.latency[" + std::to_string(i) + "]", e["latency"][i]);
    check("exactly_once.sluice", e["sluice"]);
  }
  r["missing"] = missing;
  results_ = r;

  std::ofstream(dir_ + "/results.json") << results_.dump(2) << '\n';
  std::ofstream md(dir_ + "/results.md");
  md << Markdown();
  if (!md) return Status::IoError("cannot write " + dir_ + "/results.md");
  return Status::Ok();
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

ojson BenchReport::SluiceFigures(const std::string& px) const {
  const json op = Raw(px + "outage.pub.json");
  const json olog = Raw(px + "outage.log.json");
  const json oproc = Raw(px + "outage.proc.json");
  const json dlog = Raw(px + "drain.log.json");
  const json dproc = Raw(px + "drain.proc.json");
  const json dk = Raw(px + "drain.kafka.json");
  const json lk = Raw(px + "live.kafka.json");
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
  std::ostringstream o;
  o << "### Ingest into the durable log (events/s; ceiling = publisher -> Mosquitto -> plain "
       "subscriber)\n\n";
  o << "| sync | QoS | payload | ceiling ev/s | sluice ev/s | ratio | bytes written/event | "
       "CPU-s per 1M |\n|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : r["ingest"]) {
    o << "| " << row["sync"].get<std::string>() << " | " << row["qos"] << " | "
      << row["payload_bytes"] << " B | " << Fmt(row["ceiling_events_per_s"]) << " | "
      << Fmt(row["sluice_events_per_s"]) << " | " << Fmt(row["ratio"], 2) << " | "
      << Fmt(row["write_bytes_per_event"]) << " | " << Fmt(row["cpu_s_per_million"], 1) << " |\n";
  }
  o << "\n### Online latency, device publish -> Kafka append (QoS 1, 100 B, sync normal)\n\n";
  o << "| rate | achieved | sent | arrived | lost | dup | p50 | p99 | p99.9 | max |\n"
       "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : r["latency"]) {
    o << "| " << row["target_rate"] << " ev/s | " << Fmt(row["achieved_rate"]) << " | "
      << Fmt(row["sent"]) << " | " << Fmt(row["arrived"]) << " | " << Fmt(row["lost"]) << " | "
      << Fmt(row["duplicated"]) << " | " << Fmt(row["p50_ms"], 1, " ms") << " | "
      << Fmt(row["p99_ms"], 1, " ms") << " | " << Fmt(row["p999_ms"], 1, " ms") << " | "
      << Fmt(row["max_ms"], 1, " ms") << " |\n";
  }
  const auto& first = r["latency"][0];
  if (first.contains("visible_p50_ms")) {
    o << "\nRead while published, to when a read_committed consumer got each event, at "
      << first["target_rate"] << " ev/s: p50 " << Fmt(first["visible_p50_ms"], 1, " ms") << ", p99 "
      << Fmt(first["visible_p99_ms"], 1, " ms") << ".\n";
  }
  o << "\n### Outage and drain, sluice beside Mosquitto's bridge (QoS 1, 100 B)\n\n";
  o << "| figure | sluice | Mosquitto bridge | sluice / bridge |\n|---|---|---|---|\n";
  const auto& s = r["sluice"];
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
  if (r.contains("exactly_once")) o << ExactlyOnceMarkdown(r);
  o << "\n### Targets\n\n| target | value | verdict |\n|---|---|---|\n";
  for (const auto& t : r["targets"]) {
    o << "| " << t["target"].get<std::string>() << " | " << Fmt(t["value"], 2) << " | "
      << t["verdict"].get<std::string>() << " |\n";
  }
  return o.str();
}

}  // namespace sluice::bench
