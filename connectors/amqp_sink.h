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
#include <string_view>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "connectors/amqp_confirm_window.h"
#include "connectors/amqp_connection.h"
#include "connectors/hold_list.h"
#include "connectors/router.h"
#include "connectors/sink.h"
#include "connectors/topic_template.h"

namespace sluice::connectors {

struct AmqpSinkOptions {
  std::string name = "rabbitmq";  // the upstream's name, for logs
  AmqpEndpoint endpoint;          // the broker
  // The exchange every event is published to; "" is the default exchange, where the routing key
  // is the name of the queue or stream that takes the event.
  std::string exchange;
  size_t max_in_flight = 1000;  // publishes awaiting their confirm, at most
  // Routing key of gap records (docs/guarantees.md, "Gap records"); {gateway} only.
  std::string gap_routing_key = "sluice.gaps";
  std::string gateway_id;
  std::string log_id;  // the log's random identity
};

// The hold a resource alarm means, from connection.blocked's reason ("low on memory", "low on
// disk", or both joined by " & ") on the broker at `url`: which resource, and the fix.
std::string ExplainResourceAlarm(std::string_view url, std::string_view reason);

// The RabbitMQ upstream (AMQP 0-9-1 through rabbitmq-c): publishes each event to `exchange` with
// the routing key its route's template gives (TopicTemplate), persistent (delivery_mode 2),
// `mandatory`, with sluice's headers as an AMQP headers table and the payload as the body, on one
// channel in confirm mode. With the default exchange the routing key names a queue or a RabbitMQ
// stream (x-queue-type = stream), the usual target. Gap markers go to `gap_routing_key` as gap
// records (connectors/gap_record.h).
//
// Confirmation is the broker's basic.ack; AmqpConfirmWindow maps delivery tags to seqs. At most
// `max_in_flight` publishes await theirs, and at most one per key (the route's key within its
// routing key), since a nacked publish cannot be put back ahead of a later one the broker took:
// Send returns Full beyond either.
//
// Order (docs/ARCHITECTURE.md, "The RabbitMQ upstream"): one channel carries every publish, and a
// channel delivers to its queues in publish order. When the channel or the connection is lost,
// everything unconfirmed is reported as one Delivery{0, kRetry} and the forwarder sends it all
// again, in order, on the next channel, once nothing is in flight. A broker's refusal becomes a
// hold whose text names the fix: basic.return (no queue is bound for the routing key: the stream
// is missing), basic.nack (the queue refused it, e.g. x-overflow = reject-publish at its
// x-max-length), a channel closed for a missing exchange or a refused permission, and login or
// TLS failures. Nothing is dead-lettered on the broker's word; only an event that can never be
// published (a routing key beyond AMQP's 255 bytes) is refused by Send.
//
// A resource alarm on the broker (connection.blocked: low on memory or disk) is a hold too, one
// per alarm: Send refuses with Unavailable until connection.unblocked, and what was published
// before stays in the confirm window, confirmed once the broker reads on. A broker that stops
// reading without saying so costs the connection after endpoint.connect_timeout
// (AmqpConnection), never the forwarder's thread.
//
// Thread-safety: rabbitmq-c is not thread-safe, so the connection lives on the forwarder thread:
// Send and Poll drive it (Poll connects, reads confirms and keeps heartbeats going). Connected(),
// HoldReason(), Connects() and Holds() may be called from any thread.
class AmqpSink final : public Sink {
 public:
  // `router` and `clock` must outlive the sink; a null `clock` is the system clock. Checks the
  // options and every route's routing-key template (InvalidArgument naming what is wrong); the
  // first connection attempt is made by the first Poll or Send.
  static Status Create(AmqpSinkOptions options, const Router* router, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger, std::unique_ptr<AmqpSink>* out);
  ~AmqpSink() override;

  AmqpSink(const AmqpSink&) = delete;
  AmqpSink& operator=(const AmqpSink&) = delete;

  Status Send(const storage::Event& event) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override;
  size_t InFlight() const override { return window_.size() + local_reports_.size(); }
  bool Connected() const override { return connected_.load(); }
  std::string HoldReason() const override;
  uint64_t Holds() const override { return holds_.Count(); }
  const std::string& name() const override { return options_.name; }

  // Connections established so far.
  uint64_t Connects() const { return connects_.load(); }

 private:
  AmqpSink(AmqpSinkOptions options, const Router* router, const Clock* clock,
           std::shared_ptr<spdlog::logger> logger);

  // Connects when no connection is up and the backoff allows; blocks up to connect_timeout.
  void MaybeConnect();
  void Handle(const AmqpEvent& ev, std::vector<Delivery>* out);
  // The connection is gone: everything unconfirmed comes back as one kRetry (or `hold`).
  void LoseConnection(const std::string& why, const std::string& hold, std::vector<Delivery>* out);
  // The broker closed the channel: everything unconfirmed comes back, a new channel is opened.
  void OnChannelClosed(uint16_t code, const std::string& text, std::vector<Delivery>* out);
  std::string ExplainReturn(const AmqpConfirmWindow::Returned& why);
  void ScheduleReconnect(const std::string& why);
  // Records a refusal that an operator must fix, keyed by what is refused ("" = the broker).
  std::string Hold(const std::string& key, const std::string& reason);
  void ClearHolds();

  const AmqpSinkOptions options_;
  const Router* const router_;
  const SystemClock system_clock_;
  const Clock* const clock_;  // borrowed, or &system_clock_
  std::shared_ptr<spdlog::logger> log_;
  // Per route (index in router_->routes()), parsed once; empty for routes that do not feed it.
  std::vector<std::unique_ptr<TopicTemplate>> templates_;
  std::string gap_routing_key_;  // expanded once: it names only {gateway}

  // Forwarder thread only.
  std::unique_ptr<AmqpConnection> conn_;
  AmqpConfirmWindow window_;
  // Forwarder thread: a publish on this connection was confirmed since it opened or since the
  // last nack; until then one publish is in flight at a time.
  bool proven_ = false;
  // The event Send last refused because its key had a publish in flight, and that key's hash.
  uint64_t waiting_seq_ = 0;
  uint64_t waiting_key_ = 0;
  std::vector<Delivery> local_reports_;  // outcomes known before a confirm (lost connection)
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::string last_connect_error_;

  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> connects_{0};
  mutable std::mutex mu_;
  HoldList holds_{"RabbitMQ upstream '" + options_.name + "': ", "the broker", log_};
  LogThrottle connect_log_{std::chrono::seconds(30)};
};

}  // namespace sluice::connectors
