// SPDX-License-Identifier: Apache-2.0

// The Kinesis upstream at the level of the daemon: a real `sluice run` reads the shared Mosquitto
// (the brokers fixture), logs every event and forwards the log to kinesalite over HTTPS with
// certificate verification (scripts/kinesis.sh, the kinesis fixture). A simulated fleet
// (sluice-sim) publishes; sluice-verify --source kinesis reads every shard back and checks that
// nothing was lost and that each device's events are in order.
//
// The cases stop and restart kinesalite, kill sluice, put a throttling endpoint in between
// (KinesisThrottleProxy), leave a stream missing, and send an event over Kinesis's 1 MiB. The
// chaos cases (CTest label "chaos") kill kinesalite with SIGKILL in the middle of a drain, and cut
// off a kinesalite of their own in the chaos tests' network namespace (tests/integration/
// chaos_net.sh) so that sluice's requests hang. They wait only on conditions (log cursors,
// metrics, the verifier) with deadlines.

#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/curl_aws_json_client.h"
#include "tests/integration/harness.h"
#include "tests/integration/kinesis_throttle_proxy.h"
#include "tests/integration/link_fault.h"
#include "tests/integration/upstream_site.h"
#include "tests/test_util.h"

namespace sluice::itest {
namespace {

using sluice::testing::WaitFor;
using namespace std::chrono_literals;

constexpr const char* kUpstream = "stream";
constexpr const char* kRegion = "us-east-1";

// --- kinesalite of the kinesis fixture ------------------------------------------------------

struct Kinesis {
  std::string script;
  std::string dir;
  int port = 0;
  std::string host = "127.0.0.1";
  std::string netns;  // set: kinesalite runs in this network namespace

  static Kinesis FromEnvironment() {
    Kinesis k;
    k.script = MustEnv("SLUICE_KINESIS_SCRIPT");
    k.dir = MustEnv("SLUICE_KINESIS_DIR");
    k.port = std::stoi(MustEnv("SLUICE_KINESIS_PORT"));
    return k;
  }
  // A case's own kinesalite, its data in `dir`, in the chaos tests' network namespace at the
  // namespace's address: reached from this host only over the link that LinkFault cuts.
  static Kinesis InChaosNamespace(const std::string& dir) {
    Kinesis k = FromEnvironment();
    k.dir = dir;
    k.host = MustEnv("SLUICE_CHAOS_NS_HOST");
    k.netns = MustEnv("SLUICE_CHAOS_NETNS");
    return k;
  }
  std::string Endpoint() const { return "https://" + host + ":" + std::to_string(port); }
  std::string Ca() const { return dir + "/tls/ca.pem"; }
  int Start() const {
    return Shell((netns.empty() ? "" : "ip netns exec " + netns + " ") + script + " start --dir " +
                 dir + " --port " + std::to_string(port) + " --host " + host + " >/dev/null");
  }
  // SIGTERM; with `kill` SIGKILL, a crash that leaves kinesalite's LevelDB as it was.
  int Stop(bool kill = false) const {
    return Shell(script + " stop --dir " + dir + (kill ? " --kill" : "") + " >/dev/null");
  }
  bool Running() const { return Shell(script + " status --dir " + dir + " >/dev/null") == 0; }

