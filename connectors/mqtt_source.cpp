// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/backoff.h"
#include "connectors/mqtt_endpoint.h"
#include "connectors/mqtt_packet_id.h"
#include "connectors/mqtt_suback.h"
#include "connectors/topic_pattern.h"

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
  BrokerEndpoint endpoint;
  if (!ParseBrokerEndpoint(url, &endpoint).ok()) return HalfClose::kNotFound;
  const std::string& host = endpoint.host;
  const std::string port = std::to_string(endpoint.port);
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

MqttSource::MqttSource(MqttSourceOptions options, storage::EventWriter* writer, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      writer_(writer),
      clock_(clock),
      log_(std::move(logger)),
      redeliveries_(options_.redelivery_window),
      accept_retained_(new std::atomic<bool>[options_.subscriptions.size()]),
      granted_(options_.subscriptions.size(), false),
      existing_(options_.subscriptions.size(), false),
      sub_problems_(options_.subscriptions.size()) {
  for (size_t i = 0; i < options_.subscriptions.size(); ++i) accept_retained_[i] = false;
  redeliveries_.Load(options_.recent_ingress);
}

MqttSource::~MqttSource() {
  Stop();
}

Status MqttSource::Start() {
  try {
    // No client-side persistence: sluice's own log is where inbound events are kept.
    client_ = std::make_unique<mqtt::async_client>(
        options_.connection.url, options_.connection.client_id,
        mqtt::create_options(
            options_.connection.protocol == MqttProtocol::kV5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1));
  } catch (const std::exception& e) {
    return Status::InvalidArgument("cannot create MQTT client for " + options_.connection.url +
                                   ": " + e.what());
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
  const HalfClose closed = HalfCloseBrokerConnection(
      options_.connection.url, std::chrono::milliseconds(kDisconnectTimeoutMs));
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
        options_.connection.url);
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
  Backoff backoff(options_.connection.reconnect_min, options_.connection.reconnect_max,
                  std::hash<std::string>{}(options_.connection.client_id));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    if (connected_) {
      if (std::all_of(granted_.begin(), granted_.end(), [](bool g) { return g; })) {
        cv_.wait(lock, [&] { return stopping_ || !connected_; });
        continue;
      }
      // The operator may fix the broker's ACL: ask again for what it refused or downgraded.
      if (cv_.wait_for(lock, options_.connection.reconnect_max,
                       [&] { return stopping_ || !connected_; })) {
        continue;
      }
      lock.unlock();
      std::string error;
      if (!SubscribePending(/*session_new=*/false, &error)) {
        log_->warn("MQTT broker {}: subscribing again failed ({})", options_.connection.url, error);
      }
      lock.lock();
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
    log_->warn("MQTT broker {} unavailable ({}); retrying in {} ms (attempt {})",
               options_.connection.url, error, delay.count(), backoff.attempts());
    cv_.wait_for(lock, delay, [&] { return stopping_; });
  }
}

bool MqttSource::ConnectOnce(std::string* error) {
  const bool v5 = options_.connection.protocol == MqttProtocol::kV5;
  // Before CONNECT: the broker resends what it has in flight as soon as the session resumes.
  redeliveries_.NewConnection();
  try {
    auto tok = client_->connect(PersistentSessionOptions(options_.connection));
    if (!tok->wait_for(options_.connection.connect_timeout + std::chrono::seconds(1))) {
      *error = "connect timed out";
      return false;
    }
    const bool session_present = tok->get_connect_response().is_session_present();
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::fill(granted_.begin(), granted_.end(), false);
      std::fill(existing_.begin(), existing_.end(), session_present);
      std::fill(sub_problems_.begin(), sub_problems_.end(), std::string());
    }
    // Every connection subscribes every filter, so that routes added to the configuration take
    // effect and a broker that lost the session gets it back. The resubscription never brings
    // retained messages into the log again (see SubscribePending).
    if (SubscribePending(!session_present, error)) {
      connects_++;
      size_t granted = 0;
      {
        std::lock_guard<std::mutex> lock(mu_);
        granted = static_cast<size_t>(std::count(granted_.begin(), granted_.end(), true));
      }
      log_->info(
          "connected to MQTT broker {} as '{}' (MQTT {}, {}; {} of {} subscription(s) granted)",
          options_.connection.url, options_.connection.client_id, v5 ? "5" : "3.1.1",
          session_present ? "session resumed" : "new session", granted,
          options_.subscriptions.size());
      return true;
    }
    client_->disconnect()->wait_for(std::chrono::milliseconds(kDisconnectTimeoutMs));
    return false;
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

bool MqttSource::SubscribePending(bool session_new, std::string* error) {
  const bool v5 = options_.connection.protocol == MqttProtocol::kV5;
  std::vector<size_t> pending;
  std::vector<bool> existing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < granted_.size(); ++i) {
      if (!granted_[i]) pending.push_back(i);
    }
    existing = existing_;
  }
  // One SUBSCRIBE per filter: Paho reports a refusal of a one-filter SUBSCRIBE as a failure with
  // its code, and the SUBACKs of the filters stay apart.
  std::vector<mqtt::token_ptr> tokens;
  try {
    for (size_t i : pending) {
      const MqttSubscription& sub = options_.subscriptions[i];
      if (v5) {
        // Retain handling 1: the broker sends retained messages only for a subscription that did
        // not exist, so a resubscription of the persistent session brings none.
        accept_retained_[i] = sub.ingest_retained;
        const mqtt::subscribe_options opts(mqtt::subscribe_options::SUBSCRIBE_LOCAL,
                                           mqtt::subscribe_options::NO_RETAIN_AS_PUBLISHED,
                                           sub.ingest_retained
                                               ? mqtt::subscribe_options::SEND_RETAINED_ON_NEW
                                               : mqtt::subscribe_options::DONT_SEND_RETAINED);
        tokens.push_back(client_->subscribe(sub.filter, sub.qos, opts));
      } else {
        // MQTT 3.1.1 resends retained messages on every SUBSCRIBE; only a subscription the broker
        // cannot have had is new.
        accept_retained_[i] = sub.ingest_retained && (session_new || !existing[i]);
        tokens.push_back(client_->subscribe(sub.filter, sub.qos));
      }
    }
  } catch (const std::exception& e) {
    *error = std::string("subscribe: ") + e.what();
    return false;
  }

  const auto deadline = std::chrono::steady_clock::now() + options_.connection.connect_timeout;
  for (size_t k = 0; k < pending.size(); ++k) {
    const size_t i = pending[k];
    const MqttSubscription& sub = options_.subscriptions[i];
    int code = -1;
    std::string failure;
    switch (AwaitSubackCode(tokens[k], deadline, &code, &failure)) {
      case SubackWait::kAnswered:
        break;
      case SubackWait::kTimedOut:
        *error = "subscribe to '" + sub.filter + "' timed out";
        return false;
      case SubackWait::kFailed:
        *error = "subscribe to '" + sub.filter + "': " + failure;
        return false;
    }
    const SubackVerdict verdict = JudgeSuback(sub.filter, sub.qos, code);
    std::lock_guard<std::mutex> lock(mu_);
    // Said once per connection; the retries every reconnect_max only at debug level.
    const bool repeated = !verdict.problem.empty() && verdict.problem == sub_problems_[i];
    if (verdict.kind == SubackVerdict::Kind::kRefused) {
      log_->log(repeated ? spdlog::level::debug : spdlog::level::err,
                "{}; no event published on it reaches sluice. Subscribing again every {} ms",
                verdict.problem, options_.connection.reconnect_max.count());
    } else if (verdict.kind == SubackVerdict::Kind::kDowngraded) {
      log_->log(repeated ? spdlog::level::debug : spdlog::level::warn, "{}", verdict.problem);
    } else if (!sub_problems_[i].empty()) {
      log_->info("the MQTT broker granted the subscription to '{}' at QoS {}", sub.filter, code);
    }
    granted_[i] = verdict.kind == SubackVerdict::Kind::kGranted;
    existing_[i] = verdict.kind != SubackVerdict::Kind::kRefused;
    sub_problems_[i] = verdict.problem;
  }

  bool all_granted = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    all_granted = std::all_of(granted_.begin(), granted_.end(), [](bool g) { return g; });
  }
  if (all_granted) ready_ = true;
  // on_ready (READY=1 for systemd) means the pipeline takes events: every filter has its answer.
  // A refused or downgraded filter keeps /readyz failing with its reason, but must not keep the
  // service "activating" until systemd kills it: that would restart, every TimeoutStartSec, a
  // gateway whose other routes work.
  if (!start_reported_.exchange(true) && options_.on_ready) options_.on_ready();
  return true;
}

