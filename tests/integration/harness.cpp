// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/harness.h"

#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "storage/sqlite_event_log.h"
#include "tests/test_util.h"

namespace sluice::itest {

namespace {
std::string MustGet(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string("integration test needs environment variable ") + name);
  }
  return v;
}
}  // namespace

Env Env::FromEnvironment() {
  Env e;
  e.sluice_bin = MustGet("SLUICE_BIN");
  e.scripts_dir = MustGet("SLUICE_SCRIPTS");
  e.kafka_dir = MustGet("SLUICE_KAFKA_DIR");
  e.kafka_port = std::stoi(MustGet("SLUICE_KAFKA_PORT"));
  e.mqtt_url = "tcp://127.0.0.1:" + MustGet("SLUICE_MQTT_PORT");
  // A broker in its own network namespace is reached through the namespace's address.
  const char* host = std::getenv("SLUICE_KAFKA_HOST");
  e.kafka_host = host != nullptr && *host != '\0' ? host : "127.0.0.1";
  const char* brokers = std::getenv("SLUICE_KAFKA_BROKERS");
  e.kafka_brokers = brokers != nullptr && *brokers != '\0'
                        ? brokers
                        : e.kafka_host + ":" + std::to_string(e.kafka_port);
  return e;
}

std::string MustEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    throw std::runtime_error(std::string("this test needs environment variable ") + name +
                             " (set by tests/CMakeLists.txt)");
  }
  return v;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Shell(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string UniqueSuffix() {
  return std::to_string(getpid()) + "-" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000007);
}

void ReportScenario(const std::string& scenario, size_t sent, const Verdict& v,
                    const std::string& extra) {
  const size_t arrived = sent >= v.lost ? sent - v.lost : 0;
  std::printf("scenario=%s sent=%zu arrived=%zu lost=%zu duplicates=%zu reordered=%zu%s\n",
              scenario.c_str(), sent, arrived, v.lost, v.duplicates, v.reordered, extra.c_str());
  if (!v.first_problem.empty()) std::printf("  first problem: %s\n", v.first_problem.c_str());
  std::fflush(stdout);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string LineAt(const std::string& text, size_t at) {
  if (at == std::string::npos || at >= text.size()) return "";
  const size_t bol = text.rfind('\n', at);
  const size_t begin = bol == std::string::npos ? 0 : bol + 1;
  return text.substr(begin, text.find('\n', at) - begin);
}

// --- sluice check-config --probe -------------------------------------------------------------

ProbeRun RunProbe(const std::string& sluice_bin, const std::string& config_path, int timeout_s,
                  const std::string& log_dir) {
  static std::atomic<int> runs{0};
  const std::string log = log_dir + "/probe-" + std::to_string(++runs) + ".log";
  ProbeRun r;
  const auto started = std::chrono::steady_clock::now();
  {
    ChildProcess probe(sluice_bin,
                       {"check-config", "--probe", "--probe-timeout", std::to_string(timeout_s),
                        "--config", config_path},
                       log);
    const std::optional<int> status = probe.Wait(std::chrono::seconds(120));
    r.rc = status.value_or(-1);
  }
  r.seconds = Seconds(std::chrono::steady_clock::now() - started);
  r.output = ReadFile(log);
  return r;
}

std::string ProbeRun::Line(const std::string& verdict, const std::string& text) const {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(verdict + " ", 0) == 0 && line.find(text) != std::string::npos) return line;
  }
  return "";
}

size_t ProbeRun::Count(const std::string& verdict) const {
  std::istringstream in(output);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (line.rfind(verdict + " ", 0) == 0) n++;
  }
  return n;
}

std::optional<bool> TopicExists(const std::string& brokers, const std::string& topic) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  if (conf->set("bootstrap.servers", brokers, err) != RdKafka::Conf::CONF_OK) return std::nullopt;
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) return std::nullopt;
  RdKafka::Metadata* raw = nullptr;
  if (producer->metadata(true, nullptr, &raw, 10000) != RdKafka::ERR_NO_ERROR) return std::nullopt;
  std::unique_ptr<RdKafka::Metadata> metadata(raw);
  for (const RdKafka::TopicMetadata* t : *metadata->topics()) {
    if (t->topic() == topic && t->err() == RdKafka::ERR_NO_ERROR) return true;
  }
  return false;
}

SilentListener::SilentListener() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(fd_, 64) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd_ >= 0) close(fd_);
    throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);
}

