// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_sink.h"

#include <mqtt/async_client.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <utility>

#include "connectors/gap_record.h"
#include "connectors/mqtt_connect_failure.h"
#include "connectors/mqtt_endpoint.h"
#include "connectors/record_headers.h"

namespace sluice::connectors {

namespace {

// MQTT 5 section 1.5.5 (and 3.1.1 section 2.2.3): the largest Remaining Length a packet can have.
constexpr uint64_t kMaxRemainingLength = 268435455;
// Losses of the connection in a row with the same first unconfirmed event after which the broker
// is taken to refuse that event's topic by closing the connection (as brokers that do not speak
// MQTT 5 reason codes do, e.g. on an ACL refusal); the forwarder then holds and probes one event
// at a time.
constexpr int kLossesToHold = 3;
// Paho enforces connect_timeout itself; this only catches an attempt it never answers.
constexpr auto kConnectGrace = std::chrono::seconds(5);
constexpr auto kDisconnectTimeout = std::chrono::milliseconds(1000);
constexpr auto kTlsProbeTimeout = std::chrono::milliseconds(2000);

void* SeqToContext(uint64_t seq) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(seq));
}
uint64_t ContextToSeq(void* p) {
  return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p));
}

size_t VarIntBytes(uint64_t n) {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

// The PUBLISH packet's size as a broker measures it against its Maximum Packet Size (MQTT 5
// section 3.3): fixed header, topic, packet identifier (QoS 1), properties, payload.
uint64_t PublishPacketBytes(size_t topic, size_t properties, size_t payload, bool v5) {
  const uint64_t remaining =
      2 + topic + 2 + (v5 ? VarIntBytes(properties) + properties : 0) + payload;
  return 1 + VarIntBytes(remaining) + remaining;
}

}  // namespace

// What Paho's threads hand to Poll. Each connection has its own generation; what a callback of
// an earlier connection reports is dropped, since Poll already reported everything that
// connection had in flight.
struct MqttSink::Ack {
  uint64_t seq = 0;
  bool ok = false;
  int rc = 0;      // Paho C return code of a failure
  int reason = 0;  // MQTT 5 reason code of a failure (PUBACK)
};

struct MqttSink::Shared {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t generation = 0;     // GUARDED_BY(mu)
  std::vector<Ack> acks;       // GUARDED_BY(mu)
  bool connect_done = false;   // GUARDED_BY(mu)
  bool lost = false;           // GUARDED_BY(mu)
  std::string lost_cause;      // GUARDED_BY(mu)
  int disconnect_reason = -1;  // GUARDED_BY(mu): MQTT 5 DISCONNECT from the broker, or -1

  bool Ready() const { return !acks.empty() || connect_done || lost; }

  // These run on Paho's threads: they queue, wake Poll, and never throw into Paho. Should
  // queueing fail, the connection is given up, which resends everything in flight: the one
  // outcome that can lose nothing.
  void PushAck(uint64_t gen, const Ack& ack) {
    std::lock_guard<std::mutex> lock(mu);
    if (gen != generation) return;
    try {
      acks.push_back(ack);
    } catch (const std::exception&) {
      lost = true;
    }
    cv.notify_all();
  }
  void ConnectDone(uint64_t gen) {
    std::lock_guard<std::mutex> lock(mu);
    if (gen != generation) return;
    connect_done = true;
    cv.notify_all();
  }
  void Lost(uint64_t gen, const std::string& cause, int reason) {
    std::lock_guard<std::mutex> lock(mu);
    if (gen != generation) return;
    lost = true;
    // Paho may report an MQTT 5 DISCONNECT and then the closed socket: keep the reason.
    if (reason >= 0) disconnect_reason = reason;
    try {
      if (lost_cause.empty() || reason >= 0) lost_cause = cause;
    } catch (const std::exception&) {
      // The cause is only for the log line.
    }
    cv.notify_all();
  }
};

