// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/async_client.h>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log_throttle.h"
#include "connectors/mqtt_connection.h"
#include "connectors/redelivery_filter.h"
#include "connectors/source.h"
#include "storage/event_log.h"
#include "storage/event_writer.h"

namespace sluice::connectors {

struct MqttSubscription {
  std::string filter;
  int qos = 1;
  // Whether retained messages the broker delivers because this subscription is new are logged.
  // A resubscription never brings them again (see "Retained messages" in docs/ARCHITECTURE.md).
  bool ingest_retained = true;
};

struct MqttSourceOptions {
  MqttConnection connection;  // the local broker
  std::vector<MqttSubscription> subscriptions;
  uint64_t max_event_bytes = 256 * 1024;
  // Called (from a Paho thread) when an event could not be written to the log for a reason other
  // than shutdown: the daemon must stop, since the log is failed.
  std::function<void(const Status&)> on_fatal;
  // Called (from the connector thread) once connected with every subscription granted at its
  // QoS: from then on the broker delivers every routed event to sluice. Must return quickly.
  std::function<void()> on_ready;
  // Test hook, called with "mqtt.before_commit" and "mqtt.after_commit" around the durable write
  // of each QoS 1/2 event (see gateway/failpoint.h). Empty in production.
  std::function<void(const char*)> failpoint;
  // How many stored QoS 1/2 events the source remembers to recognise the broker's redeliveries
  // of them (RedeliveryFilter). More than the log keeps for after a restart (kRecentIngressRows):
  // a broker restarted with SIGTERM sends again every message whose PUBACK it had not read, and
  // Mosquitto was measured redelivering up to a few hundred (chaos_network_test.cpp, Mosquitto
  // restarts); a crash of sluice leaves only the broker's in-flight window unacknowledged.
  // About 100 bytes each.
  size_t redelivery_window = 4096;
  // The newest events with a packet id that the log held when this process started, oldest first
  // (EventLog::RecentIngress): what redeliveries on the first connection are compared with.
  std::vector<storage::Event> recent_ingress;
};

struct MqttSourceStats {
  uint64_t received = 0;  // messages delivered by the broker
  uint64_t written = 0;   // handed to the log writer successfully
  uint64_t refused_too_large = 0;
  uint64_t write_failures = 0;
  uint64_t connects = 0;  // successful connections, the first included
  uint64_t connection_losses = 0;
  // Retained messages not logged: their subscription was not new (a resubscription made the
  // broker send them again) or their route says retained = "skip".
  uint64_t retained_skipped = 0;
  // Messages the broker delivered again (DUP) that were already in the log: acknowledged, not
  // stored again (docs/ARCHITECTURE.md, "Redeliveries from the broker").
  uint64_t redeliveries_skipped = 0;
};

// The MQTT source on Eclipse Paho C++ (async_client).
//
// Delivery rule: Paho acknowledges a QoS 1/2 message to the broker when the message callback
// returns. The callback therefore writes the event durably (EventWriter::Write with durable=true)
// before it returns, and the broker may forget an event only once it is in the log. A QoS 0 event
// has no acknowledgement: it is queued for the next group commit.
//
// Session: a persistent session (MQTT 5: clean start off and a session that never expires; MQTT
// 3.1.1: clean session off) under a fixed client id, so the broker queues events for sluice while
// it is away. Every connection subscribes every filter, one SUBSCRIBE each so that each SUBACK
// is judged on its own: a refused filter is an error, a downgraded QoS a warning, and either
// keeps Ready() false, with NotReadyReason() naming the filter; such filters are subscribed again
// every reconnect_max until granted. Reconnects run on the source's own thread with jittered
// exponential backoff, logged.
//
// Retained messages: a retained message is logged (with Event::retained) only when the broker
// sends it because the subscription is new and the route ingests retained messages. MQTT 5 asks
// the broker for exactly that (retain handling 1, or 2 for "skip"); MQTT 3.1.1 cannot, so a
// subscription counts as new only when the broker had no session for sluice, and retained
// messages arriving for a subscription that is not new are acknowledged without being logged.
//
// Redeliveries: a QoS 1/2 message the broker delivers again with DUP set, whose packet id, topic
// and payload equal those of an event stored on an earlier connection (or, after a restart, one
// of the log's newest events with a packet id), is acknowledged without being stored again
// (RedeliveryFilter; docs/ARCHITECTURE.md, "Redeliveries from the broker").
//
// Threads: Paho's callback thread runs OnMessage and OnConnectionLost; `connector_` runs
// connect/subscribe; Start/Stop/Stats come from any thread.
class MqttSource final : public Source {
 public:
  // `writer` must outlive the source.
  MqttSource(MqttSourceOptions options, storage::EventWriter* writer, const Clock* clock,
             std::shared_ptr<spdlog::logger> logger);
  ~MqttSource() override;

