// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "connectors/mqtt_connection.h"
#include "connectors/mqtt_source.h"
#include "connectors/probe_finding.h"

namespace sluice::connectors {

// The client id the probe connects to `c`'s broker with: c.client_id + "-probe".
std::string ProbeClientId(const MqttConnection& c);

// `sluice check-config --probe` for one MQTT broker: the local one (with the source's
// subscriptions) or an upstream (none). Connects with ConnectOptions, so with the protocol,
// credentials, client certificate and TLS verification the daemon uses, but under ProbeClientId
// and with a session that ends with the connection: the daemon's own client id would take over a
// running sluice's connection, and resuming its persistent session would hand the probe the events
// the broker queued for sluice. Then subscribes each filter in a SUBSCRIBE of its own, at its QoS
// (MQTT 5: asking for no retained messages), judges each SUBACK as the source does (JudgeSuback:
// a refusal or a downgrade fails), and disconnects. Publishing is never tried.
//
// Findings, in order: the connection (ok, or fail with ExplainMqttConnectFailure's words: password,
// authorization, TLS trust or host name, or no answer within `timeout`); a warning when TLS does
// not verify the broker (tls.verify = false); one per subscription. Each step waits at most
// `timeout`. `where` names the table to fix ("[mqtt]", "[upstream.cloud]").
std::vector<ProbeFinding> ProbeMqttBroker(const MqttConnection& c,
                                          const std::vector<MqttSubscription>& subscriptions,
                                          const std::string& where,
                                          std::chrono::milliseconds timeout);

}  // namespace sluice::connectors