class MqttSink::PublishListener final : public mqtt::iaction_listener {
 public:
  PublishListener(std::shared_ptr<Shared> shared, uint64_t gen)
      : shared_(std::move(shared)), gen_(gen) {}
  void on_success(const mqtt::token& tok) override {
    shared_->PushAck(gen_, {ContextToSeq(tok.get_user_context()), true, 0, 0});
  }
  void on_failure(const mqtt::token& tok) override {
    shared_->PushAck(gen_, {ContextToSeq(tok.get_user_context()), false, tok.get_return_code(),
                            static_cast<int>(tok.get_reason_code())});
  }

 private:
  std::shared_ptr<Shared> shared_;
  const uint64_t gen_;
};

class MqttSink::ConnectListener final : public mqtt::iaction_listener {
 public:
  ConnectListener(std::shared_ptr<Shared> shared, uint64_t gen)
      : shared_(std::move(shared)), gen_(gen) {}
  // The outcome is read from the token by Poll, on the forwarder thread.
  void on_success(const mqtt::token&) override { shared_->ConnectDone(gen_); }
  void on_failure(const mqtt::token&) override { shared_->ConnectDone(gen_); }

 private:
  std::shared_ptr<Shared> shared_;
  const uint64_t gen_;
};

// One connection: a Paho client of its own, with no client-side persistence. Members are
// destroyed in reverse order: the token, then the client, then the listeners it calls.
struct MqttSink::Connection {
  uint64_t generation = 0;
  std::unique_ptr<PublishListener> publish;
  std::unique_ptr<ConnectListener> connect;
  std::unique_ptr<mqtt::async_client> client;
  mqtt::token_ptr connect_token;

  ~Connection() {
    connect_token.reset();
    if (!client) return;
    try {
      if (client->is_connected()) client->disconnect(0);
    } catch (const mqtt::exception&) {
      // Already gone; destroying the client closes whatever is left.
    }
    client.reset();
  }
};

