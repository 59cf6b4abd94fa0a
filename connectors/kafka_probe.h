// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "connectors/kafka_sink.h"
#include "connectors/probe_finding.h"

namespace sluice::connectors {

// The transactional id `sluice check-config --probe` initialises for an exactly-once upstream:
// TransactionalId(options) + ".probe". Not the daemon's own, since initialising that one would
// fence a running sluice (it would stop with exit code 3); and no daemon's id can end in
// ".probe", as an upstream's name holds no '.'. An ACL on the prefix TransactionalId(options)
// covers both.
std::string ProbeTransactionalId(const KafkaSinkOptions& options);

// `sluice check-config --probe` for one Kafka upstream. Its producer is made as the sink makes its
// own, from the user's properties and ProducerSettings (the same brokers, security protocol, SASL
// and TLS settings, client.id), with three changes that keep it from touching anything:
// allow.auto.create.topics = false (asking about a missing topic must not create it),
// statistics every 100 ms (librdkafka shows the idempotent producer's id only there), and under
// delivery = "exactly-once" ProbeTransactionalId. It never produces a record.
//
// Findings, in order: the brokers (reachable, authentication and TLS accepted: a metadata answer;
// a SASL or TLS refusal fails at once, anything else once `timeout` passed, with librdkafka's last
// error); a warning for each verification the properties switch off; one per topic in `topics`
// (exists; missing, with whether the broker creates topics, read from its configuration when the
// principal may; not authorized); then the right to produce: the idempotent producer's id granted
// (at-least-once) or the transactions initialised (exactly-once), plus the checkpoint topic.
// Whether the principal may WRITE to each topic cannot be learnt without producing (librdkafka 2.0
// has no authorized-operations API) and is not checked. Each step waits at most `timeout`.
// `where` names the table to fix ("[upstream.central]"). No property value is ever shown.
std::vector<ProbeFinding> ProbeKafka(const KafkaSinkOptions& options,
                                     const std::vector<std::string>& topics,
                                     const std::string& where, std::chrono::milliseconds timeout);

}  // namespace sluice::connectors
