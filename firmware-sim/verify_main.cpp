// SPDX-License-Identifier: Apache-2.0

// sluice-verify: reads what sluice forwarded back, a Kafka topic from its beginning as a
// read_committed consumer (the default; --read-uncommitted also counts the records of aborted
// transactions) or an MQTT upstream through a persistent session, and proves that every device
// event arrived exactly once and in order, counting the events sluice's gap records account for
// as dropped, reported (see firmware-sim/verifier.h for the definitions). Assembles VerifyReader
// (twice with --read-uncommitted, AbortedRecords) or VerifyMqttReader -> Verifier ->
// VerifyReport; exceptions stop here.
//
// Exit codes: 0 nothing lost or reordered; 1 loss or reordering (or no device event at all,
// fewer than --count records, duplicates with --fail-on-duplicates, foreign/unexpected records
// with --strict); 2 usage, expectation file, connection or read errors.

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "firmware-sim/aborted_records.h"
#include "firmware-sim/consumed_record.h"
#include "firmware-sim/verifier.h"
#include "firmware-sim/verify_amqp_reader.h"
#include "firmware-sim/verify_expectation.h"
#include "firmware-sim/verify_kinesis_reader.h"
#include "firmware-sim/verify_mqtt_reader.h"
#include "firmware-sim/verify_reader.h"
#include "firmware-sim/verify_report.h"

namespace {

constexpr int kExitPassed = 0;
constexpr int kExitFailed = 1;
constexpr int kExitError = 2;

// Where gap records are read by default: the defaults of the upstreams' gap_topic settings
// (docs/configuration.md), the MQTT one with + for the gateway.
constexpr const char* kDefaultKafkaGapTopic = "sluice.gaps";
constexpr const char* kDefaultMqttGapTopic = "sluice/+/gaps";
constexpr const char* kDefaultKinesisGapStream = "sluice-gaps";
constexpr const char* kDefaultAmqpGapStream = "sluice.gaps";

struct Args {
  std::string source = "kafka";
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  std::string gap_topic;  // empty after parsing: none
  // MQTT
  std::string url;
  std::string mqtt_version = "5";
  std::string vhost = "/";  // AMQP
  std::string client_id = "sluice-verify";
  std::string username;
  std::string password;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool insecure = false;
  bool subscribe_only = false;
  // Kinesis
  std::string endpoint;
  std::string region = "us-east-1";
  sluice::AwsCredentials credentials;
  uint64_t count = 0;
  double idle_timeout_s = 10;
  double timeout_s = 300;
  double connect_timeout_s = 10;
  std::string expect_path;
  std::string json_path;
  bool strict = false;
  bool fail_on_duplicates = false;
  bool read_uncommitted = false;
  size_t max_ranges = 4;
  std::map<std::string, std::string> properties;
};

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000)));
}

// CLI11's PositiveNumber prints the whole range of double in its complaint.
const CLI::Validator kPositiveSeconds(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || !(v > 0) || v > 1e7) {
        return "'" + text + "' is not a positive number of seconds";
      }
      return std::string();
    },
    "SECONDS>0");

const char* StopText(sluice::sim::ReadStop reason) {
  switch (reason) {
    case sluice::sim::ReadStop::kCount:
      return "count";
    case sluice::sim::ReadStop::kIdle:
      return "idle";
    case sluice::sim::ReadStop::kTimeout:
      return "timeout";
    case sluice::sim::ReadStop::kBounds:
      return "bounds";
  }
  return "unknown";
}

void Feed(sluice::sim::Verifier* verifier, const sluice::sim::ConsumedRecord& r) {
  sluice::sim::RecordOrigin origin;
  origin.timestamp_ms = r.timestamp_ms;
  origin.partition = r.partition;
  origin.offset = r.offset;
  origin.log_seq = r.log_seq;
  origin.log_id = std::string(r.log_id);
  if (r.gap) {
    verifier->AddGapPayload(r.value, origin);
  } else {
    verifier->AddPayload(r.value, origin);
  }
}

void Warn(const std::string& warning) {
  std::fprintf(stderr, "sluice-verify: warning: %s\n", warning.c_str());
}

