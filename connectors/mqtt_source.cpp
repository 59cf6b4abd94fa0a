#include "connectors/mqtt_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/backoff.h"

namespace sluice::connectors {

namespace {
constexpr int kDisconnectTimeoutMs = 2000;

bool SameEndpoint(const sockaddr_storage& a, const sockaddr* b) {
  if (a.ss_family != b->sa_family) return false;
  if (a.ss_family == AF_INET) {
    auto* x = reinterpret_cast<const sockaddr_in*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    auto* x = reinterpret_cast<const sockaddr_in6*>(&a);
    auto* y = reinterpret_cast<const sockaddr_in6*>(b);
    return x->sin6_port == y->sin6_port &&
           std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
  }
  return false;
}

// How far HalfCloseBrokerConnection got.
enum class HalfClose {
  kNotFound,    // no socket to the broker: nothing was changed
  kWriteShut,   // our side is shut for writing; the broker did not confirm in time
  kBrokerDone,  // the broker read everything we sent and closed its side
};

// Shuts our side of the TCP connection to the broker at `url` for writing and discards what the
// broker still sends until it closes its side. Exiting, or letting Paho close the socket, with
// unread data in it makes the kernel send RST, and a broker that receives RST drops our PUBACKs
// still in its receive buffer, so events already in the log would be redelivered. After FIN the
// broker reads every PUBACK before it sees the end of the stream. Paho exposes no socket, so it is
// found by its peer address; it is dup'ed so that Paho closing its descriptor cannot hand the
// number to another file under us.
HalfClose HalfCloseBrokerConnection(const std::string& url, std::chrono::milliseconds timeout) {
  const auto scheme_end = url.find("://");
  std::string rest = scheme_end == std::string::npos ? url : url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest;
  std::string port = url.rfind("ssl", 0) == 0 || url.rfind("mqtts", 0) == 0 ? "8883" : "1883";
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) return HalfClose::kNotFound;

  std::vector<int> fds;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* ent = readdir(dir)) {
      const int fd = std::atoi(ent->d_name);
      struct stat st {};
      if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) continue;
      for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        if (SameEndpoint(peer, ai->ai_addr)) {
          const int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
          if (copy >= 0) fds.push_back(copy);
          break;
        }
      }
    }
    closedir(dir);
  }
  freeaddrinfo(found);
  if (fds.empty()) return HalfClose::kNotFound;

  for (int fd : fds) shutdown(fd, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool all_done = true;
  for (int fd : fds) {
    char buf[16384];
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) <= 0) continue;
      const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) done = true;
    }
    all_done = all_done && done;
    close(fd);
  }
  return all_done ? HalfClose::kBrokerDone : HalfClose::kWriteShut;
}

}  // namespace

MqttSource::MqttSource(MqttSourceOptions options, storage::LogWriter* writer, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), writer_(writer), clock_(clock), log_(std::move(logger)) {}

MqttSource::~MqttSource() {
  Stop();
}

Status MqttSource::Start() {
  try {
    // No client-side persistence: sluice's own log is where inbound events are kept.
    client_ = std::make_unique<mqtt::async_client>(options_.url, options_.client_id,
                                                   mqtt::create_options(MQTTVERSION_3_1_1));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot create MQTT client for " + options_.url + ": " +
                                   e.what());
  }
  client_->set_message_callback(
      [this, gate = gate_](mqtt::const_message_ptr msg) { OnMessage(gate, std::move(msg)); });
  client_->set_connection_lost_handler(
      [this](const std::string& cause) { OnConnectionLost(cause); });
  connector_ = std::thread([this] { ConnectLoop(); });
  return Status::Ok();
}

void MqttSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  if (connector_.joinable()) connector_.join();
  ready_ = false;
  if (!client_) return;

  // Paho sends a message's PUBACK after its callback returns, and holds its client mutex while the
  // callback runs (so it cannot disconnect while one is parked). So: let the callback in progress
  // finish (its event is in the log and its PUBACK goes out before Paho delivers the next
  // message), and park every later callback without taking its event. Then close the connection
  // under Paho, in the one way that lets the broker read every PUBACK first. Nothing taken is left
  // unacknowledged, nothing untaken is acknowledged.
  {
    std::unique_lock<std::mutex> lock(gate_->mu);
    gate_->draining = true;
    // The PUBACK of the last message taken is on the wire once Paho delivered the next message
    // (which parks), or, when no next message comes, a moment after that callback returned.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kDisconnectTimeoutMs);
    const auto settle = std::chrono::milliseconds(50);
    while (std::chrono::steady_clock::now() < deadline) {
      const auto now = std::chrono::steady_clock::now();
      if (gate_->parked > 0) break;
      if (gate_->writing == 0 && now - gate_->last_return >= settle) break;
      gate_->cv.wait_for(lock, std::chrono::milliseconds(10));
    }
  }
  const HalfClose closed =
      HalfCloseBrokerConnection(options_.url, std::chrono::milliseconds(kDisconnectTimeoutMs));
  if (closed == HalfClose::kNotFound) {
    // Not connected, or the socket could not be found: with callbacks possibly parked, Paho can
    // be neither disconnected nor destroyed safely, and a parked callback must never return on a
    // live connection. The process exit closes the socket.
    log_->info("MQTT: closing the broker connection at process exit");
    (void)client_.release();
    return;
  }
  if (closed == HalfClose::kWriteShut) {
    log_->warn(
        "MQTT broker {} did not close the connection in time at shutdown; it may deliver "
        "the last few events again",
        options_.url);
  }
  {
    // Our side can no longer write, so a released callback cannot acknowledge anything.
    std::lock_guard<std::mutex> lock(gate_->mu);
    gate_->released = true;
    gate_->cv.notify_all();
  }
  try {
    client_->disconnect(0)->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs));
  } catch (const std::exception&) {
    // The connection is already gone, as intended.
  }
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
    // Subscribe on the first connection of this process even when the broker kept the session,
    // so that routes added to the configuration take effect; afterwards only when the broker
    // lost the session (a resubscription would make it resend retained messages).
    if (!session_present || connects_.load() == 0) {
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
               options_.client_id, session_present ? "session resumed" : "new session, subscribed",
               options_.subscriptions.size());
    if (options_.on_ready) options_.on_ready();
    return true;
  } catch (const mqtt::exception& e) {
    *error = e.what();
  } catch (const std::exception& e) {
    *error = e.what();
  }
  try {
    if (client_->is_connected())
      client_->disconnect()->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs));
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

void MqttSource::OnMessage(const std::shared_ptr<Gate>& gate, mqtt::const_message_ptr msg) {
  // Runs on Paho's callback thread; nothing may escape it. Once parked it touches only `gate`,
  // since the source may be gone by then.
  {
    std::unique_lock<std::mutex> lock(gate->mu);
    if (gate->draining) {
      gate->parked++;
      gate->cv.notify_all();
      gate->cv.wait(lock, [&] { return gate->released; });
      return;
    }
    gate->writing++;
  }
  bool park = false;
  try {
    park = !Take(*msg);
  } catch (const std::exception& e) {
    log_->error("MQTT message callback: {}", e.what());
    park = msg->get_qos() > 0;
  }
  std::unique_lock<std::mutex> lock(gate->mu);
  gate->writing--;
  gate->last_return = std::chrono::steady_clock::now();
  gate->cv.notify_all();
  if (park) {
    // Returning would acknowledge an event that is not in the log. Hold the callback until the
    // connection is closed; the broker then redelivers the event to the next session.
    gate->cv.wait(lock, [&] { return gate->released; });
  }
}

bool MqttSource::Take(const mqtt::message& msg) {
  received_++;
  const auto& payload = msg.get_payload_ref();
  if (payload.size() > options_.max_event_bytes) {
    const uint64_t n = ++refused_too_large_;
    uint64_t suppressed = 0;
    if (refusal_log_.Allow(&suppressed)) {
      log_->warn(
          "refused an event of {} bytes on '{}' (storage.max_event_bytes = {}); {} "
          "refused so far",
          payload.size(), msg.get_topic(), options_.max_event_bytes, n);
    }
    return true;
  }
  storage::Event event;
  event.topic = msg.get_topic();
  event.payload.assign(payload.data(), payload.size());
  event.qos = msg.get_qos();
  event.received_ms = clock_->NowUnixMillis();
  const bool durable = event.qos > 0;
  if (durable && options_.failpoint) options_.failpoint("mqtt.before_commit");
  Status s = writer_->Write(std::move(event), durable);
  if (s.ok()) {
    if (durable && options_.failpoint) options_.failpoint("mqtt.after_commit");
    written_++;
    return true;
  }
  write_failures_++;
  if (!s.IsShutdown()) {
    log_->error("cannot write an event from '{}' to the log: {}", msg.get_topic(), s.ToString());
    if (options_.on_fatal) options_.on_fatal(s);
  }
  return !durable;
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
