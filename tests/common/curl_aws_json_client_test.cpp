// SPDX-License-Identifier: Apache-2.0

// CurlAwsJsonClient against a local HTTP server (cpp-httplib) that records what arrives: the
// request of the JSON protocol, and a SigV4 signature that this test computes again on its own
// from the AWS specification (canonical request, string to sign, derived key) with OpenSSL.

#include "common/curl_aws_json_client.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace sluice {
namespace {

std::string Hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}
std::string Sha256Hex(const std::string& s) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
  return Hex(md, sizeof md);
}
std::string Hmac(const std::string& key, const std::string& msg) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &n);
  return std::string(reinterpret_cast<const char*>(md), n);
}

// "k1=v1, k2=v2" of an Authorization header after its algorithm name.
std::map<std::string, std::string> AuthFields(const std::string& header) {
  std::map<std::string, std::string> fields;
  std::string rest = header.substr(header.find(' ') + 1);
  std::stringstream in(rest);
  std::string part;
  while (std::getline(in, part, ',')) {
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    const auto eq = part.find('=');
    if (eq != std::string::npos) fields[part.substr(0, eq)] = part.substr(eq + 1);
  }
  return fields;
}

struct Recorded {
  std::string method, path, body;
  std::multimap<std::string, std::string> headers;  // names lower-cased
};

class Server {
 public:
  explicit Server(std::function<void(const httplib::Request&, httplib::Response&)> answer) {
    server_.Post("/", [this, answer](const httplib::Request& req, httplib::Response& res) {
      Recorded r{req.method, req.path, req.body, {}};
      for (const auto& [k, v] : req.headers) {
        std::string lower = k;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        r.headers.emplace(lower, v);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        got_.push_back(std::move(r));
      }
      answer(req, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // cpp-httplib 0.11 has no wait_until_ready().
    REQUIRE(testing::WaitFor([this] { return server_.is_running(); }, std::chrono::seconds(10),
                             std::chrono::milliseconds(1)));
  }
  ~Server() {
    server_.stop();
    thread_.join();
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Recorded> Got() {
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<Recorded> got_;
};

CurlAwsJsonClientOptions Options(const std::string& url) {
  CurlAwsJsonClientOptions o;
  o.endpoint = url;
  o.region = "eu-west-1";
  o.credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-123"};
  o.request_timeout = std::chrono::milliseconds(5000);
  return o;
}

TEST_CASE("CurlAwsJsonClient signs with SigV4 as the specification computes it") {
  Server server([](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"StreamNames":[]})", "application/x-amz-json-1.1");
  });
  std::unique_ptr<CurlAwsJsonClient> client;
  REQUIRE(CurlAwsJsonClient::Create(Options(server.Url()), &client).ok());
  const std::string body = R"({"Limit":1})";
  const AwsResponse r = client->Call("ListStreams", body);
  REQUIRE(r.http_status == 200);
  CHECK(r.body == R"({"StreamNames":[]})");

  const auto got = server.Got();
  REQUIRE(got.size() == 1);
  const Recorded& req = got[0];
  CHECK(req.body == body);
  auto header = [&](const std::string& name) {
    auto it = req.headers.find(name);
    return it == req.headers.end() ? std::string() : it->second;
  };
  CHECK(header("x-amz-target") == "Kinesis_20131202.ListStreams");
  CHECK(header("content-type") == "application/x-amz-json-1.1");
  CHECK(header("x-amz-security-token") == "token-123");
  const std::string auth = header("authorization");
  REQUIRE(auth.rfind("AWS4-HMAC-SHA256 ", 0) == 0);
  const auto fields = AuthFields(auth);
  const std::string amz_date = header("x-amz-date");
  REQUIRE(amz_date.size() == 16);  // 20250101T000000Z
  const std::string scope = amz_date.substr(0, 8) + "/eu-west-1/kinesis/aws4_request";
  CHECK(fields.at("Credential") == "AKIDEXAMPLE/" + scope);
  const std::string signed_headers = fields.at("SignedHeaders");
  for (const char* h : {"host", "x-amz-date", "x-amz-target", "content-type"}) {
    CHECK_MESSAGE(signed_headers.find(h) != std::string::npos, h);
  }

  // The canonical request from what arrived, the signed headers in their listed order.
  std::string canonical = "POST\n/\n\n";
  std::stringstream names(signed_headers);
  std::string name;
  while (std::getline(names, name, ';')) canonical += name + ":" + header(name) + "\n";
  canonical += "\n" + signed_headers + "\n" + Sha256Hex(body);
  const std::string to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256Hex(canonical);
  std::string key = Hmac("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", amz_date.substr(0, 8));
  key = Hmac(Hmac(Hmac(key, "eu-west-1"), "kinesis"), "aws4_request");
  const std::string sig = Hmac(key, to_sign);
  CHECK(fields.at("Signature") ==
        Hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size()));
}

TEST_CASE("CurlAwsJsonClient names the exception of an error answer and the cause of no answer") {
  Server server([](const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content(
        R"({"__type":"com.amazonaws.kinesis.v20131202#ResourceNotFoundException","message":"Stream x not found"})",
        "application/x-amz-json-1.1");
  });
  std::unique_ptr<CurlAwsJsonClient> client;
  REQUIRE(CurlAwsJsonClient::Create(Options(server.Url()), &client).ok());
  const AwsResponse r = client->Call("PutRecords", "{}");
  CHECK(r.http_status == 400);
  CHECK(r.error_type == "ResourceNotFoundException");
  CHECK(r.error_message == "Stream x not found");

  AwsResponse h;
  h.http_status = 403;
  h.body = "<html>denied</html>";
  ParseAwsError("AccessDeniedException:http://internal.amazon.com/", &h);
  CHECK(h.error_type == "AccessDeniedException");

  // Nothing listens on port 1.
  std::unique_ptr<CurlAwsJsonClient> nowhere;
  REQUIRE(CurlAwsJsonClient::Create(Options("https://127.0.0.1:1"), &nowhere).ok());
  const AwsResponse n = nowhere->Call("PutRecords", "{}");
  CHECK(n.http_status == 0);
  CHECK_FALSE(n.transport_error.empty());
}

TEST_CASE("CurlAwsJsonClient refuses options it cannot sign or send with") {
  std::unique_ptr<CurlAwsJsonClient> c;
  auto o = Options("ftp://x");
  CHECK(CurlAwsJsonClient::Create(o, &c).message().find("https://") != std::string::npos);
  o = Options("https://x");
  o.region.clear();
  CHECK(CurlAwsJsonClient::Create(o, &c).message().find("region") != std::string::npos);
  o = Options("https://x");
  o.credentials.secret_access_key.clear();
  CHECK_FALSE(CurlAwsJsonClient::Create(o, &c).ok());
}

}  // namespace
}  // namespace sluice
