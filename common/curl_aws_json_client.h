// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/aws_credentials.h"
#include "common/aws_json_transport.h"
#include "common/curl_library.h"
#include "common/status.h"

namespace sluice {

struct CurlAwsJsonClientOptions {
  std::string endpoint;  // https://host[:port]; http:// only for tests that ask for it
  std::string region;    // signs the requests (SigV4 credential scope)
  std::string service = "kinesis";
  std::string target_prefix = "Kinesis_20131202";  // X-Amz-Target = prefix + "." + action
  AwsCredentials credentials;
  std::string ca_file;     // PEM trust store in place of the system's; empty: the system's
  bool tls_verify = true;  // false only for a test endpoint: checks neither chain nor host name
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};
};

// An AwsJsonTransport over libcurl: HTTPS with certificate and host-name verification, requests
// signed with AWS Signature Version 4 by libcurl itself (CURLOPT_AWS_SIGV4), the session token,
// if any, sent as X-Amz-Security-Token. One easy handle is kept, so that its connection is
// reused from request to request. libcurl is loaded by the first Create (CurlLibrary).
//
// Thread-compatible: one thread calls Call at a time.
class CurlAwsJsonClient final : public AwsJsonTransport {
 public:
  // InvalidArgument naming what is wrong with the options (no region, no credentials, not an
  // http(s) URL); Unavailable when libcurl cannot be loaded (CurlLibrary::Get).
  static Status Create(CurlAwsJsonClientOptions options, std::unique_ptr<CurlAwsJsonClient>* out);
  ~CurlAwsJsonClient() override;

  CurlAwsJsonClient(const CurlAwsJsonClient&) = delete;
  CurlAwsJsonClient& operator=(const CurlAwsJsonClient&) = delete;

  AwsResponse Call(std::string_view action, const std::string& body) override;
  const std::string& endpoint() const override { return options_.endpoint; }

 private:
  CurlAwsJsonClient(CurlAwsJsonClientOptions options, const CurlLibrary* curl);

  const CurlAwsJsonClientOptions options_;
  const std::string sigv4_;    // CURLOPT_AWS_SIGV4: "aws:amz:REGION:SERVICE"
  const std::string userpwd_;  // ACCESS_KEY_ID:SECRET, which libcurl's SigV4 signs with
  const CurlLibrary* const lib_;
  CURL* curl_ = nullptr;
};

// Fills error_type and error_message of an answer that is not 200 from its body (__type, message)
// or `header_type` (x-amzn-ErrorType). Exposed for the tests.
void ParseAwsError(std::string_view header_type, AwsResponse* r);

}  // namespace sluice
