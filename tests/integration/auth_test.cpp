// SPDX-License-Identifier: Apache-2.0

// Kafka authorization and authentication failures against a real broker (auth_brokers.sh): a
// SASL_PLAINTEXT listener with PLAIN users and the KRaft ACL authorizer. sluice must say clearly
// what is wrong, keep every event in its log (an ACL or a password is the operator's to fix, not
// the event's: no dead letters), and deliver everything once the operator fixed it. Each scenario
// prints `scenario=<name> sent=.. arrived=.. lost=.. duplicates=.. dead_letters=..`.

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/sluice_fixture.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// The fixture's users (auth_brokers.sh).
constexpr const char* kAdminPassword = "admin-secret";
constexpr const char* kSluicePassword = "sluice-secret";

constexpr int kDevices = 4;
constexpr int kPerDevice = 50;
constexpr size_t kEvents = kDevices * kPerDevice;

// The admin user's Admin API client on the SASL listener: creates topics and ACLs, as an operator
// would with kafka-topics.sh and kafka-acls.sh.
class KafkaAdmin {
 public:
  explicit KafkaAdmin(const std::string& brokers) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    const std::pair<const char*, const char*> settings[] = {
        {"bootstrap.servers", brokers.c_str()}, {"security.protocol", "SASL_PLAINTEXT"},
        {"sasl.mechanisms", "PLAIN"},           {"sasl.username", "admin"},
        {"sasl.password", kAdminPassword},
    };
    for (const auto& [k, v] : settings) {
      REQUIRE_MESSAGE(rd_kafka_conf_set(conf, k, v, err, sizeof err) == RD_KAFKA_CONF_OK, err);
    }
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    REQUIRE_MESSAGE(rk_ != nullptr, err);
    queue_ = rd_kafka_queue_new(rk_);
  }
  ~KafkaAdmin() {
    rd_kafka_queue_destroy(queue_);
    rd_kafka_destroy(rk_);
  }

  void CreateTopic(const std::string& topic) {
    char err[512];
    rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, err, sizeof err);
    REQUIRE_MESSAGE(t != nullptr, err);
    rd_kafka_CreateTopics(rk_, &t, 1, nullptr, queue_);
    rd_kafka_NewTopic_destroy(t);
    rd_kafka_event_t* ev = Result(RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    size_t n = 0;
    const rd_kafka_topic_result_t** res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    REQUIRE(n == 1);
    const rd_kafka_resp_err_t code = rd_kafka_topic_result_error(res[0]);
    const std::string msg = rd_kafka_err2str(code);
    rd_kafka_event_destroy(ev);
    REQUIRE_MESSAGE(code == RD_KAFKA_RESP_ERR_NO_ERROR,
                    (std::string("create topic ") + topic + ": " + msg));
  }

  // Grants the principal the operations on a topic, or on the cluster for an empty topic.
  void Allow(const std::string& principal, const std::string& topic,
             const std::vector<rd_kafka_AclOperation_t>& ops) {
    char err[512];
    std::vector<rd_kafka_AclBinding_t*> acls;
    for (auto op : ops) {
      rd_kafka_AclBinding_t* acl = rd_kafka_AclBinding_new(
          topic.empty() ? RD_KAFKA_RESOURCE_BROKER : RD_KAFKA_RESOURCE_TOPIC,
          topic.empty() ? "kafka-cluster" : topic.c_str(), RD_KAFKA_RESOURCE_PATTERN_LITERAL,
          principal.c_str(), "*", op, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof err);
      REQUIRE_MESSAGE(acl != nullptr, err);
      acls.push_back(acl);
    }
    rd_kafka_CreateAcls(rk_, acls.data(), acls.size(), nullptr, queue_);
    rd_kafka_AclBinding_destroy_array(acls.data(), acls.size());
    rd_kafka_event_t* ev = Result(RD_KAFKA_EVENT_CREATEACLS_RESULT);
    size_t n = 0;
    const rd_kafka_acl_result_t** res =
        rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &n);
    std::string problems;
    for (size_t i = 0; i < n; i++) {
      if (const rd_kafka_error_t* e = rd_kafka_acl_result_error(res[i])) {
        problems += std::string(rd_kafka_error_string(e)) + "; ";
      }
    }
    rd_kafka_event_destroy(ev);
    CHECK(n == ops.size());
    REQUIRE_MESSAGE(problems.empty(), (std::string("create ACLs: ") + problems));
    // The controller has them; the broker's authorizer applies them from the metadata log a
    // moment later (seconds on a loaded machine). It also answers DescribeAcls: once it lists
    // them, it enforces them.
    REQUIRE_MESSAGE(WaitFor([&] { return VisibleAcls(principal, topic) >= ops.size(); }, 30s, 50ms),
                    "the broker did not apply the ACLs within 30 s");
  }

  // How many ALLOW bindings of the principal on the topic (the cluster for an empty topic) the
  // broker lists.
  size_t VisibleAcls(const std::string& principal, const std::string& topic) {
    char err[512];
    rd_kafka_AclBindingFilter_t* filter = rd_kafka_AclBindingFilter_new(
        topic.empty() ? RD_KAFKA_RESOURCE_BROKER : RD_KAFKA_RESOURCE_TOPIC,
        topic.empty() ? "kafka-cluster" : topic.c_str(), RD_KAFKA_RESOURCE_PATTERN_LITERAL,
        principal.c_str(), "*", RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err,
        sizeof err);
    REQUIRE_MESSAGE(filter != nullptr, err);
    rd_kafka_DescribeAcls(rk_, filter, nullptr, queue_);
    rd_kafka_AclBinding_destroy(filter);
    rd_kafka_event_t* ev = Result(RD_KAFKA_EVENT_DESCRIBEACLS_RESULT);
    size_t n = 0;
    rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
    rd_kafka_event_destroy(ev);
    return n;
  }

 private:
  rd_kafka_event_t* Result(rd_kafka_event_type_t type) {
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue_, 30000);
    REQUIRE_MESSAGE(ev != nullptr, "no admin result within 30 s");
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string msg = rd_kafka_event_error_string(ev);
      rd_kafka_event_destroy(ev);
      FAIL("admin request failed: " << msg);
    }
    REQUIRE(rd_kafka_event_type(ev) == type);
    return ev;
  }

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
};