SilentListener::~SilentListener() {
  close(fd_);
}

std::vector<std::string> Devices(int n) {
  std::vector<std::string> d;
  for (int i = 0; i < n; ++i) d.push_back("dev" + std::to_string(i));
  return d;
}

// --- SluiceProcess --------------------------------------------------------------------------

SluiceProcess::SluiceProcess(std::string binary, std::string config_path, std::string log_dir)
    : binary_(std::move(binary)), config_(std::move(config_path)), log_dir_(std::move(log_dir)) {}

SluiceProcess::~SluiceProcess() {
  if (pid_ > 0) Kill();
}

void SluiceProcess::Start(const std::vector<std::string>& env) {
  const std::string log = log_dir_ + "/sluice-" + std::to_string(++runs_) + ".log";
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // The daemon must not outlive a test process that crashed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* out = std::freopen(log.c_str(), "w", stderr);
    if (out == nullptr) _exit(126);
    dup2(fileno(stderr), STDOUT_FILENO);
    for (const auto& e : env) putenv(const_cast<char*>(e.c_str()));
    execl(binary_.c_str(), binary_.c_str(), "run", "--config", config_.c_str(), "--log-level",
          "info", static_cast<char*>(nullptr));
    _exit(127);
  }
  pid_ = pid;
}

std::optional<int> SluiceProcess::WaitExit(std::chrono::seconds timeout) {
  std::optional<int> result;
  sluice::testing::WaitFor(
      [&] {
        int status = 0;
        if (pid_ <= 0 || waitpid(pid_, &status, WNOHANG) != pid_) return false;
        pid_ = -1;
        result = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return true;
      },
      timeout, std::chrono::milliseconds(20));
  return result;
}

bool SluiceProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int SluiceProcess::Terminate(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  if (auto status = WaitExit(timeout)) return *status;
  Kill();
  return -SIGKILL;
}

void SluiceProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string SluiceProcess::LogText() const {
  std::string all;
  for (int i = 1; i <= runs_; ++i) {
    std::ifstream in(log_dir_ + "/sluice-" + std::to_string(i) + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    all += "---- run " + std::to_string(i) + " ----\n" + ss.str();
  }
  return all;
}

std::string SluiceProcess::RunLogText() const {
  if (runs_ == 0) return std::string();
  std::ifstream in(log_dir_ + "/sluice-" + std::to_string(runs_) + ".log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- TestConfig -----------------------------------------------------------------------------

std::string TestConfig::Write(const Env& env) const {
  const std::string path = dir + "/sluice.toml";
  std::ofstream out(path);
  out << "[gateway]\nid = \"" << gateway_id << "\"\n"
      << "[storage]\npath = \"" << LogPath() << "\"\n"
      << extra_storage << "\n"
      << "[mqtt]\nurl = \"" << env.mqtt_url << "\"\nclient_id = \"sluice-" << gateway_id << "\"\n"
      << "reconnect_min_ms = 100\nreconnect_max_ms = 2000\n"
      << "[kafka]\nbrokers = \"" << env.kafka_brokers << "\"\nreconnect_max_ms = 1000\n"
      << extra_kafka << "\n"
      << extra_sections << "\n"
      << "[[route]]\nmqtt = \"" << mqtt_prefix << "/+/data\"\nkafka_topic = \"" << kafka_topic
      << "\"\nkey = \"" << mqtt_prefix << "/{device}/#\"\nqos = " << qos << "\n";
  return path;
}

std::optional<storage::LogStats> ReadLogStats(const std::string& path) {
  storage::SqliteEventLogOptions o;
  o.path = path;
  o.read_only = true;
  o.logger =
      std::make_shared<spdlog::logger>("itest", std::make_shared<spdlog::sinks::null_sink_mt>());
  std::unique_ptr<storage::SqliteEventLog> log;
  if (!storage::SqliteEventLog::Open(o, &log).ok()) return std::nullopt;
  return log->Stats();
}

// --- Publisher ------------------------------------------------------------------------------

std::string PayloadFor(const std::string& device, int n, size_t payload_bytes) {
  std::string p = device + ":" + std::to_string(n) + ":";
  uint32_t x = static_cast<uint32_t>(n) * 2654435761u ^
               static_cast<uint32_t>(std::hash<std::string>{}(device));
  while (p.size() < payload_bytes) {
    x = x * 1103515245u + 12345u;
    p.push_back(static_cast<char>(x >> 24));  // any byte value, NUL included
  }
  return p;
}

ChildProcess::ChildProcess(const std::string& binary, const std::vector<std::string>& args,
                           const std::string& log)
    : log_(log) {
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed for " + binary);
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    if (out == nullptr) _exit(126);
    dup2(fileno(stdout), STDERR_FILENO);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout, int sig) {
  if (pid_ <= 0) return std::nullopt;
  if (sig != 0) kill(pid_, sig);
  std::optional<int> result;
  sluice::testing::WaitFor(
      [&] {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
        pid_ = -1;
        result = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return true;
      },
      timeout, std::chrono::milliseconds(20));
  return result;
}

struct Publisher::Impl {
  std::unique_ptr<mqtt::async_client> client;
};

Publisher::Publisher(const std::string& url, const std::string& client_id) : impl_(new Impl) {
  impl_->client = std::make_unique<mqtt::async_client>(url, client_id);
  auto opts = mqtt::connect_options_builder().clean_session(true).max_inflight(1000).finalize();
  impl_->client->connect(opts)->wait();
}

Publisher::~Publisher() {
  try {
    impl_->client->disconnect()->wait();
  } catch (const std::exception&) {
    // The broker may already be gone at the end of a test.
  }
  delete impl_;
}

void Publisher::Publish(const std::string& prefix, const std::vector<std::string>& devices,
                        int first, int count, int qos, std::atomic<int>* published,
                        size_t payload_bytes) {
  // A bounded window of unacknowledged publishes keeps the broker busy without unbounded memory.
  std::deque<mqtt::delivery_token_ptr> window;
  // Under Paho C's default of 100 buffered (queued, unsent) publishes per client. For QoS 2,
  // Mosquitto drops a client with more incoming QoS 2 flows open than max_inflight_messages (20 in
  // scripts/mosquitto.sh).
  const size_t kWindow = qos == 2 ? 16 : 64;
  auto settle_one = [&] {
    window.front()->wait();
    window.pop_front();
    if (published != nullptr) published->fetch_add(1);
  };
  for (int n = first; n < first + count; ++n) {
    for (const auto& d : devices) {
      auto msg = mqtt::make_message(prefix + "/" + d + "/data", PayloadFor(d, n, payload_bytes),
                                    qos, false);
      window.push_back(impl_->client->publish(msg));
      if (window.size() >= kWindow) settle_one();
    }
  }
  while (!window.empty()) settle_one();
}

HttpResponse HttpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(2));
  client.set_read_timeout(std::chrono::seconds(5));
  auto res = client.Get(path.c_str());
  if (!res) return {};
  return {res->status, res->body};
}

double MetricValue(int port, const std::string& series) {
  const HttpResponse r = HttpGet(port, "/metrics");
  const std::string needle = "\n" + series + " ";
  const size_t at = r.body.find(needle);
  if (r.status != 200 || at == std::string::npos) return -1;
  return std::stod(r.body.substr(at + needle.size()));
}

int MetricsPortFromEnvironment() {
  return std::stoi(MustGet("SLUICE_METRICS_PORT"));
}

void WriteBacklog(const std::string& log_path, const std::string& prefix,
                  const std::vector<std::string>& devices, int count_per_device,
                  size_t payload_bytes) {
  storage::SqliteEventLogOptions o;
  o.path = log_path;
  o.max_bytes = 4ull << 30;
  o.logger = sluice::testing::NullLogger();
  std::unique_ptr<storage::SqliteEventLog> log;
  Status s = storage::SqliteEventLog::Open(o, &log);
  if (!s.ok()) throw std::runtime_error("backlog: " + s.ToString());
  constexpr int kBatch = 5000;
  std::vector<storage::Event> batch;
  auto flush = [&] {
    size_t appended = 0;
    Status a = log->Append(batch, &appended);
    if (!a.ok() || appended != batch.size()) throw std::runtime_error("backlog: " + a.ToString());
    batch.clear();
  };
  for (int n = 1; n <= count_per_device; ++n) {
    for (const auto& d : devices) {
      storage::Event e;
      e.received_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
      e.qos = 1;
      e.topic = prefix + "/" + d + "/data";
      e.payload = PayloadFor(d, n, payload_bytes);
      batch.push_back(std::move(e));
      if (batch.size() == kBatch) flush();
    }
  }
  if (!batch.empty()) flush();
}

std::string CreateTopic(const std::string& brokers, const std::string& topic, int partitions,
                        int replication, const std::map<std::string, std::string>& configs) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return err;
  }
  // The admin API runs on any client handle; a producer is the lightest.
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) return err;
  std::string result;
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(topic.c_str(), partitions, replication, err, sizeof err);
  for (const auto& [k, v] : configs) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, 30000, err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
  if (ev == nullptr) {
    result = "no answer to CreateTopics within 60 s";
  } else if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    result = rd_kafka_event_error_string(ev);
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      if (rd_kafka_topic_result_error(res[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* msg = rd_kafka_topic_result_error_string(res[i]);
        result = msg != nullptr ? msg : rd_kafka_err2str(rd_kafka_topic_result_error(res[i]));
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return result;
}

std::string TopicConfig(const std::string& brokers, const std::string& topic,
                        const std::string& name) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    return "";
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk == nullptr) return "";
  std::string value;
  rd_kafka_ConfigResource_t* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 30000);
  if (ev != nullptr && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t n = 0;
    const rd_kafka_ConfigResource_t** res =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    for (size_t i = 0; i < n; ++i) {
      size_t entries = 0;
      const rd_kafka_ConfigEntry_t** e = rd_kafka_ConfigResource_configs(res[i], &entries);
      for (size_t j = 0; j < entries; ++j) {
        const char* v = rd_kafka_ConfigEntry_value(e[j]);
        if (name == rd_kafka_ConfigEntry_name(e[j]) && v != nullptr) value = v;
      }
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_ConfigResource_destroy(resource);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  return value;
}

// --- Kafka reader ---------------------------------------------------------------------------

namespace {
std::unique_ptr<RdKafka::KafkaConsumer> SubscribeFromStart(const std::string& brokers,
                                                           const std::string& topic,
                                                           Isolation isolation) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, err);
  conf->set("isolation.level",
            isolation == Isolation::kReadCommitted ? "read_committed" : "read_uncommitted", err);
  conf->set("group.id", "itest-" + UniqueSuffix(), err);
  conf->set("auto.offset.reset", "earliest", err);
  conf->set("enable.auto.commit", "false", err);
  conf->set("enable.partition.eof", "false", err);
  // librdkafka's default, stated because the exactly-once tests count duplicates on it: records
  // of aborted transactions are skipped.
  conf->set("isolation.level", "read_committed", err);
  std::unique_ptr<RdKafka::KafkaConsumer> consumer(RdKafka::KafkaConsumer::create(conf.get(), err));
  if (!consumer) throw std::runtime_error("cannot create consumer: " + err);
  RdKafka::ErrorCode rc = consumer->subscribe({topic});
  if (rc != RdKafka::ERR_NO_ERROR) throw std::runtime_error("subscribe: " + RdKafka::err2str(rc));
  return consumer;
}

