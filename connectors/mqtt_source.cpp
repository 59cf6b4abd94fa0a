#include "connectors/mqtt_source.h"

#include "common/backoff.h"

namespace sluice::connectors {

namespace {
constexpr int kDisconnectTimeoutMs = 2000;
constexpr int64_t kRefusalLogIntervalMs = 10000;
}  // namespace

MqttSource::MqttSource(MqttSourceOptions options, storage::LogWriter* writer, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), writer_(writer), clock_(clock), log_(std::move(logger)) {}

MqttSource::~MqttSource() { Stop(); }

Status MqttSource::Start() {
  try {
    // No client-side persistence: sluice's own log is where inbound events are kept.
    client_ = std::make_unique<mqtt::async_client>(options_.url, options_.client_id,
                                                   mqtt::create_options(MQTTVERSION_3_1_1));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot create MQTT client for " + options_.url + ": " +
                                   e.what());
  }
  client_->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(std::move(msg)); });
  client_->set_connection_lost_handler([this](const std::string& cause) { OnConnectionLost(cause); });
  connector_ = std::thread([this] { ConnectLoop(); });
  return Status::Ok();
}

void MqttSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && released_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (connector_.joinable()) connector_.join();
  ready_ = false;
  if (client_) {
    try {
      if (client_->is_connected()) {
        // Gives in-progress callbacks time to finish their commits; after this no acknowledgement
        // can reach the broker any more.
        client_->disconnect(kDisconnectTimeoutMs)->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs * 2));
      }
    } catch (const std::exception& e) {
      log_->warn("MQTT disconnect from {}: {}", options_.url, e.what());
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
  }
  cv_.notify_all();
}

void MqttSource::ConnectLoop() {
  Backoff backoff(options_.reconnect_min, options_.reconnect_max,
                  std::hash<std::string>{}(options_.client_id));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (connected_) {
      cv_.wait(lock, [&] { return stopping_ || !connected_; });
      continue;
    }
    lock.unlock();
    std::string error;
    const bool ok = ConnectOnce(&error);
    lock.lock();
    if (ok) {
      connected_ = true;
      backoff.Reset();
      continue;
    }
    const auto delay = backoff.Next();
    log_->warn("MQTT broker {} unavailable ({}); retrying in {} ms (attempt {})", options_.url,
               error, delay.count(), backoff.attempts());
    cv_.wait_for(lock, delay, [&] { return stopping_; });
  }
}

bool MqttSource::ConnectOnce(std::string* error) {
  try {
    auto builder = mqtt::connect_options_builder()
                       .clean_session(false)
                       .keep_alive_interval(options_.keepalive)
                       .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(
                           options_.connect_timeout))
                       .mqtt_version(MQTTVERSION_3_1_1);
    if (!options_.username.empty()) builder.user_name(options_.username);
    if (!options_.password.empty()) builder.password(options_.password);
    if (options_.tls) {
      mqtt::ssl_options ssl;
      if (!options_.ca_file.empty()) ssl.set_trust_store(options_.ca_file);
      if (!options_.cert_file.empty()) ssl.set_key_store(options_.cert_file);
      if (!options_.key_file.empty()) ssl.set_private_key(options_.key_file);
      ssl.set_enable_server_cert_auth(options_.tls_verify);
      ssl.set_verify(options_.tls_verify);
      builder.ssl(std::move(ssl));
    }
    auto tok = client_->connect(builder.finalize());
    if (!tok->wait_for(options_.connect_timeout + std::chrono::seconds(1))) {
      *error = "connect timed out";
      return false;
    }
    const bool session_present = tok->get_connect_response().is_session_present();
    if (!session_present) {
      auto filters = std::make_shared<mqtt::string_collection>();
      mqtt::iasync_client::qos_collection qos;
      for (const auto& sub : options_.subscriptions) {
        filters->push_back(sub.filter);
        qos.push_back(sub.qos);
      }
      auto sub_tok = client_->subscribe(filters, qos);
      if (!sub_tok->wait_for(options_.connect_timeout)) {
        *error = "subscribe timed out";
        client_->disconnect()->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs));
        return false;
      }
    }
    connects_++;
    ready_ = true;
    log_->info("connected to MQTT broker {} as '{}' ({}; {} subscription(s))", options_.url,
               options_.client_id,
               session_present ? "session resumed" : "new session, subscribed",
               options_.subscriptions.size());
    return true;
  } catch (const mqtt::exception& e) {
    *error = e.what();
  } catch (const std::exception& e) {
    *error = e.what();
  }
  try {
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs));
  } catch (const std::exception&) {
    // Already disconnected; the next attempt starts from scratch.
  }
  return false;
}

void MqttSource::OnConnectionLost(const std::string& cause) {
  ready_ = false;
  connection_losses_++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connected_ = false;
    if (stopping_) return;
  }
  log_->warn("lost connection to MQTT broker {}{}{}; reconnecting", options_.url,
             cause.empty() ? "" : ": ", cause);
  cv_.notify_all();
}

void MqttSource::OnMessage(mqtt::const_message_ptr msg) {
  // Runs on Paho's callback thread; nothing may escape it.
  try {
    received_++;
    const auto& payload = msg->get_payload_ref();
    if (payload.size() > options_.max_event_bytes) {
      const uint64_t n = ++refused_too_large_;
      const int64_t now = clock_->NowUnixMillis();
      if (now - last_refusal_log_ms_.load() >= kRefusalLogIntervalMs) {
        last_refusal_log_ms_ = now;
        log_->warn("refused an event of {} bytes on '{}' (storage.max_event_bytes = {}); {} "
                   "refused so far",
                   payload.size(), msg->get_topic(), options_.max_event_bytes, n);
      }
      return;
    }
    storage::Event event;
    event.topic = msg->get_topic();
    event.payload.assign(payload.data(), payload.size());
    event.qos = msg->get_qos();
    event.received_ms = clock_->NowUnixMillis();
    const bool durable = event.qos > 0;
    Status s = writer_->Write(std::move(event), durable);
    if (s.ok()) {
      written_++;
      return;
    }
    write_failures_++;
    if (!s.IsShutdown()) {
      log_->error("cannot write an event from '{}' to the log: {}", msg->get_topic(), s.ToString());
      if (options_.on_fatal) options_.on_fatal(s);
    }
    if (durable) {
      // Returning would acknowledge an event that is not in the log. Hold the callback until Stop
      // has closed the connection; the broker then redelivers the event to the next session.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return released_; });
    }
  } catch (const std::exception& e) {
    log_->error("MQTT message callback: {}", e.what());
  }
}

MqttSourceStats MqttSource::Stats() const {
  MqttSourceStats st;
  st.received = received_.load();
  st.written = written_.load();
  st.refused_too_large = refused_too_large_.load();
  st.write_failures = write_failures_.load();
  st.connects = connects_.load();
  st.connection_losses = connection_losses_.load();
  return st;
}

}  // namespace sluice::connectors
