// SPDX-License-Identifier: Apache-2.0

#include "common/curl_aws_json_client.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>

namespace sluice {

namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

// Keeps the x-amzn-ErrorType header, which names the exception when the body does not.
size_t ReadHeader(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "x-amzn-errortype:";
  if (line.size() > kName.size()) {
    std::string lower(line.substr(0, kName.size()));
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == kName) {
      std::string_view value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
      }
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n')) {
        value.remove_suffix(1);
      }
      *static_cast<std::string*>(user) = std::string(value);
    }
  }
  return size * n;
}

// "com.amazonaws.kinesis.v20131202#ResourceNotFoundException" or "X:http://..." -> the name.
std::string ShortType(std::string_view type) {
  if (auto hash = type.rfind('#'); hash != std::string_view::npos) type.remove_prefix(hash + 1);
  if (auto colon = type.find(':'); colon != std::string_view::npos) type = type.substr(0, colon);
  return std::string(type);
}

}  // namespace

void ParseAwsError(std::string_view header_type, AwsResponse* r) {
  r->error_type = ShortType(header_type);
  const nlohmann::json j = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    if (auto it = j.find("__type"); it != j.end() && it->is_string()) {
      r->error_type = ShortType(it->get<std::string>());
    }
    for (const char* key : {"message", "Message"}) {
      if (auto it = j.find(key); it != j.end() && it->is_string()) {
        r->error_message = it->get<std::string>();
      }
    }
  }
  if (r->error_type.empty()) r->error_type = "HTTP " + std::to_string(r->http_status);
}

CurlAwsJsonClient::CurlAwsJsonClient(CurlAwsJsonClientOptions options, const CurlLibrary* curl)
    : options_(std::move(options)),
      sigv4_("aws:amz:" + options_.region + ":" + options_.service),
      userpwd_(options_.credentials.access_key_id + ":" + options_.credentials.secret_access_key),
      lib_(curl) {}

CurlAwsJsonClient::~CurlAwsJsonClient() {
  if (curl_ != nullptr) lib_->easy_cleanup(curl_);
}

Status CurlAwsJsonClient::Create(CurlAwsJsonClientOptions options,
                                 std::unique_ptr<CurlAwsJsonClient>* out) {
  if (!options.endpoint.starts_with("https://") && !options.endpoint.starts_with("http://")) {
    return Status::InvalidArgument("endpoint '" + options.endpoint + "' is not an https:// URL");
  }
  if (options.region.empty()) return Status::InvalidArgument("no region to sign requests for");
  if (options.credentials.access_key_id.empty() || options.credentials.secret_access_key.empty()) {
    return Status::InvalidArgument("no access key id and secret access key to sign requests with");
  }
  // libcurl signs from the user name and password: a ':' in the key id would split them wrongly.
  if (options.credentials.access_key_id.find(':') != std::string::npos) {
    return Status::InvalidArgument("the access key id contains ':'");
  }
  const CurlLibrary* lib = nullptr;
  if (Status s = CurlLibrary::Get(&lib); !s.ok()) return s;
  std::unique_ptr<CurlAwsJsonClient> c(new CurlAwsJsonClient(std::move(options), lib));
  c->curl_ = lib->easy_init();
  if (c->curl_ == nullptr) return Status::IoError("libcurl: cannot make an easy handle");
  *out = std::move(c);
  return Status::Ok();
}

AwsResponse CurlAwsJsonClient::Call(std::string_view action, const std::string& body) {
  AwsResponse r;
  CURL* h = curl_;
  const CurlLibrary& lib = *lib_;
  // Options stay set on the handle between calls; reset them all so each call states its own.
  lib.easy_reset(h);
  const std::string url = options_.endpoint + "/";
  const std::string target = "X-Amz-Target: " + options_.target_prefix + "." + std::string(action);
  curl_slist* headers = nullptr;
  headers = lib.slist_append(headers, "Content-Type: application/x-amz-json-1.1");
  headers = lib.slist_append(headers, target.c_str());
  // libcurl adds "Expect: 100-continue" above 1 MiB, which costs a round trip for nothing.
  headers = lib.slist_append(headers, "Expect:");
  std::string token;
  if (!options_.credentials.session_token.empty()) {
    token = "X-Amz-Security-Token: " + options_.credentials.session_token;
    headers = lib.slist_append(headers, token.c_str());
  }
  std::string error_header;
  char error_buffer[CURL_ERROR_SIZE] = {};
  lib.easy_setopt(h, CURLOPT_URL, url.c_str());
  lib.easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  lib.easy_setopt(h, CURLOPT_POST, 1L);
  lib.easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
  lib.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  lib.easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
  lib.easy_setopt(h, CURLOPT_USERPWD, userpwd_.c_str());
  lib.easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendBody);
  lib.easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
  lib.easy_setopt(h, CURLOPT_HEADERFUNCTION, &ReadHeader);
  lib.easy_setopt(h, CURLOPT_HEADERDATA, &error_header);
  lib.easy_setopt(h, CURLOPT_ERRORBUFFER, error_buffer);
  lib.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(options_.connect_timeout.count()));
  lib.easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  // No signals: the forwarder's thread must not get SIGALRM from libcurl's resolver timeouts.
  lib.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  lib.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  lib.easy_setopt(h, CURLOPT_SSL_VERIFYPEER, options_.tls_verify ? 1L : 0L);
  lib.easy_setopt(h, CURLOPT_SSL_VERIFYHOST, options_.tls_verify ? 2L : 0L);
  if (!options_.ca_file.empty()) lib.easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
  const CURLcode rc = lib.easy_perform(h);
  lib.slist_free_all(headers);
  if (rc != CURLE_OK) {
    r.http_status = 0;
    r.transport_error = error_buffer[0] != '\0' ? error_buffer : lib.easy_strerror(rc);
    r.body.clear();
    return r;
  }
  lib.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.http_status);
  if (r.http_status != 200) ParseAwsError(error_header, &r);
  return r;
}

}  // namespace sluice
