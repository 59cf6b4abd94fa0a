// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_endpoint.h"

#include <charconv>

namespace sluice::connectors {

namespace {
struct SchemePort {
  std::string_view scheme;
  uint16_t port;
};
// Paho C's defaults (MQTTProtocolOut_connect): the port a URI without one connects to.
constexpr SchemePort kDefaultPorts[] = {{"tcp", 1883},   {"mqtt", 1883}, {"ssl", 8883},
                                        {"mqtts", 8883}, {"ws", 80},     {"wss", 443}};
}  // namespace

uint16_t DefaultPortFor(std::string_view scheme) {
  for (const auto& sp : kDefaultPorts) {
    if (sp.scheme == scheme) return sp.port;
  }
  return 0;
}

Status ParseBrokerEndpoint(std::string_view url, BrokerEndpoint* out) {
  const auto fail = [&](std::string_view why) {
    return Status::InvalidArgument("MQTT URI '" + std::string(url) + "': " + std::string(why));
  };
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return fail("expected scheme://host[:port]");
  BrokerEndpoint ep;
  ep.scheme = std::string(url.substr(0, scheme_end));
  const uint16_t default_port = DefaultPortFor(ep.scheme);
  if (default_port == 0) return fail("unknown scheme '" + ep.scheme + "'");
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find('/'));
  std::string_view port_text;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) return fail("unterminated '[' in the host");
    ep.host = std::string(rest.substr(1, close - 1));
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("expected ':' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return fail("empty port");
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    ep.host = std::string(rest.substr(0, colon));
    port_text = rest.substr(colon + 1);
    if (port_text.empty()) return fail("empty port");
  } else {
    ep.host = std::string(rest);
  }
  if (ep.host.empty()) return fail("names no host");
  ep.port = default_port;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value == 0 ||
        value > 65535) {
      return fail("port '" + std::string(port_text) + "' is not 1..65535");
    }
    ep.port = static_cast<uint16_t>(value);
  }
  *out = std::move(ep);
  return Status::Ok();
}

}  // namespace sluice::connectors
