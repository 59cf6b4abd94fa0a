// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::connectors {

// Where a Paho server URI connects to: the TCP peer sluice's MQTT socket has. Websocket URIs
// carry a path, which does not change the peer.
struct BrokerEndpoint {
  std::string scheme;  // "tcp", "mqtt", "ssl", "mqtts", "ws" or "wss"
  std::string host;    // as written, IPv6 brackets removed
  uint16_t port = 0;   // the URI's port, or the scheme's default (DefaultPortFor)
};

// The port Paho C connects to when a URI names none: 1883 for tcp/mqtt, 8883 for ssl/mqtts, 80
// for ws, 443 for wss (MQTTProtocolOut.c). 0 for an unknown scheme.
uint16_t DefaultPortFor(std::string_view scheme);

// Parses "scheme://host[:port][/path]", host possibly "[v6-address]". InvalidArgument naming the
// URI for an unknown scheme, an empty host or a port that is not 1..65535.
Status ParseBrokerEndpoint(std::string_view url, BrokerEndpoint* out);

}  // namespace sluice::connectors
