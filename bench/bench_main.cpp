// SPDX-License-Identifier: Apache-2.0

// sluice-bench: the probes behind bench/run.sh. Each subcommand measures one thing and writes its
// figures as JSON (--json FILE); `report` turns a run's JSON files into results.{json,md}.
//   publish        stamped events at a precise rate over one MQTT connection (the devices)
//   subscribe      plain MQTT subscriber: counts, losses, duplicates, latency (ceiling, bridge)
//   kafka-latency  reads a Kafka topic back (read_committed): counts and publish-to-append
//                  latency; with --visible, run while publishing, also publish-to-receipt
//   watch-log      samples a running sluice's log: last sequence number and Kafka cursor
//   fsync-probe    durable appends (pwrite + fdatasync each) to a file: the machine's own limit
//   produce-probe  a bare idempotent producer with the sink's settings: the drain ceiling
//   report         results.json and results.md from <out>/raw
// Exit codes: 0 measured, 1 the probe failed (connection, timeout), 2 usage.

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "bench/bench_payload.h"
#include "bench/bench_report.h"
#include "bench/fsync_probe.h"
#include "bench/latency_recorder.h"
#include "bench/log_watcher.h"
#include "bench/mqtt_counter.h"
#include "bench/produce_probe.h"
#include "bench/rate_publisher.h"
#include "common/clock.h"
#include "firmware-sim/verify_reader.h"

namespace {

using sluice::Status;

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

int Finish(const Status& s, const nlohmann::ordered_json& result, const std::string& json_path,
           const char* what) {
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << result.dump(2) << '\n';
    if (!out) {
      std::fprintf(stderr, "sluice-bench %s: cannot write %s\n", what, json_path.c_str());
      return 1;
    }
  } else {
    std::printf("%s\n", result.dump(2).c_str());
  }
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-bench %s: %s\n", what, s.ToString().c_str());
    return 1;
  }
  return 0;
}

struct KafkaProbe {
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  std::string tag;
  uint64_t count = 0;
  double idle_s = 3;
  double timeout_s = 300;
  // Besides the latency to Kafka's LogAppendTime, the latency to when this probe got each event,
  // for a probe that reads while the events are published: under exactly-once a record is
  // appended at once but visible to a read_committed consumer only once its transaction commits,
  // and only the receipt shows that.
  bool visible = false;
  std::string ready_file;  // written once the partitions are assigned
};

