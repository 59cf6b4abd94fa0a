// SPDX-License-Identifier: Apache-2.0

// sluice-verify against Kafka transactions, on the shared broker of the integration fixture: a
// transactional producer (librdkafka, as sluice's exactly-once sink is) writes device events in
// committed, aborted and still open transactions, each with a checkpoint record on a topic of its
// own, and sluice-verify reads the event topic read_committed (its default) and with
// --read-uncommitted. The figures must be exact: no record of an aborted or open transaction is
// checked as an event, the aborted ones are counted apart from duplicates, the open ones not at
// all, and the checkpoint records never.

#include <librdkafka/rdkafkacpp.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "firmware-sim/device_event.h"
#include "tests/integration/harness.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

// A transactional producer; every call must succeed, or the test stops with librdkafka's error.
class TxnProducer {
 public:
  TxnProducer(const std::string& brokers, const std::string& transactional_id) {
    std::string err;
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    REQUIRE(conf->set("bootstrap.servers", brokers, err) == RdKafka::Conf::CONF_OK);
    REQUIRE(conf->set("transactional.id", transactional_id, err) == RdKafka::Conf::CONF_OK);
    REQUIRE(conf->set("linger.ms", "0", err) == RdKafka::Conf::CONF_OK);
    producer_.reset(RdKafka::Producer::create(conf.get(), err));
    REQUIRE_MESSAGE(producer_ != nullptr, err);
    Check(producer_->init_transactions(kTimeoutMs), "init_transactions");
  }
  ~TxnProducer() {
    if (producer_) producer_->flush(kTimeoutMs);
  }

  void Begin() { Check(producer_->begin_transaction(), "begin_transaction"); }
  void Commit() { Check(producer_->commit_transaction(kTimeoutMs), "commit_transaction"); }
  // Writes the transaction's records first: abort_transaction drops those not yet sent, and an
  // aborted record that never reached the partition would prove nothing.
  void Abort() {
    Flush();
    Check(producer_->abort_transaction(kTimeoutMs), "abort_transaction");
  }
  // Waits until every record produced so far is written (in an open transaction: appended to the
  // partition, beyond its last stable offset).
  void Flush() { REQUIRE(producer_->flush(kTimeoutMs) == RdKafka::ERR_NO_ERROR); }

  void Send(const std::string& topic, int32_t partition, const std::string& key,
            const std::string& value) {
    const RdKafka::ErrorCode rc = producer_->produce(
        topic, partition, RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
        value.size(), key.data(), key.size(), 0, nullptr, nullptr);
    REQUIRE_MESSAGE(rc == RdKafka::ERR_NO_ERROR, RdKafka::err2str(rc));
  }

 private:
  static constexpr int kTimeoutMs = 30000;
  static void Check(RdKafka::Error* raw, const char* what) {
    std::unique_ptr<RdKafka::Error> error(raw);
    REQUIRE_MESSAGE(error == nullptr, what << ": " << (error ? error->str() : ""));
  }
  std::unique_ptr<RdKafka::Producer> producer_;
};

struct VerifyRun {
  int rc = -1;
  nlohmann::json report;
  std::string text;  // what it printed, for failure messages
};

// sluice-verify on `topic` with no gap topic, its report as JSON.
VerifyRun RunVerify(const Env& env, const std::string& dir, const std::string& topic,
                    const std::string& extra_args) {
  const char* bin = std::getenv("SLUICE_VERIFY_BIN");
  REQUIRE_MESSAGE(bin != nullptr, "the test needs SLUICE_VERIFY_BIN");
  const std::string json = dir + "/verify.json";
  const std::string out = dir + "/verify.txt";
  VerifyRun run;
  run.rc = Shell(std::string(bin) + " --brokers " + env.kafka_brokers + " --topic " + topic +
                 " --gap-topic '' --idle-timeout 3 " + extra_args + " --json " + json + " >" + out +
                 " 2>&1");
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  run.text = text.str();
  std::ifstream report(json);
  REQUIRE_MESSAGE(report.good(), run.text);
  run.report = nlohmann::json::parse(report);
  return run;
}

// The figures the test judges, from the report's totals.
nlohmann::json Totals(const VerifyRun& run) {
  const nlohmann::json& t = run.report.at("totals");
  nlohmann::json out;
  for (const char* key : {"records", "unique", "duplicates", "lost", "foreign", "aborted_records"})
    out[key] = t.at(key);
  return out;
}

std::string EventPayload(const std::string& device, uint64_t seq) {
  sim::DeviceEvent e;
  e.device = device;
  e.seq = seq;
  e.ts_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  e.profile = "telemetry";
  return e.Encode();
}

