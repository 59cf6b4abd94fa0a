// SPDX-License-Identifier: Apache-2.0

// ProbeCommand's own part: which Kafka topics an upstream is probed for, and the output's lines
// and counts (against brokers that refuse connections; the checks themselves run against real
// brokers in the integration tests, docs/testing.md).
#include "gateway/probe_command.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

Config Parse(const std::string& text) {
  Config config;
  Status s = ParseConfig(text, "test.toml", &config);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return config;
}

const char* kUpstreams =
    "[upstream.central]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\n"
    "[upstream.cloud]\nkind = \"mqtt\"\nurl = \"tcp://127.0.0.1:1\"\n"
    "[upstream.archive]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:1\"\ngap_topic = \"arch.gaps\"\n";

TEST_CASE("TargetsOf lists each route's topic for the upstream once, in route order") {
  const Config c = Parse(std::string(kUpstreams) +
                         "[[route]]\nmqtt = \"a/#\"\nto = { central = \"t1\", cloud = true }\n"
                         "[[route]]\nmqtt = \"b/#\"\nto = { archive = \"t2\", central = \"t2\" }\n"
                         "[[route]]\nmqtt = \"c/#\"\nto = { central = \"t1\" }\n");
  CHECK(TargetsOf(c, "central") == std::vector<std::string>{"t1", "t2"});
  CHECK(TargetsOf(c, "archive") == std::vector<std::string>{"t2"});
  CHECK(TargetsOf(c, "nobody").empty());
}

TEST_CASE("TargetsOf adds the gap topic only under drop-oldest, the policy that makes gaps") {
  const std::string routes =
      "[[route]]\nmqtt = \"a/#\"\nto = { archive = \"t\", central = \"u\", cloud = true }\n";
  CHECK(TargetsOf(Parse(std::string(kUpstreams) + routes), "archive") ==
        std::vector<std::string>{"t"});
  const Config dropping =
      Parse("[storage]\noverflow = \"drop-oldest\"\n" + std::string(kUpstreams) + routes);
  CHECK(TargetsOf(dropping, "archive") == std::vector<std::string>{"t", "arch.gaps"});
}

// A port on 127.0.0.1 where nothing listens: every connection is refused at once.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST_CASE("ProbeCommand prints one line per check in configuration order, and counts failures") {
  // Two MQTT brokers that refuse the connection at once (no Kafka: its client retries a refused
  // connection until the timeout, which the integration tests cover).
  const std::string mqtt = "tcp://127.0.0.1:" + std::to_string(ClosedPort());
  const std::string cloud = "tcp://127.0.0.1:" + std::to_string(ClosedPort());
  const Config c =
      Parse("[mqtt]\nurl = \"" + mqtt + "\"\n[upstream.cloud]\nkind = \"mqtt\"\nurl = \"" + cloud +
            "\"\n[[route]]\nmqtt = \"a/#\"\nto = { cloud = \"b/{mqtt_topic}\" }\n");
  std::ostringstream out;
  ProbeCommand probe(c, std::chrono::seconds(2), out);
  const ProbeCounts counts = probe.Run();
  INFO(out.str());
  CHECK(counts.ok == 0);
  CHECK(counts.warned == 0);
  CHECK(counts.failed == 2);
  const std::string text = out.str();
  const size_t source = text.find("FAIL  mqtt: cannot connect to " + mqtt);
  const size_t upstream = text.find("FAIL  upstream cloud (mqtt): cannot connect to " + cloud);
  CHECK(source != std::string::npos);
  CHECK(upstream != std::string::npos);
  CHECK(source < upstream);
  CHECK(text.find("check url in [upstream.cloud]") == std::string::npos);
  CHECK(text.find("is url in [upstream.cloud] right?") != std::string::npos);
  CHECK(text.find("probe: 0 ok, 0 warning(s), 2 failed (each check waited at most 2 s)\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace sluice::gateway