  std::unique_ptr<CurlAwsJsonClient> Client() const {
    CurlAwsJsonClientOptions o;
    o.endpoint = Endpoint();
    o.region = kRegion;
    o.credentials = {"AKIDTEST", "secret-test", ""};
    o.ca_file = Ca();
    std::unique_ptr<CurlAwsJsonClient> c;
    REQUIRE(CurlAwsJsonClient::Create(o, &c).ok());
    return c;
  }
  void CreateStream(const std::string& name, int shards) const {
    const nlohmann::json req = {{"StreamName", name}, {"ShardCount", shards}};
    const AwsResponse r = Client()->Call("CreateStream", req.dump());
    REQUIRE_MESSAGE(r.ok(), r.body << r.transport_error);
    // Streams are ACTIVE at once in the fixture (createStreamMs 0); wait for it anyway.
    REQUIRE(WaitFor(
        [&] {
          const AwsResponse d =
              Client()->Call("DescribeStreamSummary", nlohmann::json{{"StreamName", name}}.dump());
          return d.ok() && d.body.find("\"ACTIVE\"") != std::string::npos;
        },
        10s, 20ms));
  }
};

// Brings the shared kinesalite back when an assertion left a case with it stopped.
struct KinesisBack {
  const Kinesis& k;
  ~KinesisBack() {
    if (!k.Running()) k.Start();
  }
};

// Stops a case's own kinesalite, also when an assertion ended the case early.
struct KinesisGone {
  const Kinesis& k;
  ~KinesisGone() { k.Stop(); }
};

// --- One test's site: sluice with one Kinesis upstream --------------------------------------

class Site : public UpstreamSite {
 public:
  explicit Site(const std::string& name)
      : UpstreamSite("kin", name, name), kinesis(Kinesis::FromEnvironment()) {
    stream = "kin-" + gateway;
    credentials = f.dir.File("aws-credentials");
    std::ofstream(credentials) << "[default]\naws_access_key_id = AKIDTEST\n"
                                  "aws_secret_access_key = secret-test\n";
  }

  std::string ConfigText(const std::string& endpoint, const std::string& extra = "",
                         const std::string& storage = "") const {
    std::ostringstream c;
    c << "[gateway]\nid = \"" << gateway << "\"\n"
      << "[storage]\npath = \"" << f.LogPath() << "\"\n"
      << (storage.empty() ? "max_event_bytes = \"2MiB\"\n" : storage) << "[mqtt]\nurl = \""
      << f.env.mqtt_url << "\"\nclient_id = \"sluice-" << gateway
      << "\"\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n"
      << "[metrics]\nenabled = true\nlisten = \"127.0.0.1:" << metrics_port << "\"\n"
      << "[upstream." << kUpstream << "]\nkind = \"kinesis\"\nregion = \"" << kRegion
      << "\"\nendpoint = \"" << endpoint << "\"\ncredentials_file = \"" << credentials
      << "\"\nreconnect_min_ms = 50\nreconnect_max_ms = 500\n"
      << extra << "\n[upstream." << kUpstream << ".tls]\nca_file = \"" << kinesis.Ca() << "\"\n"
      << "[[route]]\nmqtt = \"devices/+/telemetry\"\nkey = \"devices/{device}/#\"\n"
      << "to = { " << kUpstream << " = \"" << stream << "\" }\n";
    return c.str();
  }
  void Configure(const std::string& endpoint, const std::string& extra = "",
                 const std::string& storage = "") {
    std::ofstream(ConfigPath()) << ConfigText(endpoint, extra, storage);
  }
  void Start() {
    UpstreamSite::Start("sluice_upstream_connected{upstream=\"" + std::string(kUpstream) + "\"}");
  }

  std::unique_ptr<ChildProcess> StartFleet(uint64_t events, int rate, int devices = 6,
                                           size_t payload_bytes = 0) {
    return LaunchFleet({"telemetry:" + std::to_string(devices), events, rate, events * 31 + rate,
                        false, payload_bytes});
  }

  storage::CursorStats Cursor() const { return UpstreamSite::Cursor(kUpstream); }
  // The cursor at the end of a log whose last seq is at least `last`.
  bool Drained(uint64_t last) const {
    auto st = f.MaybeStats();
    if (!st || st->last_seq < last) return false;
    const auto c = Cursor();
    return c.cursor == st->last_seq && c.events == 0;
  }
  double Metric(const std::string& name) const { return UpstreamSite::Metric(name, kUpstream); }

  // sluice-verify --source kinesis on the stream against the fleet's summary.
  Figures Verify(const std::string& extra_args) const {
    const Figures v =
        RunVerify(" --source kinesis --endpoint " + kinesis.Endpoint() + " --region " + kRegion +
                      " --credentials-file " + credentials + " --ca-file " + kinesis.Ca() +
                      " --topic " + stream + " --gap-topic '" + gap_stream + "' --expect " +
                      Summary() + " --idle-timeout 2 --max-ranges 8 " + extra_args,
                  "verify");
    PrintFigures(scenario_, kUpstream, v);
    return v;
  }