// What one read gave, whatever the source: the summary line and the report's "source".
struct ReadOutcome {
  uint64_t records = 0;
  uint64_t gap_records = 0;
  sluice::sim::ReadStop stop = sluice::sim::ReadStop::kIdle;
  std::chrono::milliseconds elapsed{0};
  std::string timeout_detail;  // said after "stopped by timeout"
  nlohmann::ordered_json source;
  std::optional<uint64_t> aborted_records;  // counted by --read-uncommitted only
};

sluice::sim::VerifyReaderOptions KafkaOptions(const Args& args) {
  sluice::sim::VerifyReaderOptions options;
  options.brokers = args.brokers;
  options.topic = args.topic;
  options.gap_topic = args.gap_topic;
  options.max_records = args.count;
  options.idle_timeout = Millis(args.idle_timeout_s);
  options.timeout = Millis(args.timeout_s);
  options.connect_timeout = Millis(args.connect_timeout_s);
  options.properties = args.properties;
  return options;
}

// --read-uncommitted: reads the partitions of the committed read again, read_uncommitted, up to
// where the committed read ended in each, and counts the records that read did not return
// (AbortedRecords). Fills `aborted` and the source's "uncommitted_read"; kExitPassed when every
// partition was read that far.
int CountAborted(const Args& args, const sluice::Clock& clock, FILE* human,
                 const sluice::sim::PartitionOffsets& committed_end,
                 sluice::sim::AbortedRecords* aborted, nlohmann::ordered_json* source) {
  using sluice::sim::VerifyReader;
  sluice::sim::VerifyReaderOptions options = KafkaOptions(args);
  options.read_committed = false;
  options.max_records = 0;
  options.read_until = committed_end;
  std::unique_ptr<VerifyReader> reader;
  sluice::Status s = VerifyReader::Open(options, &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: read_uncommitted: %s\n", s.message().c_str());
    return kExitError;
  }
  std::fprintf(human, "reading again, read_uncommitted, up to where that read ended...\n");
  std::fflush(human);
  VerifyReader::Stats stats;
  s = reader->Read(
      [&](const sluice::sim::ConsumedRecord& r) {
        aborted->AddUncommitted(r.topic, r.partition, r.offset);
      },
      Warn, &stats);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: read_uncommitted: %s\n", s.message().c_str());
    return kExitError;
  }
  // Short of the bounds, the count would be a lower bound only; a verifier reports exact figures.
  if (stats.stop != sluice::sim::ReadStop::kBounds) {
    std::fprintf(stderr,
                 "sluice-verify: read_uncommitted: stopped by %s (--timeout %g s) before reaching "
                 "where the read_committed read ended; no aborted count\n",
                 StopText(stats.stop), args.timeout_s);
    return kExitError;
  }
  (*source)["uncommitted_read"] = {{"records_read", stats.records + stats.gap_records},
                                   {"aborted_records", aborted->aborted()},
                                   {"elapsed_ms", stats.elapsed.count()}};
  return kExitPassed;
}

// Reads the Kafka topic (and the gap topic) into `verifier`, read_committed, and with
// --read-uncommitted counts the aborted records; kExitPassed when the reads finished.
int ReadKafka(const Args& args, const sluice::Clock& clock, FILE* human,
              sluice::sim::Verifier* verifier, ReadOutcome* out) {
  using sluice::sim::VerifyReader;
  std::unique_ptr<VerifyReader> reader;
  sluice::Status s = VerifyReader::Open(KafkaOptions(args), &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  std::fprintf(human, "reading topic '%s' (%d partitions) on %s from the beginning",
               args.topic.c_str(), reader->partitions(), args.brokers.c_str());
  if (!args.gap_topic.empty()) {
    std::fprintf(human, ", gap records from '%s'%s", args.gap_topic.c_str(),
                 reader->gap_partitions() > 0 ? "" : " once it exists");
  }
  std::fprintf(human, ", read_committed...\n");
  std::fflush(human);

  sluice::sim::AbortedRecords aborted;
  VerifyReader::Stats stats;
  s = reader->Read(
      [&](const sluice::sim::ConsumedRecord& r) {
        Feed(verifier, r);
        if (args.read_uncommitted) aborted.AddCommitted(r.topic, r.partition, r.offset);
      },
      Warn, &stats);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s (after %llu records)\n", s.message().c_str(),
                 static_cast<unsigned long long>(stats.records));
    return kExitError;
  }
  out->records = stats.records;
  out->gap_records = stats.gap_records;
  out->stop = stats.stop;
  out->elapsed = stats.elapsed;
  out->timeout_detail = std::to_string(stats.partitions_at_end) + " of " +
                        std::to_string(reader->partitions() + reader->gap_partitions()) +
                        " partitions read to their end";
  out->source = {{"kind", "kafka"},
                 {"brokers", args.brokers},
                 {"topic", args.topic},
                 {"gap_topic", args.gap_topic},
                 {"partitions", reader->partitions()},
                 {"isolation", args.read_uncommitted ? "read_committed, then read_uncommitted"
                                                     : "read_committed"},
                 {"records_read", stats.records},
                 {"gap_records_read", stats.gap_records},
                 {"stopped_by", StopText(stats.stop)},
                 {"elapsed_ms", stats.elapsed.count()},
                 {"transient_errors", stats.transient_errors}};
  if (!args.read_uncommitted) return kExitPassed;
  reader.reset();
  const int rc = CountAborted(args, clock, human, stats.positions, &aborted, &out->source);
  if (rc == kExitPassed) out->aborted_records = aborted.aborted();
  return rc;
}