MqttSink::MqttSink(MqttSinkOptions options, const Router* router, const Clock* clock,
                   std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      router_(router),
      clock_(clock != nullptr ? clock : &system_clock_),
      log_(std::move(logger)),
      v5_(options_.connection.protocol == MqttProtocol::kV5),
      shared_(std::make_shared<Shared>()),
      backoff_(options_.connection.reconnect_min, options_.connection.reconnect_max,
               std::hash<std::string>{}(options_.connection.client_id)) {}

MqttSink::~MqttSink() {
  // What is still in flight stays in the log and is sent again by the next run; the forwarder
  // drained what it could before. A clean DISCONNECT keeps the broker from publishing a will and
  // tells it the session is left on purpose.
  if (conn_ && conn_->client && connected_.load()) {
    try {
      conn_->client->disconnect(static_cast<int>(kDisconnectTimeout.count()))
          ->wait_for(kDisconnectTimeout * 2);
    } catch (const mqtt::exception&) {
      // Lost meanwhile: nothing to close.
    }
  }
  conn_.reset();
  retired_.reset();
}

Status MqttSink::Create(MqttSinkOptions options, const Router* router, const Clock* clock,
                        std::shared_ptr<spdlog::logger> logger, std::unique_ptr<MqttSink>* out) {
  const std::string where = "[upstream." + options.name + "]";
  if (options.gateway_id.find_first_of(std::string("+#\0", 3)) != std::string::npos) {
    return Status::InvalidArgument(where + ": gateway id '" + options.gateway_id +
                                   "' contains '+', '#' or NUL, which cannot be part of an MQTT "
                                   "topic");
  }
  if (options.max_in_flight == 0) {
    return Status::InvalidArgument(where + ": max_in_flight must be at least 1");
  }
  BrokerEndpoint endpoint;
  if (Status s = ParseBrokerEndpoint(options.connection.url, &endpoint); !s.ok()) {
    return Status::InvalidArgument(where + " url: " + s.message());
  }
  // The URL's scheme decides whether Paho speaks TLS; the options must agree.
  if (endpoint.scheme == "ssl" || endpoint.scheme == "mqtts" || endpoint.scheme == "wss") {
    options.connection.tls = true;
  }
  std::unique_ptr<MqttSink> sink(
      new MqttSink(std::move(options), router, clock, std::move(logger)));
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
  KeyPattern no_key;
  if (Status s = TopicTemplate::Parse(sink->options_.gap_topic, no_key, &sink->gap_template_);
      !s.ok()) {
    return Status::InvalidArgument(where + " gap_topic: " + s.message());
  }
  if (sink->gap_template_.PerEvent()) {
    return Status::InvalidArgument(where + " gap_topic '" + sink->options_.gap_topic +
                                   "': a gap record has no MQTT topic; only {gateway} is allowed");
  }
  sink->gap_topic_ = sink->gap_template_.Expand(sink->options_.gateway_id, "", "");
  *out = std::move(sink);
  return Status::Ok();
}

Status MqttSink::Send(const storage::Event& event) {
  // The broker's Receive Maximum (MQTT 5) bounds the window too: Paho would queue what is beyond
  // it and release that queue slowly (measured: ~100 messages/s against Mosquitto's 20, where the
  // same window within the limit confirms thousands per second).
  const size_t window = receive_max_ > 0 ? std::min<size_t>(options_.max_in_flight, receive_max_)
                                         : options_.max_in_flight;
  if (in_flight_.size() >= window) {
    return Status::Full(fmt::format("MQTT upstream '{}': {} QoS 1 messages await their PUBACK",
                                    options_.name, in_flight_.size()));
  }
  std::string topic;
  std::string_view payload;
  bool retained = false;
  GapRecord gap;
  std::vector<std::pair<std::string, std::string>> headers;
  if (event.kind == storage::EventKind::kGap) {
    gap = MakeGapRecord(event, options_.gateway_id, options_.log_id);
    topic = gap_topic_;
    payload = gap.value;
    if (v5_) headers = std::move(gap.headers);
  } else {
    const Route* route = router_->Find(event.topic);
    if (route == nullptr) {
      return Status::InvalidArgument("no route matches MQTT topic '" + event.topic + "'");
    }
    const TopicTemplate* tmpl =
        templates_[static_cast<size_t>(route - router_->routes().data())].get();
    if (tmpl == nullptr) {
      return Status::InvalidArgument("route '" + route->mqtt_filter +
                                     "' does not feed MQTT upstream '" + options_.name + "'");
    }
    topic = tmpl->Expand(options_.gateway_id, event.topic, route->key.KeyFor(event.topic));
    payload = event.payload;
    retained = route->forward_retain && event.retained;
    if (v5_) {
      headers = {{kHeaderMqttTopic, event.topic},
                 {kHeaderMqttQos, std::to_string(event.qos)},
                 {kHeaderGateway, options_.gateway_id},
                 {kHeaderSeq, std::to_string(event.seq)},
                 {kHeaderReceivedMs, std::to_string(event.received_ms)},
                 {kHeaderLogId, options_.log_id}};
      if (event.retained) headers.emplace_back(kHeaderMqttRetain, "1");
    }
  }

  if (!connected_.load() || !conn_) {
    std::string reason = HoldReason();
    if (reason.empty()) {
      reason = fmt::format("MQTT broker {} is not connected{}", options_.connection.url,
                           last_connect_error_.empty() ? "" : " (" + last_connect_error_ + ")");
    }
    return Status::Unavailable(reason);
  }

  size_t property_bytes = 0;
  mqtt::properties props;
  for (const auto& [name, value] : headers) {
    property_bytes += 1 + 2 + name.size() + 2 + value.size();
    props.add(mqtt::property(mqtt::property::USER_PROPERTY, name, value));
  }
  const uint64_t packet = PublishPacketBytes(topic.size(), property_bytes, payload.size(), v5_);
  if (packet - 1 - VarIntBytes(packet) > kMaxRemainingLength ||
      (max_packet_ > 0 && packet > max_packet_)) {
    // Sent, the broker would close the connection (MQTT 5 section 3.1.2.24) and the event would
    // come back forever: refuse this one event instead.
    local_reports_.push_back(
        {event.seq, Delivery::Outcome::kRejected,
         fmt::format("{} bytes as an MQTT PUBLISH to '{}', above the maximum packet size of "
                     "broker {} ({} bytes)",
                     packet, topic, options_.connection.url,
                     max_packet_ > 0 ? max_packet_ : kMaxRemainingLength)});
    in_flight_.emplace(event.seq, std::move(topic));
    return Status::Ok();
  }

  auto msg = mqtt::message::create(topic, payload.data(), payload.size(), 1, retained);
  if (v5_) msg->set_properties(std::move(props));
  try {
    conn_->client->publish(msg, SeqToContext(event.seq), *conn_->publish);
  } catch (const mqtt::exception& e) {
    switch (e.get_return_code()) {
      case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
        // The broker's Receive Maximum (MQTT 5) is below max_in_flight.
        return Status::Full(fmt::format("MQTT broker {} takes no more messages in flight ({})",
                                        options_.connection.url, in_flight_.size()));
      case MQTTASYNC_BAD_UTF8_STRING:
      case MQTTASYNC_TOPICNAME_TRUNCATED:
        return Status::InvalidArgument(
            fmt::format("MQTT topic '{}' cannot be published: {}", topic, e.what()));
      default:
        // Most likely the connection just went; Poll learns it from Paho and reconnects.
        return Status::Unavailable(fmt::format("publishing to MQTT broker {} failed: {}",
                                               options_.connection.url, e.what()));
    }
  }
  in_flight_.emplace(event.seq, std::move(topic));
  return Status::Ok();
}

void MqttSink::Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) {
  MaybeConnect();
  const bool had_local = !local_reports_.empty();
  for (Delivery& d : local_reports_) {
    in_flight_.erase(d.seq);
    out->push_back(std::move(d));
  }
  local_reports_.clear();

  std::vector<Ack> acks;
  bool connect_done = false;
  bool lost = false;
  std::string cause;
  int reason = -1;
  {
    std::unique_lock<std::mutex> lock(shared_->mu);
    auto wait = had_local ? std::chrono::milliseconds(0) : timeout;
    if (!conn_) {
      // Waiting out the reconnect backoff: wake when it ends.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(next_attempt_ - clock_->Now());
      wait = std::clamp(left, std::chrono::milliseconds(0), wait);
    }
    shared_->cv.wait_for(lock, wait, [&] { return shared_->Ready(); });
    acks.swap(shared_->acks);
    connect_done = std::exchange(shared_->connect_done, false);
    lost = std::exchange(shared_->lost, false);
    cause = std::exchange(shared_->lost_cause, std::string());
    reason = std::exchange(shared_->disconnect_reason, -1);
  }
  for (const Ack& ack : acks) HandleAck(ack, out);
  if (connect_done && connecting_) OnConnectDone();
  if (lost && conn_ && !connecting_) OnConnectionLost(cause, reason, out);
  if (connecting_ &&
      clock_->Now() - attempt_started_ > options_.connection.connect_timeout + kConnectGrace) {
    connecting_ = false;
    RetireConnection();
    ScheduleReconnect("connect timed out");
  }
  MaybeConnect();
}

