// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_reader.h"

#include <doctest/doctest.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/clock.h"
#include "connectors/record_headers.h"
#include "tests/connectors/kafka_sink_test_util.h"

namespace sluice::sim {
namespace {

using namespace std::chrono_literals;

// Produces records with sluice's headers to the mock cluster through librdkafka's C API.
void ProduceWithHeaders(const std::string& brokers, const std::string& topic, int n) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  REQUIRE(rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err) ==
          RD_KAFKA_CONF_OK);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  REQUIRE(rk != nullptr);
  for (int i = 0; i < n; ++i) {
    rd_kafka_headers_t* h = rd_kafka_headers_new(4);
    const std::string seq = std::to_string(1000 + i);
    const std::string received = std::to_string(1700000000000LL + i);
    const std::string log = "log-" + std::string(40, static_cast<char>('a' + i % 26));
    rd_kafka_header_add(h, connectors::kHeaderSeq, -1, seq.data(), seq.size());
    rd_kafka_header_add(h, connectors::kHeaderReceivedMs, -1, received.data(), received.size());
    rd_kafka_header_add(h, connectors::kHeaderLogId, -1, log.data(), log.size());
    const std::string value = "v" + std::to_string(i);
    REQUIRE(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                              RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  REQUIRE(rd_kafka_flush(rk, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
}

TEST_CASE("VerifyReader passes sluice's headers on, valid while the record is handled") {
  testing::MockCluster cluster(1);
  ProduceWithHeaders(cluster.bootstraps(), "t", 30);
  SystemClock clock;
  VerifyReaderOptions o;
  o.brokers = cluster.bootstraps();
  o.topic = "t";
  o.max_records = 30;
  o.idle_timeout = 5s;
  o.timeout = 30s;
  std::unique_ptr<VerifyReader> reader;
  REQUIRE(VerifyReader::Open(o, &clock, &reader).ok());
  struct Seen {
    uint64_t seq;
    uint64_t received_ms;
    std::string log;
  };
  std::vector<Seen> seen;
  VerifyReader::Stats stats;
  const Status s = reader->Read(
      [&](const ConsumedRecord& r) {
        // Copied here, while the record is handled: the views must still point at its headers
        // (ASan reports a view into a header copy that is already freed).
        seen.push_back({r.log_seq.value_or(0), r.received_ms.value_or(0), std::string(r.log_id)});
      },
      [](const std::string&) {}, &stats);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(seen.size() == 30);
  // The mock cluster spreads the records over its partitions: compare them in seq order.
  std::sort(seen.begin(), seen.end(), [](const Seen& a, const Seen& b) { return a.seq < b.seq; });
  for (int i = 0; i < 30; ++i) {
    CAPTURE(i);
    CHECK(seen[i].seq == static_cast<uint64_t>(1000 + i));
    CHECK(seen[i].received_ms == static_cast<uint64_t>(1700000000000LL + i));
    CHECK(seen[i].log == "log-" + std::string(40, static_cast<char>('a' + i % 26)));
  }
}

}  // namespace
}  // namespace sluice::sim