  // Verify until nothing the fleet sent is missing from the stream, or `timeout`: after a kill
  // of sluice the local broker redelivers, so the log's end says nothing about whether every
  // event is in it yet. The last read is the one checked.
  Figures VerifyUntilComplete(const std::string& extra_args, std::chrono::seconds timeout) const {
    Figures v;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      v = Verify(extra_args);
    } while (v.lost > 0 && std::chrono::steady_clock::now() < deadline);
    return v;
  }

  Kinesis kinesis;
  std::string stream;
  std::string gap_stream;  // empty: the verifier reads no gap records
  std::string credentials;
};

void RequireConnected(const Site& site) {
  REQUIRE_MESSAGE(WaitFor([&] { return site.Metric("sluice_upstream_connected") == 1; }, 30s, 20ms),
                  site.f.Log());
}

// --- Cases ----------------------------------------------------------------------------------

TEST_CASE("Kinesis: every event reaches the stream, in order per device, over HTTPS") {
  Site site("online");
  site.kinesis.CreateStream(site.stream, 2);
  site.Configure(site.kinesis.Endpoint());
  site.Start();
  RequireConnected(site);
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);
  const auto t0 = std::chrono::steady_clock::now();
  auto fleet = site.StartFleet(3000, 1500);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  std::printf("scenario=online %llu events confirmed by Kinesis in %.2f s\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t0));
  CHECK(site.Metric("sluice_events_forwarded_total") == sent);
  CHECK(site.Metric("sluice_upstream_backlog_events") == 0);
  const Figures v = site.Verify("--fail-on-duplicates --count " + std::to_string(sent));
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.records == sent);
  CHECK(v.lost == 0);
  CHECK(v.duplicates == 0);
  CHECK(v.reordered == 0);
  // `sluice status` names the upstream with its kind and endpoint.
  const std::string status_out = site.f.dir.File("status.txt");
  REQUIRE(Shell(site.f.env.sluice_bin + " status --config " + site.ConfigPath() + " >" +
                status_out + " 2>&1") == 0);
  const std::string status = ReadFile(status_out);
  CHECK_MESSAGE(status.find(kUpstream) != std::string::npos, status);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: the endpoint down while events accumulate, then all arrive in order") {
  Site site("outage");
  KinesisBack back{site.kinesis};
  site.kinesis.CreateStream(site.stream, 2);
  site.Configure(site.kinesis.Endpoint());
  site.Start();
  RequireConnected(site);
  REQUIRE(site.kinesis.Stop() == 0);
  auto fleet = site.StartFleet(2000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Metric("sluice_upstream_connected") == 0; }, 30s, 20ms),
                  site.f.Log());
  REQUIRE_MESSAGE(WaitFor([&] { return site.f.LastSeq() >= sent; }, 30s, 20ms), site.f.Log());
  CHECK(site.Cursor().cursor == 0);
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 503);
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(site.kinesis.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  std::printf("scenario=outage backlog of %llu drained in %.2f s after the endpoint came back\n",
              static_cast<unsigned long long>(sent),
              Seconds(std::chrono::steady_clock::now() - t0));
  CHECK(site.Metric("sluice_upstream_connected") == 1);
  const Figures v = site.VerifyUntilComplete("", 30s);
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: sluice killed with SIGKILL under load loses nothing and keeps the order") {
  Site site("sigkill");
  site.kinesis.CreateStream(site.stream, 2);
  // Small requests keep the upstream busy, so that the kill finds requests in flight.
  site.Configure(site.kinesis.Endpoint(), "batch_records = 20\n");
  site.Start();
  RequireConnected(site);
  auto fleet = site.StartFleet(6000, 3000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor().cursor >= 1000; }, 60s, 5ms), site.f.Log());
  const uint64_t at = site.Cursor().cursor;
  site.f.process->Kill();
  std::printf("scenario=sigkill killed with the cursor at %llu\n",
              static_cast<unsigned long long>(at));
  site.Start();
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 90s, 20ms), site.f.Log());
  // Duplicates are expected (at least once): what was in flight at the kill is sent again.
  const Figures v = site.VerifyUntilComplete("", 60s);
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: throttled records are sent again and no later record of a device overtakes") {
  Site site("throttle");
  site.kinesis.CreateStream(site.stream, 2);
  KinesisThrottleProxy::Options po;
  po.cert_file = site.kinesis.dir + "/tls/server.pem";
  po.key_file = site.kinesis.dir + "/tls/server.key";
  po.ca_file = site.kinesis.Ca();
  po.upstream_port = site.kinesis.port;
  KinesisThrottleProxy proxy(po);
  site.Configure("https://127.0.0.1:" + std::to_string(proxy.port()));
  site.Start();
  RequireConnected(site);
  // Twenty devices: requests of up to twenty records (one per device), so that a throttled first
  // record has later records of other devices beside it, stored while it is refused.
  auto fleet = site.StartFleet(1000, 1000, 20);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 90s, 20ms), site.f.Log());
  std::printf("scenario=throttle %llu PutRecords, %llu records and %llu requests throttled\n",
              static_cast<unsigned long long>(proxy.put_requests()),
              static_cast<unsigned long long>(proxy.throttled_records()),
              static_cast<unsigned long long>(proxy.rejected_requests()));
  CHECK(proxy.throttled_records() > 10);
  CHECK(proxy.rejected_requests() > 2);
  // Each throttled record, and each record of a request throttled whole, is counted once.
  CHECK(site.Metric("sluice_upstream_throttled_total") >=
        proxy.throttled_records() + proxy.rejected_requests());
  CHECK(site.f.Log().find("throttled") != std::string::npos);
  const Figures v = site.Verify("--fail-on-duplicates --count " + std::to_string(sent));
  CheckArrivedInOrder(v, sent);
  CHECK(v.duplicates == 0);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: a missing stream holds the log, which drains once the stream exists") {
  Site site("missing");
  site.Configure(site.kinesis.Endpoint());
  site.Start();
  auto fleet = site.StartFleet(500, 1000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        const HttpResponse r = HttpGet(site.metrics_port, "/readyz");
                        return r.status == 503 &&
                               r.body.find("does not exist") != std::string::npos &&
                               r.body.find(site.stream) != std::string::npos;
                      },
                      30s, 20ms),
                  site.f.Log());
  CHECK(site.Metric("sluice_upstream_holds_total") >= 1);
  CHECK(site.Cursor().cursor == 0);
  CHECK(site.f.Stats().dead_letters == 0);
  // `sluice check-config --probe` says so before anything is started (exit 4: a check failed).
  const ProbeRun missing = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 5, site.f.cfg.dir);
  CHECK_MESSAGE(missing.rc == 4, missing.output);
  CHECK_MESSAGE(!missing.Line("FAIL", "stream '" + site.stream + "'").empty(), missing.output);
  site.kinesis.CreateStream(site.stream, 1);
  const ProbeRun found = RunProbe(site.f.env.sluice_bin, site.ConfigPath(), 5, site.f.cfg.dir);
  CHECK_MESSAGE(found.rc == 0, found.output);
  CHECK_MESSAGE(!found.Line("ok", "stream '" + site.stream + "'").empty(), found.output);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);
  const Figures v = site.Verify("--count " + std::to_string(sent));
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: an event over 1 MiB is a dead letter and the events after it flow") {
  Site site("toolarge");
  site.kinesis.CreateStream(site.stream, 1);
  site.Configure(site.kinesis.Endpoint());
  site.Start();
  RequireConnected(site);
  const std::string port = site.f.env.mqtt_url.substr(site.f.env.mqtt_url.rfind(':') + 1);
  const std::string big = site.f.dir.File("big.bin");
  std::ofstream(big) << std::string(1024 * 1024 + 10, 'x');
  const std::string topic = "devices/big-" + site.gateway + "/telemetry";
  REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " + port + " -t '" + topic + "' -f " + big) ==
          0);
  REQUIRE(Shell("mosquitto_pub -h 127.0.0.1 -q 1 -p " + port + " -t '" + topic + "' -m small") ==
          0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(2); }, 30s, 20ms), site.f.Log());
  CHECK(site.f.Stats().dead_letters == 1);
  CHECK(site.Metric("sluice_events_forwarded_total") == 1);
  CHECK(site.f.Log().find("1048576") != std::string::npos);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: drop-oldest while the endpoint is down leaves gap records at the holes") {
  Site site("gap");
  KinesisBack back{site.kinesis};
  site.gap_stream = "kin-gaps-" + site.gateway;
  site.kinesis.CreateStream(site.stream, 2);
  site.kinesis.CreateStream(site.gap_stream, 1);
  site.Configure(site.kinesis.Endpoint(), "gap_stream = \"" + site.gap_stream + "\"\n",
                 "max_bytes = \"1MiB\"\noverflow = \"drop-oldest\"\n");
  site.Start();
  RequireConnected(site);
  // ~1 KiB events: the log holds about a thousand; the outage brings about three thousand.
  auto fleet = site.StartFleet(4000, 1000, 6, 1000);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor().cursor >= 500; }, 60s, 20ms), site.f.Log());
  REQUIRE(site.kinesis.Stop() == 0);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  const storage::CursorStats down = site.Cursor();
  std::printf("scenario=gap while down: %llu dropped in %llu gap markers\n",
              static_cast<unsigned long long>(down.dropped_events),
              static_cast<unsigned long long>(down.gap_markers));
  REQUIRE(down.dropped_events > 0);
  REQUIRE(site.kinesis.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  CHECK(site.Metric("sluice_gap_records_total") >= 1);
  const Figures v = site.VerifyUntilComplete("", 30s);
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.lost == 0);
  CHECK(v.reordered == 0);
  CHECK(v.gap_records >= 1);
  // What arrived plus what the gap records account for is every event. Events confirmed but
  // past the stored cursor when drop-oldest took them arrived and are reported dropped as well:
  // sluice cannot know (docs/guarantees.md 7.2).
  CHECK(v.dropped_reported > 0);
  CHECK(v.unique + v.dropped_reported >= sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis: sluice replay sends a retained range again") {
  Site site("replay");
  site.kinesis.CreateStream(site.stream, 2);
  site.Configure(site.kinesis.Endpoint(), "", "retain_bytes = \"64MiB\"\n");
  site.Start();
  RequireConnected(site);
  auto fleet = site.StartFleet(1000, 2000);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  const std::string out = site.f.dir.File("replay.txt");
  REQUIRE(Shell(site.f.env.sluice_bin + " replay -c " + site.ConfigPath() + " --upstream " +
                kUpstream + " --from 1 >" + out + " 2>&1") == 0);
  // Every event twice: the live copy and the replayed one.
  Figures v;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  do {
    v = site.Verify("");
  } while (v.duplicates < sent && std::chrono::steady_clock::now() < deadline);
  CHECK_MESSAGE(v.rc == 0, v.text);
  CHECK(v.unique == sent);
  CHECK(v.duplicates == sent);
  CHECK(v.lost == 0);
  CHECK(site.f.process->Terminate() == 0);
}

