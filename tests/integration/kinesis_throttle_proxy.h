// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace sluice::itest {

// A Kinesis endpoint in front of kinesalite (which never throttles) that throttles the way
// Kinesis does under load, for the Kinesis upstream's tests: HTTPS on 127.0.0.1 with the test
// server's certificate, every request passed on to kinesalite but for the throttling below.
//
// Of every `throttle_every` PutRecords requests with two or more records, the first record is
// answered ProvisionedThroughputExceededException and only the later ones are passed on and
// stored: a later record is accepted where an earlier one of the same request failed. Of every
// `reject_every` PutRecords requests, the whole request is refused as throttled (HTTP 400).
//
// Thread-safety: the server runs on a thread of its own; the counters may be read from any.
class KinesisThrottleProxy {
 public:
  struct Options {
    std::string cert_file;  // the server certificate (PEM) and its key, as kinesalite's
    std::string key_file;
    std::string ca_file;  // trusts kinesalite
    int upstream_port = 0;
    int throttle_every = 2;
    int reject_every = 5;
  };

  explicit KinesisThrottleProxy(Options options);
  ~KinesisThrottleProxy();
  KinesisThrottleProxy(const KinesisThrottleProxy&) = delete;
  KinesisThrottleProxy& operator=(const KinesisThrottleProxy&) = delete;

  int port() const { return port_; }
  uint64_t throttled_records() const { return throttled_records_.load(); }
  uint64_t rejected_requests() const { return rejected_requests_.load(); }
  uint64_t put_requests() const { return put_requests_.load(); }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res);

  const Options options_;
  httplib::SSLServer server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> put_requests_{0};
  std::atomic<uint64_t> throttled_records_{0};
  std::atomic<uint64_t> rejected_requests_{0};
};

}  // namespace sluice::itest