  Status Start() override;
  void Stop() override;
  bool Ready() const override { return ready_.load(); }
  // Why the source is not ready: not connected, or the filters the broker refused or downgraded.
  // Empty when ready.
  std::string NotReadyReason() const;

  MqttSourceStats Stats() const;

 private:
  void ConnectLoop();
  bool ConnectOnce(std::string* error);
  // Subscribes the filters not granted yet on this connection. `session_new`: the broker had no
  // session, so every subscription is new. False (with `error`) if the connection failed; a
  // refusal or a downgrade is not a failure: it is recorded and keeps the source unready.
  bool SubscribePending(bool session_new, std::string* error);
  // Whether the subscription the message was sent for lets its retained copy into the log.
  bool AcceptRetained(const std::string& topic) const;
  // What the callback thread and Stop share. Held by shared_ptr because a parked callback may
  // outlive this object (see Stop).
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    bool draining = false;  // shutdown began: callbacks park instead of taking their message
    int writing = 0;        // callbacks between taking a message and returning
    int parked = 0;         // callbacks holding a message they did not take
    // When the last callback that took its message returned; Paho writes that message's PUBACK
    // right after, on the same thread, before it delivers the next message.
    std::chrono::steady_clock::time_point last_return{};
    bool released = false;  // the connection is closed: parked callbacks may return
  };

  void OnMessage(const std::shared_ptr<Gate>& gate, mqtt::const_message_ptr msg);
  // Writes one message's event to the log. False if a QoS 1/2 event could not be written, so its
  // message must not be acknowledged.
  bool Take(const mqtt::message& msg);
  void OnConnectionLost(const std::string& cause);

  const MqttSourceOptions options_;
  storage::EventWriter* const writer_;
  const Clock* const clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<mqtt::async_client> client_;
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
  RedeliveryFilter redeliveries_;

  // Per subscription (index of options_.subscriptions), written by the connector thread before
  // the SUBSCRIBE, read by the callback thread.
  std::unique_ptr<std::atomic<bool>[]> accept_retained_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Per subscription, on the current connection: granted at its QoS; known to exist at the
  // broker; what is wrong with it ("" if nothing).
  std::vector<bool> granted_;              // GUARDED_BY(mu_)
  std::vector<bool> existing_;             // GUARDED_BY(mu_)
  std::vector<std::string> sub_problems_;  // GUARDED_BY(mu_)
  bool connected_ = false;                 // GUARDED_BY(mu_)
  bool stopping_ = false;                  // GUARDED_BY(mu_)
  bool stopped_ = false;                   // GUARDED_BY(mu_)
  std::thread connector_;

  std::atomic<bool> ready_{false};
  std::atomic<bool> start_reported_{false};  // on_ready was called (once per process)
  std::atomic<uint64_t> received_{0};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> refused_too_large_{0};
  std::atomic<uint64_t> write_failures_{0};
  std::atomic<uint64_t> connects_{0};
  std::atomic<uint64_t> connection_losses_{0};
  std::atomic<uint64_t> retained_skipped_{0};
  std::atomic<uint64_t> redeliveries_skipped_{0};
  LogThrottle refusal_log_{std::chrono::seconds(10)};
  LogThrottle redelivery_log_{std::chrono::seconds(10)};
};

}  // namespace sluice::connectors
