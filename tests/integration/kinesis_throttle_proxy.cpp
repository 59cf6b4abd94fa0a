// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/kinesis_throttle_proxy.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "tests/test_util.h"

namespace sluice::itest {

namespace {

constexpr const char* kJson = "application/x-amz-json-1.1";

}  // namespace

KinesisThrottleProxy::KinesisThrottleProxy(Options options)
    : options_(std::move(options)), server_(options_.cert_file.c_str(), options_.key_file.c_str()) {
  if (!server_.is_valid()) throw std::runtime_error("throttle proxy: bad certificate or key");
  server_.Post("/",
               [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
  port_ = server_.bind_to_any_port("127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // cpp-httplib 0.11 has no wait_until_ready().
  if (!sluice::testing::WaitFor([this] { return server_.is_running(); }, std::chrono::seconds(10),
                                std::chrono::milliseconds(1))) {
    throw std::runtime_error("throttle proxy: the server did not start");
  }
}

KinesisThrottleProxy::~KinesisThrottleProxy() {
  server_.stop();
  thread_.join();
}

void KinesisThrottleProxy::Handle(const httplib::Request& req, httplib::Response& res) {
  const std::string target = req.get_header_value("X-Amz-Target");
  std::string body = req.body;
  nlohmann::json throttled_first;  // the answer for the first record, when it is throttled
  bool throttle_first = false;
  if (target.ends_with(".PutRecords")) {
    const uint64_t n = put_requests_++;
    if (n % static_cast<uint64_t>(options_.reject_every) ==
        static_cast<uint64_t>(options_.reject_every) - 1) {
      rejected_requests_++;
      res.status = 400;
      res.set_content(
          R"js({"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for stream (test proxy)"})js",
          kJson);
      return;
    }
    nlohmann::json j = nlohmann::json::parse(body);
    if (n % static_cast<uint64_t>(options_.throttle_every) == 0 && j["Records"].size() >= 2) {
      throttle_first = true;
      throttled_records_++;
      j["Records"].erase(j["Records"].begin());
      body = j.dump();
    }
  }
  httplib::SSLClient client("127.0.0.1", options_.upstream_port);
  client.set_ca_cert_path(options_.ca_file.c_str());
  client.enable_server_certificate_verification(true);
  httplib::Headers headers;
  for (const char* name : {"Authorization", "X-Amz-Date", "X-Amz-Target", "X-Amz-Security-Token"}) {
    if (req.has_header(name)) headers.emplace(name, req.get_header_value(name));
  }
  auto answer = client.Post("/", headers, body, kJson);
  if (!answer) {
    res.status = 502;
    return;
  }
  res.status = answer->status;
  if (!throttle_first || answer->status != 200) {
    res.set_content(answer->body, kJson);
    return;
  }
  nlohmann::json a = nlohmann::json::parse(answer->body);
  a["Records"].insert(
      a["Records"].begin(),
      nlohmann::json::object({{"ErrorCode", "ProvisionedThroughputExceededException"},
                              {"ErrorMessage", "Rate exceeded for shard (test proxy)"}}));
  a["FailedRecordCount"] = a.value("FailedRecordCount", 0) + 1;
  res.set_content(a.dump(), kJson);
}

}  // namespace sluice::itest