void MqttSink::MaybeConnect() {
  if (conn_ || clock_->Now() < next_attempt_) return;
  auto c = std::make_unique<Connection>();
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    c->generation = ++shared_->generation;
    shared_->acks.clear();
    shared_->connect_done = false;
    shared_->lost = false;
    shared_->lost_cause.clear();
    shared_->disconnect_reason = -1;
  }
  const uint64_t gen = c->generation;
  c->publish = std::make_unique<PublishListener>(shared_, gen);
  c->connect = std::make_unique<ConnectListener>(shared_, gen);
  try {
    // A fresh client per connection and no client-side persistence (nullptr): Paho holds no
    // message of an earlier connection, so it cannot retransmit one behind the forwarder's back.
    c->client = std::make_unique<mqtt::async_client>(
        options_.connection.url, options_.connection.client_id,
        mqtt::create_options(v5_ ? MQTTVERSION_5 : MQTTVERSION_3_1_1), nullptr);
    std::shared_ptr<Shared> shared = shared_;
    c->client->set_connection_lost_handler(
        [shared, gen](const std::string& cause) { shared->Lost(gen, cause, -1); });
    if (v5_) {
      c->client->set_disconnected_handler(
          [shared, gen](const mqtt::properties&, mqtt::ReasonCode rc) {
            shared->Lost(gen, "the broker sent DISCONNECT", static_cast<int>(rc));
          });
    }
    mqtt::connect_options opts = PersistentSessionOptions(options_.connection);
    // Paho's own window at least as large as sluice's, so that Send's Full is the only limit.
    opts.set_max_inflight(static_cast<int>(std::min<size_t>(options_.max_in_flight, 65535)));
    c->connect_token = c->client->connect(opts, nullptr, *c->connect);
  } catch (const mqtt::exception& e) {
    conn_ = std::move(c);
    RetireConnection();
    ScheduleReconnect(fmt::format("cannot start a connection: {}", e.what()));
    return;
  }
  conn_ = std::move(c);
  connecting_ = true;
  attempt_started_ = clock_->Now();
}

