// SPDX-License-Identifier: Apache-2.0

#include "bench/produce_probe.h"

#include <librdkafka/rdkafkacpp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "bench/bench_payload.h"
#include "connectors/kafka_conf.h"
#include "connectors/kafka_sink.h"
#include "connectors/record_headers.h"

namespace sluice::bench {

namespace {

// Counts delivery reports; librdkafka calls it only from inside poll()/flush() on Run's thread.
class DeliveryCounter final : public RdKafka::DeliveryReportCb {
 public:
  void dr_cb(RdKafka::Message& message) override {
    if (message.err() == RdKafka::ERR_NO_ERROR) {
      ++delivered;
    } else {
      if (failed++ == 0) first_error = message.errstr();
    }
    last_us = NowUnixMicros();
  }

  uint64_t delivered = 0;
  uint64_t failed = 0;
  std::string first_error;
  int64_t last_us = 0;
};

}  // namespace

Status ProduceProbe::Run(nlohmann::ordered_json* result) {
  if (options_.topic.empty() || options_.devices < 1) {
    return Status::InvalidArgument("produce-probe: a topic and at least one device are required");
  }
  connectors::KafkaSinkOptions sink;
  sink.brokers = options_.brokers;
  connectors::KafkaSettings settings = connectors::OwnedProducerSettings(sink);
  settings.emplace_back("client.id", "sluice-bench-produce-probe");
  std::unique_ptr<RdKafka::Conf> conf;
  Status s = connectors::BuildKafkaConf({}, settings, &conf);
  if (!s.ok()) return s;
  DeliveryCounter counter;
  std::string err;
  if (conf->set("dr_cb", static_cast<RdKafka::DeliveryReportCb*>(&counter), err) !=
      RdKafka::Conf::CONF_OK) {
    return Status::InvalidArgument("produce-probe: dr_cb: " + err);
  }
  std::unique_ptr<RdKafka::Producer> producer(RdKafka::Producer::create(conf.get(), err));
  if (!producer) return Status::InvalidArgument("produce-probe: cannot create producer: " + err);

  auto& r = *result;
  nlohmann::ordered_json used = nlohmann::ordered_json::object();
  for (const auto& [key, value] : settings) used[key] = value;
  r["settings"] = used;
  r["topic"] = options_.topic;
  r["record_bytes"] = options_.record_bytes;

  std::vector<std::string> keys;
  for (int d = 0; d < options_.devices; ++d) {
    char name[48];
    std::snprintf(name, sizeof name, "bench/drain/dev-%03d", d);
    keys.emplace_back(name);
  }
  const std::string value(options_.record_bytes, 'x');
  const auto deadline =
      clock_->Now() + std::chrono::milliseconds(static_cast<int64_t>(options_.timeout_s * 1000));
  uint64_t produced = 0;
  // k: the record's number, carried in the sequence header as sluice carries the log's seq.
  auto produce = [&](uint64_t k) -> Status {
    const std::string& key = keys[k % keys.size()];
    for (;;) {
      std::unique_ptr<RdKafka::Headers> headers(RdKafka::Headers::create());
      headers->add(connectors::kHeaderMqttTopic, key + "/telemetry");
      headers->add(connectors::kHeaderMqttQos, "1");
      headers->add(connectors::kHeaderGateway, "bench");
      headers->add(connectors::kHeaderSeq, std::to_string(k + 1));
      headers->add(connectors::kHeaderReceivedMs, std::to_string(clock_->NowUnixMillis()));
      headers->add(connectors::kHeaderLogId, "0123456789abcdef0123456789abcdef");
      const RdKafka::ErrorCode rc =
          producer->produce(options_.topic, RdKafka::Topic::PARTITION_UA,
                            RdKafka::Producer::RK_MSG_COPY, const_cast<char*>(value.data()),
                            value.size(), key.data(), key.size(), 0, headers.get(), nullptr);
      if (rc == RdKafka::ERR_NO_ERROR) {
        headers.release();  // librdkafka owns them now
        ++produced;
        return Status::Ok();
      }
      if (rc != RdKafka::ERR__QUEUE_FULL) {
        return Status::Unavailable("produce-probe: produce to " + options_.topic + ": " +
                                   RdKafka::err2str(rc));
      }
      if (clock_->Now() >= deadline) return Status::Unavailable("produce-probe: timed out");
      producer->poll(1);
    }
  };
  // Waits until every record produced so far has a delivery report.
  auto settle = [&]() -> Status {
    while (counter.delivered + counter.failed < produced) {
      if (clock_->Now() >= deadline) {
        return Status::Unavailable(
            "produce-probe: " + std::to_string(produced - counter.delivered - counter.failed) +
            " records without a delivery report from " + options_.brokers);
      }
      producer->poll(50);
    }
    return Status::Ok();
  };

  // Warm-up, not counted: creates the topic and acquires the idempotent producer's id.
  s = produce(0);
  if (s.ok()) s = settle();
  if (s.ok() && counter.failed > 0) {
    s = Status::Unavailable("produce-probe: warm-up record refused: " + counter.first_error);
  }
  if (!s.ok()) return s;
  produced = 0;
  counter.delivered = 0;

  const int64_t start_us = NowUnixMicros();
  for (uint64_t k = 1; k <= options_.count && s.ok(); ++k) {
    s = produce(k);
    // Serve delivery reports as sluice's forwarder does, without waiting.
    if (s.ok() && k % 1000 == 0) producer->poll(0);
  }
  if (s.ok()) s = settle();
  const int64_t end_us = counter.last_us;
  r["produced"] = produced;
  r["delivered"] = counter.delivered;
  r["failed"] = counter.failed;
  r["first_error"] = counter.first_error;
  r["start_us"] = start_us;
  r["end_us"] = end_us;
  const double elapsed_s = static_cast<double>(end_us - start_us) / 1e6;
  r["elapsed_s"] = elapsed_s;
  r["records_per_s"] = elapsed_s > 0 ? static_cast<double>(counter.delivered) / elapsed_s : 0.0;
  if (s.ok() && counter.failed > 0) {
    s = Status::Unavailable("produce-probe: " + std::to_string(counter.failed) +
                            " records refused, the first: " + counter.first_error);
  }
  return s;
}

}  // namespace sluice::bench
