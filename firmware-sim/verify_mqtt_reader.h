// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/async_client.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "firmware-sim/consumed_record.h"

namespace sluice::sim {

struct VerifyMqttReaderOptions {
  std::string url = "tcp://127.0.0.1:1883";  // tcp://, mqtt://, ssl://, mqtts://
  bool mqtt5 = true;  // MQTT 5 carries sluice.seq and sluice.log as user properties; 3.1.1 does not
  // Fixed, so that the broker keeps the session (and queues for it) between runs and reconnects.
  std::string client_id = "sluice-verify";
  std::string username;
  std::string password;
  std::string ca_file;       // TLS trust store (PEM); TLS is on for ssl:// and mqtts:// or any file
  std::string cert_file;     // client certificate (PEM)
  std::string key_file;      // client private key (PEM)
  bool insecure = false;     // TLS without checking the broker's certificate and host name
  std::string topic;         // filter of the device events
  std::string gap_topic;     // filter of sluice's gap records; empty: none
  uint64_t max_records = 0;  // stop once this many (gap records apart) arrived; 0: no limit
  // Stop when no message arrived for this long while connected.
  std::chrono::milliseconds idle_timeout{10000};
  std::chrono::milliseconds timeout{300000};         // stop reading after this long in any case
  std::chrono::milliseconds connect_timeout{10000};  // per connection attempt
  std::chrono::seconds keepalive{30};
};

// Whether `topic` matches the MQTT topic filter `filter` (MQTT 3.1.1 section 4.7: + one level,
// # the rest, wildcards at the first level not matching topics that start with $).
bool MqttTopicMatches(std::string_view filter, std::string_view topic);

// Reads sluice's MQTT upstream back, as a cloud consumer would: a persistent session (clean
// session off; MQTT 5: a session that never expires) subscribed at QoS 1 to the event filter and
// the gap filter. The broker queues what is published while the reader is away, so a reader whose
// session was created before the test (Open, or a run with --subscribe-only) and that reconnects
// loses nothing; a broker that lost the session is reported (Stats::session_lost). Messages come
// in the order the broker delivers them, which MQTT keeps per topic for QoS 1.
//
// Thread-compatible: one thread calls Open, Read and the destructor. `clock` must outlive the
// reader. Paho's threads only queue messages for Read.
class VerifyMqttReader {
 public:
  struct Stats {
    uint64_t records = 0;      // on the event filter, gap records not included
    uint64_t gap_records = 0;  // gap records from either filter
    ReadStop stop = ReadStop::kIdle;
    std::chrono::milliseconds elapsed{0};
    uint64_t reconnects = 0;
    // Reconnects after which the broker had no session: whatever it had queued is gone.
    uint64_t session_lost = 0;
  };

  // Connects and subscribes both filters at QoS 1. Unavailable naming the URL when the broker
  // cannot be reached or refuses the connection (the reason: bad credentials, TLS) within
  // connect_timeout; InvalidArgument for a bad URL or filter, or a subscription refused.
  static Status Open(VerifyMqttReaderOptions options, const Clock* clock,
                     std::unique_ptr<VerifyMqttReader>* out);
  // Closes the connection and leaves the session on the broker.
  ~VerifyMqttReader();
  VerifyMqttReader(const VerifyMqttReader&) = delete;
  VerifyMqttReader& operator=(const VerifyMqttReader&) = delete;

  // Whether the broker still had this client id's session when Open connected.
  bool resumed_session() const { return resumed_session_; }

  // Calls `on_record` for each message until max_records, the idle timeout or the overall
  // timeout, reconnecting (resubscribing when the broker lost the session) as needed. A message
  // is acknowledged once it is queued for this loop. `on_warning` hears about lost connections
  // and sessions. `stats` is filled.
  Status Read(const std::function<void(const ConsumedRecord&)>& on_record,
              const std::function<void(const std::string&)>& on_warning, Stats* stats);

 private:
  VerifyMqttReader(VerifyMqttReaderOptions options, const Clock* clock,
                   std::unique_ptr<mqtt::async_client> client);
  // One connection attempt within `timeout`; subscribes when `subscribe` or the broker had no
  // session. *session_present tells which.
  Status Connect(std::chrono::milliseconds timeout, bool subscribe, bool* session_present);
  Status Subscribe(std::chrono::milliseconds timeout);
  std::string Where() const;

  const VerifyMqttReaderOptions options_;
  const Clock* const clock_;
  std::unique_ptr<mqtt::async_client> client_;
  bool resumed_session_ = false;
};

}  // namespace sluice::sim
