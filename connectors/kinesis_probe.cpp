// SPDX-License-Identifier: Apache-2.0

#include "connectors/kinesis_probe.h"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "common/curl_aws_json_client.h"

namespace sluice::connectors {

std::vector<ProbeFinding> ProbeKinesis(const KinesisSinkOptions& options,
                                       const std::vector<std::string>& streams,
                                       const std::string& where,
                                       std::chrono::milliseconds timeout) {
  using Verdict = ProbeFinding::Verdict;
  std::vector<ProbeFinding> findings;
  CurlAwsJsonClientOptions o;
  o.endpoint =
      options.endpoint.empty() ? KinesisSink::DefaultEndpoint(options.region) : options.endpoint;
  o.region = options.region;
  o.credentials = options.credentials;
  o.ca_file = options.ca_file;
  o.tls_verify = options.tls_verify;
  o.connect_timeout = timeout;
  o.request_timeout = timeout;
  std::unique_ptr<CurlAwsJsonClient> client;
  if (Status s = CurlAwsJsonClient::Create(o, &client); !s.ok()) {
    findings.push_back({Verdict::kFail, where + " " + s.message()});
    return findings;
  }
  if (!options.tls_verify) {
    findings.push_back({Verdict::kWarn, where + " " + o.endpoint +
                                            ": tls.verify is false; the endpoint's certificate "
                                            "and host name are not checked"});
  }
  for (const std::string& stream : streams) {
    const nlohmann::json request = {{"StreamName", stream}, {"Limit", 1}};
    const AwsResponse r = client->Call("DescribeStream", request.dump());
    const std::string subject = fmt::format("{} stream '{}' at {}", where, stream, o.endpoint);
    if (r.http_status == 0) {
      findings.push_back({Verdict::kFail, subject + ": no answer (" + r.transport_error + ")"});
      // The same endpoint would not answer about the next stream either.
      return findings;
    }
    if (r.ok()) {
      const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
      std::string status = "unknown";
      if (j.is_object() && j.contains("StreamDescription") &&
          j["StreamDescription"].contains("StreamStatus") &&
          j["StreamDescription"]["StreamStatus"].is_string()) {
        status = j["StreamDescription"]["StreamStatus"].get<std::string>();
      }
      if (status == "ACTIVE" || status == "UPDATING") {
        findings.push_back({Verdict::kOk, subject + ": " + status});
      } else {
        findings.push_back(
            {Verdict::kWarn, subject + ": " + status + "; records are held until it is ACTIVE"});
      }
      continue;
    }
    const std::string why = r.error_type + (r.error_message.empty() ? "" : ": " + r.error_message);
    if (r.error_type == "ResourceNotFoundException") {
      findings.push_back({Verdict::kFail, subject + " does not exist (" + why +
                                              "): create it, or change the route's target"});
    } else if (r.http_status == 403 || r.error_type.find("Signature") != std::string::npos ||
               r.error_type == "UnrecognizedClientException" ||
               r.error_type == "AccessDeniedException" || r.error_type == "ExpiredTokenException") {
      findings.push_back(
          {Verdict::kFail, subject + ": credentials or permission refused (" + why +
                               "); check credentials_file and the identity's "
                               "policy (kinesis:DescribeStream, kinesis:PutRecords)"});
      return findings;
    } else {
      findings.push_back({Verdict::kFail, subject + ": " + why});
    }
  }
  return findings;
}

}  // namespace sluice::connectors