// The shared fixture with sluice logging in as the SASL user "sluice", and the admin client.
struct AuthFixture : SluiceFixture {
  explicit AuthFixture(const std::string& name)
      : SluiceFixture("auth", name), admin(env.kafka_brokers) {
    // env.kafka_brokers is the SASL listener (SLUICE_KAFKA_BROKERS), where the ACLs apply.
    cfg.extra_kafka = "sasl_password_file = \"" + PasswordPath() + "\"\n";
    cfg.extra_sections =
        "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n"
        "\"sasl.mechanisms\" = \"PLAIN\"\n\"sasl.username\" = \"sluice\"\n";
  }
  std::string PasswordPath() const { return cfg.dir + "/kafka-password"; }
  void SetPassword(const std::string& password) {
    std::ofstream(PasswordPath(), std::ios::trunc) << password << "\n";
  }
  // The broker's PLAINTEXT listener, where ANONYMOUS is a super user: the tests' reader.
  std::string ReaderBrokers() const {
    return env.kafka_host + ":" + std::to_string(env.kafka_port);
  }
  void Publish() {
    Publisher pub(env.mqtt_url, "pub-" + cfg.gateway_id);
    pub.Publish(cfg.mqtt_prefix, Devices(kDevices), 1, kPerDevice, 1);
  }
  // Every event is in the log, none was confirmed and none dead-lettered.
  void RequireAllKept() {
    const bool kept = WaitFor([&] { return Stats().events == kEvents; }, 30s);
    const auto st = Stats();
    INFO(process->LogText());
    REQUIRE_MESSAGE(kept, ("log holds " + std::to_string(st.events) + " of " +
                           std::to_string(kEvents) + " events"));
    CHECK(st.cursor == 0);
    CHECK(st.dead_letters == 0);
  }
  // Waits for every event upstream and for the cursor to pass them; returns the verdict.
  Verdict RequireAllDelivered(const std::string& scenario) {
    const auto records = ReadTopicUntil(
        ReaderBrokers(), cfg.kafka_topic,
        [&](const std::vector<Record>& r) { return r.size() >= kEvents; }, 120s);
    const Verdict v = Verify(records, Devices(kDevices), kPerDevice);
    CHECK(WaitFor([&] { return Stats().cursor == kEvents; }, 30s));
    const auto st = Stats();
    std::printf("scenario=%s sent=%zu arrived=%zu lost=%zu duplicates=%zu dead_letters=%llu\n",
                scenario.c_str(), kEvents, v.records, v.lost, v.duplicates,
                static_cast<unsigned long long>(st.dead_letters));
    std::fflush(stdout);
    INFO(v.first_problem);
    INFO(process->LogText());
    CHECK(v.lost == 0);
    CHECK(v.duplicates == 0);
    CHECK(v.reordered == 0);
    CHECK(v.corrupted == 0);
    CHECK(st.dead_letters == 0);
    CHECK(st.cursor == kEvents);
    return v;
  }