std::string MqttSource::NotReadyReason() const {
  if (ready_) return "";
  std::lock_guard<std::mutex> lock(mu_);
  std::string reason;
  for (const std::string& problem : sub_problems_) {
    if (problem.empty()) continue;
    reason += (reason.empty() ? "" : "; ") + problem;
  }
  if (reason.empty())
    reason = "MQTT broker " + options_.connection.url + " not connected and subscribed";
  return reason;
}

bool MqttSource::AcceptRetained(const std::string& topic) const {
  // The first matching filter, as the router picks the route.
  for (size_t i = 0; i < options_.subscriptions.size(); ++i) {
    if (TopicMatchesFilter(options_.subscriptions[i].filter, topic)) return accept_retained_[i];
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
  log_->warn("lost connection to MQTT broker {}{}{}; reconnecting", options_.connection.url,
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
  // The broker sets RETAIN only on what it sends because a subscription was made (MQTT 3.1.1
  // section 3.3.1.3; MQTT 5 without retain-as-published); live events arrive without it.
  if (msg.is_retained() && !AcceptRetained(msg.get_topic())) {
    retained_skipped_++;
    return true;
  }
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
  const bool durable = msg.get_qos() > 0;
  const uint16_t packet_id = PacketIdOf(msg);
  const std::string_view body(payload.data(), payload.size());
  if (durable && msg.is_duplicate() &&
      redeliveries_.IsRedelivery(packet_id, msg.get_topic(), body)) {
    const uint64_t n = ++redeliveries_skipped_;
    uint64_t suppressed = 0;
    if (redelivery_log_.Allow(&suppressed)) {
      log_->info(
          "MQTT broker redelivered an event already in the log (packet id {} on '{}'); "
          "acknowledged without storing it again; {} such so far",
          packet_id, msg.get_topic(), n);
    }
    return true;
  }
  storage::Event event;
  event.topic = msg.get_topic();
  event.payload.assign(payload.data(), payload.size());
  event.qos = msg.get_qos();
  event.retained = msg.is_retained();
  event.packet_id = packet_id;
  event.received_ms = clock_->NowUnixMillis();
  if (durable && options_.failpoint) options_.failpoint("mqtt.before_commit");
  Status s = writer_->Write(std::move(event), durable);
  if (s.ok()) {
    if (durable) redeliveries_.Stored(packet_id, msg.get_topic(), body);
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
  st.retained_skipped = retained_skipped_.load();
  st.redeliveries_skipped = redeliveries_skipped_.load();
  return st;
}

}  // namespace sluice::connectors
