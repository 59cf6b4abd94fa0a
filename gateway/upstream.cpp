// SPDX-License-Identifier: Apache-2.0

#include "gateway/upstream.h"

#include <utility>

#include "connectors/amqp_sink.h"
#include "connectors/kafka_sink.h"
#include "connectors/kinesis_sink.h"
#include "connectors/mqtt_sink.h"
#include "connectors/route_cache.h"

namespace sluice::gateway {

Status RoutesFor(const std::string& upstream, const std::vector<RouteConfig>& routes,
                 std::vector<connectors::Route>* out) {
  out->clear();
  for (const RouteConfig& rc : routes) {
    connectors::Route r;
    r.mqtt_filter = rc.mqtt_filter;
    r.qos = rc.qos;
    r.forward_retain = rc.forward_retain;
    for (const RouteTarget& t : rc.targets) {
      if (t.upstream == upstream) r.upstream_topic = t.target;
    }
    Status s = connectors::KeyPattern::Parse(rc.key_pattern, &r.key);
    if (!s.ok()) return s;
    out->push_back(std::move(r));
  }
  return Status::Ok();
}

Upstream::Upstream(UpstreamConfig config, const UpstreamEnvironment& env)
    : config_(std::move(config)),
      env_(env),
      kinesis_endpoint_(config_.kinesis.endpoint.empty()
                            ? connectors::KinesisSink::DefaultEndpoint(config_.kinesis.region)
                            : config_.kinesis.endpoint) {}

Upstream::~Upstream() {
  Stop();
}

Status Upstream::Create(const UpstreamConfig& config, const std::vector<RouteConfig>& routes,
                        const UpstreamEnvironment& env, std::unique_ptr<Upstream>* out) {
  std::unique_ptr<Upstream> u(new Upstream(config, env));
  std::vector<connectors::Route> mine;
  Status s = RoutesFor(config.name, routes, &mine);
  if (!s.ok()) return s;
  u->router_ = std::make_unique<connectors::Router>(std::move(mine));
  s = u->MakeSink(false, &u->sink_);
  if (!s.ok()) return s;
  u->forwarder_ =
      std::make_unique<Forwarder>(env.log, u->sink_.get(), u->MakeForwarderOptions(), env.logger);
  *out = std::move(u);
  return Status::Ok();
}

const std::string& Upstream::endpoint() const {
  switch (config_.kind) {
    case UpstreamKind::kKafka:
      return config_.kafka.brokers;
    case UpstreamKind::kKinesis:
      return kinesis_endpoint_;
    case UpstreamKind::kRabbitmq:
      return config_.rabbitmq.endpoint.url;
    case UpstreamKind::kMqtt:
      break;
  }
  return config_.mqtt.connection.url;
}

Status Upstream::MakeSink(bool replay, std::unique_ptr<connectors::Sink>* out) const {
  if (config_.kind == UpstreamKind::kKafka) {
    connectors::KafkaSinkOptions o = config_.kafka;
    o.log_id = env_.log_id;
    storage::EventLog* const log = env_.log;
    o.log_last_seq = [log] { return log->Stats().last_seq; };
    // A replay sends events again on purpose: no transaction and no checkpoint, so that it never
    // fences the live producer nor moves the live position.
    if (replay) o.delivery = connectors::KafkaDelivery::kAtLeastOnce;
    std::unique_ptr<connectors::KafkaSink> sink;
    Status s = connectors::KafkaSink::Create(o, router_.get(), env_.clock, env_.logger, &sink);
    if (!s.ok()) return s;
    *out = std::move(sink);
    return Status::Ok();
  }
  if (config_.kind == UpstreamKind::kKinesis) {
    connectors::KinesisSinkOptions o = config_.kinesis;
    o.log_id = env_.log_id;
    // A replay has a client of its own: PutRecords carries no session, so nothing else differs.
    if (replay) o.name += " (replay)";
    std::unique_ptr<connectors::KinesisSink> sink;
    Status s =
        connectors::KinesisSink::Create(o, router_.get(), env_.clock, env_.logger, nullptr, &sink);
    if (!s.ok()) return s;
    *out = std::move(sink);
    return Status::Ok();
  }
  if (config_.kind == UpstreamKind::kRabbitmq) {
    connectors::AmqpSinkOptions o = config_.rabbitmq;
    o.log_id = env_.log_id;
    // A replay publishes on a connection of its own, so that its confirms and channel errors
    // never touch the live window (rabbitmq-c connections are not shared between threads).
    if (replay) o.name += " (replay)";
    std::unique_ptr<connectors::AmqpSink> sink;
    Status s = connectors::AmqpSink::Create(o, router_.get(), env_.clock, env_.logger, &sink);
    if (!s.ok()) return s;
    *out = std::move(sink);
    return Status::Ok();
  }
  connectors::MqttSinkOptions o = config_.mqtt;
  o.log_id = env_.log_id;
  if (replay) {
    // A session of its own: the live connection's session and in-flight window stay untouched.
    o.connection.client_id += "-replay";
    o.name += " (replay)";
  }
  std::unique_ptr<connectors::MqttSink> sink;
  Status s = connectors::MqttSink::Create(o, router_.get(), env_.clock, env_.logger, &sink);
  if (!s.ok()) return s;
  *out = std::move(sink);
  return Status::Ok();
}

ForwarderOptions Upstream::MakeForwarderOptions() const {
  ForwarderOptions fo;
  fo.cursor = config_.name;
  if (config_.kind == UpstreamKind::kKafka) {
    fo.max_in_flight = static_cast<size_t>(config_.kafka.max_in_flight);
  } else if (config_.kind == UpstreamKind::kKinesis) {
    fo.max_in_flight = config_.kinesis.max_pending;
  } else if (config_.kind == UpstreamKind::kRabbitmq) {
    fo.max_in_flight = config_.rabbitmq.max_in_flight;
  } else {
    fo.max_in_flight = config_.mqtt.max_in_flight;
  }
  fo.failpoint = env_.failpoint;
  fo.clock = env_.clock;
  fo.forward_latency_seconds = env_.forward_latency_seconds;
  // An event no route matches (the routes changed since it was logged) goes to the sink, which
  // refuses it: a dead letter an operator can see and replay, never a silent skip. The cache is the
  // lambda's own, so each copy of the options (one per forwarder, one thread each) has its own.
  fo.takes = [cache = connectors::RouteCache(router_.get())](const storage::Event& e) mutable {
    const connectors::Route* r = cache.Find(e.topic).route;
    return r == nullptr || !r->upstream_topic.empty();
  };
  return fo;
}

void Upstream::Start() {
  forwarder_->Start();
}

void Upstream::Stop() {
  {
    std::lock_guard<std::mutex> lock(replay_mu_);
    if (replay_forwarder_) replay_forwarder_->Stop();
    replay_forwarder_.reset();
    replay_sink_.reset();
    replay_id_ = 0;
  }
  if (forwarder_) forwarder_->Stop();
}

bool Upstream::StartReplay(const storage::ReplayRequest& request) {
  std::lock_guard<std::mutex> lock(replay_mu_);
  if (replay_forwarder_) return false;
  std::unique_ptr<connectors::Sink> sink;
  Status s = MakeSink(true, &sink);
  if (!s.ok()) {
    env_.logger->error("replay {} to {}: cannot open a second connection: {}", request.id,
                       config_.name, s.ToString());
    return false;
  }
  ForwarderOptions fo = MakeForwarderOptions();
  fo.replay = {request.id, request.from_seq, request.through_seq, request.position};
  fo.failpoint = nullptr;
  fo.forward_latency_seconds = nullptr;  // a replay's latency is its events' age, not a delay
  replay_sink_ = std::move(sink);
  replay_forwarder_ =
      std::make_unique<Forwarder>(env_.log, replay_sink_.get(), std::move(fo), env_.logger);
  replay_id_ = request.id;
  env_.logger->info("replay {} to {}: sending seq {} to {} again (from {})", request.id,
                    config_.name, request.from_seq, request.through_seq,
                    std::max(request.position + 1, request.from_seq));
  replay_forwarder_->Start();
  return true;
}

bool Upstream::ReapReplay() {
  std::lock_guard<std::mutex> lock(replay_mu_);
  if (!replay_forwarder_) return false;
  const ForwarderStats st = replay_forwarder_->Stats();
  const Status err = replay_forwarder_->error();
  if (!st.finished && err.ok()) return true;
  if (!err.ok()) {
    // Its position is stored; the request stays pending and is taken up again.
    env_.logger->error("replay {} to {} stopped: {}; it resumes from seq {}", replay_id_,
                       config_.name, err.ToString(), st.acked_through + 1);
  }
  replay_forwarder_->Stop();
  replay_forwarder_.reset();
  replay_sink_.reset();
  replay_id_ = 0;
  return false;
}

int64_t Upstream::ReplayId() const {
  std::lock_guard<std::mutex> lock(replay_mu_);
  return replay_id_;
}

}  // namespace sluice::gateway