  KafkaAdmin admin;
};

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
  return n;
}

TEST_CASE("a Kafka ACL refuses sluice's writes: events kept, delivered once WRITE is granted") {
  AuthFixture f("acl");
  // The admin creates the topic; sluice's user has no ACL at all yet.
  f.admin.CreateTopic(f.cfg.kafka_topic);
  f.SetPassword(kSluicePassword);
  f.StartSluice();
  f.Publish();

  const std::string refusal = "Kafka refuses topic '" + f.cfg.kafka_topic + "'";
  REQUIRE_MESSAGE(
      WaitFor([&] { return f.process->LogText().find(refusal) != std::string::npos; }, 60s),
      f.process->LogText());
  CHECK(f.process->LogText().find("authorization failed") != std::string::npos);
  f.RequireAllKept();
  CHECK(f.process->Running());
  // Retried, not dead-lettered, and said at most once per 30 s (the refusal repeats many times a
  // second).
  CHECK(f.process->LogText().find("dead-letter") == std::string::npos);
  CHECK(Count(f.process->LogText(), refusal) <= 2);

  f.admin.Allow("User:sluice", f.cfg.kafka_topic,
                {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE});
  f.admin.Allow("User:sluice", "", {RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE});
  f.RequireAllDelivered("kafka-acl-denied");
  CHECK(f.process->Terminate() == 0);
}

TEST_CASE("a wrong SASL password: events kept, delivered after the password is fixed") {
  AuthFixture f("sasl");
  f.admin.CreateTopic(f.cfg.kafka_topic);
  f.admin.Allow("User:sluice", f.cfg.kafka_topic,
                {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE});
  f.admin.Allow("User:sluice", "", {RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE});
  f.SetPassword("not-the-password");
  f.StartSluice();
  f.Publish();

  const std::string refusal = "SASL authentication error";
  REQUIRE_MESSAGE(
      WaitFor([&] { return f.process->LogText().find(refusal) != std::string::npos; }, 60s),
      f.process->LogText());
  f.RequireAllKept();
  CHECK(f.process->Running());
  CHECK(f.process->LogText().find("dead-letter") == std::string::npos);
  // librdkafka retries the login with backoff; sluice says so at most once per 30 s.
  CHECK(Count(f.process->LogText(), refusal) <= 2);

  // The password file is read at start: fix it and restart, as the operator would.
  f.SetPassword(kSluicePassword);
  CHECK(f.process->Terminate() == 0);
  CHECK(f.Stats().events == kEvents);
  f.StartSluice();
  f.RequireAllDelivered("kafka-sasl-wrong-password");
  CHECK(f.process->Terminate() == 0);
}