void MqttSink::OnConnectDone() {
  connecting_ = false;
  const std::string& url = options_.connection.url;
  try {
    const mqtt::connect_response rsp = conn_->connect_token->get_connect_response();
    max_packet_ = 0;
    receive_max_ = 0;
    if (v5_) {
      const mqtt::properties& props = rsp.get_properties();
      if (props.contains(mqtt::property::MAXIMUM_PACKET_SIZE)) {
        max_packet_ = mqtt::get<uint32_t>(props, mqtt::property::MAXIMUM_PACKET_SIZE);
      }
      if (props.contains(mqtt::property::RECEIVE_MAXIMUM)) {
        receive_max_ = mqtt::get<uint16_t>(props, mqtt::property::RECEIVE_MAXIMUM);
      }
    }
    connected_ = true;
    loss_noted_ = false;
    connects_++;
    connected_at_ = clock_->Now();
    last_connect_error_.clear();
    // The previous client left its last callback long ago: a whole connection handshake passed.
    retired_.reset();
    ClearHold("");
    log_->info("MQTT upstream '{}': connected to {} as '{}' (MQTT {}, {}{}{})", options_.name, url,
               options_.connection.client_id, v5_ ? "5" : "3.1.1",
               rsp.is_session_present() ? "session resumed" : "new session",
               max_packet_ > 0 ? fmt::format(", maximum packet size {}", max_packet_) : "",
               receive_max_ > 0 ? fmt::format(", receive maximum {}", receive_max_) : "");
    return;
  } catch (const mqtt::exception& e) {
    const std::string hold = ExplainMqttConnectFailure(
        options_.connection, e, "[upstream." + options_.name + "]", kTlsProbeTimeout);
    RetireConnection();
    if (!hold.empty()) {
      Hold("", hold);
      ScheduleReconnect(hold);
    } else {
      ScheduleReconnect(fmt::format("cannot connect: {}", e.what()));
    }
  }
}

