// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_probe.h"

#include <fmt/format.h>
#include <mqtt/async_client.h>

#include <algorithm>
#include <memory>

#include "connectors/mqtt_connect_failure.h"
#include "connectors/mqtt_suback.h"

namespace sluice::connectors {

namespace {

using Verdict = ProbeFinding::Verdict;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr milliseconds kDisconnectTimeout{1000};

std::string Seconds(milliseconds d) {
  return fmt::format("{:g} s", static_cast<double>(d.count()) / 1000.0);
}

}  // namespace

std::string ProbeClientId(const MqttConnection& c) {
  return c.client_id + "-probe";
}

std::vector<ProbeFinding> ProbeMqttBroker(const MqttConnection& connection,
                                          const std::vector<MqttSubscription>& subscriptions,
                                          const std::string& where, milliseconds timeout) {
  std::vector<ProbeFinding> out;
  MqttConnection c = connection;
  c.client_id = ProbeClientId(connection);
  // Paho counts the connect timeout in whole seconds.
  c.connect_timeout = std::max<milliseconds>(std::chrono::ceil<seconds>(timeout), seconds(1));
  const bool v5 = c.protocol == MqttProtocol::kV5;

  std::unique_ptr<mqtt::async_client> client;
  try {
    // No persistence and no message callback: whatever the broker delivers to the probe's
    // session (MQTT 3.1.1 retained messages) is discarded with it.
    client = std::make_unique<mqtt::async_client>(
        c.url, c.client_id, mqtt::create_options(v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1), nullptr);
  } catch (const std::exception& e) {
    out.push_back({Verdict::kFail, fmt::format("cannot make an MQTT client for {}: {}; check url "
                                               "in {}",
                                               c.url, e.what(), where)});
    return out;
  }

  const auto started = std::chrono::steady_clock::now();
  try {
    mqtt::token_ptr tok = client->connect(ConnectOptions(c, MqttSession::kTransient));
    // Paho enforces the same timeout itself, but notices it only on its next pass (up to a
    // second late): the probe does not wait for that.
    if (!tok->wait_for(timeout)) {
      out.push_back({Verdict::kFail,
                     fmt::format("no answer from {} within {} (connect timed out): is the broker "
                                 "up, and is url in {} right?",
                                 c.url, Seconds(timeout), where)});
      return out;
    }
  } catch (const mqtt::exception& e) {
    const auto took = std::chrono::steady_clock::now() - started;
    std::string why;
    if (took >= timeout) {
      // A broker that accepts TCP but never answers CONNECT (or a network that drops the
      // packets): no TLS handshake of our own would learn more in time.
      why = fmt::format(
          "no answer from {} within {} (connect timed out: {}): is the broker up, "
          "and is url in {} right?",
          c.url, Seconds(timeout), e.what(), where);
    } else {
      why = ExplainMqttConnectFailure(c, e, where, timeout);
      if (why.empty()) {
        why = fmt::format("cannot connect to {}: {}; is the broker up, and is url in {} right?",
                          c.url, e.what(), where);
      }
    }
    out.push_back({Verdict::kFail, why});
    return out;
  } catch (const std::exception& e) {
    out.push_back({Verdict::kFail, fmt::format("cannot connect to {}: {}", c.url, e.what())});
    return out;
  }

  std::string how = v5 ? "MQTT 5" : "MQTT 3.1.1";
  if (!c.username.empty()) how += fmt::format(", user '{}'", c.username);
  if (c.tls) {
    how += c.tls_verify ? ", TLS, certificate and host name verified" : ", TLS";
    if (!c.cert_file.empty()) how += ", client certificate accepted";
  }
  out.push_back(
      {Verdict::kOk, fmt::format("connected to {} as '{}' ({})", c.url, c.client_id, how)});
  if (c.tls && !c.tls_verify) {
    out.push_back({Verdict::kWarn,
                   fmt::format("the broker's certificate is not verified (tls.verify = false in "
                               "{}): anything on the path can pose as the broker",
                               where)});
  }

  // All SUBSCRIBEs at once, one filter each so that each SUBACK is judged on its own; together
  // they wait at most `timeout`.
  std::vector<mqtt::token_ptr> tokens;
  std::string send_error;
  try {
    for (const MqttSubscription& sub : subscriptions) {
      if (v5) {
        const mqtt::subscribe_options opts(mqtt::subscribe_options::SUBSCRIBE_LOCAL,
                                           mqtt::subscribe_options::NO_RETAIN_AS_PUBLISHED,
                                           mqtt::subscribe_options::DONT_SEND_RETAINED);
        tokens.push_back(client->subscribe(sub.filter, sub.qos, opts));
      } else {
        tokens.push_back(client->subscribe(sub.filter, sub.qos));
      }
    }
  } catch (const std::exception& e) {
    send_error = e.what();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (size_t i = 0; i < subscriptions.size(); ++i) {
    const MqttSubscription& sub = subscriptions[i];
    if (i >= tokens.size()) {
      out.push_back({Verdict::kFail,
                     fmt::format("subscribe to '{}': not sent ({})", sub.filter, send_error)});
      continue;
    }
    int code = -1;
    std::string error;
    const SubackWait wait = AwaitSubackCode(tokens[i], deadline, &code, &error);
    if (wait != SubackWait::kAnswered) {
      out.push_back({Verdict::kFail, fmt::format("subscribe to '{}': {}", sub.filter,
                                                 wait == SubackWait::kTimedOut
                                                     ? "no SUBACK within " + Seconds(timeout)
                                                     : error)});
      continue;
    }
    const SubackVerdict verdict = JudgeSuback(sub.filter, sub.qos, code);
    if (verdict.kind == SubackVerdict::Kind::kGranted) {
      out.push_back(
          {Verdict::kOk, fmt::format("subscribe to '{}' allowed (QoS {})", sub.filter, sub.qos)});
    } else {
      out.push_back({Verdict::kFail, verdict.problem});
    }
  }

  try {
    client->disconnect()->wait_for(kDisconnectTimeout);
  } catch (const std::exception&) {
    // Gone already; the broker ends the session with the connection either way.
  }
  return out;
}

}  // namespace sluice::connectors
