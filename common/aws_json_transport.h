// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <string_view>

namespace sluice {

// What one request of an AWS JSON protocol (Kinesis's "x-amz-json-1.1") came back with.
struct AwsResponse {
  long http_status = 0;         // 0: no HTTP answer at all (connection, TLS, timeout)
  std::string body;             // the JSON answer, or the error document
  std::string transport_error;  // why there was no answer (libcurl's text), when http_status is 0
  // For an error answer: the exception's short name ("ResourceNotFoundException", from __type or
  // the x-amzn-ErrorType header, without its namespace) and its message; empty otherwise.
  std::string error_type;
  std::string error_message;

  bool ok() const { return http_status == 200; }
};

// Sends requests of an AWS JSON protocol to one endpoint, signed. The seam between the Kinesis
// upstream and the network: tests give the sink a fake that answers as they script it.
//
// Thread-compatible: one thread calls Call at a time.
class AwsJsonTransport {
 public:
  virtual ~AwsJsonTransport() = default;
  // POSTs `body` as the operation `action` ("PutRecords") and waits for the answer, bounded by
  // the transport's timeouts. Never throws.
  virtual AwsResponse Call(std::string_view action, const std::string& body) = 0;
  // Where it sends, for messages ("https://kinesis.eu-west-1.amazonaws.com").
  virtual const std::string& endpoint() const = 0;
};

}  // namespace sluice
