// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "connectors/amqp_sink.h"
#include "connectors/probe_finding.h"

namespace sluice::connectors {

// `sluice check-config --probe` for one RabbitMQ upstream: connects and logs in as the sink does
// (the same URL, TLS settings, credentials and vhost; the connection attempt bounded by
// `timeout`), then checks without creating anything that `exchange` exists (when one is set) and,
// with the default exchange, that each routing key in `targets` without a placeholder names an
// existing queue or stream (passive queue.declare). Findings, in order: the broker, a warning when
// TLS verification is off, then one per exchange or target. `where` names the table to fix. No
// password is ever shown.
std::vector<ProbeFinding> ProbeRabbitmq(const AmqpSinkOptions& options,
                                        const std::vector<std::string>& targets,
                                        const std::string& where,
                                        std::chrono::milliseconds timeout);

}  // namespace sluice::connectors
