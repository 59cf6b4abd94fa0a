// SPDX-License-Identifier: Apache-2.0

#include "connectors/amqp_sink.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <thread>
#include <utility>

#include "connectors/gap_record.h"
#include "connectors/record_headers.h"

namespace sluice::connectors {

namespace {

// AMQP 0-9-1 encodes routing keys and exchange names as short strings.
constexpr size_t kMaxShortString = 255;
// Frames read per Poll after the first, so that a flood of confirms cannot keep Poll from
// returning to the forwarder.
constexpr int kMaxEventsPerPoll = 10000;
// The hold key of a resource alarm: one hold, whatever else is held, until connection.unblocked.
constexpr const char* kAlarmKey = "alarm";
// AMQP reply codes (AMQP 0-9-1, section 1.9) the holds name.
constexpr uint16_t kNotFound = 404;
constexpr uint16_t kAccessRefused = 403;
constexpr uint16_t kPreconditionFailed = 406;

// The message id: the log's identity and the event's seq, unique across gateways and logs, so a
// consumer can drop a duplicate by it; the sink finds a returned message's seq in it.
std::string MessageId(std::string_view log_id, uint64_t seq) {
  return fmt::format("{}/{}", log_id, seq);
}

bool SeqOfMessageId(std::string_view id, uint64_t* seq) {
  const size_t slash = id.rfind('/');
  if (slash == std::string_view::npos) return false;
  const std::string_view digits = id.substr(slash + 1);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *seq);
  return ec == std::errc() && ptr == digits.data() + digits.size();
}

// The ordering key of a publish: the route's key, within its routing key (the stream). A gap
// record's key is empty: its routing key alone orders gap records.
uint64_t OrderKey(std::string_view routing_key, std::string_view key) {
  const size_t h = std::hash<std::string_view>{}(routing_key);
  return h ^ (std::hash<std::string_view>{}(key) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

}  // namespace

std::string ExplainResourceAlarm(std::string_view url, std::string_view reason) {
  const bool memory = reason.find("memory") != std::string_view::npos;
  const bool disk = reason.find("disk") != std::string_view::npos;
  std::string fix;
  if (memory) {
    fix =
        "free memory on the broker (let its consumers drain the queues) or raise its "
        "vm_memory_high_watermark";
  }
  if (disk) {
    fix += fix.empty() ? "" : ", and ";
    fix += "free disk space on the broker's data volume or lower its disk_free_limit";
  }
  if (fix.empty()) {
    fix =
        "free memory or disk space on the broker, or raise its vm_memory_high_watermark or "
        "lower its disk_free_limit";
  }
  return fmt::format(
      "RabbitMQ broker {} blocks publishing: resource alarm, {} (connection.blocked); {}. "
      "Publishes sent before it are confirmed once the alarm clears",
      url, reason.empty() ? std::string_view("no reason given") : reason, fix);
}

AmqpSink::AmqpSink(AmqpSinkOptions options, const Router* router, const Clock* clock,
                   std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      router_(router),
      clock_(clock != nullptr ? clock : &system_clock_),
      log_(std::move(logger)),
      backoff_(options_.endpoint.reconnect_min, options_.endpoint.reconnect_max,
               std::hash<std::string>{}(options_.name + options_.gateway_id)) {}

AmqpSink::~AmqpSink() {
  // What is unconfirmed stays in the log and is sent again by the next run. The connection's
  // destructor closes the channel and the connection cleanly.
  conn_.reset();
}

Status AmqpSink::Create(AmqpSinkOptions options, const Router* router, const Clock* clock,
                        std::shared_ptr<spdlog::logger> logger, std::unique_ptr<AmqpSink>* out) {
  const std::string where = "[upstream." + options.name + "]";
  if (options.max_in_flight == 0) {
    return Status::InvalidArgument(where + ": max_in_flight must be at least 1");
  }
  AmqpAddress address;
  if (Status s = ParseAmqpUrl(options.endpoint.url, &address); !s.ok()) {
    return Status::InvalidArgument(where + " url: " + s.message());
  }
  if (options.exchange.size() > kMaxShortString) {
    return Status::InvalidArgument(where + " exchange: longer than AMQP's 255 bytes");
  }
  // What RabbitMQ's management UI and rabbitmqctl list_connections show for the connection.
  options.endpoint.connection_name =
      fmt::format("sluice-{} upstream {}", options.gateway_id, options.name);
  std::unique_ptr<AmqpSink> sink(
      new AmqpSink(std::move(options), router, clock, std::move(logger)));
  for (const Route& route : router->routes()) {
    std::unique_ptr<TopicTemplate> t;
    if (!route.upstream_topic.empty()) {
      t = std::make_unique<TopicTemplate>();
      if (Status s = TopicTemplate::Parse(route.upstream_topic, route.key, t.get()); !s.ok()) {
        return Status::InvalidArgument(where + ", route '" + route.mqtt_filter +
                                       "': " + s.message());
      }
    }
    sink->templates_.push_back(std::move(t));
  }
  TopicTemplate gap;
  KeyPattern no_key;
  if (Status s = TopicTemplate::Parse(sink->options_.gap_routing_key, no_key, &gap); !s.ok()) {
    return Status::InvalidArgument(where + " gap_routing_key: " + s.message());
  }
  if (gap.PerEvent()) {
    return Status::InvalidArgument(where + " gap_routing_key '" + sink->options_.gap_routing_key +
                                   "': a gap record has no MQTT topic; only {gateway} is allowed");
  }
  sink->gap_routing_key_ = gap.Expand(sink->options_.gateway_id, "", "");
  if (sink->gap_routing_key_.size() > kMaxShortString) {
    return Status::InvalidArgument(where + " gap_routing_key: longer than AMQP's 255 bytes");
  }
  *out = std::move(sink);
  return Status::Ok();
}

Status AmqpSink::Send(const storage::Event& event) {
  // A blocked broker reads nothing more: a publish would only wait in the socket's buffers.
  if (conn_ && conn_->blocked()) return Status::Unavailable(HoldReason());
  // One publish at a time until one is confirmed on this connection, and again after a nack: a
  // broker that just came back may refuse the first publishes (a stream still recovering), and
  // each refusal rewinds the forwarder and sends everything after it again.
  const size_t limit = proven_ ? options_.max_in_flight : 1;
  if (window_.size() >= limit) return Status::Full("confirm window full");
  // The forwarder offers a refused event again after every Poll: its key is known by then.
  if (event.seq == waiting_seq_ && window_.KeyInFlight(waiting_key_)) {
    return Status::Full("key awaits a confirm");
  }
  std::string routing_key;
  std::string order_key;  // what sluice keeps the order of: the route's key
  const Route* route = nullptr;
  if (event.kind == storage::EventKind::kGap) {
    routing_key = gap_routing_key_;
  } else {
    route = router_->Find(event.topic);
    if (route == nullptr) {
      return Status::InvalidArgument("no route matches MQTT topic '" + event.topic + "'");
    }
    const TopicTemplate* tmpl =
        templates_[static_cast<size_t>(route - router_->routes().data())].get();
    if (tmpl == nullptr) {
      return Status::InvalidArgument("route '" + route->mqtt_filter +
                                     "' does not feed RabbitMQ upstream '" + options_.name + "'");
    }
    order_key = route->key.KeyFor(event.topic);
    routing_key = tmpl->Expand(options_.gateway_id, event.topic, order_key);
    if (routing_key.size() > kMaxShortString) {
      return Status::InvalidArgument(
          fmt::format("routing key '{}...' for MQTT topic '{}' is {} bytes, above AMQP's 255",
                      routing_key.substr(0, 64), event.topic, routing_key.size()));
    }
  }
  // At most one publish per key awaits its confirm: the broker may nack it and confirm the next,
  // which would then be ahead of it for good (AmqpConfirmWindow).
  const uint64_t key = OrderKey(routing_key, order_key);
  if (window_.KeyInFlight(key)) {
    waiting_seq_ = event.seq;
    waiting_key_ = key;
    return Status::Full("key awaits a confirm");
  }

  std::string_view body;
  GapRecord gap;
  std::vector<std::pair<std::string, std::string>> headers;
  if (route == nullptr) {
    gap = MakeGapRecord(event, options_.gateway_id, options_.log_id);
    body = gap.value;
    headers = std::move(gap.headers);
  } else {
    body = event.payload;
    headers = {{kHeaderMqttTopic, event.topic},
               {kHeaderMqttQos, std::to_string(event.qos)},
               {kHeaderGateway, options_.gateway_id},
               {kHeaderSeq, std::to_string(event.seq)},
               {kHeaderReceivedMs, std::to_string(event.received_ms)},
               {kHeaderLogId, options_.log_id}};
    if (event.retained) headers.emplace_back(kHeaderMqttRetain, "1");
  }
  if (!conn_) {
    std::string reason = HoldReason();
    if (reason.empty()) {
      reason = fmt::format("RabbitMQ broker {} is not connected{}", options_.endpoint.url,
                           last_connect_error_.empty() ? "" : " (" + last_connect_error_ + ")");
    }
    return Status::Unavailable(reason);
  }
  Status s = conn_->Publish(options_.exchange, routing_key, /*mandatory=*/true,
                            MessageId(options_.log_id, event.seq), event.received_ms / 1000,
                            headers, body);
  if (!s.ok()) {
    // Whatever this connection has unconfirmed comes back as kRetry from the next Poll.
    LoseConnection(s.message(), "", &local_reports_);
    return Status::Unavailable(s.message());
  }
  window_.Add(event.seq, key);
  return Status::Ok();
}

void AmqpSink::Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  MaybeConnect();
  const bool had_local = !local_reports_.empty();
  for (Delivery& d : local_reports_) out->push_back(std::move(d));
  local_reports_.clear();
  if (!conn_) {
    // Waiting out the reconnect backoff: no socket to wait on, so wait for the time alone.
    if (!had_local) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_attempt_ - clock_->Now());
      std::this_thread::sleep_for(std::clamp(left, std::chrono::milliseconds(0), timeout));
    }
    MaybeConnect();
    return;
  }
  auto wait = had_local ? std::chrono::milliseconds(0) : timeout;
  for (int i = 0; i < kMaxEventsPerPoll && conn_; ++i) {
    AmqpEvent ev;
    if (Status s = conn_->Next(wait, &ev); !s.ok()) {
      LoseConnection(s.message(), "", out);
      return;
    }
    if (ev.kind == AmqpEvent::Kind::kNone) break;
    Handle(ev, out);
    // Read on without waiting once something came: what is buffered is served in this call.
    wait = std::chrono::milliseconds(0);
  }
}

