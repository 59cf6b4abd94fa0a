// SPDX-License-Identifier: Apache-2.0

#pragma once

// Helpers for the integration tests: a real sluice process, a real MQTT publisher (Paho) and a
// real Kafka reader (librdkafka). The brokers are started by the CTest fixture (brokers.sh); the
// tests find them and the scripts through environment variables set in tests/CMakeLists.txt.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "storage/event_log.h"

namespace sluice::itest {

struct Env {
  std::string sluice_bin;
  std::string scripts_dir;
  std::string kafka_dir;
  std::string mqtt_url;
  // SLUICE_KAFKA_BROKERS if set (a cluster), else SLUICE_KAFKA_HOST:SLUICE_KAFKA_PORT.
  std::string kafka_brokers;
  std::string kafka_host;  // SLUICE_KAFKA_HOST, default 127.0.0.1
  int kafka_port = 0;
  static Env FromEnvironment();  // throws std::runtime_error naming the missing variable
};

// Runs `cmd` through /bin/sh; returns its exit status.
int Shell(const std::string& cmd);

// The value of environment variable `name`; throws std::runtime_error naming it when it is unset
// or empty (CTest sets the tests' variables in tests/CMakeLists.txt).
std::string MustEnv(const char* name);

// The whole content of the file at `path`; "" if it cannot be read.
std::string ReadFile(const std::string& path);

// A sluice daemon in a child process, its output in <dir>/sluice-N.log.
class SluiceProcess {
 public:
  SluiceProcess(std::string binary, std::string config_path, std::string log_dir);
  ~SluiceProcess();
  // `env` entries ("NAME=value") are added to the daemon's environment.
  void Start(const std::vector<std::string>& env = {});
  // Waits for the daemon to exit by itself; returns the exit status (or -signal), or 0 on timeout
  // with the process still running.
  std::optional<int> WaitExit(std::chrono::seconds timeout);
  // SIGTERM, then waits; returns the exit status (or -signal).
  int Terminate(std::chrono::seconds timeout = std::chrono::seconds(60));
  void Kill();  // SIGKILL, reaped
  bool Running();
  pid_t Pid() const { return pid_; }  // -1 when not running
  std::string LogText() const;        // every run's output so far
  // The latest run's output only: what a restarted daemon said since it started.
  std::string RunLogText() const;

 private:
  std::string binary_;
  std::string config_;
  std::string log_dir_;
  pid_t pid_ = -1;
  int runs_ = 0;
};

// Writes a sluice config for one test: its own log file, client id, topic filter and Kafka topic.
struct TestConfig {
  std::string dir;
  std::string gateway_id;
  std::string mqtt_prefix;  // events go to <prefix>/<device>/data
  std::string kafka_topic;
  int qos = 1;
  std::string extra_storage;                // extra lines for [storage]
  std::string extra_kafka;                  // extra lines for [kafka]
  std::string extra_sections;               // whole sections, e.g. "[metrics]\n..."
  std::string Write(const Env& env) const;  // returns the config path
  std::string LogPath() const { return dir + "/events.db"; }
};

// Opens the test's log read-only beside the running daemon and returns its stats.
std::optional<storage::LogStats> ReadLogStats(const std::string& path);

// A helper program (the fleet simulator) in a child process, its stdout and stderr in `log`. It
// dies with the test (PR_SET_PDEATHSIG) and is killed by the destructor if still running.
class ChildProcess {
 public:
  ChildProcess(const std::string& binary, const std::vector<std::string>& args,
               const std::string& log);  // throws std::runtime_error if it cannot fork
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Sends `sig` (0: none) and waits up to `timeout` for the exit: its status (negative: the
  // signal that ended it), or nullopt if it is still running.
  std::optional<int> Wait(std::chrono::milliseconds timeout, int sig = 0);
  const std::string& log_path() const { return log_; }

 private:
  std::string log_;
  pid_t pid_ = -1;
};

// Publishes numbered events for a set of devices through one Paho client with QoS 1 and waits for
// the broker's acknowledgement of each. Payload: "<device>:<n>:" followed by filler bytes that
// depend on (device, n), so a reader can check them byte for byte.
class Publisher {
 public:
  Publisher(const std::string& url, const std::string& client_id);
  ~Publisher();
  // Publishes events n = first..first+count-1 for each device, interleaved round-robin.
  // `published` counts acknowledged events as it goes (for tests that act mid-stream).
  void Publish(const std::string& prefix, const std::vector<std::string>& devices, int first,
               int count, int qos, std::atomic<int>* published = nullptr,
               size_t payload_bytes = 64);

