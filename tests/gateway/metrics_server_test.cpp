#include "gateway/metrics_server.h"

#include <httplib.h>

#include <doctest/doctest.h>

#include <atomic>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::NullLogger;

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

}  // namespace
}  // namespace sluice::gateway