void AmqpSink::MaybeConnect() {
  if (conn_ || clock_->Now() < next_attempt_) return;
  std::unique_ptr<AmqpConnection> c;
  Status s = AmqpConnection::Open(options_.endpoint, /*confirm=*/true, &c);
  if (!s.ok()) {
    if (s.code() == Status::Code::kInvalidArgument) Hold("", s.message());
    ScheduleReconnect(s.message());
    return;
  }
  conn_ = std::move(c);
  window_.Reset();
  proven_ = false;
  connected_ = true;
  connects_++;
  last_connect_error_.clear();
  holds_.Erase("");
  log_->info("RabbitMQ upstream '{}': connected to {} (vhost '{}', user '{}'), publishing to {}",
             options_.name, options_.endpoint.url, options_.endpoint.vhost,
             options_.endpoint.username,
             options_.exchange.empty() ? std::string("the default exchange")
                                       : "exchange '" + options_.exchange + "'");
}

void AmqpSink::Handle(const AmqpEvent& ev, std::vector<Delivery>* out) {
  switch (ev.kind) {
    case AmqpEvent::Kind::kAck: {
      const size_t before = out->size();
      window_.Ack(
          ev.tag, ev.multiple,
          [this](const AmqpConfirmWindow::Returned& why) { return ExplainReturn(why); }, out);
      bool delivered = false;
      bool held = false;
      for (size_t i = before; i < out->size(); ++i) {
        delivered = delivered || (*out)[i].outcome == Delivery::Outcome::kDelivered;
        held = held || (*out)[i].outcome == Delivery::Outcome::kHold;
      }
      // Only a confirmed publish proves that the broker takes sluice's messages again; a hold
      // this same ack reports (a returned publish) stays.
      if (delivered && !held) {
        backoff_.Reset();
        ClearHolds();
        proven_ = true;
      }
      return;
    }
    case AmqpEvent::Kind::kNack:
      proven_ = false;
      window_.Nack(
          ev.tag, ev.multiple,
          Hold("nack",
               fmt::format("RabbitMQ broker {} refused a publish to {} (basic.nack): a "
                           "queue it routes to is full and set to reject publishes "
                           "(x-overflow = reject-publish at its x-max-length), or could "
                           "not store it; let its consumers catch up or raise the limit",
                           options_.endpoint.url,
                           options_.exchange.empty() ? std::string("the default exchange")
                                                     : "exchange '" + options_.exchange + "'")),
          out);
      return;
    case AmqpEvent::Kind::kReturn: {
      uint64_t seq = 0;
      AmqpConfirmWindow::Returned why{ev.message.reply_code, ev.message.reply_text,
                                      ev.message.exchange, ev.message.routing_key};
      if (!SeqOfMessageId(ev.message.message_id, &seq) ||
          !window_.MarkReturned(seq, std::move(why))) {
        log_->warn("RabbitMQ upstream '{}': basic.return of message '{}', which awaits no confirm",
                   options_.name, ev.message.message_id);
      }
      return;
    }
    case AmqpEvent::Kind::kChannelClosed:
      OnChannelClosed(ev.code, ev.text, out);
      return;
    case AmqpEvent::Kind::kBlocked:
      Hold(kAlarmKey, ExplainResourceAlarm(options_.endpoint.url, ev.text));
      return;
    case AmqpEvent::Kind::kUnblocked:
      holds_.Erase(kAlarmKey);
      log_->info("RabbitMQ upstream '{}': broker {} cleared its resource alarm; publishing resumes",
                 options_.name, options_.endpoint.url);
      return;
    case AmqpEvent::Kind::kDeliver:
    case AmqpEvent::Kind::kNone:
      return;
  }
}

