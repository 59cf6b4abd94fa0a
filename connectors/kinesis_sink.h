// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/aws_json_transport.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/curl_aws_json_client.h"
#include "common/log_throttle.h"
#include "connectors/hold_list.h"
#include "connectors/router.h"
#include "connectors/sink.h"

namespace sluice::connectors {

struct KinesisSinkOptions {
  std::string name = "kinesis";  // the upstream's name, for logs
  std::string region;            // e.g. "eu-west-1"
  // https://host[:port] of a Kinesis-compatible service; empty:
  // https://kinesis.REGION.amazonaws.com
  // (.amazonaws.com.cn in the cn- regions).
  std::string endpoint;
  AwsCredentials credentials;  // from credentials_file; never logged
  std::string ca_file;         // TLS trust store (PEM) in place of the system's
  bool tls_verify = true;
  // Stream of the gap records (docs/guarantees.md, "Gap records"), partition key the gateway id.
  std::string gap_stream = "sluice-gaps";
  size_t batch_records = 500;  // records per PutRecords request, at most (Kinesis: 500)
  // Events accepted by Send and not yet reported, at most: the choice of records for a request,
  // among which each request takes one per partition key.
  size_t max_pending = 5000;
  // Backoff between attempts after a throttled, failed or unanswered request.
  std::chrono::milliseconds retry_min{100};
  std::chrono::milliseconds retry_max{10000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
  std::string gateway_id;
  std::string log_id;  // the log's random identity
};

// The Amazon Kinesis Data Streams upstream: PutRecords over HTTPS, signed with AWS SigV4
// (CurlAwsJsonClient). Each event becomes one record on the stream its route names, partition
// key = the route's key, data = sluice's headers framed in front of the payload
// (connectors/kinesis_record.h). Gap markers go to `gap_stream` as gap records.
//
// Order per key: one PutRecords request at a time, made inside Poll on the forwarder's thread,
// and a request holds at most one record per (stream, partition key). Kinesis may fail some
// records of a request and store later ones; with one record per key in a request, a failed
// record's key has nothing later in that request, and the failed record stays first of its key
// in the pending queue, so the next request carries it before anything after it. No later record
// of a key is sent before an earlier one is confirmed (docs/ARCHITECTURE.md, "Kinesis").
//
// Errors (docs/kinesis-records.md, "Error model"): throttling and per-record InternalFailure are
// retried by the sink itself after a jittered backoff, counted (Throttled()); a request without
// an HTTP answer, or a 5xx, too, and Connected() turns false. A missing stream, refused
// credentials or signature, and any error the sink does not know hold: every pending event is
// reported Delivery{0, kHold} with the reason and the fix, and the forwarder offers them again
// after its backoff. A record over 1 MiB (data and partition key), or whose partition key Kinesis
// cannot take, is reported kRejected before it is sent.
//
// Thread-safety: one thread (the forwarder) calls Send and Poll; Connected(), HoldReason(),
// Holds() and Throttled() may be called from any thread.
class KinesisSink final : public Sink {
 public:
  // `router` and `clock` must outlive the sink; a null `clock` is the system clock. A null
  // `transport` makes a CurlAwsJsonClient from the options; tests pass a fake. InvalidArgument
  // naming what is wrong with the options or a route's stream name.
  static Status Create(KinesisSinkOptions options, const Router* router, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger,
                       std::unique_ptr<AwsJsonTransport> transport,
                       std::unique_ptr<KinesisSink>* out);

  KinesisSink(const KinesisSink&) = delete;
  KinesisSink& operator=(const KinesisSink&) = delete;

  Status Send(const storage::Event& event) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override;
  size_t InFlight() const override { return pending_.size() + local_reports_.size(); }
  bool Connected() const override { return connected_.load(); }
  std::string HoldReason() const override;
  uint64_t Holds() const override { return holds_.Count(); }
  const std::string& name() const override { return options_.name; }

  // Records Kinesis refused for lack of throughput (ProvisionedThroughputExceededException,
  // per record or for a whole request) since the sink was made; each was sent again.
  uint64_t Throttled() const override { return throttled_.load(); }
  // PutRecords requests sent, answered or not.
  uint64_t Requests() const { return requests_.load(); }

  // The endpoint a region's Kinesis answers at.
  static std::string DefaultEndpoint(const std::string& region);

 private:
  struct Record {
    uint64_t seq = 0;
    std::string stream;
    std::string key;   // the partition key
    std::string data;  // framed
  };

  KinesisSink(KinesisSinkOptions options, const Router* router, const Clock* clock,
              std::shared_ptr<spdlog::logger> logger, std::unique_ptr<AwsJsonTransport> transport);

  // Sends one PutRecords request of pending records and reports what it settled.
  void SendBatch(std::vector<Delivery>* out);
  // While nothing is pending and the endpoint was not reached yet: one cheap request, so that
  // Connected() tells the truth before the first event.
  void Probe();
  // The request failed as a whole with `r`: retry (throttle, 5xx, no answer) or hold.
  void RequestFailed(const std::string& stream, const AwsResponse& r, size_t records,
                     std::vector<Delivery>* out);
  void Retry(const std::string& why, bool reachable);
  // Records a refusal an operator must fix and reports every pending event held.
  void HoldAll(const std::string& key, const std::string& reason, std::vector<Delivery>* out);
  // A delivery to `stream` ends its hold and that of the whole upstream.
  void ClearHolds(const std::string& stream);

  const KinesisSinkOptions options_;
  const Router* const router_;
  const SystemClock system_clock_;
  const Clock* const clock_;  // borrowed, or &system_clock_
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<AwsJsonTransport> transport_;

  // Forwarder thread only. Accepted and unreported, in seq order.
  std::deque<Record> pending_;
  std::vector<Delivery> local_reports_;  // refused before sending, reported by the next Poll
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
  bool reached_ = false;  // an HTTP answer came since the last failure

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> throttled_{0};
  std::atomic<uint64_t> requests_{0};
  mutable std::mutex mu_;
  // Key: a stream, or "" for all.
  HoldList holds_{"Kinesis upstream '" + options_.name + "': ", "the service", log_};
  LogThrottle retry_log_{std::chrono::seconds(30)};
};

}  // namespace sluice::connectors
