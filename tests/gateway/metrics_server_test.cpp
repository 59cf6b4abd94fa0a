// SPDX-License-Identifier: Apache-2.0

#include "gateway/metrics_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <vector>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::NullLogger;
using sluice::testing::WaitFor;
using namespace std::chrono_literals;

// Port 0 throughout: the kernel picks a free port, so the test never collides with a broker.
MetricsServerOptions AnyPort() {
  MetricsServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  return o;
}

TEST_CASE("MetricsServer serves /metrics in the text format and the checks as 200 or 503") {
  MetricsRegistry registry;
  registry.AddCounter("t_events_total", "Events.")->Add(7);
  std::atomic<bool> ready{false};
  MetricsServer server(
      AnyPort(), &registry, [] { return Status::Ok(); },
      [&] { return ready.load() ? Status::Ok() : Status::Unavailable("not ready: Kafka down"); },
      NullLogger());
  REQUIRE(server.Listen().ok());
  REQUIRE(server.port() != 0);
  server.Start();

  httplib::Client client("127.0.0.1", server.port());
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type") == MetricsRegistry::kContentType);
  CHECK(metrics->body == registry.ExpositionText());
  CHECK(metrics->body.find("t_events_total 7\n") != std::string::npos);

  auto health = client.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "ok\n");

  auto not_ready = client.Get("/readyz");
  REQUIRE(not_ready);
  CHECK(not_ready->status == 503);
  CHECK(not_ready->body == "not ready: Kafka down\n");
  ready = true;
  auto now_ready = client.Get("/readyz");
  REQUIRE(now_ready);
  CHECK(now_ready->status == 200);

  auto missing = client.Get("/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  server.Stop();
  CHECK_FALSE(httplib::Client("127.0.0.1", server.port()).Get("/metrics"));
}

TEST_CASE("MetricsServer fails to listen on a port in use, naming the address and the reason") {
  MetricsRegistry registry;
  auto ok = [] { return Status::Ok(); };
  MetricsServer first(AnyPort(), &registry, ok, ok, NullLogger());
  REQUIRE(first.Listen().ok());
  first.Start();

  MetricsServerOptions same;
  same.address = "127.0.0.1";
  same.port = first.port();
  MetricsServer second(same, &registry, ok, ok, NullLogger());
  const Status s = second.Listen();
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kUnavailable);
  const std::string endpoint = "127.0.0.1:" + std::to_string(first.port());
  CHECK(s.message().find("metrics.listen: cannot listen on " + endpoint) != std::string::npos);
  CHECK(s.message().find("Address already in use") != std::string::npos);
  // The first server is unharmed.
  auto res = httplib::Client("127.0.0.1", first.port()).Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("MetricsServer can be stopped without having been started, and twice") {
  MetricsRegistry registry;
  auto ok = [] { return Status::Ok(); };
  MetricsServer server(AnyPort(), &registry, ok, ok, NullLogger());
  REQUIRE(server.Listen().ok());
  server.Stop();
  MetricsServer started(AnyPort(), &registry, ok, ok, NullLogger());
  REQUIRE(started.Listen().ok());
  started.Start();
  started.Stop();
  started.Stop();
}

