// SPDX-License-Identifier: Apache-2.0

#include "connectors/kinesis_sink.h"

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <thread>
#include <utility>

#include "common/base64.h"
#include "connectors/gap_record.h"
#include "connectors/kinesis_record.h"
#include "connectors/record_headers.h"

namespace sluice::connectors {

namespace {

// Kinesis Data Streams limits (PutRecords): a record's data and partition key together at most
// 1 MiB, a request at most 5 MiB and 500 records, a partition key 1 to 256 Unicode characters.
constexpr size_t kMaxRecordBytes = 1024 * 1024;
constexpr size_t kMaxRequestBytes = 5 * 1024 * 1024;
constexpr size_t kMaxRequestRecords = 500;
constexpr size_t kMaxPartitionKeyChars = 256;

// Answers that mean "not now, the same request later": the stream's or the account's throughput,
// and Kinesis's own transient failures.
bool IsThrottle(std::string_view type) {
  return type == "ProvisionedThroughputExceededException" || type == "ThrottlingException" ||
         type == "LimitExceededException" || type == "RequestLimitExceeded";
}
bool IsTransient(std::string_view type) {
  return type == "InternalFailure" || type == "InternalFailureException" ||
         type == "ServiceUnavailable" || type == "ServiceUnavailableException";
}
// The identity or its signature is refused: an operator must fix the credentials or the policy.
bool IsAuth(std::string_view type) {
  return type == "UnrecognizedClientException" || type == "AccessDeniedException" ||
         type == "InvalidSignatureException" || type == "IncompleteSignatureException" ||
         type == "MissingAuthenticationTokenException" || type == "SignatureDoesNotMatch" ||
         type == "ExpiredTokenException" || type == "InvalidClientTokenId" ||
         type == "NotAuthorized" || type == "MissingAuthenticationToken";
}

// Unicode characters in UTF-8 text: the bytes that do not continue a sequence.
size_t Utf8Chars(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

std::string Describe(const AwsResponse& r) {
  if (r.http_status == 0) return r.transport_error;
  std::string s = r.error_type;
  if (!r.error_message.empty()) s += ": " + r.error_message;
  return s + " (HTTP " + std::to_string(r.http_status) + ")";
}

}  // namespace

std::string KinesisSink::DefaultEndpoint(const std::string& region) {
  return "https://kinesis." + region +
         (region.starts_with("cn-") ? ".amazonaws.com.cn" : ".amazonaws.com");
}

KinesisSink::KinesisSink(KinesisSinkOptions options, const Router* router, const Clock* clock,
                         std::shared_ptr<spdlog::logger> logger,
                         std::unique_ptr<AwsJsonTransport> transport)
    : options_(std::move(options)),
      router_(router),
      clock_(clock != nullptr ? clock : &system_clock_),
      log_(std::move(logger)),
      transport_(std::move(transport)),
      backoff_(options_.retry_min, options_.retry_max, std::hash<std::string>{}(options_.name)) {}

Status KinesisSink::Create(KinesisSinkOptions options, const Router* router, const Clock* clock,
                           std::shared_ptr<spdlog::logger> logger,
                           std::unique_ptr<AwsJsonTransport> transport,
                           std::unique_ptr<KinesisSink>* out) {
  const std::string where = "[upstream." + options.name + "]";
  if (options.batch_records == 0 || options.batch_records > kMaxRequestRecords) {
    return Status::InvalidArgument(where + ": batch_records must be 1..500");
  }
  if (options.max_pending < options.batch_records) {
    return Status::InvalidArgument(where + ": max_pending must be at least batch_records");
  }
  if (options.endpoint.empty()) options.endpoint = DefaultEndpoint(options.region);
  if (transport == nullptr) {
    CurlAwsJsonClientOptions o;
    o.endpoint = options.endpoint;
    o.region = options.region;
    o.credentials = options.credentials;
    o.ca_file = options.ca_file;
    o.tls_verify = options.tls_verify;
    o.connect_timeout = options.connect_timeout;
    o.request_timeout = options.request_timeout;
    std::unique_ptr<CurlAwsJsonClient> client;
    if (Status s = CurlAwsJsonClient::Create(std::move(o), &client); !s.ok()) {
      return Status::InvalidArgument(where + ": " + s.message());
    }
    transport = std::move(client);
  }
  *out = std::unique_ptr<KinesisSink>(
      new KinesisSink(std::move(options), router, clock, std::move(logger), std::move(transport)));
  return Status::Ok();
}

Status KinesisSink::Send(const storage::Event& event) {
  if (InFlight() >= options_.max_pending) {
    return Status::Full(fmt::format("Kinesis upstream '{}': {} records await PutRecords",
                                    options_.name, InFlight()));
  }
  Record rec;
  rec.seq = event.seq;
  if (event.kind == storage::EventKind::kGap) {
    GapRecord gap = MakeGapRecord(event, options_.gateway_id, options_.log_id);
    rec.stream = options_.gap_stream;
    // One key for all of a gateway's gap records keeps them in order on one shard.
    rec.key = options_.gateway_id;
    rec.data = EncodeKinesisRecord(gap.headers, gap.value);
  } else {
    const Route* route = router_->Find(event.topic);
    if (route == nullptr) {
      return Status::InvalidArgument("no route matches MQTT topic '" + event.topic + "'");
    }
    if (route->upstream_topic.empty()) {
      return Status::InvalidArgument("route '" + route->mqtt_filter +
                                     "' does not feed Kinesis upstream '" + options_.name + "'");
    }
    rec.stream = route->upstream_topic;
    rec.key = route->key.KeyFor(event.topic);
    std::vector<std::pair<std::string, std::string>> headers = {
        {kHeaderMqttTopic, event.topic},
        {kHeaderMqttQos, std::to_string(event.qos)},
        {kHeaderGateway, options_.gateway_id},
        {kHeaderSeq, std::to_string(event.seq)},
        {kHeaderReceivedMs, std::to_string(event.received_ms)},
        {kHeaderLogId, options_.log_id}};
    if (event.retained) headers.emplace_back(kHeaderMqttRetain, "1");
    rec.data = EncodeKinesisRecord(headers, event.payload);
  }
  // Refused here rather than sent: Kinesis would fail the whole request, and the event with it,
  // on every attempt.
  const size_t key_chars = Utf8Chars(rec.key);
  if (key_chars == 0 || key_chars > kMaxPartitionKeyChars) {
    local_reports_.push_back(
        {event.seq, Delivery::Outcome::kRejected,
         fmt::format("partition key '{}' of stream '{}' is {} characters long; Kinesis takes 1 "
                     "to {}: change the route's key",
                     rec.key.substr(0, 64), rec.stream, key_chars, kMaxPartitionKeyChars)});
    return Status::Ok();
  }
  if (rec.data.size() + rec.key.size() > kMaxRecordBytes) {
    local_reports_.push_back(
        {event.seq, Delivery::Outcome::kRejected,
         fmt::format("{} bytes as a Kinesis record of stream '{}' (data and partition key), above "
                     "Kinesis's limit of {} bytes",
                     rec.data.size() + rec.key.size(), rec.stream, kMaxRecordBytes)});
    return Status::Ok();
  }
  pending_.push_back(std::move(rec));
  return Status::Ok();
}

void KinesisSink::Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  const bool had_local = !local_reports_.empty();
  for (Delivery& d : local_reports_) out->push_back(std::move(d));
  local_reports_.clear();
  auto now = clock_->Now();
  if (now < next_attempt_) {
    if (had_local) return;
    // Waiting out the backoff; the forwarder calls again.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_attempt_ - now);
    std::this_thread::sleep_for(std::min(left, timeout));
    if (clock_->Now() < next_attempt_) return;
  }
  if (pending_.empty()) {
    if (!reached_) Probe();
    return;
  }
  SendBatch(out);
}

void KinesisSink::Probe() {
  // ListStreams needs no stream and changes nothing; any HTTP answer below 500 means the
  // endpoint is there (a policy may deny the call itself, which PutRecords does not need).
  requests_++;
  const AwsResponse r = transport_->Call("ListStreams", R"({"Limit":1})");
  if (r.http_status == 0 || r.http_status >= 500) {
    connected_ = false;
    Retry(fmt::format("no answer from {}: {}", transport_->endpoint(), Describe(r)), false);
    return;
  }
  reached_ = true;
  connected_ = true;
  backoff_.Reset();
}

void KinesisSink::SendBatch(std::vector<Delivery>* out) {
  // One stream per request (PutRecords names one), one record per partition key (see the
  // header), in seq order; a record skipped for its key keeps every later record of that key
  // out of the request too, since they share the key.
  const std::string stream = pending_.front().stream;
  std::set<std::string_view> keys;
  std::vector<size_t> batch;
  size_t bytes = 0;
  const size_t max_records = std::min(options_.batch_records, kMaxRequestRecords);
  for (size_t i = 0; i < pending_.size() && batch.size() < max_records; ++i) {
    const Record& r = pending_[i];
    if (r.stream != stream || keys.count(r.key) != 0) continue;
    const size_t b = r.data.size() + r.key.size();
    if (bytes + b > kMaxRequestBytes) break;
    keys.insert(r.key);
    batch.push_back(i);
    bytes += b;
  }

  std::string body;
  body.reserve(bytes * 4 / 3 + batch.size() * 64 + stream.size() + 32);
  {
    nlohmann::json records = nlohmann::json::array();
    for (size_t i : batch) {
      const Record& r = pending_[i];
      records.push_back({{"Data", Base64Encode(r.data)}, {"PartitionKey", r.key}});
    }
    nlohmann::json request = {{"StreamName", stream}, {"Records", std::move(records)}};
    body = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  requests_++;
  const AwsResponse r = transport_->Call("PutRecords", body);
  if (!r.ok()) {
    RequestFailed(stream, r, batch.size(), out);
    return;
  }
  reached_ = true;
  connected_ = true;
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json* results = nullptr;
  if (j.is_object()) {
    if (auto it = j.find("Records"); it != j.end() && it->is_array()) results = &*it;
  }
  if (results == nullptr || results->size() != batch.size()) {
    // Which records were stored is unknown: sending them again can only duplicate, never lose.
    HoldAll(stream,
            fmt::format("Kinesis endpoint {} answered PutRecords to stream '{}' with {} instead "
                        "of one result per record; see the service's documentation",
                        transport_->endpoint(), stream, r.body.substr(0, 200)),
            out);
    return;
  }

  std::vector<bool> done(pending_.size(), false);
  size_t delivered = 0;
  size_t throttled = 0;
  size_t failed = 0;
  std::string unknown;
  for (size_t n = 0; n < batch.size(); ++n) {
    const nlohmann::json& e = (*results)[n];
    const std::string code = e.is_object() && e.contains("ErrorCode") && e["ErrorCode"].is_string()
                                 ? e["ErrorCode"].get<std::string>()
                                 : std::string();
    if (code.empty()) {
      done[batch[n]] = true;
      delivered++;
    } else if (IsThrottle(code)) {
      throttled++;
    } else if (IsTransient(code)) {
      failed++;
    } else if (unknown.empty()) {
      std::string message;
      if (e.contains("ErrorMessage") && e["ErrorMessage"].is_string()) {
        message = ": " + e["ErrorMessage"].get<std::string>();
      }
      unknown = code + message;
    }
  }
  if (delivered > 0) {
    std::deque<Record> rest;
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (done[i]) {
        out->push_back({pending_[i].seq, Delivery::Outcome::kDelivered, {}});
      } else {
        rest.push_back(std::move(pending_[i]));
      }
    }
    pending_.swap(rest);
    ClearHolds(stream);
  }
  if (!unknown.empty()) {
    HoldAll(stream,
            fmt::format("Kinesis stream '{}' at {} refused a record ({}); sluice does not know "
                        "this error, so it holds rather than dead-letters: see the service's "
                        "documentation for the fix",
                        stream, transport_->endpoint(), unknown),
            out);
    return;
  }
  if (throttled + failed > 0) {
    throttled_ += throttled;
    Retry(fmt::format("{} of {} records to stream '{}' refused ({} throttled: "
                      "ProvisionedThroughputExceededException, {} InternalFailure)",
                      throttled + failed, batch.size(), stream, throttled, failed),
          true);
    return;
  }
  backoff_.Reset();
}

void KinesisSink::RequestFailed(const std::string& stream, const AwsResponse& r, size_t records,
                                std::vector<Delivery>* out) {
  const std::string& endpoint = transport_->endpoint();
  if (r.http_status == 0 || r.http_status >= 500 || IsTransient(r.error_type)) {
    connected_ = false;
    reached_ = false;
    Retry(fmt::format("PutRecords to stream '{}' at {} failed: {}", stream, endpoint, Describe(r)),
          false);
    return;
  }
  reached_ = true;
  connected_ = true;
  if (IsThrottle(r.error_type)) {
    throttled_ += records;
    Retry(fmt::format("PutRecords of {} records to stream '{}' throttled: {}", records, stream,
                      Describe(r)),
          true);
    return;
  }
  if (r.error_type == "ResourceNotFoundException") {
    HoldAll(stream,
            fmt::format("Kinesis stream '{}' does not exist at {} (region {}): create it (aws "
                        "kinesis create-stream --stream-name {}) or change the route's target; {}",
                        stream, endpoint, options_.region, stream, Describe(r)),
            out);
    return;
  }
  if (IsAuth(r.error_type) || r.http_status == 403) {
    HoldAll("",
            fmt::format("Kinesis endpoint {} refuses sluice's credentials or signature ({}): check "
                        "upstream.{}.credentials_file (access key id, secret access key, session "
                        "token), the region '{}', and that the identity may kinesis:PutRecords "
                        "on stream '{}'",
                        endpoint, Describe(r), options_.name, options_.region, stream),
            out);
    return;
  }
  if (r.error_type.starts_with("KMS")) {
    HoldAll(stream,
            fmt::format("Kinesis stream '{}' at {} cannot encrypt with its KMS key ({}): let the "
                        "identity use the key, or enable the key",
                        stream, endpoint, Describe(r)),
            out);
    return;
  }
  HoldAll(stream,
          fmt::format("Kinesis endpoint {} refuses PutRecords to stream '{}' ({}); sluice does not "
                      "know this error, so it holds rather than dead-letters: see the service's "
                      "documentation for the fix",
                      endpoint, stream, Describe(r)),
          out);
}

void KinesisSink::Retry(const std::string& why, bool reachable) {
  const auto delay = backoff_.Next();
  next_attempt_ = clock_->Now() + delay;
  uint64_t suppressed = 0;
  if (retry_log_.Allow(&suppressed)) {
    log_->warn(
        "Kinesis upstream '{}': {}; sent again in {} ms, in order ({} throttled records so far, "
        "{} more such reports since the last){}",
        options_.name, why, delay.count(), throttled_.load(), suppressed,
        reachable ? "" : "; the endpoint is unreachable");
  }
}

void KinesisSink::HoldAll(const std::string& key, const std::string& reason,
                          std::vector<Delivery>* out) {
  holds_.Add(key, reason);
  // Everything pending at once: the forwarder offers it again, in order, after its backoff.
  if (!pending_.empty()) out->push_back({0, Delivery::Outcome::kHold, reason});
  pending_.clear();
}

void KinesisSink::ClearHolds(const std::string& stream) {
  holds_.Erase(stream);
  holds_.Erase("");
}

std::string KinesisSink::HoldReason() const {
  return holds_.Reason();
}

}  // namespace sluice::connectors
