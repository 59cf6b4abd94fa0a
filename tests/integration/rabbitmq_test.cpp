// SPDX-License-Identifier: Apache-2.0

// The RabbitMQ upstream at the level of the daemon: a real `sluice run` reads the local Mosquitto
// of the brokers fixture and forwards its log to a private RabbitMQ (scripts/rabbitmq.sh, the
// rabbitmq fixture) over AMQPS, with a client certificate, host-name verification and a password
// user. Events land in a RabbitMQ stream that each case declares for itself; sluice-verify
// --source amqp reads it back from the first offset and checks that nothing was lost or reordered
// per device. The cases stop and SIGKILL the broker, SIGKILL sluice and raise a resource alarm on
// the broker; they wait only on conditions (the log's cursor, metrics, /readyz, the watchdog's
// pings) with deadlines. Label "integration".

#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "connectors/amqp_connection.h"
#include "connectors/record_headers.h"
#include "firmware-sim/verifier.h"
#include "firmware-sim/verify_expectation.h"
#include "tests/integration/harness.h"
#include "tests/integration/link_fault.h"
#include "tests/integration/upstream_site.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

std::string Trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// --- The broker of the rabbitmq fixture -----------------------------------------------------

struct Rabbit {
  std::string script = MustEnv("SLUICE_RABBITMQ_SCRIPT");
  std::string dir = MustEnv("SLUICE_RABBITMQ_DIR");
  int port = std::stoi(MustEnv("SLUICE_RABBITMQ_PORT"));
  std::string ip = "127.0.0.1";        // where it listens
  std::string tls_host = "localhost";  // the name sluice connects to over TLS
  std::string netns;                   // set: the broker runs in this network namespace

  // A case's own broker, its state in `state_dir`, in the chaos tests' network namespace at the
  // namespace's address (which its certificate holds): reached from this host only over the
  // link that LinkFault cuts.
  static Rabbit InChaosNamespace(const std::string& state_dir) {
    Rabbit r;
    r.dir = state_dir;
    r.ip = MustEnv("SLUICE_CHAOS_NS_HOST");
    r.tls_host = r.ip;
    r.netns = MustEnv("SLUICE_CHAOS_NETNS");
    return r;
  }

  // The fixture's certificate holds DNS:localhost and IP:127.0.0.1; its TLS port also listens on
  // 127.0.0.2, which the certificate does not hold.
  std::string TlsUrl(const std::string& host = "") const {
    return "amqps://" + (host.empty() ? tls_host : host) + ":" + std::to_string(port + 1);
  }
  std::string Tls(const char* file) const { return dir + "/tls/" + file; }
  // The script's commands, inside the namespace when there is one (stop ends the node's epmd,
  // which listens there).
  int Script(const std::string& args) const {
    return Shell((netns.empty() ? "" : "ip netns exec " + netns + " ") + script + " " + args +
                 " --dir " + dir + " >/dev/null");
  }
  int Start() const {
    return Script("start --port " + std::to_string(port) + (netns.empty() ? "" : " --host " + ip));
  }
  int Stop(bool kill) const { return Script(kill ? "stop --kill" : "stop"); }
  bool Running() const { return Script("status") == 0; }
  // "memory", "disk" or "off" (scripts/rabbitmq.sh alarm).
  int Alarm(const std::string& what) const { return Script("alarm " + what); }