sluice::sim::VerifyMqttReaderOptions MqttOptions(const Args& args) {
  sluice::sim::VerifyMqttReaderOptions o;
  o.url = args.url;
  o.mqtt5 = args.mqtt_version == "5";
  o.client_id = args.client_id;
  o.username = args.username;
  o.password = args.password;
  o.ca_file = args.ca_file;
  o.cert_file = args.cert_file;
  o.key_file = args.key_file;
  o.insecure = args.insecure;
  o.topic = args.topic;
  o.gap_topic = args.gap_topic;
  o.max_records = args.count;
  o.idle_timeout = Millis(args.idle_timeout_s);
  o.timeout = Millis(args.timeout_s);
  o.connect_timeout = Millis(args.connect_timeout_s);
  return o;
}

// Feeds every record `reader` reads to `verifier` and fills in what every source reports:
// `source` (what was read, where), then its counts. The caller adds the reader's own figures.
template <typename Reader>
int ReadAll(Reader* reader, sluice::sim::Verifier* verifier, nlohmann::ordered_json source,
            typename Reader::Stats* stats, ReadOutcome* out) {
  sluice::Status s =
      reader->Read([&](const sluice::sim::ConsumedRecord& r) { Feed(verifier, r); }, Warn, stats);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s (after %llu records)\n", s.message().c_str(),
                 static_cast<unsigned long long>(stats->records));
    return kExitError;
  }
  out->records = stats->records;
  out->gap_records = stats->gap_records;
  out->stop = stats->stop;
  out->elapsed = stats->elapsed;
  source["records_read"] = stats->records;
  source["gap_records_read"] = stats->gap_records;
  source["stopped_by"] = StopText(stats->stop);
  source["elapsed_ms"] = stats->elapsed.count();
  out->source = std::move(source);
  return kExitPassed;
}

// The options a Kinesis and an AMQP stream reader share, from the arguments.
template <typename Options>
void SetStreamOptions(const Args& args, Options* o) {
  o->ca_file = args.ca_file;
  o->insecure = args.insecure;
  o->stream = args.topic;
  o->gap_stream = args.gap_topic;
  o->max_records = args.count;
  o->idle_timeout = Millis(args.idle_timeout_s);
  o->timeout = Millis(args.timeout_s);
  o->connect_timeout = Millis(args.connect_timeout_s);
}