void MqttSink::OnConnectionLost(const std::string& cause, int disconnect_reason,
                                std::vector<Delivery>* out) {
  connected_ = false;
  const auto now = clock_->Now();
  // A connection that stayed up for a while was not a failed attempt: start the backoff afresh.
  if (now - connected_at_ >= options_.connection.reconnect_max) backoff_.Reset();
  std::string why = cause.empty() ? "connection closed" : cause;
  if (disconnect_reason >= 0) why += " (" + MqttReasonText(disconnect_reason) + ")";
  const size_t lost = in_flight_.size();
  if (lost > 0) NoteFailedConnection(in_flight_.begin()->first, in_flight_.begin()->second);
  std::string hold;
  if (loss_noted_ && (disconnect_reason == 0x87 || disconnect_reason == 0x90)) {
    hold = Hold(lost_oldest_topic_,
                fmt::format("MQTT broker {} closed the connection ({}) with the message to '{}' "
                            "unconfirmed: allow user '{}' to publish to that topic in the "
                            "broker's ACL, or change the route's topic template",
                            options_.connection.url, MqttReasonText(disconnect_reason),
                            lost_oldest_topic_, options_.connection.username));
  } else if (loss_noted_ && lost_same_oldest_ >= kLossesToHold) {
    hold = RepeatedLossHold(why);
  }
  if (!hold.empty()) {
    // Reported even when Paho already failed every message one by one: the forwarder backs off
    // and probes with one event at a time.
    out->push_back({0, Delivery::Outcome::kHold, hold});
  } else if (lost > 0) {
    // Everything in flight at once: the forwarder sends it all again, in order, once nothing is
    // in flight, and the new connection carries no copy of the old one's messages.
    out->push_back(
        {0, Delivery::Outcome::kRetry,
         fmt::format("connection to MQTT broker {} lost: {}", options_.connection.url, why)});
  }
  in_flight_.clear();
  RetireConnection();
  ScheduleReconnect(fmt::format("connection lost: {}{}", why,
                                lost > 0 ? fmt::format("; {} message(s) in flight will be sent "
                                                       "again, in order",
                                                       lost)
                                         : ""));
}

void MqttSink::HandleAck(const Ack& ack, std::vector<Delivery>* out) {
  const auto it = in_flight_.find(ack.seq);
  // Reported already: its connection was lost before this answer was read.
  if (it == in_flight_.end()) return;
  if (!ack.ok && ack.reason < 0x80) {
    // Paho fails what is in flight, oldest first, when the connection goes.
    NoteFailedConnection(in_flight_.begin()->first, in_flight_.begin()->second);
  }
  const std::string topic = std::move(it->second);
  in_flight_.erase(it);
  if (ack.ok) {
    out->push_back({ack.seq, Delivery::Outcome::kDelivered, {}});
    // Only a PUBACK proves that the broker takes sluice's messages again.
    backoff_.Reset();
    if (ack.seq == lost_oldest_seq_) lost_same_oldest_ = 0;
    ClearHold(topic);
    return;
  }
  const std::string& url = options_.connection.url;
  const std::string& user = options_.connection.username;
  Delivery d{ack.seq, Delivery::Outcome::kHold, {}};
  // MQTT 5 PUBACK reason codes (section 3.4.2.1).
  switch (ack.reason) {
    case 0x87:  // not authorized
      d.error = Hold(topic, fmt::format("MQTT broker {} refuses publishing to '{}' ({}): allow "
                                        "user '{}' to publish to it in the broker's ACL, or "
                                        "change the route's topic template",
                                        url, topic, MqttReasonText(ack.reason), user));
      break;
    case 0x90:  // topic name invalid
      d.error = Hold(topic, fmt::format("MQTT broker {} refuses the topic name '{}' ({}): change "
                                        "the route's topic template",
                                        url, topic, MqttReasonText(ack.reason)));
      break;
    case 0x97:  // quota exceeded
      d.error = Hold(topic, fmt::format("MQTT broker {} refuses publishing to '{}' ({}): raise "
                                        "the broker's quota for user '{}'",
                                        url, topic, MqttReasonText(ack.reason), user));
      break;
    case 0x99:  // payload format invalid: this event can never be taken
      d.outcome = Delivery::Outcome::kRejected;
      d.error = fmt::format("MQTT broker {} refuses the payload published to '{}' ({})", url, topic,
                            MqttReasonText(ack.reason));
      break;
    case 0x91:  // packet identifier in use: a protocol hiccup, not the event's fault
      d.outcome = Delivery::Outcome::kRetry;
      d.error = fmt::format("MQTT broker {}: {}", url, MqttReasonText(ack.reason));
      break;
    default:
      if (ack.reason >= 0x80) {
        // Unspecified or implementation-specific: hold, never dead-letter on a guess.
        d.error = Hold(topic, fmt::format("MQTT broker {} refuses publishing to '{}' ({}): see "
                                          "the broker's log for why",
                                          url, topic, MqttReasonText(ack.reason)));
      } else if (ack.seq == lost_oldest_seq_ && lost_same_oldest_ >= kLossesToHold) {
        d.error = RepeatedLossHold(mqtt::exception::error_str(ack.rc));
      } else {
        // No reason from the broker: Paho gave up on the message (e.g. the connection is going).
        d.outcome = Delivery::Outcome::kRetry;
        d.error = fmt::format("publishing to MQTT broker {} failed: {}", url,
                              mqtt::exception::error_str(ack.rc));
      }
      break;
  }
  out->push_back(std::move(d));
}