// `sluice check-config --probe` on the SASL listener: the right password passes every check; a
// wrong one fails the connection at once (no waiting out the timeout), naming what to fix and
// showing no password. The file form is the old one, so the upstream is "kafka" in [kafka].
TEST_CASE("probe: the right SASL password passes, a wrong one fails naming the credentials") {
  AuthFixture f("probe-sasl");
  f.admin.CreateTopic(f.cfg.kafka_topic);
  f.admin.Allow("User:sluice", f.cfg.kafka_topic,
                {RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_OPERATION_DESCRIBE});
  f.admin.Allow("User:sluice", "", {RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE});
  f.SetPassword(kSluicePassword);
  const std::string path = f.cfg.Write(f.env);
  const std::string subject = "upstream kafka (kafka): ";

  const ProbeRun ok = RunProbe(f.env.sluice_bin, path, 5, f.cfg.dir);
  std::printf("scenario=probe-sasl-right rc=%d seconds=%.2f\n%s", ok.rc, ok.seconds,
              ok.output.c_str());
  {
    INFO(ok.output);
    CHECK(ok.rc == 0);
    CHECK_FALSE(ok.Line("ok", subject + "connected to " + f.env.kafka_brokers +
                                  ": 1 broker(s) in the cluster (security.protocol "
                                  "sasl_plaintext, SASL PLAIN user 'sluice' accepted)")
                    .empty());
    CHECK_FALSE(ok.Line("ok", subject + "topic '" + f.cfg.kafka_topic + "' exists").empty());
    CHECK_FALSE(ok.Line("ok", subject + "idempotent producer id").empty());
    CHECK(ok.Count("FAIL") == 0);
  }

  const std::string wrong = "not-the-password-4711";
  f.SetPassword(wrong);
  const ProbeRun bad = RunProbe(f.env.sluice_bin, path, 5, f.cfg.dir);
  std::printf("scenario=probe-sasl-wrong rc=%d seconds=%.2f\n%s", bad.rc, bad.seconds,
              bad.output.c_str());
  INFO(bad.output);
  CHECK(bad.rc == 4);
  const std::string line =
      bad.Line("FAIL", subject + f.env.kafka_brokers + " refuses sluice's credentials (");
  CHECK_FALSE(line.empty());
  CHECK(line.find("SASL authentication") != std::string::npos);
  CHECK(line.find("sasl_password_file (or sasl.password) in [kafka]") != std::string::npos);
  CHECK(bad.Count("FAIL") == 1);
  // A refusal is final: the probe says so at once rather than after its 5 s timeout.
  CHECK(bad.seconds < 5);
  for (const std::string& secret : {wrong, std::string(kSluicePassword)}) {
    CHECK(bad.output.find(secret) == std::string::npos);
    CHECK(ok.output.find(secret) == std::string::npos);
  }
}

// A topic that exists but that the ACLs do not open to sluice's user: the probe fails on that
// topic, and only there (the cluster grants the idempotent producer).
TEST_CASE("probe: a topic the Kafka ACLs do not open to sluice fails, naming the topic") {
  AuthFixture f("probe-acl");
  f.admin.CreateTopic(f.cfg.kafka_topic);
  f.admin.Allow("User:sluice", "", {RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE});
  f.SetPassword(kSluicePassword);
  const ProbeRun probe = RunProbe(f.env.sluice_bin, f.cfg.Write(f.env), 5, f.cfg.dir);
  std::printf("scenario=probe-kafka-acl rc=%d seconds=%.2f\n%s", probe.rc, probe.seconds,
              probe.output.c_str());
  INFO(probe.output);
  CHECK(probe.rc == 4);
  CHECK_FALSE(
      probe
          .Line("FAIL", "upstream kafka (kafka): topic '" + f.cfg.kafka_topic + "': not authorized")
          .empty());
  CHECK(probe.Count("FAIL") == 1);
}

}  // namespace
}  // namespace sluice::itest
