// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_mqtt_reader.h"

#include <mqtt/connect_options.h>
#include <mqtt/properties.h>
#include <mqtt/ssl_options.h>
#include <mqtt/subscribe_options.h>

#include <algorithm>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "connectors/record_headers.h"

namespace sluice::sim {

namespace {

// MQTT 5 section 3.1.2.11.2: the session never expires (the broker's own limit still applies).
constexpr uint32_t kSessionExpiry = 0xFFFFFFFF;
// QoS 1: the broker keeps what it queued for the session until this reader acknowledged it.
constexpr int kQos = 1;

bool UsesTls(const VerifyMqttReaderOptions& o) {
  return o.url.rfind("ssl://", 0) == 0 || o.url.rfind("mqtts://", 0) == 0 || !o.ca_file.empty() ||
         !o.cert_file.empty() || !o.key_file.empty();
}

mqtt::connect_options ConnectOptions(const VerifyMqttReaderOptions& o,
                                     std::chrono::milliseconds timeout) {
  auto builder = mqtt::connect_options_builder()
                     .mqtt_version(o.mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1)
                     .keep_alive_interval(o.keepalive)
                     .connect_timeout(std::chrono::seconds(
                         std::max<int64_t>(1, (timeout.count() + 999) / 1000)));
  // Both flags off whatever the version: Paho keeps its own session state by the 3.1.1 flag.
  builder.clean_session(false);
  if (o.mqtt5) builder.clean_start(false);
  if (!o.username.empty()) builder.user_name(o.username);
  if (!o.password.empty()) builder.password(o.password);
  if (UsesTls(o)) {
    mqtt::ssl_options ssl;
    if (!o.ca_file.empty()) ssl.set_trust_store(o.ca_file);
    if (!o.cert_file.empty()) ssl.set_key_store(o.cert_file);
    if (!o.key_file.empty()) ssl.set_private_key(o.key_file);
    ssl.set_enable_server_cert_auth(!o.insecure);
    ssl.set_verify(!o.insecure);
    builder.ssl(std::move(ssl));
  }
  mqtt::connect_options options = builder.finalize();
  if (o.mqtt5) {
    // Set on the finished options: properties given to Paho C++ 1.2.0's connect_options_builder
    // do not reach the CONNECT packet (seen against Mosquitto 2.0.11: no session kept).
    options.set_properties(
        {{mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int32_t>(kSessionExpiry)}});
  }
  return options;
}

bool ValidFilter(std::string_view filter) {
  if (filter.empty()) return false;
  size_t start = 0;
  for (;;) {
    const size_t slash = filter.find('/', start);
    const std::string_view level = filter.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (level.find_first_of("+#") != std::string_view::npos && level.size() != 1) return false;
    if (level == "#" && slash != std::string_view::npos) return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

}  // namespace

bool MqttTopicMatches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  size_t f = 0;
  size_t t = 0;
  for (;;) {
    const size_t f_end = std::min(filter.find('/', f), filter.size());
    const std::string_view level = filter.substr(f, f_end - f);
    if (level == "#") return true;  // also matches the parent level: "a/#" matches "a"
    if (t > topic.size()) return false;
    const size_t t_end = std::min(topic.find('/', t), topic.size());
    if (level != "+" && level != topic.substr(t, t_end - t)) return false;
    const bool filter_done = f_end == filter.size();
    const bool topic_done = t_end == topic.size();
    if (filter_done || topic_done) {
      if (filter_done && topic_done) return true;
      // "a/#" against "a": the filter's next level is a lone #.
      return !filter_done && topic_done && filter.substr(f_end + 1) == "#";
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

VerifyMqttReader::VerifyMqttReader(VerifyMqttReaderOptions options, const Clock* clock,
                                   std::unique_ptr<mqtt::async_client> client)
    : options_(std::move(options)), clock_(clock), client_(std::move(client)) {}

VerifyMqttReader::~VerifyMqttReader() {
  try {
    if (client_->is_connected()) {
      // A normal DISCONNECT keeps the session: clean session is off, and with MQTT 5 the expiry
      // set at connect applies.
      client_->disconnect()->wait_for(std::chrono::seconds(5));
    }
  } catch (const std::exception&) {
    // The connection is gone either way; the broker keeps the session.
  }
}

std::string VerifyMqttReader::Where() const {
  return "MQTT broker " + options_.url + " (client id '" + options_.client_id + "')";
}

Status VerifyMqttReader::Open(VerifyMqttReaderOptions options, const Clock* clock,
                              std::unique_ptr<VerifyMqttReader>* out) {
  if (!ValidFilter(options.topic)) {
    return Status::InvalidArgument("'" + options.topic + "' is not an MQTT topic filter");
  }
  if (!options.gap_topic.empty() && !ValidFilter(options.gap_topic)) {
    return Status::InvalidArgument("gap topic '" + options.gap_topic +
                                   "' is not an MQTT topic filter");
  }
  if (options.client_id.empty()) {
    // A persistent session needs a client id the broker can find again.
    return Status::InvalidArgument("an MQTT reader needs a client id");
  }
  std::unique_ptr<mqtt::async_client> client;
  try {
    // No client-side persistence: what the reader received is in the Verifier, in memory.
    client = std::make_unique<mqtt::async_client>(
        options.url, options.client_id,
        mqtt::create_options(options.mqtt5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot create an MQTT client for " + options.url + ": " +
                                   e.what());
  }
  // Before connecting: a resumed session delivers what the broker queued right away.
  client->start_consuming();
  std::unique_ptr<VerifyMqttReader> reader(
      new VerifyMqttReader(std::move(options), clock, std::move(client)));
  bool present = false;
  // Subscribing even to a resumed session: the filters may differ from the session's.
  Status s = reader->Connect(reader->options_.connect_timeout, true, &present);
  if (!s.ok()) return s;
  reader->resumed_session_ = present;
  *out = std::move(reader);
  return Status::Ok();
}

Status VerifyMqttReader::Connect(std::chrono::milliseconds timeout, bool subscribe,
                                 bool* session_present) {
  const auto start = clock_->Now();
  try {
    mqtt::token_ptr tok = client_->connect(ConnectOptions(options_, timeout));
    if (!tok->wait_for(timeout)) {
      return Status::Unavailable(Where() + ": connect timed out after " +
                                 std::to_string(timeout.count()) + " ms");
    }
    *session_present = tok->get_connect_response().is_session_present();
  } catch (const mqtt::exception& e) {
    return Status::Unavailable(Where() + ": cannot connect: " + e.what());
  } catch (const std::exception& e) {
    return Status::Unavailable(Where() + ": cannot connect: " + e.what());
  }
  if (!subscribe && *session_present) return Status::Ok();
  const auto left =
      timeout - std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - start);
  return Subscribe(std::max(left, std::chrono::milliseconds(1000)));
}

Status VerifyMqttReader::Subscribe(std::chrono::milliseconds timeout) {
  std::vector<std::string> filters{options_.topic};
  if (!options_.gap_topic.empty() && options_.gap_topic != options_.topic) {
    filters.push_back(options_.gap_topic);
  }
  for (const std::string& filter : filters) {
    int code = -1;
    try {
      mqtt::token_ptr tok;
      if (options_.mqtt5) {
        // Retained messages only for a subscription the session did not have, so that
        // resubscribing does not bring old messages in again.
        const mqtt::subscribe_options opts(mqtt::subscribe_options::SUBSCRIBE_LOCAL,
                                           mqtt::subscribe_options::NO_RETAIN_AS_PUBLISHED,
                                           mqtt::subscribe_options::SEND_RETAINED_ON_NEW);
        tok = client_->subscribe(filter, kQos, opts);
      } else {
        tok = client_->subscribe(filter, kQos);
      }
      if (!tok->wait_for(timeout)) {
        return Status::Unavailable(Where() + ": subscribing to '" + filter + "' timed out");
      }
      const auto codes = tok->get_subscribe_response().get_reason_codes();
      if (!codes.empty()) code = codes.front();
    } catch (const mqtt::exception& e) {
      if (e.get_reason_code() >= 0x80 || e.get_return_code() == 0x80) {
        code = 0x80;
      } else {
        return Status::Unavailable(Where() + ": subscribing to '" + filter + "': " + e.what());
      }
    }
    // Granted QoS 0 would let the broker forget messages the reader never got.
    if (code != kQos && code != 2) {
      return Status::InvalidArgument(Where() + " refused a QoS 1 subscription to '" + filter +
                                     "' (SUBACK code " + std::to_string(code) + ")");
    }
  }
  return Status::Ok();
}

Status VerifyMqttReader::Read(const std::function<void(const ConsumedRecord&)>& on_record,
                              const std::function<void(const std::string&)>& on_warning,
                              Stats* stats) {
  using std::chrono::milliseconds;
  *stats = Stats();
  const auto start = clock_->Now();
  const auto deadline = start + options_.timeout;
  // Idle counts only while connected: a reader waiting for the broker to come back is not idle.
  auto idle_from = start;
  bool connected = true;
  std::set<std::string> warned;
  auto warn_once = [&](const std::string& text) {
    if (warned.insert(text).second) on_warning(text);
  };
  int64_t index = 0;
  auto finish = [&](ReadStop reason) {
    stats->stop = reason;
    stats->elapsed = std::chrono::duration_cast<milliseconds>(clock_->Now() - start);
  };
  for (;;) {
    if (options_.max_records > 0 && stats->records >= options_.max_records) {
      finish(ReadStop::kCount);
      return Status::Ok();
    }
    const auto now = clock_->Now();
    if (now >= deadline) {
      finish(ReadStop::kTimeout);
      return Status::Ok();
    }
    if (connected && !client_->is_connected()) {
      connected = false;
      warn_once(Where() + ": connection lost; reconnecting to the persistent session");
    }
    if (!connected) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - now);
      bool present = false;
      Status s = Connect(std::min(left, options_.connect_timeout), false, &present);
      if (!s.ok()) {
        warn_once(s.message() + " (retrying until --timeout)");
        // Pacing between attempts, not synchronisation: the broker comes back on its own.
        std::this_thread::sleep_for(std::min(milliseconds(500), left));
        continue;
      }
      connected = true;
      stats->reconnects++;
      idle_from = clock_->Now();
      if (!present) {
        stats->session_lost++;
        on_warning(Where() +
                   ": the broker had lost the session; messages published while the "
                   "reader was away are lost to it (subscribed again)");
      }
      continue;
    }
    const auto idle_end = idle_from + options_.idle_timeout;
    if (now >= idle_end) {
      finish(ReadStop::kIdle);
      return Status::Ok();
    }
    // Short waits so that the deadlines above are checked often enough to stop on time.
    const auto wait = std::max(
        milliseconds(1),
        std::min({std::chrono::duration_cast<milliseconds>(deadline - now),
                  std::chrono::duration_cast<milliseconds>(idle_end - now), milliseconds(200)}));
    mqtt::const_message_ptr msg;
    if (!client_->try_consume_message_for(&msg, wait)) continue;
    // Paho queues an empty message when the connection is lost.
    if (!msg) continue;

    const std::string& topic = msg->get_topic();
    ConsumedRecord r;
    r.topic = topic;
    const mqtt::binary_ref& payload = msg->get_payload_ref();
    r.value = std::string_view(payload.data(), payload.size());
    r.offset = index++;
    std::string log_id;
    const mqtt::properties& props = msg->get_properties();
    const size_t n = props.count(mqtt::property::USER_PROPERTY);
    for (size_t i = 0; i < n; ++i) {
      const auto [name, value] =
          mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      if (name == connectors::kHeaderSeq) {
        r.log_seq = ParseHeaderNumber(value);
      } else if (name == connectors::kHeaderLogId) {
        log_id = value;
      } else if (name == connectors::kHeaderGap) {
        r.gap = r.gap || value == "1";
      }
    }
    r.log_id = log_id;
    const bool on_gap_topic =
        !options_.gap_topic.empty() && MqttTopicMatches(options_.gap_topic, topic);
    r.gap = r.gap || on_gap_topic;
    on_record(r);
    if (!r.gap) stats->records++;
    if (r.gap) stats->gap_records++;
    idle_from = clock_->Now();
  }
}

}  // namespace sluice::sim
