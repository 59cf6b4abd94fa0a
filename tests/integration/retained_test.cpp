// SPDX-License-Identifier: Apache-2.0

// Retained messages and SUBACK checks against the real Mosquitto of the CTest fixture (issue 10,
// item 4): a retained message enters the log once, never again because sluice restarted and
// subscribed again; a route can skip them; a refused subscription keeps /readyz not ready
// and fails `sluice check-config --probe`.

#include <doctest/doctest.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

constexpr int kRetained = 5;

std::string RetainedTopic(const SluiceFixture& f, int i) {
  return f.cfg.mqtt_prefix + "/ret" + std::to_string(i) + "/data";
}

std::string RetainedPayload(const SluiceFixture& f, int i) {
  return "retained-" + std::to_string(i) + "-" + f.cfg.gateway_id;
}

// Publishes kRetained retained messages, one per topic under the fixture's route, acknowledged.
void PublishRetained(const SluiceFixture& f) {
  mqtt::async_client client(f.env.mqtt_url, "ret-" + f.cfg.gateway_id);
  client.connect()->wait();
  for (int i = 1; i <= kRetained; ++i) {
    client.publish(mqtt::make_message(RetainedTopic(f, i), RetainedPayload(f, i), 1, true))->wait();
  }
  client.disconnect()->wait();
}

// The fixture's configuration with the MQTT protocol and the route's retained option set.
std::string ConfigText(SluiceFixture& f, const std::string& protocol, const std::string& retained) {
  std::ifstream in(f.cfg.Write(f.env));
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  const std::string mqtt = "[mqtt]\n";
  s.replace(s.find(mqtt), mqtt.size(), mqtt + "protocol = \"" + protocol + "\"\n");
  // The route is the last table of the file.
  return s + "retained = \"" + retained + "\"\n";
}

// How often each payload reached Kafka.
std::map<std::string, int> Occurrences(const std::vector<Record>& records) {
  std::map<std::string, int> n;
  for (const Record& r : records) n[r.value]++;
  return n;
}

// Publishes retained messages, then runs sluice three times (two SIGTERM restarts) with live
// events in every run, and checks what reached the log and Kafka.
void RunRestarts(const std::string& name, const std::string& protocol,
                 const std::string& retained) {
  SluiceFixture f("itest", name);
  PublishRetained(f);
  const auto devices = Devices(2);
  constexpr int kPerRun = 50;
  constexpr int kRuns = 3;
  const bool ingest = retained == "ingest";
  const uint64_t expected = (ingest ? kRetained : 0) + uint64_t{kRuns} * kPerRun * devices.size();

  const std::string config = ConfigText(f, protocol, retained);
  for (int run = 0; run < kRuns; ++run) {
    f.StartSluice({}, run == 0 ? config : std::string());
    Publisher pub(f.env.mqtt_url, "pub-" + f.cfg.gateway_id);
    pub.Publish(f.cfg.mqtt_prefix, devices, 1 + run * kPerRun, kPerRun, 1);
    // Everything published in this run is in Kafka; a retained message sent again at the
    // subscription would have come before it.
    const uint64_t live_so_far = uint64_t(run + 1) * kPerRun * devices.size();
    REQUIRE_MESSAGE(
        WaitFor([&] { return f.Cursor() >= live_so_far + (ingest ? kRetained : 0); }, 120s, 20ms),
        f.Log());
    CHECK(f.process->Terminate() == 0);
  }

  // Every event got one sequence number: a retained message logged twice would take another.
  CHECK(f.LastSeq() == expected);
  const auto records = ReadTopic(f.env.kafka_brokers, f.cfg.kafka_topic, expected + 1, 10s);
  CHECK(records.size() == expected);
  const auto seen = Occurrences(records);
  for (int i = 1; i <= kRetained; ++i) {
    const auto it = seen.find(RetainedPayload(f, i));
    const int count = it == seen.end() ? 0 : it->second;
    INFO("retained message ", i, " with MQTT ", protocol, ", retained = ", retained);
    CHECK(count == (ingest ? 1 : 0));
  }
  std::vector<Record> live;
  for (const Record& r : records) {
    if (r.value.rfind("retained-", 0) != 0) live.push_back(r);
  }
  const Verdict v = Verify(live, devices, kRuns * kPerRun);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  std::printf("[%s] MQTT %s, retained = %s: %zu records, last seq %llu, live lost %zu dup %zu\n",
              name.c_str(), protocol.c_str(), retained.c_str(), records.size(),
              static_cast<unsigned long long>(f.LastSeq()), v.lost, v.duplicates);
}

