// SPDX-License-Identifier: Apache-2.0

#include "gateway/probe_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <future>
#include <string>
#include <utility>
#include <vector>

#include "connectors/amqp_probe.h"
#include "connectors/kafka_probe.h"
#include "connectors/kinesis_probe.h"
#include "connectors/mqtt_probe.h"

namespace sluice::gateway {

namespace {

using connectors::ProbeFinding;

// What one thread probes: one broker (or cluster), named as the output names it.
struct Target {
  std::string subject;  // "mqtt", "upstream central (kafka)"
  std::future<std::vector<ProbeFinding>> findings;
};

const char* Word(ProbeFinding::Verdict v) {
  switch (v) {
    case ProbeFinding::Verdict::kOk:
      return "ok";
    case ProbeFinding::Verdict::kWarn:
      return "warn";
    case ProbeFinding::Verdict::kFail:
      return "FAIL";
  }
  return "?";
}

}  // namespace

std::vector<std::string> TargetsOf(const Config& config, const std::string& name) {
  std::vector<std::string> topics;
  auto add = [&topics](const std::string& t) {
    if (std::find(topics.begin(), topics.end(), t) == topics.end()) topics.push_back(t);
  };
  for (const RouteConfig& route : config.routes) {
    for (const RouteTarget& target : route.targets) {
      if (target.upstream == name) add(target.target);
    }
  }
  const UpstreamConfig* upstream = FindUpstream(config, name);
  if (upstream != nullptr && config.storage.overflow == storage::Overflow::kDropOldest) {
    if (upstream->kind == UpstreamKind::kKafka) add(upstream->kafka.gap_topic);
    if (upstream->kind == UpstreamKind::kKinesis) add(upstream->kinesis.gap_stream);
    if (upstream->kind == UpstreamKind::kRabbitmq) add(upstream->rabbitmq.gap_routing_key);
  }
  return topics;
}

ProbeCommand::ProbeCommand(const Config& config, std::chrono::milliseconds timeout,
                           std::ostream& out)
    : config_(config), timeout_(timeout), out_(out) {}

ProbeCounts ProbeCommand::Run() {
  std::vector<Target> targets;
  const auto timeout = timeout_;
  // Each task copies what it reads, so that no thread shares anything with another.
  targets.push_back(
      {"mqtt",
       std::async(std::launch::async, [connection = config_.mqtt.connection,
                                       subscriptions = config_.mqtt.subscriptions, timeout] {
         return connectors::ProbeMqttBroker(connection, subscriptions, "[mqtt]", timeout);
       })});
  for (const UpstreamConfig& u : config_.upstreams) {
    const std::string subject = fmt::format("upstream {} ({})", u.name, ToString(u.kind));
    // A file in the old form has its one Kafka upstream in [kafka].
    const std::string where = u.kind == UpstreamKind::kKafka && !config_.legacy_rewrite.empty()
                                  ? "[kafka]"
                                  : "[upstream." + u.name + "]";
    if (u.kind == UpstreamKind::kKafka) {
      targets.push_back(
          {subject,
           std::async(std::launch::async,
                      [options = u.kafka, topics = TargetsOf(config_, u.name), where, timeout] {
                        return connectors::ProbeKafka(options, topics, where, timeout);
                      })});
    } else if (u.kind == UpstreamKind::kKinesis) {
      targets.push_back(
          {subject,
           std::async(std::launch::async,
                      [options = u.kinesis, streams = TargetsOf(config_, u.name), where, timeout] {
                        return connectors::ProbeKinesis(options, streams, where, timeout);
                      })});
    } else if (u.kind == UpstreamKind::kRabbitmq) {
      targets.push_back({subject, std::async(std::launch::async, [options = u.rabbitmq,
                                                                  keys = TargetsOf(config_, u.name),
                                                                  where, timeout] {
                           return connectors::ProbeRabbitmq(options, keys, where, timeout);
                         })});
    } else {
      targets.push_back({subject, std::async(std::launch::async, [connection = u.mqtt.connection,
                                                                  where, timeout] {
                           return connectors::ProbeMqttBroker(connection, {}, where, timeout);
                         })});
    }
  }

  ProbeCounts counts;
  for (Target& t : targets) {
    for (const ProbeFinding& f : t.findings.get()) {
      switch (f.verdict) {
        case ProbeFinding::Verdict::kOk:
          counts.ok++;
          break;
        case ProbeFinding::Verdict::kWarn:
          counts.warned++;
          break;
        case ProbeFinding::Verdict::kFail:
          counts.failed++;
          break;
      }
      out_ << fmt::format("{:<5} {}: {}\n", Word(f.verdict), t.subject, f.text);
    }
    out_.flush();
  }
  out_ << fmt::format("probe: {} ok, {} warning(s), {} failed (each check waited at most {:g} s)\n",
                      counts.ok, counts.warned, counts.failed,
                      static_cast<double>(timeout_.count()) / 1000.0);
  out_.flush();
  return counts;
}

}  // namespace sluice::gateway