// --- Chaos (CTest label "chaos") ------------------------------------------------------------

TEST_CASE("Kinesis chaos: kinesalite killed with SIGKILL mid-drain, restarted on its data") {
  Site site("endpointkill");
  KinesisBack back{site.kinesis};
  site.kinesis.CreateStream(site.stream, 2);
  site.Configure(site.kinesis.Endpoint());
  site.Start();
  RequireConnected(site);
  // A backlog of thousands, logged while the endpoint is stopped. Twenty devices: a request
  // carries one record per device, so the backlog drains in a few hundred requests.
  REQUIRE(site.kinesis.Stop() == 0);
  auto fleet = site.StartFleet(6000, 3000, 20);
  const uint64_t sent = site.FinishFleet(*fleet);
  REQUIRE(sent > 0);  // a device that could not keep up dropped some: --expect knows which
  REQUIRE_MESSAGE(WaitFor([&] { return site.f.LastSeq() >= sent; }, 30s, 20ms), site.f.Log());
  REQUIRE(site.Metric("sluice_events_forwarded_total") == 0);
  REQUIRE(site.kinesis.Start() == 0);
  const auto t0 = std::chrono::steady_clock::now();
  // The kill lands in the drain: once a quarter of the backlog is confirmed...
  REQUIRE_MESSAGE(
      WaitFor([&] { return site.Metric("sluice_events_forwarded_total") >= sent / 4.0; }, 60s, 1ms),
      site.f.Log());
  REQUIRE(site.kinesis.Stop(/*kill=*/true) == 0);
  const double at = site.Metric("sluice_events_forwarded_total");
  std::printf(
      "scenario=endpointkill kinesalite killed %.2f s into the drain, %.0f of %llu events "
      "confirmed\n",
      Seconds(std::chrono::steady_clock::now() - t0), at, static_cast<unsigned long long>(sent));
  // ...and before all of it.
  REQUIRE(at < sent);
  // sluice reports the endpoint gone while it is down.
  REQUIRE_MESSAGE(WaitFor([&] { return site.Metric("sluice_upstream_connected") == 0; }, 30s, 20ms),
                  site.f.Log());
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 503);
  REQUIRE(site.kinesis.Start() == 0);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Drained(sent); }, 60s, 20ms), site.f.Log());
  CHECK(site.Metric("sluice_upstream_connected") == 1);
  // What was in flight at the kill is sent again: duplicates are allowed, and reported.
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

