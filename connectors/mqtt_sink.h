// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "connectors/hold_list.h"
#include "connectors/mqtt_connection.h"
#include "connectors/router.h"
#include "connectors/sink.h"
#include "connectors/topic_template.h"

namespace sluice::connectors {

struct MqttSinkOptions {
  std::string name = "mqtt";    // the upstream's name, for logs
  MqttConnection connection;    // the remote broker
  size_t max_in_flight = 1000;  // QoS 1 messages sent and not yet acknowledged, at most
  // Topic template of gap records (docs/guarantees.md, "Gap records").
  std::string gap_topic = "sluice/{gateway}/gaps";
  std::string gateway_id;
  std::string log_id;  // the log's random identity
};

// The MQTT upstream: publishes each event at QoS 1 to a remote broker (Paho MQTT C++), on the
// topic its route's template gives (TopicTemplate), with sluice's headers as MQTT 5 user
// properties. Gap markers go to `gap_topic` as gap records (connectors/gap_record.h).
//
// Confirmation is the broker's PUBACK. At most `max_in_flight` publishes, and no more than the
// broker's MQTT 5 Receive Maximum, wait for theirs (Send returns Full beyond).
//
// Order across reconnects: every connection is made by a fresh Paho client without client-side
// persistence, so Paho never retransmits a message of an earlier connection. When a connection
// is lost, everything in flight is reported as one Delivery{0, kRetry} and the old client is
// retired; the forwarder sends every unconfirmed event again, in order, once nothing is in flight
// and a new connection is up. Whatever the broker received on the old connection it took before
// the new one existed (a broker ends the old connection of a client id before it accepts the new
// CONNECT), so per topic the subscriber sees each event's first copy in log order; duplicates of
// the events whose PUBACK was lost are possible (at least once). The broker-side session stays
// persistent (PersistentSessionOptions), as the configuration asks.
//
// Errors: credentials, TLS trust and host-name failures, and a broker that refuses a topic (MQTT 5
// PUBACK "not authorized" / "topic name invalid", or a broker that drops the connection whenever
// one topic is published) become holds: HoldReason() names the broker or topic and the fix. A
// payload above the broker's Maximum Packet Size (MQTT 5 CONNACK) is reported kRejected before
// it is sent. Reconnects use a jittered backoff between reconnect_min and reconnect_max.
//
// Thread-safety: one thread (the forwarder) calls Send and Poll, which also drives connecting;
// Connected(), HoldReason(), Connects() and Holds() may be called from any thread. Paho's threads
// only append to a shared, locked queue that Poll drains.
class MqttSink final : public Sink {
 public:
  // `router` and `clock` must outlive the sink; a null `clock` is the system clock. Checks the
  // options and every route's topic template (InvalidArgument naming what is wrong); the first
  // connection attempt is made by the first Poll or Send.
  static Status Create(MqttSinkOptions options, const Router* router, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger, std::unique_ptr<MqttSink>* out);
  ~MqttSink() override;

  MqttSink(const MqttSink&) = delete;
  MqttSink& operator=(const MqttSink&) = delete;

  Status Send(const storage::Event& event) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override;
  size_t InFlight() const override { return in_flight_.size(); }
  bool Connected() const override { return connected_.load(); }
  std::string HoldReason() const override;
  const std::string& name() const override { return options_.name; }

  // Connections established so far.
  uint64_t Connects() const { return connects_.load(); }
  // How often a refusal started a hold (the broker, or a topic, became held).
  uint64_t Holds() const override { return holds_.Count(); }

 private:
  struct Shared;
  class PublishListener;
  class ConnectListener;
  struct Connection;
  struct Ack;

  MqttSink(MqttSinkOptions options, const Router* router, const Clock* clock,
           std::shared_ptr<spdlog::logger> logger);

  // Starts a connection attempt when none is up or under way and the backoff allows.
  void MaybeConnect();
  void OnConnectDone();
  void OnConnectionLost(const std::string& cause, int disconnect_reason,
                        std::vector<Delivery>* out);
  void HandleAck(const Ack& ack, std::vector<Delivery>* out);
  // Counts one failed connection, named by its first unconfirmed event.
  void NoteFailedConnection(uint64_t oldest_seq, const std::string& oldest_topic);
  std::string RepeatedLossHold(const std::string& why);
  // Ends the current connection (if any): its client is kept until the next one is up, so that
  // Paho's threads have left every callback of it before it is destroyed.
  void RetireConnection();
  void ScheduleReconnect(const std::string& why);
  // Records a refusal that an operator must fix: `key` is a topic, or "" for the broker.
  std::string Hold(const std::string& key, const std::string& reason);
  void ClearHold(const std::string& key);

  const MqttSinkOptions options_;
  const Router* const router_;
  const SystemClock system_clock_;
  const Clock* const clock_;  // borrowed, or &system_clock_
  std::shared_ptr<spdlog::logger> log_;
  const bool v5_;
  // Per route (index in router_->routes()), parsed once; empty for routes that do not feed it.
  std::vector<std::unique_ptr<TopicTemplate>> templates_;
  TopicTemplate gap_template_;
  std::string gap_topic_;  // expanded once: a gap topic names only {gateway}

  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Connection> conn_;
  std::unique_ptr<Connection> retired_;
  // Forwarder thread only. Sent and not yet reported: seq -> topic (to name a topic the broker
  // refuses by dropping the connection).
  std::map<uint64_t, std::string> in_flight_;
  // Refused before sending (too large), reported by the next Poll.
  std::vector<Delivery> local_reports_;
  uint32_t max_packet_ = 0;   // the broker's Maximum Packet Size (MQTT 5), 0: unknown
  uint16_t receive_max_ = 0;  // the broker's Receive Maximum (MQTT 5), 0: none stated
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::steady_clock::time_point attempt_started_{};
  std::chrono::steady_clock::time_point connected_at_{};
  bool connecting_ = false;
  std::string last_connect_error_;
  // The first unconfirmed event when the last connection failed, and how many connections in a
  // row failed with that same event first: a broker that refuses a topic by closing the
  // connection (no MQTT 5 reason code) shows up so.
  uint64_t lost_oldest_seq_ = 0;
  std::string lost_oldest_topic_;
  int lost_same_oldest_ = 0;
  bool loss_noted_ = false;  // this connection's failure is counted

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> connects_{0};
  mutable std::mutex mu_;
  // Key "" = the broker.
  HoldList holds_{"MQTT upstream '" + options_.name + "': ", "the broker", log_};
  LogThrottle connect_log_{std::chrono::seconds(30)};
};

}  // namespace sluice::connectors