TEST_CASE("retained messages are ingested once across SIGTERM restarts (MQTT 5)") {
  RunRestarts("retained5", "5", "ingest");
}

TEST_CASE("retained messages are ingested once across SIGTERM restarts (MQTT 3.1.1)") {
  RunRestarts("retained311", "3.1.1", "ingest");
}

TEST_CASE("retained messages are never ingested by a route with retained = skip") {
  RunRestarts("retainedskip5", "5", "skip");
  RunRestarts("retainedskip311", "3.1.1", "skip");
}

// A free TCP port on 127.0.0.1 for a broker of the test's own.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  close(fd);
  return ntohs(a.sin_port);
}

// A Mosquitto of the test's own, on a free port, with `extra_conf` appended to its settings;
// stopped when the object goes.
class PrivateBroker {
 public:
  PrivateBroker(const SluiceFixture& f, const std::string& extra_conf)
      : script_(f.env.scripts_dir + "/mosquitto.sh"), dir_(f.dir.File("mosquitto")) {
    const std::string extra = f.dir.File("mosquitto-extra.conf");
    std::ofstream(extra) << extra_conf;
    port_ = FreePort();
    started_ = Shell(script_ + " start --dir " + dir_ + " --port " + std::to_string(port_) +
                     " --extra-conf " + extra) == 0;
  }
  ~PrivateBroker() { Shell(script_ + " stop --dir " + dir_); }
  PrivateBroker(const PrivateBroker&) = delete;
  PrivateBroker& operator=(const PrivateBroker&) = delete;