TEST_CASE("sluice-verify reads read_committed and counts aborted records apart from duplicates") {
  const Env env = Env::FromEnvironment();
  sluice::testing::TempDir dir;
  const std::string suffix = UniqueSuffix();
  const std::string topic = "verify-txn-" + suffix;
  const std::string checkpoints = topic + "-checkpoints";
  REQUIRE(CreateTopic(env.kafka_brokers, topic, 2, 1) == "");
  REQUIRE(CreateTopic(env.kafka_brokers, checkpoints, 1, 1, {{"cleanup.policy", "compact"}}) == "");

  // As sluice's sink does (docs/kafka-records.md): one checkpoint record per transaction, keyed by
  // gateway and upstream.
  TxnProducer p(env.kafka_brokers, "verify-txn-" + suffix);
  auto checkpoint = [&](uint64_t last_seq) {
    p.Send(checkpoints, 0, "verify-" + suffix + "/central",
           "{\"v\":1,\"log\":\"0123456789abcdef0123456789abcdef\",\"seq\":" +
               std::to_string(last_seq) + "}");
  };
  auto events = [&](const std::string& device, int32_t partition, uint64_t first, uint64_t last) {
    for (uint64_t s = first; s <= last; ++s)
      p.Send(topic, partition, device, EventPayload(device, s));
  };
  // One transaction's records: dev-a's seqs on partition 0, dev-b's on partition 1 (none when
  // first > last), and the checkpoint.
  auto transaction = [&](uint64_t a_first, uint64_t a_last, uint64_t b_first, uint64_t b_last,
                         uint64_t checkpoint_seq) {
    p.Begin();
    events("dev-a", 0, a_first, a_last);
    events("dev-b", 1, b_first, b_last);
    checkpoint(checkpoint_seq);
  };
  // dev-a: 1-3 committed, 4-6 aborted, 4-6 committed again (the sink's resend after an abort).
  // dev-b: 1-2 committed, 3 aborted, 3 committed again.
  transaction(1, 3, 1, 2, 5);
  p.Commit();
  transaction(4, 6, 3, 3, 9);
  p.Abort();
  transaction(4, 6, 3, 3, 9);
  p.Commit();
  // Still open while the verifier reads: beyond the last stable offset, so in neither count.
  transaction(7, 8, 1, 0, 11);
  p.Flush();

  const VerifyRun committed = RunVerify(env, dir.path().string(), topic, "--fail-on-duplicates");
  INFO(committed.text);
  CHECK(committed.rc == 0);
  CHECK(Totals(committed) == nlohmann::json{{"records", 9},
                                            {"unique", 9},
                                            {"duplicates", 0},
                                            {"lost", 0},
                                            {"foreign", 0},
                                            {"aborted_records", nullptr}});
  CHECK(committed.report.at("source").at("isolation") == "read_committed");

  const VerifyRun uncommitted =
      RunVerify(env, dir.path().string(), topic, "--fail-on-duplicates --read-uncommitted");
  INFO(uncommitted.text);
  CHECK(uncommitted.rc == 0);
  CHECK(Totals(uncommitted) == nlohmann::json{{"records", 9},
                                              {"unique", 9},
                                              {"duplicates", 0},
                                              {"lost", 0},
                                              {"foreign", 0},
                                              {"aborted_records", 4}});
  CHECK(uncommitted.text.find("aborted records: 4 (") != std::string::npos);
  // 9 committed and 4 aborted records below where the committed read ended; the open
  // transaction's 2 lie beyond it.
  CHECK(uncommitted.report.at("source").at("uncommitted_read").at("records_read") == 13);

  // The open transaction aborted, then a duplicate committed: --fail-on-duplicates fails on it,
  // and the aborted records stay a count of their own.
  p.Abort();
  transaction(1, 0, 3, 3, 12);
  p.Commit();
  const VerifyRun dup =
      RunVerify(env, dir.path().string(), topic, "--fail-on-duplicates --read-uncommitted");
  INFO(dup.text);
  CHECK(dup.rc == 1);
  CHECK(Totals(dup) == nlohmann::json{{"records", 10},
                                      {"unique", 9},
                                      {"duplicates", 1},
                                      {"lost", 0},
                                      {"foreign", 0},
                                      {"aborted_records", 6}});
  CHECK(dup.report.at("failures") == nlohmann::json::array({"1 duplicate"}));
  const VerifyRun dup_allowed = RunVerify(env, dir.path().string(), topic, "");
  CHECK(dup_allowed.rc == 0);
  CHECK(dup_allowed.report.at("totals").at("duplicates") == 1);
}

}  // namespace
}  // namespace sluice::itest
