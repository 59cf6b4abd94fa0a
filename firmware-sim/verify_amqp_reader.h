// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "firmware-sim/consumed_record.h"

struct amqp_connection_state_t_;

namespace sluice::sim {

struct VerifyAmqpReaderOptions {
  std::string url = "amqp://127.0.0.1:5672";  // amqp:// or amqps:// (TLS), HOST[:PORT]
  std::string vhost = "/";
  std::string username = "guest";
  std::string password = "guest";
  std::string ca_file;       // TLS trust store (PEM)
  std::string cert_file;     // client certificate (PEM)
  std::string key_file;      // client private key (PEM)
  bool insecure = false;     // TLS without checking the broker's certificate and host name
  std::string stream;        // the stream (x-queue-type = stream) of the device events
  std::string gap_stream;    // the stream of sluice's gap records; empty: none
  uint64_t max_records = 0;  // stop once this many (gap records apart) arrived; 0: no limit
  std::chrono::milliseconds idle_timeout{10000};  // stop when nothing arrived for this long
  std::chrono::milliseconds timeout{300000};      // stop reading after this long in any case
  std::chrono::milliseconds connect_timeout{10000};
  uint16_t prefetch = 1000;  // basic.qos: unacknowledged deliveries at a time (streams need one)
};

// Reads RabbitMQ streams back as a stream consumer does: from the first offset (consumer argument
// x-stream-offset = "first"), with a prefetch and manual acknowledgements, so that a run reads
// everything the stream holds without removing anything (a stream is a log). Written against
// rabbitmq-c directly, apart from sluice's own AMQP code, as any consumer would be. Records come
// in stream order (`offset` is the stream offset); sluice.seq, sluice.log and sluice.gap come from
// the AMQP headers. When the connection breaks, the reader reconnects and resumes after the last
// offset it read.
//
// Thread-compatible: one thread calls Open, Read and the destructor. `clock` must outlive it.
class VerifyAmqpReader {
 public:
  struct Stats {
    uint64_t records = 0;
    uint64_t gap_records = 0;
    ReadStop stop = ReadStop::kIdle;
    std::chrono::milliseconds elapsed{0};
    uint64_t reconnects = 0;
  };

  // Connects and starts consuming. Unavailable naming the URL when the broker cannot be reached
  // or refuses the login; NotFound when a stream does not exist.
  static Status Open(VerifyAmqpReaderOptions options, const Clock* clock,
                     std::unique_ptr<VerifyAmqpReader>* out);
  ~VerifyAmqpReader();
  VerifyAmqpReader(const VerifyAmqpReader&) = delete;
  VerifyAmqpReader& operator=(const VerifyAmqpReader&) = delete;

  Status Read(const std::function<void(const ConsumedRecord&)>& on_record,
              const std::function<void(const std::string&)>& on_warning, Stats* stats);

 private:
  VerifyAmqpReader(VerifyAmqpReaderOptions options, const Clock* clock);
  Status Connect();
  void Close();

  const VerifyAmqpReaderOptions options_;
  const Clock* const clock_;
  amqp_connection_state_t_* conn_ = nullptr;
  // Per stream, the next offset to read (after a reconnect); -1: from the first.
  int64_t next_offset_ = -1;
  int64_t next_gap_offset_ = -1;
  uint64_t arrivals_ = 0;
};

}  // namespace sluice::sim
