// SPDX-License-Identifier: Apache-2.0

#pragma once

// What the Kafka sink's tests share: a librdkafka mock cluster, the routes and options they run
// with, and how they make events and wait for reports.

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "connectors/kafka_sink.h"
#include "tests/test_util.h"

namespace sluice::testing {

using connectors::Delivery;
using connectors::KafkaSink;
using connectors::KafkaSinkOptions;
using connectors::Route;
using connectors::Router;
using namespace std::chrono_literals;

inline constexpr int16_t kProduceApi = 0;

// A librdkafka mock cluster owned by the test, so that it outlives every producer the sink
// builds (a rebuild included).
class MockCluster {
 public:
  explicit MockCluster(int brokers) {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    REQUIRE(rk_ != nullptr);
    mc_ = rd_kafka_mock_cluster_new(rk_, brokers);
    REQUIRE(mc_ != nullptr);
  }
  ~MockCluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  rd_kafka_mock_cluster_t* get() { return mc_; }
  std::string bootstraps() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  void PushProduceErrors(rd_kafka_resp_err_t err, size_t count) {
    std::vector<rd_kafka_resp_err_t> errs(count, err);
    rd_kafka_mock_push_request_errors_array(mc_, kProduceApi, errs.size(), errs.data());
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

inline Router MakeRouter() {
  std::vector<Route> routes;
  for (const char* t : {"t", "good", "bad", "missing", "acl"}) {
    Route r;
    r.mqtt_filter = std::string("dev/") + t + "/#";
    r.upstream_topic = t;
    routes.push_back(std::move(r));
  }
  return Router(std::move(routes));
}

inline KafkaSinkOptions Options(const std::string& brokers) {
  KafkaSinkOptions o;
  o.brokers = brokers;
  o.gateway_id = "gw-test";
  o.log_id = "log-0123";
  o.retry_backoff_ms = 20;
  o.reconnect_max_ms = 200;
  // An unknown topic is reported without librdkafka's default 30 s grace for a topic being
  // created.
  o.properties = {{"allow.auto.create.topics", "false"},
                  {"topic.metadata.propagation.max.ms", "10"}};
  return o;
}

inline sluice::storage::Event MakeEvent(uint64_t seq, const std::string& topic, size_t bytes = 10) {
  sluice::storage::Event e;
  e.seq = seq;
  e.received_ms = 1700000000000 + static_cast<int64_t>(seq);
  e.qos = 1;
  e.topic = topic;
  e.payload = std::string(bytes, static_cast<char>('a' + seq % 26));
  return e;
}

// Polls until `done` holds for what was reported so far.
inline bool PollUntil(KafkaSink& sink, std::vector<Delivery>* out,
                      const std::function<bool(const std::vector<Delivery>&)>& done,
                      std::chrono::milliseconds timeout = 20s) {
  return WaitFor(
      [&] {
        sink.Poll(20ms, out);
        return done(*out);
      },
      timeout, 1ms);
}

inline size_t Count(const std::vector<Delivery>& ds, Delivery::Outcome o) {
  return static_cast<size_t>(
      std::count_if(ds.begin(), ds.end(), [o](const Delivery& d) { return d.outcome == o; }));
}

}  // namespace sluice::testing