// Reads the MQTT upstream through the persistent session into `verifier`.
int ReadMqtt(const Args& args, const sluice::Clock& clock, FILE* human,
             sluice::sim::Verifier* verifier, ReadOutcome* out) {
  using sluice::sim::VerifyMqttReader;
  std::unique_ptr<VerifyMqttReader> reader;
  sluice::Status s = VerifyMqttReader::Open(MqttOptions(args), &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  std::string what = "'" + args.topic + "'";
  if (!args.gap_topic.empty()) what += " and gap records from '" + args.gap_topic + "'";
  std::fprintf(human, "reading %s on %s (MQTT %s, client id '%s', %s)...\n", what.c_str(),
               args.url.c_str(), args.mqtt_version.c_str(), args.client_id.c_str(),
               reader->resumed_session() ? "session resumed: what the broker queued comes first"
                                         : "new session: only what is published from now on");
  std::fflush(human);

  VerifyMqttReader::Stats stats;
  const int rc = ReadAll(reader.get(), verifier,
                         {{"kind", "mqtt"},
                          {"url", args.url},
                          {"topic", args.topic},
                          {"gap_topic", args.gap_topic},
                          {"client_id", args.client_id},
                          {"protocol", args.mqtt_version},
                          {"resumed_session", reader->resumed_session()}},
                         &stats, out);
  if (rc != kExitPassed) return rc;
  out->timeout_detail = std::to_string(stats.reconnects) + " reconnects";
  out->source["reconnects"] = stats.reconnects;
  out->source["session_lost"] = stats.session_lost;
  if (stats.session_lost > 0) {
    std::fprintf(human,
                 "warning: the broker lost this reader's session %llu time(s); events published "
                 "meanwhile never reached it\n",
                 static_cast<unsigned long long>(stats.session_lost));
  }
  return kExitPassed;
}

// Reads every shard of the Kinesis stream (and gap stream) from TRIM_HORIZON into `verifier`.
int ReadKinesis(const Args& args, const sluice::Clock& clock, FILE* human,
                sluice::sim::Verifier* verifier, ReadOutcome* out) {
  using sluice::sim::VerifyKinesisReader;
  sluice::sim::VerifyKinesisReaderOptions o;
  o.endpoint = args.endpoint;
  o.region = args.region;
  o.credentials = args.credentials;
  SetStreamOptions(args, &o);
  std::unique_ptr<VerifyKinesisReader> reader;
  sluice::Status s = VerifyKinesisReader::Open(o, &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  std::string what = "stream '" + args.topic + "'";
  if (!args.gap_topic.empty()) what += " and gap stream '" + args.gap_topic + "'";
  std::fprintf(human, "reading %s on %s from TRIM_HORIZON, shard by shard...\n", what.c_str(),
               args.endpoint.c_str());
  std::fflush(human);
  VerifyKinesisReader::Stats stats;
  const int rc = ReadAll(reader.get(), verifier,
                         {{"kind", "kinesis"},
                          {"endpoint", args.endpoint},
                          {"region", args.region},
                          {"stream", args.topic},
                          {"gap_stream", args.gap_topic}},
                         &stats, out);
  if (rc != kExitPassed) return rc;
  out->timeout_detail = std::to_string(stats.requests) + " requests";
  out->source["shards"] = stats.shards;
  out->source["requests"] = stats.requests;
  return kExitPassed;
}

// Reads a RabbitMQ stream (and the gap stream) from the first offset into `verifier`.
int ReadAmqp(const Args& args, const sluice::Clock& clock, FILE* human,
             sluice::sim::Verifier* verifier, ReadOutcome* out) {
  using sluice::sim::VerifyAmqpReader;
  sluice::sim::VerifyAmqpReaderOptions o;
  o.url = args.url;
  o.vhost = args.vhost;
  if (!args.username.empty()) {
    o.username = args.username;
    o.password = args.password;
  }
  o.cert_file = args.cert_file;
  o.key_file = args.key_file;
  SetStreamOptions(args, &o);
  std::unique_ptr<VerifyAmqpReader> reader;
  sluice::Status s = VerifyAmqpReader::Open(o, &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  std::string what = "stream '" + args.topic + "'";
  if (!args.gap_topic.empty()) what += " and gap records from stream '" + args.gap_topic + "'";
  std::fprintf(human, "reading %s on %s (vhost '%s') from the first offset...\n", what.c_str(),
               args.url.c_str(), args.vhost.c_str());
  std::fflush(human);
  VerifyAmqpReader::Stats stats;
  const int rc = ReadAll(reader.get(), verifier,
                         {{"kind", "amqp"},
                          {"url", args.url},
                          {"vhost", args.vhost},
                          {"stream", args.topic},
                          {"gap_stream", args.gap_topic}},
                         &stats, out);
  if (rc != kExitPassed) return rc;
  out->timeout_detail = std::to_string(stats.reconnects) + " reconnects";
  out->source["reconnects"] = stats.reconnects;
  return kExitPassed;
}

// --subscribe-only: creates (or refreshes) the persistent session and its subscriptions, so that
// the broker queues everything published from now on for a later run with the same client id.
int SubscribeOnly(const Args& args, const sluice::Clock& clock) {
  std::unique_ptr<sluice::sim::VerifyMqttReader> reader;
  sluice::Status s = sluice::sim::VerifyMqttReader::Open(MqttOptions(args), &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  std::printf("subscribed on %s as client id '%s' (%s); the broker now queues for it\n",
              args.url.c_str(), args.client_id.c_str(),
              reader->resumed_session() ? "session resumed" : "new session");
  return kExitPassed;
}

int Run(const Args& args) {
  sluice::SystemClock clock;
  if (args.subscribe_only) return SubscribeOnly(args, clock);

  sluice::sim::VerifyExpectation expectation;
  if (!args.expect_path.empty()) {
    sluice::Status s = sluice::sim::VerifyExpectation::LoadFile(args.expect_path, &expectation);
    if (!s.ok()) {
      std::fprintf(stderr, "sluice-verify: --expect: %s\n", s.message().c_str());
      return kExitError;
    }
  }
  // Open the JSON destination before spending minutes reading, so a bad path fails at once.
  std::ofstream json_file;
  if (!args.json_path.empty() && args.json_path != "-") {
    json_file.open(args.json_path, std::ios::trunc);
    if (!json_file) {
      std::fprintf(stderr, "sluice-verify: --json: cannot write %s\n", args.json_path.c_str());
      return kExitError;
    }
  }

  // With the JSON on stdout, everything for people goes to stderr.
  FILE* human = args.json_path == "-" ? stderr : stdout;
  auto verifier = args.expect_path.empty()
                      ? std::make_unique<sluice::sim::Verifier>()
                      : std::make_unique<sluice::sim::Verifier>(std::move(expectation));
  ReadOutcome read;
  const int rc = args.source == "mqtt"      ? ReadMqtt(args, clock, human, verifier.get(), &read)
                 : args.source == "kinesis" ? ReadKinesis(args, clock, human, verifier.get(), &read)
                 : args.source == "amqp"    ? ReadAmqp(args, clock, human, verifier.get(), &read)
                                            : ReadKafka(args, clock, human, verifier.get(), &read);
  if (rc != kExitPassed) return rc;

  sluice::sim::VerifyReport report = verifier->Finish();
  report.aborted_records = read.aborted_records;
  sluice::sim::VerifyReport::Policy policy;
  policy.fail_on_duplicates = args.fail_on_duplicates;
  policy.strict = args.strict;
  policy.min_records = args.count;

  std::fprintf(human, "read %llu records", static_cast<unsigned long long>(read.records));
  if (read.gap_records > 0) {
    std::fprintf(human, " and %llu gap records", static_cast<unsigned long long>(read.gap_records));
  }
  std::fprintf(human, " in %.1f s, stopped by %s", read.elapsed.count() / 1000.0,
               StopText(read.stop));
  if (read.stop == sluice::sim::ReadStop::kTimeout) {
    std::fprintf(human, " (--timeout %g s, %s)", args.timeout_s, read.timeout_detail.c_str());
  }
  std::fprintf(human, "\n%s", report.FormatTable(policy, args.max_ranges).c_str());

  if (!args.json_path.empty()) {
    nlohmann::ordered_json j = report.ToJson(policy);
    j["source"] = read.source;
    const std::string text = j.dump(2) + "\n";
    if (args.json_path == "-") {
      std::fwrite(text.data(), 1, text.size(), stdout);
    } else {
      json_file << text;
      json_file.close();
      if (!json_file) {
        std::fprintf(stderr, "sluice-verify: --json: cannot write %s\n", args.json_path.c_str());
        return kExitError;
      }
    }
  }
  return report.Passed(policy) ? kExitPassed : kExitFailed;
}

}  // namespace

// A password file's content without its trailing line break; the error names the file only.
bool ReadPasswordFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) {
    *error = path + " is empty";
    return false;
  }
  *out = std::move(text);
  return true;
}

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-verify: read back what sluice forwarded (a Kafka topic from the beginning, an "
      "MQTT upstream through a persistent session, every shard of a Kinesis stream, or a RabbitMQ "
      "stream from its first offset) and check that every device event arrived "
      "exactly once and in order, per device and boot; report loss, events sluice dropped and "
      "reported in gap records, duplicates, reordering and end-to-end latency.\n"
      "Exit code: 0 passed, 1 loss/reordering found, 2 usage or connection error."};
  Args args;
  app.add_option("--source", args.source,
                 "Where to read: kafka, mqtt, kinesis or amqp (a RabbitMQ stream)")
      ->capture_default_str()
      ->check(CLI::IsMember({"kafka", "mqtt", "kinesis", "amqp"}));
  auto* brokers_opt =
      app.add_option("--brokers", args.brokers, "Kafka bootstrap servers")->capture_default_str();
  app.add_option("--topic", args.topic,
                 "Kafka topic, MQTT topic filter, Kinesis stream or RabbitMQ stream of the device "
                 "events")
      ->required();
  auto* gap_opt = app.add_option(
      "--gap-topic", args.gap_topic,
      std::string("Where sluice's gap records are read: a Kafka topic (default ") +
          kDefaultKafkaGapTopic + "), an MQTT filter (default " + kDefaultMqttGapTopic +
          ") or a Kinesis stream (default " + kDefaultKinesisGapStream +
          ") or a RabbitMQ stream (default " + kDefaultAmqpGapStream + "); '' for none");
  app.add_option("--count", args.count, "Stop after this many records; fewer is a failure");
  app.add_option("--idle-timeout", args.idle_timeout_s,
                 "Stop when no record arrived for this many seconds")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--timeout", args.timeout_s, "Stop reading after this many seconds in any case")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--connect-timeout", args.connect_timeout_s,
                 "Seconds to reach the cluster and find the topic, or to connect to the broker")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--expect", args.expect_path,
                 "The simulator's summary JSON: tails and absent devices count as lost, "
                 "dropped_by_device ranges do not")
      ->check(CLI::ExistingFile);
  app.add_option("--json", args.json_path, "Write the report as JSON to FILE ('-': stdout)");
  app.add_flag("--strict", args.strict, "Foreign and unexpected records fail the run");
  app.add_flag("--fail-on-duplicates", args.fail_on_duplicates, "Duplicates fail the run");
  auto* uncommitted_opt = app.add_flag(
      "--read-uncommitted", args.read_uncommitted,
      "Kafka: after the read_committed read that is checked, read the same partitions again "
      "with isolation.level=read_uncommitted up to where it ended, and report the records of "
      "aborted transactions (seen only by that read; never counted as duplicates)");
  app.add_option("--max-ranges", args.max_ranges, "Lost ranges shown per device in the table")
      ->capture_default_str();
  std::vector<std::string> props;
  auto* props_opt =
      app.add_option("-X,--property", props, "Extra librdkafka setting KEY=VALUE (repeatable)");

  // MQTT and AMQP sources.
  std::vector<CLI::Option*> broker_opts;
  // MQTT source only.
  std::vector<CLI::Option*> mqtt_opts;
  broker_opts.push_back(app.add_option("--url", args.url,
                                       "MQTT broker URL (tcp://, mqtt://, ssl://, mqtts://) or "
                                       "RabbitMQ URL (amqp://, amqps://); required with --source "
                                       "mqtt or amqp"));
  auto* vhost_opt = app.add_option("--vhost", args.vhost, "RabbitMQ vhost (--source amqp)")
                        ->capture_default_str();
  mqtt_opts.push_back(app.add_option("--mqtt-version", args.mqtt_version,
                                     "MQTT protocol: 5 reads sluice.seq and sluice.log from "
                                     "user properties; 3.1.1 has none")
                          ->capture_default_str()
                          ->check(CLI::IsMember({"3.1.1", "5"})));
  mqtt_opts.push_back(app.add_option("--client-id", args.client_id,
                                     "Client id of the persistent session; runs with the same id "
                                     "get what the broker queued meanwhile")
                          ->capture_default_str());
  broker_opts.push_back(app.add_option("--username", args.username, "MQTT or RabbitMQ user name"));
  std::string password_file;
  broker_opts.push_back(app.add_option("--password-file", password_file,
                                       "File holding the MQTT or RabbitMQ password (a trailing "
                                       "newline is ignored)")
                            ->check(CLI::ExistingFile));
  broker_opts.push_back(
      app.add_option("--cert-file", args.cert_file, "Client certificate (PEM), with --key-file")
          ->check(CLI::ExistingFile));
  broker_opts.push_back(app.add_option("--key-file", args.key_file, "Client private key (PEM)")
                            ->check(CLI::ExistingFile));
  // MQTT, AMQP and Kinesis.
  auto* ca_opt = app.add_option("--ca-file", args.ca_file, "CA certificates (PEM); TLS on")
                     ->check(CLI::ExistingFile);
  auto* insecure_opt = app.add_flag("--insecure", args.insecure,
                                    "TLS without verifying the peer's certificate and host name");
  // Kinesis source only.
  std::vector<CLI::Option*> kinesis_opts;
  kinesis_opts.push_back(app.add_option("--endpoint", args.endpoint,
                                        "Kinesis endpoint (https://...); required with --source "
                                        "kinesis"));
  kinesis_opts.push_back(
      app.add_option("--region", args.region, "AWS region the requests are signed for")
          ->capture_default_str());
  std::string credentials_file;
  kinesis_opts.push_back(app.add_option("--credentials-file", credentials_file,
                                        "AWS credentials file (aws_access_key_id, "
                                        "aws_secret_access_key, aws_session_token); required "
                                        "with --source kinesis")
                             ->check(CLI::ExistingFile));
  mqtt_opts.push_back(app.add_flag("--subscribe-only", args.subscribe_only,
                                   "Create the persistent session and its subscriptions, then "
                                   "exit: the broker queues for a later run with this client id"));

  try {
    app.parse(argc, argv);
    const bool mqtt = args.source == "mqtt";
    const bool kinesis = args.source == "kinesis";
    const bool amqp = args.source == "amqp";
    if (mqtt || amqp || kinesis) {
      if (brokers_opt->count() > 0 || props_opt->count() > 0 || uncommitted_opt->count() > 0) {
        throw CLI::ValidationError("--brokers/--property/--read-uncommitted",
                                   "Kafka options; not with --source " + args.source);
      }
    } else if (ca_opt->count() > 0 || insecure_opt->count() > 0) {
      throw CLI::ValidationError("--ca-file/--insecure", "need --source mqtt, amqp or kinesis");
    }
    if (mqtt || amqp) {
      if (args.url.empty()) {
        throw CLI::ValidationError("--url", "required with --source " + args.source);
      }
      if (args.cert_file.empty() != args.key_file.empty()) {
        throw CLI::ValidationError("--cert-file/--key-file", "give both or neither");
      }
      if (!password_file.empty()) {
        std::string error;
        if (!ReadPasswordFile(password_file, &args.password, &error)) {
          throw CLI::ValidationError("--password-file", error);
        }
      }
    } else {
      for (const CLI::Option* o : broker_opts) {
        if (o->count() > 0) {
          throw CLI::ValidationError(o->get_name(),
                                     "an MQTT or AMQP option; needs --source mqtt or amqp");
        }
      }
    }
    if (!mqtt) {
      for (const CLI::Option* o : mqtt_opts) {
        if (o->count() > 0) {
          throw CLI::ValidationError(o->get_name(), "an MQTT option; needs --source mqtt");
        }
      }
    }
    if (kinesis) {
      if (args.endpoint.empty()) {
        throw CLI::ValidationError("--endpoint", "required with --source kinesis");
      }
      if (credentials_file.empty()) {
        throw CLI::ValidationError("--credentials-file", "required with --source kinesis");
      }
      std::ifstream in(credentials_file, std::ios::binary);
      const std::string text((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      const std::string problem = sluice::ParseAwsCredentials(text, &args.credentials);
      if (!problem.empty()) {
        throw CLI::ValidationError("--credentials-file", credentials_file + " " + problem);
      }
    } else {
      for (const CLI::Option* o : kinesis_opts) {
        if (o->count() > 0) {
          throw CLI::ValidationError(o->get_name(), "a Kinesis option; needs --source kinesis");
        }
      }
    }
    if (!amqp && vhost_opt->count() > 0) {
      throw CLI::ValidationError("--vhost", "an AMQP option; needs --source amqp");
    }
    if (gap_opt->count() == 0) {
      args.gap_topic = mqtt      ? kDefaultMqttGapTopic
                       : kinesis ? kDefaultKinesisGapStream
                       : amqp    ? kDefaultAmqpGapStream
                                 : kDefaultKafkaGapTopic;
    }
    for (const std::string& p : props) {
      const auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw CLI::ValidationError("--property", "'" + p + "' is not KEY=VALUE");
      }
      args.properties[p.substr(0, eq)] = p.substr(eq + 1);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitPassed : kExitError;
  }
  try {
    return Run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-verify: unexpected error: %s\n", e.what());
    return kExitError;
  }
}
