// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/exception.h>

#include <chrono>
#include <string>

#include "connectors/mqtt_connection.h"

namespace sluice::connectors {

// "not authorized 0x87": an MQTT 5 reason code's name and value, for messages.
std::string MqttReasonText(int reason);

// Why a connection attempt to the MQTT broker of `c` failed, in words an operator can act on: the
// broker's CONNACK refusal (credentials, authorization, client id, protocol version,
// authentication method) or, for a TLS connection that Paho reports only as "TCP/TLS connect
// failure", what a TLS handshake of its own finds (DiagnoseMqttTls). `where` names the table to
// fix ("[mqtt]", "[upstream.cloud]"); `tls_timeout` bounds each step of the TLS handshake. Empty
// when it is none of these (the broker is down or did not answer): Paho's own text is then all
// there is. Never shows the password.
std::string ExplainMqttConnectFailure(const MqttConnection& c, const mqtt::exception& e,
                                      const std::string& where,
                                      std::chrono::milliseconds tls_timeout);

// A TLS failure's cause in words (trust, host name, client certificate), learnt by a TLS handshake
// of its own with `c`'s settings, each step bounded by `timeout`, since Paho reports only "TCP/TLS
// connect failure". Empty if the handshake finds nothing wrong or the broker cannot be reached.
std::string DiagnoseMqttTls(const MqttConnection& c, std::chrono::milliseconds timeout);

}  // namespace sluice::connectors
