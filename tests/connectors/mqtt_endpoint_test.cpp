// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_endpoint.h"

#include <doctest/doctest.h>

namespace sluice::connectors {
namespace {

BrokerEndpoint Parse(const std::string& url) {
  BrokerEndpoint ep;
  Status s = ParseBrokerEndpoint(url, &ep);
  INFO(url, ": ", s.ToString());
  CHECK(s.ok());
  return ep;
}

TEST_CASE("ParseBrokerEndpoint gives each scheme Paho C's default port when the URI has none") {
  struct Case {
    const char* url;
    const char* scheme;
    uint16_t port;
  };
  for (const Case& c :
       {Case{"tcp://broker", "tcp", 1883}, Case{"mqtt://broker", "mqtt", 1883},
        Case{"ssl://broker", "ssl", 8883}, Case{"mqtts://broker", "mqtts", 8883},
        Case{"ws://broker", "ws", 80}, Case{"wss://broker", "wss", 443},
        Case{"ws://broker/mqtt", "ws", 80}, Case{"wss://broker/mqtt", "wss", 443}}) {
    const BrokerEndpoint ep = Parse(c.url);
    CHECK(ep.scheme == c.scheme);
    CHECK(ep.host == "broker");
    CHECK(ep.port == c.port);
  }
}

TEST_CASE("ParseBrokerEndpoint takes an explicit port over the scheme's default") {
  CHECK(Parse("tcp://127.0.0.1:21883").port == 21883);
  CHECK(Parse("ssl://10.0.0.1:1883").port == 1883);
  CHECK(Parse("ws://gw.local:9001/mqtt").port == 9001);
  const BrokerEndpoint wss = Parse("wss://gw.local:8443/mqtt/path:with:colons");
  CHECK(wss.host == "gw.local");
  CHECK(wss.port == 8443);
  // A websocket on the MQTT port is not taken for a plain MQTT listener, nor the reverse.
  CHECK(Parse("ws://gw.local:1883").port == 1883);
  CHECK(Parse("mqtt://gw.local:80").port == 80);
}

TEST_CASE("ParseBrokerEndpoint reads bracketed IPv6 hosts with and without a port") {
  const BrokerEndpoint a = Parse("tcp://[::1]:21883");
  CHECK(a.host == "::1");
  CHECK(a.port == 21883);
  const BrokerEndpoint b = Parse("wss://[fe80::1]/mqtt");
  CHECK(b.host == "fe80::1");
  CHECK(b.port == 443);
}

TEST_CASE("ParseBrokerEndpoint refuses what names no endpoint, saying which URI") {
  BrokerEndpoint ep;
  for (const char* url :
       {"broker:1883", "http://broker", "tcp://", "tcp://:1883", "tcp://broker:", "tcp://broker:0",
        "tcp://broker:65536", "tcp://broker:12ab", "tcp://[::1", "tcp://[::1]x"}) {
    Status s = ParseBrokerEndpoint(url, &ep);
    INFO(url);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find(url) != std::string::npos);
  }
}

TEST_CASE("DefaultPortFor knows exactly the schemes sluice accepts") {
  CHECK(DefaultPortFor("tcp") == 1883);
  CHECK(DefaultPortFor("wss") == 443);
  CHECK(DefaultPortFor("http") == 0);
  CHECK(DefaultPortFor("") == 0);
}

}  // namespace
}  // namespace sluice::connectors