// Waits up to `timeout_ms` for one record; false if none came.
bool ConsumeOne(RdKafka::KafkaConsumer* consumer, int timeout_ms, std::vector<Record>* out) {
  std::unique_ptr<RdKafka::Message> m(consumer->consume(timeout_ms));
  if (!m || m->err() != RdKafka::ERR_NO_ERROR) return false;
  Record r;
  if (m->key() != nullptr) r.key = *m->key();
  r.value.assign(static_cast<const char*>(m->payload()), m->len());
  r.partition = m->partition();
  r.offset = m->offset();
  if (RdKafka::Headers* h = m->headers()) {
    for (const auto& hd : h->get_all()) {
      r.headers[hd.key()] = std::string(static_cast<const char*>(hd.value()), hd.value_size());
    }
  }
  out->push_back(std::move(r));
  return true;
}
}  // namespace

std::vector<Record> ReadTopic(const std::string& brokers, const std::string& topic, size_t expected,
                              std::chrono::seconds idle) {
  auto consumer = SubscribeFromStart(brokers, topic, Isolation::kReadUncommitted);
  std::vector<Record> out;
  auto last = std::chrono::steady_clock::now();
  while (out.size() < expected && std::chrono::steady_clock::now() - last < idle) {
    if (ConsumeOne(consumer.get(), 200, &out)) last = std::chrono::steady_clock::now();
  }
  consumer->close();
  return out;
}