  // Plain AMQP as user "sluice".
  connectors::AmqpEndpoint AdminEndpoint() const {
    connectors::AmqpEndpoint e;
    e.url = "amqp://" + ip + ":" + std::to_string(port);
    e.username = "sluice";
    e.password = Trimmed(ReadFile(dir + "/sluice.password"));
    e.connect_timeout = 10s;
    return e;
  }
  // An administrative connection, for declaring what a case needs.
  std::unique_ptr<connectors::AmqpConnection> Admin() const {
    std::unique_ptr<connectors::AmqpConnection> c;
    Status s = connectors::AmqpConnection::Open(AdminEndpoint(), false, &c);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    return c;
  }
  void DeclareStream(const std::string& name) const {
    Status s = Admin()->DeclareQueue(name, {{"x-queue-type", std::string("stream")}});
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  // A classic queue that nacks publishes beyond `max_length` messages (x-overflow =
  // reject-publish) instead of dropping its oldest.
  void DeclareRejectingQueue(const std::string& name, int64_t max_length) const {
    Status s = Admin()->DeclareQueue(
        name, {{"x-max-length", max_length}, {"x-overflow", std::string("reject-publish")}});
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
};

// Brings the shared broker back when an assertion left a case with it stopped.
struct RabbitBack {
  const Rabbit& rabbit;
  ~RabbitBack() {
    if (!rabbit.Running()) rabbit.Start();
  }
};

// Stops a case's own broker, however the case ends.
struct RabbitGone {
  const Rabbit& rabbit;
  ~RabbitGone() { rabbit.Stop(false); }
};

// A resource alarm on the broker for one case; cleared at the latest when the case ends, so that a
// failed assertion leaves the shared broker taking publishes.
struct RabbitAlarm {
  RabbitAlarm(const Rabbit& r, const std::string& what) : rabbit(r) {
    REQUIRE(rabbit.Alarm(what) == 0);
  }
  ~RabbitAlarm() {
    if (on) rabbit.Alarm("off");
  }
  RabbitAlarm(const RabbitAlarm&) = delete;
  RabbitAlarm& operator=(const RabbitAlarm&) = delete;
  void Clear() {
    REQUIRE(rabbit.Alarm("off") == 0);
    on = false;
  }
  const Rabbit& rabbit;
  bool on = true;
};

// --- One case's site: sluice with one RabbitMQ upstream, "rabbit" ----------------------------

class Site : public UpstreamSite {
 public:
  explicit Site(const std::string& name) : UpstreamSite("rmq", name, "rabbitmq-" + name) {
    stream = "sluice-" + gateway;
  }

  // `upstream`: extra [upstream.rabbit] lines; `target`: the route's routing key; `storage`:
  // extra [storage] lines.
  void Configure(const std::string& upstream = "", const std::string& target = "",
                 const std::string& storage = "") {
    std::ostringstream c;
    c << "[gateway]\nid = \"" << gateway << "\"\n"
      << "[storage]\npath = \"" << f.LogPath() << "\"\n"
      << storage << "\n"
      << "[mqtt]\nurl = \"" << f.env.mqtt_url << "\"\nclient_id = \"sluice-" << gateway
      << "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
      << "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" << metrics_port << "\"\n"
      << "[upstream.rabbit]\nkind = \"rabbitmq\"\nurl = \"" << rabbit.TlsUrl() << "\"\n"
      << "username = \"sluice\"\npassword_file = \"" << rabbit.dir << "/sluice.password\"\n"
      << "heartbeat_s = " << heartbeat_s << "\nconnect_timeout_ms = 3000\nreconnect_min_ms = 100\n"
      << "reconnect_max_ms = 1000\n"
      << upstream << "\n"
      << "[upstream.rabbit.tls]\nca_file = \"" << rabbit.Tls("ca.pem") << "\"\ncert_file = \""
      << rabbit.Tls("client.pem") << "\"\nkey_file = \"" << rabbit.Tls("client.key") << "\"\n"
      << "[[route]]\nmqtt = \"devices/+/telemetry\"\nkey = \"devices/{device}/#\"\n"
      << "to = { rabbit = \"" << (target.empty() ? stream : target) << "\" }\n";
    std::ofstream(ConfigPath()) << c.str();
  }

  void RequireConnected() const {
    REQUIRE_MESSAGE(
        WaitFor([&] { return Metric("sluice_upstream_connected", "rabbit") == 1; }, 30s, 20ms),
        f.Log());
  }

  std::unique_ptr<ChildProcess> StartFleet(uint64_t events, int rate, size_t payload_bytes = 0) {
    return LaunchFleet({"telemetry:4", events, rate, events * 37 + rate, true, payload_bytes});
  }

  // The upstream's cursor at the end of a log whose last seq is at least `last`.
  bool Drained(uint64_t last) const { return AllDrained(last, 1); }
  uint64_t Cursor() const { return CursorStats().cursor; }
  storage::CursorStats CursorStats() const {
    auto st = f.MaybeStats();
    return st && !st->cursors.empty() ? st->cursors[0] : storage::CursorStats{};
  }

  // A marker published after the fleet sits behind every fleet event in sluice's session queue
  // at the local broker: once the cursor reaches the end of a log holding it, the upstream has
  // everything (also after a SIGKILL, when the broker redelivers and the log grows past `sent`).
  void PublishMarker() const {
    REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " +
                  f.env.mqtt_url.substr(f.env.mqtt_url.rfind(':') + 1) + " -t 'devices/zz-marker-" +
                  gateway + "/telemetry' -m end") == 0);
  }
  bool MarkerDrained() const {
    auto st = f.MaybeStats();
    return st && marker_seq_ > 0 && st->last_seq >= marker_seq_ && Drained(marker_seq_);
  }
  // Waits until the log holds the marker, then until the upstream confirmed through it.
  void WaitForMarker(uint64_t sent) {
    PublishMarker();
    REQUIRE_MESSAGE(WaitFor(
                        [&] {
                          auto st = f.MaybeStats();
                          return st && st->last_seq > sent;
                        },
                        60s, 20ms),
                    f.Log());
    marker_seq_ = f.LastSeq();
    REQUIRE_MESSAGE(WaitFor([&] { return MarkerDrained(); }, 120s, 20ms), f.Log());
  }

