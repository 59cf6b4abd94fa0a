// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "gateway/config.h"

namespace sluice::gateway {

// How many checks of each verdict a probe printed.
struct ProbeCounts {
  int ok = 0;
  int warned = 0;
  int failed = 0;
};

// `sluice check-config --probe`: checks, before going live, that a valid configuration works
// against the real brokers, with its credentials and TLS settings: the MQTT broker (connection,
// authentication, TLS, every route's subscription: connectors::ProbeMqttBroker), each Kafka
// upstream (brokers, SASL and TLS, each route's topic, the right to produce:
// connectors::ProbeKafka) and each MQTT upstream (connection, authentication, TLS). It connects
// as the daemon does but never disturbs a running one: its own MQTT client ids and clean session,
// its own transactional ids, no record and no message sent, no topic created (docs/operations.md,
// "Before going live: the probe").
//
// The brokers are probed at once, each on a thread of its own; each check waits at most
// `timeout`. One line per check goes to `out`, in configuration order ("ok", "warn" or "FAIL",
// what was checked, what was found), then a summary. Not thread-safe; one Run per object.
class ProbeCommand {
 public:
  // `config` and `out` must outlive the object.
  ProbeCommand(const Config& config, std::chrono::milliseconds timeout, std::ostream& out);

  ProbeCounts Run();

 private:
  const Config& config_;
  const std::chrono::milliseconds timeout_;
  std::ostream& out_;
};

// What the upstream `name` sends to: each route's target on it (a Kafka topic, a Kinesis stream, a
// RabbitMQ routing key or its template), in route order, each once, and the gap topic, stream or
// routing key when storage.overflow = "drop-oldest" (the only policy that makes gap records).
std::vector<std::string> TargetsOf(const Config& config, const std::string& name);

}  // namespace sluice::gateway