std::string AmqpSink::ExplainReturn(const AmqpConfirmWindow::Returned& why) {
  std::string fix;
  if (why.exchange.empty()) {
    fix = fmt::format(
        "declare the stream '{}' (a queue with x-queue-type = stream), or change "
        "the route's target",
        why.routing_key);
  } else {
    fix = fmt::format(
        "bind a queue or stream to exchange '{}' for routing key '{}', or change "
        "the route's target",
        why.exchange, why.routing_key);
  }
  return Hold("route:" + why.exchange + "/" + why.routing_key,
              fmt::format("RabbitMQ broker {} has no queue for routing key '{}' on {} ({} {}): {}",
                          options_.endpoint.url, why.routing_key,
                          why.exchange.empty() ? std::string("the default exchange")
                                               : "exchange '" + why.exchange + "'",
                          why.reply_code, why.reply_text, fix));
}

void AmqpSink::OnChannelClosed(uint16_t code, const std::string& text, std::vector<Delivery>* out) {
  std::string hold;
  if (code == kNotFound) {
    hold = Hold("channel", fmt::format("RabbitMQ broker {} closed the channel ({} {}): declare "
                                       "exchange '{}' on vhost '{}', or change the upstream's "
                                       "exchange",
                                       options_.endpoint.url, code, text, options_.exchange,
                                       options_.endpoint.vhost));
  } else if (code == kAccessRefused) {
    hold =
        Hold("channel", fmt::format("RabbitMQ broker {} closed the channel ({} {}): give user "
                                    "'{}' write permission on the exchange",
                                    options_.endpoint.url, code, text, options_.endpoint.username));
  } else if (code == kPreconditionFailed) {
    hold = Hold("channel", fmt::format("RabbitMQ broker {} closed the channel ({} {}): see the "
                                       "broker's log for the setting it refuses",
                                       options_.endpoint.url, code, text));
  }
  // The broker discards what followed the failed publish on that channel; what preceded it is
  // confirmed or lost with it. Either way every unconfirmed publish is sent again, in order.
  const size_t lost = window_.Reset();
  if (!hold.empty()) {
    out->push_back({0, Delivery::Outcome::kHold, hold});
  } else if (lost > 0) {
    out->push_back({0, Delivery::Outcome::kRetry,
                    fmt::format("RabbitMQ broker {} closed the channel: {} {}",
                                options_.endpoint.url, code, text)});
  }
  if (Status s = conn_->ReopenChannel(); !s.ok()) {
    LoseConnection(s.message(), "", out);
    return;
  }
  log_->warn(
      "RabbitMQ upstream '{}': broker {} closed the channel ({} {}); {} unconfirmed "
      "publish(es) will be sent again, in order, on a new channel",
      options_.name, options_.endpoint.url, code, text, lost);
}