// A client socket connected to 127.0.0.1:port, closed on destruction.
struct RawClient {
  int fd = -1;
  explicit RawClient(uint16_t port) {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~RawClient() { close(fd); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool Send(const std::string& s) {
    return send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
  }
  // True once the server closed the connection (end of stream or reset), without blocking.
  bool ClosedByServer() {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    char buf[256];
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
  }
  // Everything the server sends until it closes the connection, or until `timeout`.
  std::string ReadAll(std::chrono::milliseconds timeout = 2000ms) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
};

size_t OpenDescriptors() {
  const std::filesystem::directory_iterator fds("/proc/self/fd");
  return static_cast<size_t>(std::distance(fds, std::filesystem::directory_iterator()));
}

TEST_CASE(
    "MetricsServer answers /healthz within 1 s beside 500 idle and 10 slow-header connections, "
    "with a bounded number of descriptors") {
  MetricsRegistry registry;
  std::atomic<int> health_calls{0};
  MetricsServer server(
      AnyPort(), &registry,
      [&] {
        ++health_calls;
        return Status::Ok();
      },
      [] { return Status::Ok(); }, NullLogger());
  REQUIRE(server.Listen().ok());
  server.Start();
  const size_t cap = server.max_connections();
  CHECK(cap == MetricsServerOptions{}.max_connections);
  const size_t baseline = OpenDescriptors();

  // Idle: connected and silent. Slow: a partial request line, then nothing.
  constexpr size_t kIdle = 500;
  constexpr size_t kSlow = 10;
  std::vector<std::unique_ptr<RawClient>> clients;
  for (size_t i = 0; i < kIdle; ++i) clients.push_back(std::make_unique<RawClient>(server.port()));
  for (size_t i = 0; i < kSlow; ++i) {
    clients.push_back(std::make_unique<RawClient>(server.port()));
    REQUIRE(clients.back()->Send("GET /heal"));
  }
  // Every connection is accepted (and the surplus closed) before /healthz is asked.
  REQUIRE(WaitFor([&] { return server.Stats().accepted == kIdle + kSlow; }, 10s));

  const auto t0 = std::chrono::steady_clock::now();
  httplib::Client client("127.0.0.1", server.port());
  client.set_connection_timeout(1s);
  client.set_read_timeout(1s);
  auto health = client.Get("/healthz");
  const auto took = std::chrono::steady_clock::now() - t0;
  std::printf("[metrics_server] /healthz beside %zu idle and %zu slow connections: %.1f ms\n",
              kIdle, kSlow, std::chrono::duration<double, std::milli>(took).count());
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "ok\n");
  CHECK(took < 1s);
  CHECK(health_calls.load() == 1);

  // The server holds at most `cap` of the 510 connections; the rest it closed at once.
  const size_t during = OpenDescriptors();
  REQUIRE(during >= baseline + clients.size());
  const size_t server_held = during - baseline - clients.size();
  std::printf("[metrics_server] descriptors held by the server under load: %zu (cap %zu)\n",
              server_held, cap);
  CHECK(server_held <= cap);
  // Evicted at the cap, or timed out when opening them took longer than request_timeout.
  const MetricsServerStats st = server.Stats();
  CHECK(st.evicted + st.timed_out >= kIdle + kSlow - cap);
  // The client may read the answer before the server thread has counted it.
  CHECK(WaitFor([&] { return server.Stats().answered == 1; }, 5s));

  // The slow clients never finish their request: the server closes them after request_timeout
  // (2 s) and is back to its baseline, while the clients still hold their ends.
  CHECK(WaitFor([&] { return OpenDescriptors() == baseline + clients.size(); }, 5s, 20ms));
  for (size_t i = kIdle; i < clients.size(); ++i) CHECK(clients[i]->ClosedByServer());
  CHECK(server.Stats().timed_out >= kSlow);
  server.Stop();
}

TEST_CASE("MetricsServer caps its connections at a quarter of RLIMIT_NOFILE") {
  rlimit saved{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit low = saved;
  low.rlim_cur = 128;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  MetricsRegistry registry;
  auto ok = [] { return Status::Ok(); };
  MetricsServer server(AnyPort(), &registry, ok, ok, NullLogger());
  const bool listening = server.Listen().ok();
  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE(listening);
  CHECK(server.max_connections() == 32);
}

TEST_CASE("MetricsServer closes a request that trickles in past request_timeout") {
  MetricsRegistry registry;
  auto ok = [] { return Status::Ok(); };
  MetricsServerOptions o = AnyPort();
  o.request_timeout = 500ms;
  MetricsServer server(o, &registry, ok, ok, NullLogger());
  REQUIRE(server.Listen().ok());
  server.Start();
  RawClient slow(server.port());
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(200, 'a') + "\r\n\r\n";
  // One byte every 50 ms: each arrives well within any per-read timeout, but the whole head
  // would take 12 s. The deadline covers the request, not each read.
  size_t sent = 0;
  const auto t0 = std::chrono::steady_clock::now();
  const bool closed = WaitFor(
      [&] {
        if (slow.ClosedByServer()) return true;
        if (sent < request.size()) slow.Send(request.substr(sent++, 1));
        return false;
      },
      3s, 50ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  CHECK(closed);
  CHECK(sent < request.size());
  CHECK(took >= 400ms);
  CHECK(took < 1500ms);
  CHECK(server.Stats().timed_out == 1);
  CHECK(server.Stats().answered == 0);
}

TEST_CASE("MetricsServer answers HEAD, refuses other methods and malformed or huge requests") {
  MetricsRegistry registry;
  auto ok = [] { return Status::Ok(); };
  MetricsServer server(AnyPort(), &registry, ok, ok, NullLogger());
  REQUIRE(server.Listen().ok());
  server.Start();
  auto exchange = [&](const std::string& request) {
    RawClient c(server.port());
    REQUIRE(c.Send(request));
    return c.ReadAll();
  };
  const std::string head = exchange("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(head.find("Content-Length: 3\r\n") != std::string::npos);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");  // no body
  const std::string with_query = exchange("GET /readyz?verbose=1 HTTP/1.0\n\n");
  CHECK(with_query.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(with_query.substr(with_query.size() - 3) == "ok\n");
  const std::string post = exchange("POST /healthz HTTP/1.1\r\n\r\n");
  CHECK(post.rfind("HTTP/1.1 405 ", 0) == 0);
  CHECK(post.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(exchange("garbage\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
  CHECK(exchange("GET /" + std::string(10000, 'a')).rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(server.Stats().answered == 5);
}

}  // namespace
}  // namespace sluice::gateway