  // sluice-verify --source amqp on the case's stream, as user "reader" over AMQPS.
  Figures Verify(const std::string& extra_args, const std::string& gap_stream = "''") const {
    const Figures v = RunVerify(
        " --source amqp --url " + rabbit.TlsUrl() + " --username reader --password-file " +
            rabbit.dir + "/reader.password" + " --ca-file " + rabbit.Tls("ca.pem") +
            " --cert-file " + rabbit.Tls("client.pem") + " --key-file " + rabbit.Tls("client.key") +
            " --topic " + stream + " --gap-topic " + gap_stream + " --expect " + Summary() +
            " --idle-timeout 3 --max-ranges 8 " + extra_args,
        "verify");
    PrintFigures(scenario_, "rabbit", v);
    return v;
  }

  Rabbit rabbit;
  std::string stream;
  int heartbeat_s = 5;

 private:
  uint64_t marker_seq_ = 0;
};

}  // namespace

TEST_CASE("RabbitMQ: every event reaches the stream once and in order, over verified TLS") {
  Site site("online");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure();
  site.Start();
  site.RequireConnected();
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);

  const auto t0 = std::chrono::steady_clock::now();
  auto fleet = site.StartFleet(4000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  std::printf("scenario=rabbitmq-online %llu events confirmed in %.2f s\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t0));
  CHECK(site.Metric("sluice_events_forwarded_total", "rabbit") == sent);
  CHECK(site.Metric("sluice_upstream_backlog_events", "rabbit") == 0);

  const Figures v = site.Verify("--fail-on-duplicates --count " + std::to_string(sent));
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.records == sent);
  CHECK(v.unique == sent);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: events logged while the broker is stopped all arrive, in order, once it is "
    "back") {
  Site site("outage");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure();
  site.Start();
  site.RequireConnected();

  REQUIRE(site.rabbit.Stop(false) == 0);
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_upstream_connected", "rabbit") == 0; }, 30s, 20ms),
      site.f.Log());
  auto fleet = site.StartFleet(3000, 1500);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE(WaitFor([&] { return site.f.LastSeq() >= sent; }, 30s, 20ms));
  // Logged, not confirmed: all of it waits in the log, and /readyz names the upstream.
  CHECK(site.Cursor() == 0);
  CHECK(site.Metric("sluice_upstream_backlog_events", "rabbit") == sent);
  const HttpResponse ready = HttpGet(site.metrics_port, "/readyz");
  CHECK(ready.status == 503);
  CHECK_MESSAGE(ready.body.find("upstream rabbit") != std::string::npos, ready.body);

  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(site.rabbit.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 90s, 20ms), site.f.Log());
  std::printf("scenario=rabbitmq-outage backlog of %llu drained %.2f s after the broker started\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t0));
  const Figures v = site.Verify("--fail-on-duplicates");
  CheckArrivedInOrder(v, sent);
  CHECK(v.duplicates == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: the broker killed with SIGKILL under load loses nothing and reorders "
    "nothing") {
  Site site("brokerkill");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure();
  site.Start();
  site.RequireConnected();
  // A backlog, so that the kill finds a full confirm window: the fleet publishes while sluice is
  // away and the local broker queues it for sluice's session.
  CHECK(site.f.process->Terminate() == 0);
  auto fleet = site.StartFleet(20000, 5000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  site.Start();
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor() >= 3000; }, 60s, 1ms), site.f.Log());
  REQUIRE(site.rabbit.Stop(/*kill=*/true) == 0);
  const uint64_t at = site.Cursor();
  std::printf("scenario=rabbitmq-brokerkill broker killed at cursor %llu of %llu\n",
              static_cast<unsigned long long>(at), static_cast<unsigned long long>(sent));
  CHECK(at < sent);
  REQUIRE(site.rabbit.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 120s, 20ms), site.f.Log());
  // Publishes unconfirmed at the kill are sent again: duplicates are allowed, loss and
  // reordering are not.
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("RabbitMQ: sluice killed with SIGKILL under load loses nothing and reorders nothing") {
  Site site("sluicekill");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure("max_in_flight = 50\n");
  site.Start();
  site.RequireConnected();

  auto fleet = site.StartFleet(6000, 1500);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor() >= 1500; }, 60s, 5ms), site.f.Log());
  site.f.process->Kill();
  std::printf("scenario=rabbitmq-sluicekill sluice killed at cursor %llu\n",
              static_cast<unsigned long long>(site.Cursor()));
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  site.Configure();
  site.Start();
  site.WaitForMarker(sent);
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: a missing stream holds the log with the fix named, and it drains once the "
    "stream exists") {
  Site site("missing");
  RabbitBack back{site.rabbit};
  site.Configure();
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(600, 600);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  HttpResponse ready;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        ready = HttpGet(site.metrics_port, "/readyz");
                        return ready.status == 503 &&
                               ready.body.find("declare the stream '" + site.stream + "'") !=
                                   std::string::npos;
                      },
                      30s, 20ms),
                  ready.body << "\n"
                             << site.f.Log());
  CHECK(site.Cursor() == 0);
  CHECK(site.Metric("sluice_upstream_holds_total", "rabbit") >= 1);

  site.rabbit.DeclareStream(site.stream);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);
  const Figures v = site.Verify("--fail-on-duplicates");
  CheckArrivedInOrder(v, sent);
  CHECK(v.duplicates == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: a queue that refuses publishes (basic.nack) holds, and nothing is lost or "
    "doubled once it has room") {
  Site site("nack");
  RabbitBack back{site.rabbit};
  const std::string queue = "full-" + site.gateway;
  site.rabbit.DeclareRejectingQueue(queue, 100);
  site.Configure("", queue);
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(400, 800);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  HttpResponse ready;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        ready = HttpGet(site.metrics_port, "/readyz");
                        return ready.status == 503 &&
                               ready.body.find("basic.nack") != std::string::npos;
                      },
                      30s, 20ms),
                  ready.body << "\n"
                             << site.f.Log());
  CHECK(site.Cursor() < sent);
  // A consumer that catches up: empty the queue until everything is confirmed. With
  // reject-publish a refused message is not stored, so what the queue took adds up to the
  // events, each once.
  auto admin = site.rabbit.Admin();
  uint64_t taken = 0;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        uint64_t n = 0;
                        REQUIRE(admin->PurgeQueue(queue, &n).ok());
                        taken += n;
                        return site.Drained(sent);
                      },
                      90s, 50ms),
                  site.f.Log());
  uint64_t rest = 0;
  REQUIRE(admin->PurgeQueue(queue, &rest).ok());
  taken += rest;
  CHECK(taken == sent);
  CHECK(admin->DeleteQueue(queue).ok());
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: while a full queue refuses some publishes and a consumer makes room for others, "
    "no event overtakes a refused one of its device") {
  // reject-publish nacks a publish while the queue is full and takes the next one once a consumer
  // made room: a window with several events of one device in flight would put that next one
  // ahead of the refused one, for good. The queue is consumed as it fills, so sluice-verify
  // cannot read it afterwards: the case's consumer feeds what it takes, in the order it takes
  // it, to the verifier itself.
  Site site("nackorder");
  RabbitBack back{site.rabbit};
  const std::string queue = "full-" + site.gateway;
  auto admin = site.rabbit.Admin();
  site.rabbit.DeclareRejectingQueue(queue, 20);
  site.Configure("", queue);
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(1000, 1000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_forwarder_holds_total", "rabbit") >= 1; }, 30s,
              20ms),
      site.f.Log());
  const double holds_before = site.Metric("sluice_forwarder_holds_total", "rabbit");

  sim::VerifyExpectation expect;
  {
    Status s = sim::VerifyExpectation::LoadFile(site.Summary(), &expect);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  sim::Verifier verifier(std::move(expect));
  auto consumer = site.rabbit.Admin();
  REQUIRE(consumer->Consume(queue, 1, {}).ok());
  int64_t taken = 0;
  auto take = [&] {
    for (int i = 0; i < 1000; ++i) {
      connectors::AmqpEvent ev;
      Status s = consumer->Next(i == 0 ? 20ms : 0ms, &ev);
      REQUIRE_MESSAGE(s.ok(), s.ToString());
      if (ev.kind != connectors::AmqpEvent::Kind::kDeliver) return;
      sim::RecordOrigin origin;
      origin.offset = taken++;
      for (const auto& [name, value] : ev.message.headers) {
        if (name == connectors::kHeaderSeq) origin.log_seq = std::stoull(value);
      }
      verifier.AddPayload(ev.message.body, origin);
      REQUIRE(consumer->AckDelivery(ev.message.delivery_tag, false).ok());
    }
  };
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        take();
                        return site.Drained(sent) && verifier.Finish().totals.unique >= sent;
                      },
                      120s, 1ms),
                  site.f.Log());
  const double holds = site.Metric("sluice_forwarder_holds_total", "rabbit") - holds_before;
  const sim::VerifyReport report = verifier.Finish();
  std::printf(
      "scenario=rabbitmq-nack-order events=%llu taken=%lld unique=%llu lost=%llu "
      "duplicates=%llu reordered=%llu holds_while_consumed=%.0f\n",
      static_cast<unsigned long long>(sent), static_cast<long long>(taken),
      static_cast<unsigned long long>(report.totals.unique),
      static_cast<unsigned long long>(report.totals.lost),
      static_cast<unsigned long long>(report.totals.duplicates),
      static_cast<unsigned long long>(report.totals.reordered), holds);
  // The broker refused publishes while the consumer was taking others: the case exercised what
  // it is about.
  CHECK(holds >= 1);
  CHECK(report.totals.unique == sent);
  CHECK(report.totals.lost == 0);
  CHECK(report.totals.reordered == 0);
  CHECK(admin->DeleteQueue(queue).ok());
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: a resource alarm holds the log with the fix named, the forwarder stays live, and "
    "everything arrives once it clears") {
  using SteadyClock = std::chrono::steady_clock;
  Site site("alarm");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure();
  // connect_timeout_ms bounds each write to the broker too: below the watchdog's 2 s (next).
  std::string config = ReadFile(site.ConfigPath());
  const std::string timeout = "connect_timeout_ms = 3000";
  REQUIRE(config.find(timeout) != std::string::npos);
  config.replace(config.find(timeout), timeout.size(), "connect_timeout_ms = 1000");
  // A 4 s service watchdog: sluice pings each second while the forwarder made progress within the
  // last 2 s. A forwarder stuck in a write to the blocked broker would stop the pings, and systemd
  // would restart sluice 4 s later.
  site.f.StartSluice({"WATCHDOG_USEC=4000000"}, config);
  site.RequireConnected();
  const pid_t pid = site.f.process->Pid();
  // One confirmed publish opens the connection's full window (max_in_flight = 1000), so that the
  // backlog below goes to the blocked broker as fast as sluice sends: a window of 32 KiB events
  // is 32 MiB, more than the socket buffers of both ends take, which would hold the forwarder in
  // a write for as long as the alarm lasts if sluice did not stop at connection.blocked.
  site.WaitForMarker(0);
  const double holds_before = site.Metric("sluice_upstream_holds_total", "rabbit");

  RabbitAlarm alarm(site.rabbit, "memory");
  auto fleet = site.StartFleet(1600, 2000, 32 * 1024);
  HttpResponse ready;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        ready = HttpGet(site.metrics_port, "/readyz");
                        return ready.status == 503 &&
                               ready.body.find("resource alarm, low on memory") !=
                                   std::string::npos;
                      },
                      30s, 20ms),
                  ready.body << "\n"
                             << site.f.Log());
  const auto held_at = SteadyClock::now();
  CHECK_MESSAGE(ready.body.find("vm_memory_high_watermark") != std::string::npos, ready.body);
  CHECK(site.Metric("sluice_upstream_held", "rabbit") == 1);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which

  // The same alarm seen by one connection of the test's own, on a node that blocks it at its
  // first publish: connection.blocked with RabbitMQ's reason. Then a connection that ignores it
  // and writes on fills the socket's buffers; the write that finds no room ends within
  // connect_timeout, and the connection with it, instead of waiting for the alarm to clear.
  {
    connectors::AmqpEndpoint e = site.rabbit.AdminEndpoint();
    e.connect_timeout = 1000ms;
    std::unique_ptr<connectors::AmqpConnection> c;
    REQUIRE(connectors::AmqpConnection::Open(e, /*confirm=*/true, &c).ok());
    // Unroutable (no such queue) and not mandatory: the broker drops it, and confirms it.
    const std::string nowhere = "nowhere-" + site.gateway;
    REQUIRE(c->Publish("", nowhere, false, "probe", 0, {}, "x").ok());
    connectors::AmqpEvent ev;
    REQUIRE(WaitFor(
        [&] {
          REQUIRE(c->Next(10ms, &ev).ok());
          return ev.kind == connectors::AmqpEvent::Kind::kBlocked;
        },
        30s, 1ms));
    CHECK(ev.text == "low on memory");
    CHECK(c->blocked());
    const std::string body(1 << 20, 'b');
    Status s;
    SteadyClock::duration last{};
    for (int i = 0; i < 512 && s.ok(); ++i) {
      const auto t0 = SteadyClock::now();
      s = c->Publish("", nowhere, false, "fill", 0, {}, body);
      last = SteadyClock::now() - t0;
    }
    REQUIRE_MESSAGE(!s.ok(), "512 MiB written to a blocked broker without a stall");
    CHECK_MESSAGE(s.message().find("took nothing for 1000 ms") != std::string::npos, s.message());
    CHECK(last >= 1000ms);
    CHECK(last < 6s);  // 1 s and two ticks of 100 ms; the rest is room for a loaded machine
  }

  // The watchdog's view: pings go on for longer than its period after the hold began.
  NotifyListener& notify = *site.f.notify;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        const auto pings = notify.With("WATCHDOG=1");
                        return !pings.empty() && pings.back().at - held_at >= 5s;
                      },
                      30s, 20ms),
                  site.f.Log() << notify.Dump());
  SteadyClock::duration gap{0};
  SteadyClock::time_point prev = held_at;
  for (const NotifyListener::Line& ping : notify.With("WATCHDOG=1")) {
    if (ping.at < held_at) continue;
    gap = std::max(gap, ping.at - prev);
    prev = ping.at;
  }
  CHECK_MESSAGE(gap < 4s, std::chrono::duration_cast<std::chrono::milliseconds>(gap).count());
  CHECK(site.f.Log().find("withholding the watchdog ping") == std::string::npos);
  CHECK(site.f.process->Pid() == pid);
  CHECK(site.Cursor() < sent);
  CHECK(HttpGet(site.metrics_port, "/readyz").body.find("low on memory") != std::string::npos);

  const auto cleared_at = SteadyClock::now();
  alarm.Clear();
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 90s, 20ms), site.f.Log());
  std::printf(
      "scenario=rabbitmq-alarm backlog of %llu drained %.2f s after the alarm was cleared\n",
      static_cast<unsigned long long>(sent), Seconds(SteadyClock::now() - cleared_at));
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);
  CHECK(site.Metric("sluice_upstream_held", "rabbit") == 0);
  CHECK(site.Metric("sluice_upstream_holds_total", "rabbit") == holds_before + 1);
  CHECK(site.f.Log().find("cleared its resource alarm") != std::string::npos);
  CHECK(site.f.process->Pid() == pid);
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: drop-oldest while the broker is down puts a gap record in the gap stream, "
    "and the verifier counts the hole as reported") {
  Site site("gap");
  RabbitBack back{site.rabbit};
  const std::string gaps = "gaps-" + site.gateway;
  site.rabbit.DeclareStream(site.stream);
  site.rabbit.DeclareStream(gaps);
  site.Configure("gap_routing_key = \"" + gaps + "\"\n", "",
                 "max_bytes = \"1MiB\"\noverflow = \"drop-oldest\"\n");
  site.Start();
  site.RequireConnected();
  // ~1 KiB events: the log holds about a thousand; the outage brings about four thousand.
  auto fleet = site.StartFleet(6000, 1000, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor() >= 1000; }, 60s, 20ms), site.f.Log());
  REQUIRE(site.rabbit.Stop(false) == 0);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  const storage::CursorStats down = site.CursorStats();
  std::printf("scenario=rabbitmq-gap while down: %llu dropped in %llu gap markers\n",
              static_cast<unsigned long long>(down.dropped_events),
              static_cast<unsigned long long>(down.gap_markers));
  REQUIRE(down.dropped_events > 0);
  REQUIRE(site.rabbit.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 90s, 20ms), site.f.Log());
  CHECK(site.Metric("sluice_gap_records_total", "rabbit") >= 1);

  // What arrived plus what the gap records account for is every event, none lost.
  const Figures v = site.Verify("", gaps);
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.gap_records >= 1);
  CHECK(v.dropped_reported > 0);
  CHECK(v.unique + v.dropped_reported >= sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: an exchange and a routing-key template; a missing exchange holds until it is "
    "declared and bound") {
  Site site("exchange");
  RabbitBack back{site.rabbit};
  const std::string exchange = "ex-" + site.gateway;
  site.rabbit.DeclareStream(site.stream);
  site.Configure("exchange = \"" + exchange + "\"\n", "site.{gateway}.{device}");
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(800, 800);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  HttpResponse ready;
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        ready = HttpGet(site.metrics_port, "/readyz");
                        return ready.status == 503 &&
                               ready.body.find("declare exchange '" + exchange + "'") !=
                                   std::string::npos;
                      },
                      30s, 20ms),
                  ready.body << "\n"
                             << site.f.Log());
  CHECK(site.Cursor() == 0);

  auto admin = site.rabbit.Admin();
  REQUIRE(admin->DeclareExchange(exchange, "topic").ok());
  REQUIRE(admin->Bind(site.stream, exchange, "site." + site.gateway + ".#").ok());
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  // What the broker discarded with each closed channel never landed: no duplicates.
  const Figures v = site.Verify("--fail-on-duplicates");
  CheckArrivedInOrder(v, sent);
  CHECK(v.duplicates == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("RabbitMQ: sluice replay sends a retained range again on a connection of its own") {
  Site site("replay");
  RabbitBack back{site.rabbit};
  site.rabbit.DeclareStream(site.stream);
  site.Configure("", "", "retain_bytes = \"64MiB\"\n");
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(2000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  CHECK(site.f.Stats().retained_events == sent);

  const std::string out = site.f.dir.File("replay.txt");
  REQUIRE(Shell(site.f.env.sluice_bin + " replay -c " + site.ConfigPath() +
                " --upstream rabbit --from 1 >" + out + " 2>&1") == 0);
  std::printf("scenario=rabbitmq-replay %s", ReadFile(out).c_str());
  // The stream then holds every event twice: the live copy, then the replayed one, each in order.
  const Figures v = site.Verify("--count " + std::to_string(2 * sent) + " --timeout 60");
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.records == 2 * sent);
  CHECK(v.unique == sent);
  CHECK(v.duplicates == sent);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK_MESSAGE(
      site.f.Log().find("RabbitMQ upstream 'rabbit (replay)': connected") != std::string::npos,
      site.f.Log());
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE(
    "RabbitMQ: check-config --probe logs in as the daemon does and names a missing stream, "
    "an untrusted CA and a certificate without the IP address in url") {
  Site site("probe");
  const std::string existing = site.stream;
  site.rabbit.DeclareStream(existing);
  site.Configure("", existing);
  {
    const ProbeRun r = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 10, site.f.cfg.dir);
    INFO(r.output);
    CHECK_FALSE(r.Line("ok", "upstream rabbit (rabbitmq): RabbitMQ broker " + site.rabbit.TlsUrl() +
                                 ": logged in as 'sluice' on vhost '/'")
                    .empty());
    CHECK_FALSE(r.Line("ok", "stream or queue '" + existing + "' exists").empty());
  }
  site.Configure("", "absent-" + site.gateway);
  {
    const ProbeRun r = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 10, site.f.cfg.dir);
    INFO(r.output);
    CHECK(r.rc == 4);
    CHECK_FALSE(r.Line("FAIL", "declare the stream 'absent-" + site.gateway + "'").empty());
  }
  // By IP address: the certificate's IP addresses are checked (rabbitmq-c itself matches DNS
  // names only).
  std::string text = ReadFile(site.ConfigPath());
  const std::string by_name = site.rabbit.TlsUrl();
  text.replace(text.find(by_name), by_name.size(), site.rabbit.TlsUrl("127.0.0.1"));
  std::ofstream(site.ConfigPath()) << text;
  {
    const ProbeRun r = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 10, site.f.cfg.dir);
    INFO(r.output);
    CHECK(r.rc == 4);  // the stream is still absent
    CHECK_FALSE(r.Line("ok", "upstream rabbit (rabbitmq): RabbitMQ broker " +
                                 site.rabbit.TlsUrl("127.0.0.1") + ": logged in as 'sluice'")
                    .empty());
  }
  const std::string by_ip = site.rabbit.TlsUrl("127.0.0.1");
  text.replace(text.find(by_ip), by_ip.size(), site.rabbit.TlsUrl("127.0.0.2"));
  std::ofstream(site.ConfigPath()) << text;
  {
    const ProbeRun r = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 10, site.f.cfg.dir);
    INFO(r.output);
    CHECK(r.rc == 4);
    CHECK_FALSE(r.Line("FAIL", "does not hold the IP address in url").empty());
  }
  text.replace(text.find("tls/ca.pem"), 10, "tls/other-ca.pem");
  std::ofstream(site.ConfigPath()) << text;
  {
    const ProbeRun r = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 10, site.f.cfg.dir);
    INFO(r.output);
    CHECK(r.rc == 4);
    CHECK_FALSE(
        r.Line("FAIL", "the broker's TLS certificate is not signed by a trusted CA").empty());
  }
}