void AmqpSink::LoseConnection(const std::string& why, const std::string& hold,
                              std::vector<Delivery>* out) {
  connected_ = false;
  conn_.reset();
  const size_t lost = window_.Reset();
  if (!hold.empty()) {
    out->push_back({0, Delivery::Outcome::kHold, hold});
  } else if (lost > 0) {
    // Everything unconfirmed at once: the forwarder sends it all again, in order, on the next
    // connection, once nothing is in flight.
    out->push_back({0, Delivery::Outcome::kRetry, why});
  }
  ScheduleReconnect(lost > 0 ? fmt::format("{}; {} unconfirmed publish(es) will be sent again, "
                                           "in order",
                                           why, lost)
                             : why);
}

void AmqpSink::ScheduleReconnect(const std::string& why) {
  const auto delay = backoff_.Next();
  next_attempt_ = clock_->Now() + delay;
  const bool changed = why != last_connect_error_;
  last_connect_error_ = why;
  uint64_t suppressed = 0;
  if (connect_log_.Allow(&suppressed) || changed) {
    log_->warn("RabbitMQ upstream '{}': {}; reconnecting in {} ms (attempt {})", options_.name, why,
               delay.count(), backoff_.attempts());
  }
}

std::string AmqpSink::Hold(const std::string& key, const std::string& reason) {
  holds_.Add(key, reason);
  return reason;
}

void AmqpSink::ClearHolds() {
  // A confirm of what was sent before the alarm does not end it; only connection.unblocked, or a
  // confirm on a connection the broker has not blocked, does.
  if (!conn_ || !conn_->blocked()) {
    holds_.Clear();
    return;
  }
  for (const std::string& key : holds_.Keys()) {
    if (key != kAlarmKey) holds_.Erase(key);
  }
}

std::string AmqpSink::HoldReason() const {
  return holds_.Reason();
}

}  // namespace sluice::connectors