Status ReadKafka(const KafkaProbe& k, nlohmann::ordered_json* out) {
  sluice::SystemClock clock;
  sluice::sim::VerifyReaderOptions o;
  o.brokers = k.brokers;
  o.topic = k.topic;
  o.idle_timeout = Millis(k.idle_s);
  o.timeout = Millis(k.timeout_s);
  o.connect_timeout = Millis(30);
  std::unique_ptr<sluice::sim::VerifyReader> reader;
  Status s = sluice::sim::VerifyReader::Open(o, &clock, &reader);
  if (!s.ok()) return s;
  if (!k.ready_file.empty() && !std::ofstream(k.ready_file).good()) {
    return Status::IoError("cannot write " + k.ready_file);
  }
  sluice::bench::LatencyRecorder rec(k.count);
  sluice::bench::LatencyRecorder visible(k.count);
  // The two legs, split where sluice took the event from Mosquitto (sluice.received_ms, whole
  // milliseconds): the MQTT leg (publisher, Mosquitto, sluice's callback) and the rest (sluice's
  // commit and forwarder, librdkafka, Kafka's append).
  sluice::bench::LatencyRecorder to_sluice(k.count);
  sluice::bench::LatencyRecorder after_sluice(k.count);
  uint64_t foreign = 0;
  uint64_t no_timestamp = 0;
  sluice::sim::VerifyReader::Stats stats;
  s = reader->Read(
      [&](const sluice::sim::ConsumedRecord& r) {
        const auto stamp = sluice::bench::DecodeStamp(r.value);
        if (!stamp || stamp->tag != k.tag) {
          ++foreign;
          return;
        }
        if (k.visible) {
          const int64_t now_us = sluice::bench::NowUnixMicros();
          visible.Add(stamp->seq, now_us - stamp->send_us, now_us);
        }
        if (!r.timestamp_ms) {
          ++no_timestamp;
          return;
        }
        const int64_t at_us = *r.timestamp_ms * 1000;
        rec.Add(stamp->seq, at_us - stamp->send_us, at_us);
        if (r.received_ms) {
          const int64_t received_us = static_cast<int64_t>(*r.received_ms) * 1000;
          to_sluice.Add(stamp->seq, received_us - stamp->send_us, received_us);
          after_sluice.Add(stamp->seq, at_us - received_us, at_us);
        }
      },
      [](const std::string& w) {
        std::fprintf(stderr, "sluice-bench kafka-latency: %s\n", w.c_str());
      },
      &stats);
  auto& r = *out;
  r["topic"] = k.topic;
  r["tag"] = k.tag;
  r["events"] = rec.Summary();
  if (k.visible) r["visible"] = visible.Summary();
  if (to_sluice.unique() > 0) {
    r["to_sluice"] = to_sluice.Summary();
    r["after_sluice"] = after_sluice.Summary();
  }
  r["records"] = stats.records;
  r["foreign"] = foreign;
  r["no_timestamp"] = no_timestamp;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-bench: load generator and probes for bench/run.sh"};
  app.require_subcommand(1);
  std::string json_path;

  sluice::bench::RatePublisherOptions pub;
  double finish_s = 120;
  auto* p = app.add_subcommand("publish", "publish stamped events at a precise rate");
  p->add_option("--url", pub.url, "MQTT broker");
  p->add_option("--client-id", pub.client_id);
  p->add_option("--topic-prefix", pub.topic_prefix, "topics: PREFIX/dev-NNN/telemetry");
  p->add_option("--devices", pub.devices)->check(CLI::Range(1, 100000));
  p->add_option("--qos", pub.qos)->check(CLI::Range(0, 1));
  p->add_option("--payload-bytes", pub.payload_bytes)->check(CLI::Range(1, 1 << 20));
  p->add_option("--tag", pub.tag, "run name carried in every payload")->required();
  p->add_option("--count", pub.count)->required();
  p->add_option("--rate", pub.rate, "events/s (0: as fast as the window allows)");
  p->add_option("--window", pub.window, "incomplete publishes at most")
      ->check(CLI::Range(1, 65000));
  p->add_option("--finish-timeout", finish_s, "seconds to wait for the last completions");
  p->add_option("--json", json_path, "write the figures here");

  sluice::bench::MqttCounterOptions sub;
  double sub_idle = 15, sub_timeout = 600;
  auto* s = app.add_subcommand("subscribe", "count and time stamped events on an MQTT broker");
  s->add_option("--url", sub.url);
  s->add_option("--client-id", sub.client_id);
  s->add_option("--filter", sub.filter);
  s->add_option("--qos", sub.qos)->check(CLI::Range(0, 1));
  s->add_flag("!--persistent", sub.clean_session, "persistent session (broker queues while away)");
  s->add_option("--tag", sub.tag)->required();
  s->add_option("--count", sub.count)->required();
  s->add_option("--live-tag", sub.live_tag);
  s->add_option("--live-count", sub.live_count);
  s->add_option("--idle-timeout", sub_idle, "seconds without an event of --tag");
  s->add_option("--timeout", sub_timeout);
  s->add_option("--ready-file", sub.ready_file);
  s->add_option("--timeline", sub.timeline_csv, "append 'unix_s received' every 250 ms");
  s->add_option("--json", json_path);

  KafkaProbe probe;
  auto* k = app.add_subcommand("kafka-latency",
                               "read a Kafka topic back (read_committed): counts and latency");
  k->add_option("--brokers", probe.brokers);
  k->add_option("--topic", probe.topic)->required();
  k->add_option("--tag", probe.tag)->required();
  k->add_option("--count", probe.count)->required();
  k->add_option("--idle-timeout", probe.idle_s);
  k->add_option("--timeout", probe.timeout_s);
  k->add_flag("--visible", probe.visible,
              "also the latency to this probe's receipt (run it while the events are published)");
  k->add_option("--ready-file", probe.ready_file, "written once the partitions are assigned");
  k->add_option("--json", json_path);

  sluice::bench::LogWatcherOptions w;
  double w_timeout = 600;
  int w_interval = 20;
  auto* wl = app.add_subcommand("watch-log", "sample a running sluice's log until a goal");
  wl->add_option("--db", w.db_path)->required();
  wl->add_option("--until-last-seq", w.until_last_seq);
  wl->add_option("--until-cursor", w.until_cursor);
  wl->add_option("--interval-ms", w_interval)->check(CLI::Range(1, 10000));
  wl->add_option("--timeout", w_timeout);
  wl->add_option("--timeline", w.timeline_csv, "'unix_s last_seq cursor' per sample");
  wl->add_option("--json", json_path);

  sluice::bench::FsyncProbeOptions fp;
  double fp_seconds = 10;
  auto* fs = app.add_subcommand(
      "fsync-probe", "append fixed-size records, fdatasync after each, to a file in DIR");
  fs->add_option("--dir", fp.dir, "the file system measured")->required();
  fs->add_option("--record-bytes", fp.record_bytes)->check(CLI::Range(1, 1 << 20));
  fs->add_option("--seconds", fp_seconds)->check(CLI::PositiveNumber);
  fs->add_option("--file-bytes", fp.file_bytes, "preallocated size; appends wrap at its end")
      ->check(CLI::Range(uint64_t{1} << 20, uint64_t{1} << 34));
  fs->add_option("--json", json_path);
  sluice::bench::ProduceProbeOptions pp;
  auto* pr = app.add_subcommand(
      "produce-probe", "bare idempotent producer with the Kafka sink's settings: records/s");
  pr->add_option("--brokers", pp.brokers);
  pr->add_option("--topic", pp.topic, "a fresh topic")->required();
  pr->add_option("--count", pp.count)->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  pr->add_option("--record-bytes", pp.record_bytes)->check(CLI::Range(1, 1 << 20));
  pr->add_option("--devices", pp.devices, "distinct keys")->check(CLI::Range(1, 100000));
  pr->add_option("--timeout", pp.timeout_s);
  pr->add_option("--json", json_path);

  std::string report_dir;
  auto* rep = app.add_subcommand("report", "results.json and results.md from DIR/raw");
  rep->add_option("--dir", report_dir)->required();

  CLI11_PARSE(app, argc, argv);

  try {
    nlohmann::ordered_json result;
    if (*p) {
      pub.finish_timeout = Millis(finish_s);
      sluice::bench::RatePublisher publisher(pub);
      Status st = publisher.Run(&result);
      return Finish(st, result, json_path, "publish");
    }
    if (*s) {
      sub.idle_timeout = Millis(sub_idle);
      sub.timeout = Millis(sub_timeout);
      sluice::bench::MqttCounter counter(sub);
      Status st = counter.Run(&result);
      return Finish(st, result, json_path, "subscribe");
    }
    if (*k) {
      Status st = ReadKafka(probe, &result);
      return Finish(st, result, json_path, "kafka-latency");
    }
    if (*wl) {
      w.timeout = Millis(w_timeout);
      w.interval = std::chrono::milliseconds(w_interval);
      sluice::bench::LogWatcher watcher(w);
      Status st = watcher.Run(&result);
      if (st.ok() && !result.value("reached", false)) {
        st = Status::Unavailable("watch-log: goal not reached before the timeout");
      }
      return Finish(st, result, json_path, "watch-log");
    }
    if (*fs) {
      fp.duration = Millis(fp_seconds);
      sluice::SystemClock clock;
      sluice::bench::FsyncProbe probe_fs(fp, &clock);
      Status st = probe_fs.Run(&result);
      return Finish(st, result, json_path, "fsync-probe");
    }
    if (*pr) {
      sluice::SystemClock clock;
      sluice::bench::ProduceProbe probe_run(pp, &clock);
      Status st = probe_run.Run(&result);
      return Finish(st, result, json_path, "produce-probe");
    }
    if (*rep) {
      sluice::bench::BenchReport report(report_dir);
      Status st = report.Build();
      if (!st.ok()) {
        std::fprintf(stderr, "sluice-bench report: %s\n", st.ToString().c_str());
        return 1;
      }
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-bench: %s\n", e.what());
    return 1;
  }
  return 2;
}
