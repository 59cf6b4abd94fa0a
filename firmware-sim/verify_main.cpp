// sluice-verify: reads a Kafka topic back from its beginning and proves that every device event
// arrived exactly once and in order (see firmware-sim/verifier.h for the definitions). Assembles
// VerifyReader -> Verifier -> VerifyReport; exceptions stop here.
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
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "firmware-sim/verifier.h"
#include "firmware-sim/verify_expectation.h"
#include "firmware-sim/verify_reader.h"
#include "firmware-sim/verify_report.h"

namespace {

constexpr int kExitPassed = 0;
constexpr int kExitFailed = 1;
constexpr int kExitError = 2;

struct Args {
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  uint64_t count = 0;
  double idle_timeout_s = 10;
  double timeout_s = 300;
  double connect_timeout_s = 10;
  std::string expect_path;
  std::string json_path;
  bool strict = false;
  bool fail_on_duplicates = false;
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

const char* StopText(sluice::sim::VerifyReader::StopReason reason) {
  switch (reason) {
    case sluice::sim::VerifyReader::StopReason::kCount:
      return "count";
    case sluice::sim::VerifyReader::StopReason::kIdle:
      return "idle";
    case sluice::sim::VerifyReader::StopReason::kTimeout:
      return "timeout";
  }
  return "unknown";
}

int Run(const Args& args) {
  using sluice::sim::VerifyReader;

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

  sluice::sim::VerifyReaderOptions options;
  options.brokers = args.brokers;
  options.topic = args.topic;
  options.max_records = args.count;
  options.idle_timeout = Millis(args.idle_timeout_s);
  options.timeout = Millis(args.timeout_s);
  options.connect_timeout = Millis(args.connect_timeout_s);
  options.properties = args.properties;

  sluice::SystemClock clock;
  std::unique_ptr<VerifyReader> reader;
  sluice::Status s = VerifyReader::Open(options, &clock, &reader);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s\n", s.message().c_str());
    return kExitError;
  }
  // With the JSON on stdout, everything for people goes to stderr.
  FILE* human = args.json_path == "-" ? stderr : stdout;
  std::fprintf(human, "reading topic '%s' (%d partitions) on %s from the beginning...\n",
               args.topic.c_str(), reader->partitions(), args.brokers.c_str());
  std::fflush(human);

  auto verifier = args.expect_path.empty()
                      ? std::make_unique<sluice::sim::Verifier>()
                      : std::make_unique<sluice::sim::Verifier>(std::move(expectation));
  VerifyReader::Stats stats;
  s = reader->Read(
      [&](const sluice::sim::ConsumedRecord& r) {
        verifier->AddPayload(r.value, r.timestamp_ms, r.partition, r.offset);
      },
      [](const std::string& warning) {
        std::fprintf(stderr, "sluice-verify: warning: %s\n", warning.c_str());
      },
      &stats);
  if (!s.ok()) {
    std::fprintf(stderr, "sluice-verify: %s (after %llu records)\n", s.message().c_str(),
                 static_cast<unsigned long long>(stats.records));
    return kExitError;
  }
  const int partitions = reader->partitions();
  reader.reset();

  const sluice::sim::VerifyReport report = verifier->Finish();
  sluice::sim::VerifyReport::Policy policy;
  policy.fail_on_duplicates = args.fail_on_duplicates;
  policy.strict = args.strict;
  policy.min_records = args.count;

  std::fprintf(human, "read %llu records in %.1f s, stopped by %s",
               static_cast<unsigned long long>(stats.records), stats.elapsed.count() / 1000.0,
               StopText(stats.stop));
  if (stats.stop == VerifyReader::StopReason::kTimeout) {
    std::fprintf(human, " (--timeout %g s, %d of %d partitions read to their end)", args.timeout_s,
                 stats.partitions_at_end, partitions);
  }
  std::fprintf(human, "\n%s", report.FormatTable(policy, args.max_ranges).c_str());

  if (!args.json_path.empty()) {
    nlohmann::ordered_json j = report.ToJson(policy);
    j["source"] = {{"brokers", args.brokers},
                   {"topic", args.topic},
                   {"partitions", partitions},
                   {"records_read", stats.records},
                   {"stopped_by", StopText(stats.stop)},
                   {"elapsed_ms", stats.elapsed.count()},
                   {"transient_errors", stats.transient_errors}};
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

int main(int argc, char** argv) {
  CLI::App app{
      "sluice-verify: read a Kafka topic from the beginning and check that every device event "
      "arrived exactly once and in order, per device and boot; report loss, duplicates, "
      "reordering and end-to-end latency.\n"
      "Exit code: 0 passed, 1 loss/reordering found, 2 usage or connection error."};
  Args args;
  app.add_option("--brokers", args.brokers, "Kafka bootstrap servers")->capture_default_str();
  app.add_option("--topic", args.topic, "Topic to read")->required();
  app.add_option("--count", args.count, "Stop after this many records; fewer is a failure");
  app.add_option("--idle-timeout", args.idle_timeout_s,
                 "Stop when no record arrived for this many seconds")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--timeout", args.timeout_s, "Stop reading after this many seconds in any case")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--connect-timeout", args.connect_timeout_s,
                 "Seconds to reach the cluster and find the topic")
      ->capture_default_str()
      ->check(kPositiveSeconds);
  app.add_option("--expect", args.expect_path,
                 "The simulator's summary JSON: tails and absent devices count as lost, "
                 "dropped_by_device ranges do not")
      ->check(CLI::ExistingFile);
  app.add_option("--json", args.json_path, "Write the report as JSON to FILE ('-': stdout)");
  app.add_flag("--strict", args.strict, "Foreign and unexpected records fail the run");
  app.add_flag("--fail-on-duplicates", args.fail_on_duplicates, "Duplicates fail the run");
  app.add_option("--max-ranges", args.max_ranges, "Lost ranges shown per device in the table")
      ->capture_default_str();
  std::vector<std::string> props;
  app.add_option("-X,--property", props, "Extra librdkafka setting KEY=VALUE (repeatable)");

  try {
    app.parse(argc, argv);
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