void MqttSink::NoteFailedConnection(uint64_t oldest_seq, const std::string& oldest_topic) {
  if (loss_noted_) return;
  loss_noted_ = true;
  lost_same_oldest_ = oldest_seq == lost_oldest_seq_ ? lost_same_oldest_ + 1 : 1;
  lost_oldest_seq_ = oldest_seq;
  lost_oldest_topic_ = oldest_topic;
}

std::string MqttSink::RepeatedLossHold(const std::string& why) {
  return Hold(lost_oldest_topic_,
              fmt::format("MQTT broker {} closed the connection {} times in a row with the "
                          "message to '{}' unconfirmed ({}): its ACL probably refuses that topic "
                          "to user '{}'; allow it, or change the route's topic template",
                          options_.connection.url, lost_same_oldest_, lost_oldest_topic_, why,
                          options_.connection.username));
}

void MqttSink::RetireConnection() {
  {
    // Whatever the old client's callbacks still report is dropped from here on.
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->generation++;
    shared_->acks.clear();
    shared_->connect_done = false;
    shared_->lost = false;
  }
  connected_ = false;
  connecting_ = false;
  max_packet_ = 0;
  receive_max_ = 0;
  if (conn_ && conn_->client) {
    try {
      // A connection given up on purpose is closed now; one that was lost is closed already.
      if (conn_->client->is_connected()) conn_->client->disconnect(0);
    } catch (const mqtt::exception&) {
      // Closed meanwhile.
    }
  }
  // A Paho callback of this client may still be returning on Paho's thread (Poll was woken from
  // inside it), so the client is destroyed only once the next connection is up or has failed.
  retired_ = std::move(conn_);
}

void MqttSink::ScheduleReconnect(const std::string& why) {
  const auto delay = backoff_.Next();
  next_attempt_ = clock_->Now() + delay;
  const bool changed = why != last_connect_error_;
  last_connect_error_ = why;
  uint64_t suppressed = 0;
  if (connect_log_.Allow(&suppressed) || changed) {
    log_->warn("MQTT upstream '{}': broker {}: {}; reconnecting in {} ms (attempt {})",
               options_.name, options_.connection.url, why, delay.count(), backoff_.attempts());
  }
}

std::string MqttSink::Hold(const std::string& key, const std::string& reason) {
  holds_.Add(key, reason);
  return reason;
}

void MqttSink::ClearHold(const std::string& key) {
  holds_.Erase(key);
}

std::string MqttSink::HoldReason() const {
  return holds_.Reason();
}

}  // namespace sluice::connectors