std::vector<Record> ReadTopicUntil(const std::string& brokers, const std::string& topic,
                                   const std::function<bool(const std::vector<Record>&)>& done,
                                   std::chrono::seconds timeout, Isolation isolation) {
  auto consumer = SubscribeFromStart(brokers, topic, isolation);
  std::vector<Record> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(out) && std::chrono::steady_clock::now() < deadline) {
    // Drain what is there before asking `done` again: it may look at every record.
    while (ConsumeOne(consumer.get(), 200, &out)) {
    }
  }
  consumer->close();
  return out;
}

std::optional<PartitionInfo> ReadPartitionInfo(const std::string& brokers, const std::string& topic,
                                               int32_t partition) {
  std::string err;
  std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
  conf->set("bootstrap.servers", brokers, err);
  std::unique_ptr<RdKafka::Producer> client(RdKafka::Producer::create(conf.get(), err));
  if (!client) throw std::runtime_error("cannot create metadata client: " + err);
  std::unique_ptr<RdKafka::Topic> t(RdKafka::Topic::create(client.get(), topic, nullptr, err));
  if (!t) throw std::runtime_error("cannot create topic handle: " + err);
  RdKafka::Metadata* raw = nullptr;
  if (client->metadata(false, t.get(), &raw, 5000) != RdKafka::ERR_NO_ERROR) return std::nullopt;
  std::unique_ptr<RdKafka::Metadata> md(raw);
  for (const auto* tm : *md->topics()) {
    if (tm->topic() != topic || tm->err() != RdKafka::ERR_NO_ERROR) continue;
    for (const auto* pm : *tm->partitions()) {
      if (pm->id() != partition) continue;
      PartitionInfo info;
      info.leader = pm->leader();
      info.replicas = *pm->replicas();
      info.isrs = *pm->isrs();
      return info;
    }
  }
  return std::nullopt;
}

// --- Verify ---------------------------------------------------------------------------------

Verdict Verify(const std::vector<Record>& records, const std::vector<std::string>& devices,
               int count_per_device, size_t payload_bytes) {
  Verdict v;
  v.records = records.size();
  std::map<std::string, std::vector<int>> seen;  // device -> occurrences of n, in record order
  for (const auto& d : devices) seen[d];
  std::map<std::string, std::string> seq_of;  // payload -> first sluice.seq seen
  for (const auto& r : records) {
    auto seq = r.headers.find("sluice.seq");
    if (seq != r.headers.end()) {
      auto [it, fresh] = seq_of.emplace(r.value, seq->second);
      if (!fresh) {
        if (it->second == seq->second) {
          v.resent_by_sluice++;
        } else {
          v.redelivered_by_broker++;
          if (v.redelivered_by_broker <= 3 || v.redelivered_by_broker % 50 == 0) {
            std::printf("  redelivered: %s seq %s and %s\n",
                        r.value.substr(0, r.value.find(':', r.value.find(':') + 1)).c_str(),
                        it->second.c_str(), seq->second.c_str());
          }
        }
      }
    }
    const auto colon1 = r.value.find(':');
    const auto colon2 = r.value.find(':', colon1 + 1);
    if (colon1 == std::string::npos || colon2 == std::string::npos) {
      v.corrupted++;
      continue;
    }
    const std::string device = r.value.substr(0, colon1);
    const int n = std::stoi(r.value.substr(colon1 + 1, colon2 - colon1 - 1));
    if (r.key != device || r.value != PayloadFor(device, n, payload_bytes)) {
      if (v.first_problem.empty()) v.first_problem = "bad key or payload for " + device;
      v.corrupted++;
      continue;
    }
    seen[device].push_back(n);
  }
  for (auto& [device, ns] : seen) {
    std::vector<int> count(count_per_device + 2, 0);
    int highest = 0;
    for (int n : ns) {
      if (n < 1 || n > count_per_device) {
        v.corrupted++;
        continue;
      }
      if (++count[n] > 1) {
        v.duplicates++;
        continue;
      }
      // A first appearance below the highest seen so far overtook nothing legitimately.
      if (n < highest) {
        v.reordered++;
        if (v.first_problem.empty()) {
          v.first_problem = device + ": " + std::to_string(n) + " after " + std::to_string(highest);
        }
      }
      highest = std::max(highest, n);
    }
    for (int n = 1; n <= count_per_device; ++n) {
      if (count[n] == 0) {
        v.lost++;
        if (v.first_problem.empty()) v.first_problem = device + ": lost " + std::to_string(n);
      }
    }
  }
  return v;
}

}  // namespace sluice::itest