TEST_CASE(
    "RabbitMQ chaos: every packet to the broker vanishes mid-stream; heartbeats notice, and all "
    "arrive in order") {
  if (NetnsUnavailable()) return;
  Site site("partition");
  site.rabbit = Rabbit::InChaosNamespace(site.f.dir.File("rabbit-ns"));
  RabbitGone gone{site.rabbit};
  REQUIRE(site.rabbit.Start() == 0);
  site.rabbit.DeclareStream(site.stream);
  // Over TLS to the namespace's IP address, which the broker's certificate holds. Heartbeats
  // every 2 s: a connection that carries nothing for two of them is dead.
  site.heartbeat_s = 2;
  site.Configure();
  site.Start();
  site.RequireConnected();
  auto fleet = site.StartFleet(8000, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor() >= 1000; }, 60s, 5ms), site.f.Log());

  // A partition: the link stays up and the namespace drops every packet, so nothing refuses or
  // resets sluice's connection; only the missing heartbeats tell.
  LinkFault link;
  const size_t log_before = site.f.Log().size();
  const auto t_cut = std::chrono::steady_clock::now();
  link.Apply("blackhole");
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_upstream_connected", "rabbit") == 0; }, 30s, 20ms),
      site.f.Log());
  const double noticed_s = Seconds(std::chrono::steady_clock::now() - t_cut);
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 503);
  // Waiting on a silent broker is not a wedged forwarder.
  CHECK(HttpGet(site.metrics_port, "/healthz").status == 200);
  {
    const std::string log = site.f.Log();
    const size_t at = log.find("heartbeat timeout", log_before);
    REQUIRE_MESSAGE(at != std::string::npos, log);
    std::printf("  sluice noticed after %.1f s: %s\n", noticed_s, LineAt(log, at).c_str());
  }
  // The log keeps taking the fleet's events while nothing is confirmed.
  const uint64_t held = site.HeldWhileCut("rabbit", 1000);
  link.Heal();
  const uint64_t sent = site.DrainAfterHeal(*fleet, held, std::chrono::steady_clock::now());
  CHECK(site.Metric("sluice_upstream_connected", "rabbit") == 1);
  // Publishes whose confirms the partition swallowed were stored and are sent again: duplicates
  // are allowed; loss and reordering are not.
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

}  // namespace sluice::itest