  bool started() const { return started_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string script_;
  std::string dir_;
  int port_ = 0;
  bool started_ = false;
};

// A sluice configuration against `mqtt_url` with the fixture's route and a second route on
// `second_filter`, and /readyz on `metrics_port`.
std::string TwoRouteConfig(const SluiceFixture& f, const std::string& mqtt_url,
                           const std::string& protocol, const std::string& second_filter,
                           int metrics_port) {
  return "[gateway]\nid = \"" + f.cfg.gateway_id + "\"\n[storage]\npath = \"" + f.LogPath() +
         "\"\n[mqtt]\nurl = \"" + mqtt_url + "\"\nprotocol = \"" + protocol +
         "\"\nclient_id = \"sluice-" + f.cfg.gateway_id +
         "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 2000\n[kafka]\nbrokers = \"" +
         f.env.kafka_brokers +
         "\"\n[metrics]\nenabled = true\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
         "\"\n[[route]]\nmqtt = \"" + f.cfg.mqtt_prefix + "/+/data\"\nkafka_topic = \"" +
         f.cfg.kafka_topic + "\"\n[[route]]\nmqtt = \"" + second_filter + "\"\nkafka_topic = \"" +
         f.cfg.kafka_topic + "\"\n";
}

// Waits until /readyz mentions `reason`; returns the last answer.
HttpResponse WaitForReadyzReason(int metrics_port, const std::string& reason,
                                 SluiceProcess& sluice) {
  HttpResponse ready;
  const bool seen = WaitFor(
      [&] {
        ready = HttpGet(metrics_port, "/readyz");
        return ready.body.find(reason) != std::string::npos;
      },
      60s, 50ms);
  REQUIRE_MESSAGE(seen, std::string(sluice.LogText() + "\n/readyz: " + ready.body));
  return ready;
}

TEST_CASE(
    "a refused subscription is an error, keeps /readyz not ready and fails the probe, naming the "
    "filter") {
  SluiceFixture f("itest", "suback");
  // The dynamic-security plugin refuses to subscribe to refused/# (MQTT 5 reason 0x87, MQTT
  // 3.1.1 0x80); the fixture's broker allows everything.
  const std::string dynsec = f.dir.File("dynsec.json");
  std::ofstream(dynsec) << R"({"defaultACLAccess":{"publishClientSend":true,
 "publishClientReceive":true,"subscribe":true,"unsubscribe":true},
 "clients":[],"groups":[{"groupname":"anon","roles":[{"rolename":"r"}]}],
 "roles":[{"rolename":"r","acls":[{"acltype":"subscribePattern","topic":"refused/#",
 "priority":0,"allow":false}]}],"anonymousGroup":"anon"})";
  PrivateBroker broker(f,
                       "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\n"
                       "plugin_opt_config_file " +
                           dynsec + "\n");
  REQUIRE(broker.started());

  const int metrics = MetricsPortFromEnvironment();
  for (const std::string protocol : {"5", "3.1.1"}) {
    const std::string refused = "refused/" + f.cfg.gateway_id + "-" +
                                (protocol == "5" ? std::string("v5") : std::string("v311")) + "/#";
    const std::string path = f.dir.File("sluice-" + protocol + ".toml");
    std::ofstream(path) << TwoRouteConfig(f, broker.url(), protocol, refused, metrics);
    const std::string reason = "refused the subscription to '" + refused + "'";
    const std::string code = protocol == "5" ? "0x87 not authorized" : "0x80";

    // `sluice check-config --probe` names the refusal before sluice ever runs, and passes the
    // other route's filter.
    {
      const ProbeRun probe = RunProbe(f.env.sluice_bin, path, 5, f.cfg.dir);
      std::printf("scenario=probe-refused-subscription-mqtt-%s rc=%d seconds=%.2f\n%s",
                  protocol.c_str(), probe.rc, probe.seconds, probe.output.c_str());
      INFO("MQTT ", protocol, ": probe output\n", probe.output);
      CHECK(probe.rc == 4);
      CHECK_FALSE(probe.Line("FAIL", "mqtt: the MQTT broker " + reason + " (" + code).empty());
      CHECK_FALSE(
          probe.Line("ok", "mqtt: subscribe to '" + f.cfg.mqtt_prefix + "/+/data' allowed (QoS 1)")
              .empty());
      CHECK(probe.Count("FAIL") == 1);
    }

    SluiceProcess sluice(f.env.sluice_bin, path, f.cfg.dir);
    sluice.Start();

    HttpResponse ready = WaitForReadyzReason(metrics, reason, sluice);
    INFO("MQTT ", protocol, ": /readyz ", ready.status, " ", ready.body);
    CHECK(ready.status == 503);
    CHECK(ready.body.find(code) != std::string::npos);

    // The other route works: the connection is up and only the refusal keeps sluice unready.
    Publisher pub(broker.url(), "pub-" + f.cfg.gateway_id);
    const uint64_t before = f.Cursor();
    pub.Publish(f.cfg.mqtt_prefix, Devices(1), 1, 3, 1);
    REQUIRE_MESSAGE(WaitFor([&] { return f.Cursor() >= before + 3; }, 60s, 20ms), sluice.LogText());
    // Meanwhile the refused filter was asked for again (reconnect_max_ms = 2000), and refused.
    ready = HttpGet(metrics, "/readyz");
    CHECK(ready.status == 503);
    CHECK(ready.body.find(reason) != std::string::npos);
    CHECK(sluice.Terminate() == 0);
  }
}

TEST_CASE("a downgraded subscription is a warning and keeps /readyz not ready, naming the filter") {
  SluiceFixture f("itest", "downgrade");
  // Mosquitto grants at most QoS 0 on this broker: sluice's QoS 1 routes are downgraded.
  PrivateBroker broker(f, "max_qos 0\n");
  REQUIRE(broker.started());
  const int metrics = MetricsPortFromEnvironment();
  for (const std::string protocol : {"5", "3.1.1"}) {
    const std::string second = "other/" + f.cfg.gateway_id + "/#";
    const std::string path = f.dir.File("sluice-" + protocol + ".toml");
    std::ofstream(path) << TwoRouteConfig(f, broker.url(), protocol, second, metrics);
    SluiceProcess sluice(f.env.sluice_bin, path, f.cfg.dir);
    sluice.Start();
    const HttpResponse ready = WaitForReadyzReason(
        metrics, "granted '" + f.cfg.mqtt_prefix + "/+/data' at QoS 0 instead of 1", sluice);
    INFO("MQTT ", protocol, ": /readyz ", ready.status, " ", ready.body);
    CHECK(ready.status == 503);
    CHECK(ready.body.find("granted '" + second + "' at QoS 0 instead of 1") != std::string::npos);
    CHECK(sluice.Terminate() == 0);
  }
}

}  // namespace
}  // namespace sluice::itest