 private:
  struct Impl;
  Impl* impl_;
};

std::string PayloadFor(const std::string& device, int n, size_t payload_bytes);

struct Record {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int32_t partition = 0;
  int64_t offset = 0;
};

// Reads every record of a topic from the beginning until `expected` records arrived or nothing
// new came for `idle`.
std::vector<Record> ReadTopic(const std::string& brokers, const std::string& topic, size_t expected,
                              std::chrono::seconds idle);

// What a reader sees of transactional records: read_committed skips those of open and aborted
// transactions (the view of a consumer of an exactly-once upstream).
enum class Isolation { kReadUncommitted, kReadCommitted };

// Reads every record of a topic from the beginning until `done` holds for the records read so
// far (checked after each batch of polls) or `timeout` passes.
std::vector<Record> ReadTopicUntil(const std::string& brokers, const std::string& topic,
                                   const std::function<bool(const std::vector<Record>&)>& done,
                                   std::chrono::seconds timeout,
                                   Isolation isolation = Isolation::kReadUncommitted);

// A partition's leader, replicas and in-sync replicas as the cluster's metadata reports them
// (node ids); nullopt if the metadata request fails or lacks the partition. REQUIRES: the topic
// exists (asking a broker that auto-creates topics about a missing one creates it).
struct PartitionInfo {
  int32_t leader = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isrs;
};
std::optional<PartitionInfo> ReadPartitionInfo(const std::string& brokers, const std::string& topic,
                                               int32_t partition);

// A plain HTTP GET against 127.0.0.1:port (sluice's metrics server); status 0 when nothing
// answered.
struct HttpResponse {
  int status = 0;
  std::string body;
};
HttpResponse HttpGet(int port, const std::string& path);
// SLUICE_METRICS_PORT, the port the tests give sluice's metrics server; throws when unset.
int MetricsPortFromEnvironment();
// One series' value from sluice's /metrics on `port`; -1 when absent or when nothing answered.
double MetricValue(int port, const std::string& series);

// Creates a topic through Kafka's admin API, as the central team would, with topic-level
// `configs` (e.g. max.message.bytes); returns "" on success, else the broker's error.
std::string CreateTopic(const std::string& brokers, const std::string& topic, int partitions,
                        int replication, const std::map<std::string, std::string>& configs = {});

// The value of the topic-level setting `name` (e.g. cleanup.policy) of `topic`, as the cluster
// reports it; "" if it cannot be read.
std::string TopicConfig(const std::string& brokers, const std::string& topic,
                        const std::string& name);

// Writes `count_per_device` events per device (n = 1..count, interleaved round-robin, the
// Publisher's topics and payloads) straight into a new log at `log_path`, as an outage would have
// left them: a backlog that sluice drains when it starts.
void WriteBacklog(const std::string& log_path, const std::string& prefix,
                  const std::vector<std::string>& devices, int count_per_device,
                  size_t payload_bytes = 64);

// The per-device check: every event 1..count exactly once (duplicates counted), in order of first
// appearance, payload byte-identical.
struct Verdict {
  size_t records = 0;
  size_t lost = 0;
  size_t duplicates = 0;
  // Of the duplicates: the same gateway sequence number twice (sluice sent an event again) versus
  // a new number (the broker delivered the event to sluice again).
  size_t resent_by_sluice = 0;
  size_t redelivered_by_broker = 0;
  size_t reordered = 0;
  size_t corrupted = 0;
  std::string first_problem;
};
Verdict Verify(const std::vector<Record>& records, const std::vector<std::string>& devices,
               int count_per_device, size_t payload_bytes = 64);

// The figures a scenario reports, on one line so that they can be quoted. `sent` is the number of
// distinct events the publishers had acknowledged by the MQTT broker, `arrived` the number of
// distinct events found in Kafka; `extra` adds " key=value" fields.
void ReportScenario(const std::string& scenario, size_t sent, const Verdict& v,
                    const std::string& extra = std::string());

double Seconds(std::chrono::steady_clock::duration d);

// The line of `text` that holds position `at`, without its newline; "" when `at` is npos.
std::string LineAt(const std::string& text, size_t at);

// `sluice check-config --probe --probe-timeout <timeout_s> --config <config_path>` run to its end
// (at most 120 s), its stdout and stderr in <log_dir>/probe-N.log.
struct ProbeRun {
  int rc = -1;  // the exit status; -1 if it did not end in time (then killed)
  std::string output;
  double seconds = 0;
  // The output's line that starts with `verdict` ("ok", "warn", "FAIL") and holds `text`; "" if
  // none does.
  std::string Line(const std::string& verdict, const std::string& text) const;
  // How many lines start with `verdict`.
  size_t Count(const std::string& verdict) const;
};
ProbeRun RunProbe(const std::string& sluice_bin, const std::string& config_path, int timeout_s,
                  const std::string& log_dir);

// Whether the cluster at `brokers` has `topic`, from a listing of every topic (which, unlike
// asking for the topic, never makes a broker create it); nullopt if the cluster did not answer.
std::optional<bool> TopicExists(const std::string& brokers, const std::string& topic);

// A TCP port on 127.0.0.1 that accepts connections (the kernel completes the handshake) but
// never answers: a broker that hangs, or a network that swallows replies.
class SilentListener {
 public:
  SilentListener();  // throws std::runtime_error if it cannot listen
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

std::vector<std::string> Devices(int n);
std::string UniqueSuffix();

}  // namespace sluice::itest
