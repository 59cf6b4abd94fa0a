// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/aws_json_transport.h"
#include "common/clock.h"
#include "common/curl_aws_json_client.h"
#include "common/status.h"
#include "firmware-sim/consumed_record.h"

namespace sluice::sim {

struct VerifyKinesisReaderOptions {
  std::string endpoint;  // https://host[:port]
  std::string region = "us-east-1";
  AwsCredentials credentials;
  std::string ca_file;       // PEM trust store in place of the system's
  bool insecure = false;     // TLS without checking the certificate and host name
  std::string stream;        // the device events' stream
  std::string gap_stream;    // sluice's gap records; empty: none
  uint64_t max_records = 0;  // stop once this many (gap records apart) arrived; 0: no limit
  // Stop when a pass over every shard found nothing new for this long.
  std::chrono::milliseconds idle_timeout{10000};
  std::chrono::milliseconds timeout{300000};  // stop reading after this long in any case
  std::chrono::milliseconds connect_timeout{10000};
};

// A Kinesis record's data as sluice writes it (docs/kinesis-records.md): the headers framed in
// front of the payload. False when `data` is not such a frame; the views point into `data`.
struct KinesisRecordData {
  std::string_view payload;
  std::optional<uint64_t> log_seq;  // sluice.seq
  std::string log_id;               // sluice.log
  bool gap = false;                 // sluice.gap = "1"
};
bool DecodeKinesisRecordData(std::string_view data, KinesisRecordData* out);

// Reads sluice's Kinesis upstream back, as a consumer would: every shard of the stream (and of
// the gap stream) from TRIM_HORIZON with GetShardIterator and GetRecords, shard after shard, so
// that each partition key's records come in the order the shard keeps. Records are numbered in
// the order read (ConsumedRecord::offset); partition is the shard's index in ListShards.
//
// Thread-compatible: one thread calls Open, Read and the destructor. `clock` must outlive it.
class VerifyKinesisReader {
 public:
  struct Stats {
    uint64_t records = 0;      // of the event stream, gap records not included
    uint64_t gap_records = 0;  // gap records of either stream
    uint64_t shards = 0;
    uint64_t requests = 0;
    ReadStop stop = ReadStop::kIdle;
    std::chrono::milliseconds elapsed{0};
  };

  // Unavailable naming the endpoint when it does not answer or refuses the credentials;
  // NotFound naming a stream that does not exist.
  static Status Open(VerifyKinesisReaderOptions options, const Clock* clock,
                     std::unique_ptr<VerifyKinesisReader>* out);

  VerifyKinesisReader(const VerifyKinesisReader&) = delete;
  VerifyKinesisReader& operator=(const VerifyKinesisReader&) = delete;

  // Calls `on_record` for each record until max_records, the idle timeout or the overall timeout.
  // `warn` gets records that are not sluice's frames (they are passed on with their data as the
  // value).
  Status Read(const std::function<void(const ConsumedRecord&)>& on_record,
              const std::function<void(const std::string&)>& warn, Stats* stats);

 private:
  struct Shard {
    std::string stream;
    std::string id;
    int32_t index = 0;
    std::string iterator;  // empty once a closed shard is read to its end
  };

  VerifyKinesisReader(VerifyKinesisReaderOptions options, const Clock* clock,
                      std::unique_ptr<AwsJsonTransport> transport);
  Status ListShardsOf(const std::string& stream);
  Status Call(std::string_view action, const std::string& body, std::string* answer);

  const VerifyKinesisReaderOptions options_;
  const Clock* const clock_;
  std::unique_ptr<AwsJsonTransport> transport_;
  std::vector<Shard> shards_;
  uint64_t requests_ = 0;
};

}  // namespace sluice::sim