TEST_CASE("Kinesis chaos: every packet to the endpoint vanishes mid-stream, then all arrive") {
  if (NetnsUnavailable()) return;
  Site site("partition");
  site.kinesis = Kinesis::InChaosNamespace(site.f.dir.File("kinesis-ns"));
  KinesisGone gone{site.kinesis};
  REQUIRE(site.kinesis.Start() == 0);
  site.kinesis.CreateStream(site.stream, 2);
  // The lowest request timeout: a request that gets no answer fails after 2 s instead of 10.
  site.Configure(site.kinesis.Endpoint(), "request_timeout_ms = 2000\n");
  site.Start();
  RequireConnected(site);
  auto fleet = site.StartFleet(8000, 1000, 20);
  REQUIRE_MESSAGE(WaitFor([&] { return site.Cursor().cursor >= 1000; }, 60s, 5ms), site.f.Log());

  // A partition: the link stays up and the namespace drops every packet, so nothing refuses
  // sluice's requests; they hang until request_timeout_ms.
  LinkFault link;
  const size_t log_before = site.f.Log().size();
  const auto t_cut = std::chrono::steady_clock::now();
  link.Apply("blackhole");
  REQUIRE_MESSAGE(WaitFor([&] { return site.Metric("sluice_upstream_connected") == 0; }, 30s, 20ms),
                  site.f.Log());
  const double noticed_s = Seconds(std::chrono::steady_clock::now() - t_cut);
  const HttpResponse ready = HttpGet(site.metrics_port, "/readyz");
  CHECK(ready.status == 503);
  CHECK_MESSAGE(ready.body.find(site.kinesis.Endpoint() + " not reachable") != std::string::npos,
                ready.body);
  // Waiting on requests that time out is not a wedged forwarder.
  CHECK(HttpGet(site.metrics_port, "/healthz").status == 200);
  {
    // The request timed out (libcurl's "Operation timed out after 2000 milliseconds").
    const std::string log = site.f.Log();
    const size_t at = log.find("timed out", log_before);
    REQUIRE_MESSAGE(at != std::string::npos, log);
    std::printf("  sluice noticed after %.1f s: %s\n", noticed_s, LineAt(log, at).c_str());
  }
  // The log keeps taking the fleet's events while nothing is confirmed.
  const uint64_t held = site.HeldWhileCut(kUpstream, 1000);
  CHECK(site.Metric("sluice_upstream_connected") == 0);

  link.Heal();
  const uint64_t sent = site.DrainAfterHeal(*fleet, held, std::chrono::steady_clock::now());
  CHECK(site.Metric("sluice_upstream_connected") == 1);
  CHECK(HttpGet(site.metrics_port, "/readyz").status == 200);
  // A request whose answer the partition swallowed may have been stored: duplicates are allowed.
  const Figures v = site.Verify("");
  CheckArrivedInOrder(v, sent);
  CHECK(site.f.process->Terminate() == 0);
}

}  // namespace
}  // namespace sluice::itest
