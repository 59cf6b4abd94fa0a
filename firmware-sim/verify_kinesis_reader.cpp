// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_kinesis_reader.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "common/base64.h"
#include "connectors/record_headers.h"

namespace sluice::sim {

namespace {

// docs/kinesis-records.md: "slu", version 1, header length (uint32, big-endian).
constexpr std::string_view kMagic = "slu\x01";
constexpr size_t kFrameBytes = 8;
// Kinesis allows five GetRecords a second per shard; a caught-up reader waits this long per pass.
constexpr auto kCaughtUpWait = std::chrono::milliseconds(200);

}  // namespace

bool DecodeKinesisRecordData(std::string_view data, KinesisRecordData* out) {
  if (data.size() < kFrameBytes || data.substr(0, kMagic.size()) != kMagic) return false;
  const auto b = [&](size_t i) {
    return static_cast<uint32_t>(static_cast<unsigned char>(data[i]));
  };
  const size_t n = b(4) << 24 | b(5) << 16 | b(6) << 8 | b(7);
  if (data.size() - kFrameBytes < n) return false;
  const nlohmann::json h =
      nlohmann::json::parse(data.substr(kFrameBytes, n), nullptr, /*allow_exceptions=*/false);
  if (!h.is_object()) return false;
  KinesisRecordData r;
  r.payload = data.substr(kFrameBytes + n);
  for (const auto& [name, value] : h.items()) {
    if (!value.is_string()) return false;
    const std::string& v = value.get_ref<const std::string&>();
    if (name == connectors::kHeaderSeq) r.log_seq = ParseHeaderNumber(v);
    if (name == connectors::kHeaderLogId) r.log_id = v;
    if (name == connectors::kHeaderGap) r.gap = v == "1";
  }
  *out = std::move(r);
  return true;
}

VerifyKinesisReader::VerifyKinesisReader(VerifyKinesisReaderOptions options, const Clock* clock,
                                         std::unique_ptr<AwsJsonTransport> transport)
    : options_(std::move(options)), clock_(clock), transport_(std::move(transport)) {}

Status VerifyKinesisReader::Open(VerifyKinesisReaderOptions options, const Clock* clock,
                                 std::unique_ptr<VerifyKinesisReader>* out) {
  CurlAwsJsonClientOptions o;
  o.endpoint = options.endpoint;
  o.region = options.region;
  o.credentials = options.credentials;
  o.ca_file = options.ca_file;
  o.tls_verify = !options.insecure;
  o.connect_timeout = options.connect_timeout;
  o.request_timeout = options.connect_timeout;
  std::unique_ptr<CurlAwsJsonClient> client;
  if (Status s = CurlAwsJsonClient::Create(std::move(o), &client); !s.ok()) return s;
  std::unique_ptr<VerifyKinesisReader> r(
      new VerifyKinesisReader(std::move(options), clock, std::move(client)));
  if (Status s = r->ListShardsOf(r->options_.stream); !s.ok()) return s;
  if (!r->options_.gap_stream.empty()) {
    Status s = r->ListShardsOf(r->options_.gap_stream);
    // No gap record was ever written while the gap stream does not exist.
    if (!s.ok() && s.code() != Status::Code::kNotFound) return s;
  }
  *out = std::move(r);
  return Status::Ok();
}

Status VerifyKinesisReader::Call(std::string_view action, const std::string& body,
                                 std::string* answer) {
  requests_++;
  const AwsResponse r = transport_->Call(action, body);
  if (r.ok()) {
    *answer = r.body;
    return Status::Ok();
  }
  const std::string where = std::string(action) + " at " + transport_->endpoint();
  if (r.http_status == 0) return Status::Unavailable(where + ": " + r.transport_error);
  const std::string why = r.error_type + (r.error_message.empty() ? "" : ": " + r.error_message);
  if (r.error_type == "ResourceNotFoundException") return Status::NotFound(where + ": " + why);
  return Status::Unavailable(where + ": " + why);
}

Status VerifyKinesisReader::ListShardsOf(const std::string& stream) {
  std::string token;
  do {
    nlohmann::json req = nlohmann::json::object();
    if (token.empty()) {
      req["StreamName"] = stream;
    } else {
      req["NextToken"] = token;
    }
    std::string answer;
    if (Status s = Call("ListShards", req.dump(), &answer); !s.ok()) return s;
    const nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
    if (!j.is_object() || !j.contains("Shards") || !j["Shards"].is_array()) {
      return Status::Unavailable("ListShards of '" + stream + "': unexpected answer");
    }
    for (const auto& shard : j["Shards"]) {
      Shard s;
      s.stream = stream;
      s.id = shard.value("ShardId", "");
      s.index = static_cast<int32_t>(shards_.size());
      nlohmann::json it = {
          {"StreamName", stream}, {"ShardId", s.id}, {"ShardIteratorType", "TRIM_HORIZON"}};
      std::string it_answer;
      if (Status st = Call("GetShardIterator", it.dump(), &it_answer); !st.ok()) return st;
      const nlohmann::json ij = nlohmann::json::parse(it_answer, nullptr, false);
      if (!ij.is_object() || !ij.contains("ShardIterator") || !ij["ShardIterator"].is_string()) {
        return Status::Unavailable("GetShardIterator of " + s.id + ": unexpected answer");
      }
      s.iterator = ij["ShardIterator"].get<std::string>();
      shards_.push_back(std::move(s));
    }
    token = j.contains("NextToken") && j["NextToken"].is_string()
                ? j["NextToken"].get<std::string>()
                : "";
  } while (!token.empty());
  return Status::Ok();
}

Status VerifyKinesisReader::Read(const std::function<void(const ConsumedRecord&)>& on_record,
                                 const std::function<void(const std::string&)>& warn,
                                 Stats* stats) {
  const auto start = clock_->Now();
  auto last_new = start;
  int64_t index = 0;
  std::string data;
  stats->shards = shards_.size();
  auto finish = [&](ReadStop stop) {
    stats->stop = stop;
    stats->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - start);
    stats->requests = requests_;
    return Status::Ok();
  };
  while (true) {
    bool got = false;
    for (Shard& shard : shards_) {
      while (!shard.iterator.empty()) {
        const nlohmann::json req = {{"ShardIterator", shard.iterator}, {"Limit", 10000}};
        std::string answer;
        if (Status s = Call("GetRecords", req.dump(), &answer); !s.ok()) return s;
        const nlohmann::json j = nlohmann::json::parse(answer, nullptr, false);
        if (!j.is_object() || !j.contains("Records") || !j["Records"].is_array()) {
          return Status::Unavailable("GetRecords of " + shard.id + ": unexpected answer");
        }
        const auto& next = j.contains("NextShardIterator") ? j["NextShardIterator"] : nullptr;
        shard.iterator = next.is_string() ? next.get<std::string>() : "";
        if (j["Records"].empty()) break;
        got = true;
        for (const auto& rec : j["Records"]) {
          if (!Base64Decode(rec.value("Data", ""), &data)) {
            return Status::Unavailable("GetRecords of " + shard.id + ": Data is not base64");
          }
          const std::string key = rec.value("PartitionKey", "");
          ConsumedRecord c;
          c.topic = shard.stream;
          c.key = key;
          c.partition = shard.index;
          c.offset = index++;
          if (rec.contains("ApproximateArrivalTimestamp") &&
              rec["ApproximateArrivalTimestamp"].is_number()) {
            c.timestamp_ms = static_cast<int64_t>(
                std::llround(rec["ApproximateArrivalTimestamp"].get<double>() * 1000));
          }
          KinesisRecordData d;
          if (DecodeKinesisRecordData(data, &d)) {
            c.value = d.payload;
            c.log_seq = d.log_seq;
            c.log_id = d.log_id;
            c.gap = d.gap || (!options_.gap_stream.empty() && shard.stream == options_.gap_stream);
          } else {
            warn("a record of " + shard.stream + "/" + shard.id +
                 " is not framed by sluice; its data is checked as the payload");
            c.value = data;
          }
          on_record(c);
          if (c.gap) {
            stats->gap_records++;
          } else {
            stats->records++;
          }
          if (options_.max_records > 0 && stats->records >= options_.max_records) {
            return finish(ReadStop::kCount);
          }
        }
      }
    }
    const auto now = clock_->Now();
    if (now - start >= options_.timeout) return finish(ReadStop::kTimeout);
    if (got) {
      last_new = now;
    } else if (now - last_new >= options_.idle_timeout) {
      return finish(ReadStop::kIdle);
    } else {
      std::this_thread::sleep_for(kCaughtUpWait);
    }
  }
}

}  // namespace sluice::sim
