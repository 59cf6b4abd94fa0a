// SPDX-License-Identifier: Apache-2.0

#include "connectors/amqp_probe.h"

#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "connectors/amqp_connection.h"

namespace sluice::connectors {

std::vector<ProbeFinding> ProbeRabbitmq(const AmqpSinkOptions& options,
                                        const std::vector<std::string>& targets,
                                        const std::string& where,
                                        std::chrono::milliseconds timeout) {
  using Verdict = ProbeFinding::Verdict;
  std::vector<ProbeFinding> findings;
  AmqpEndpoint endpoint = options.endpoint;
  endpoint.connect_timeout = std::min(endpoint.connect_timeout, timeout);
  std::unique_ptr<AmqpConnection> conn;
  if (Status s = AmqpConnection::Open(endpoint, /*confirm=*/false, &conn); !s.ok()) {
    findings.push_back({Verdict::kFail, fmt::format("{} ({})", s.message(), where)});
    return findings;
  }
  findings.push_back({Verdict::kOk, fmt::format("{}: logged in as '{}' on vhost '{}'",
                                                conn->where(), endpoint.username, endpoint.vhost)});
  AmqpAddress address;
  if (ParseAmqpUrl(endpoint.url, &address).ok() && address.tls && !endpoint.tls_verify) {
    findings.push_back({Verdict::kWarn, fmt::format("{}: tls.verify = false: the broker's "
                                                    "certificate and host name are not checked",
                                                    where)});
  }
  if (!options.exchange.empty()) {
    const Status s = conn->CheckExchange(options.exchange);
    findings.push_back(
        s.ok()
            ? ProbeFinding{Verdict::kOk, "exchange '" + options.exchange + "' exists"}
            : ProbeFinding{Verdict::kFail, fmt::format("{}; declare it ({})", s.message(), where)});
    return findings;
  }
  for (const std::string& target : targets) {
    if (target.find('{') != std::string::npos) continue;  // known per event only
    const Status s = conn->CheckQueue(target);
    findings.push_back(
        s.ok() ? ProbeFinding{Verdict::kOk, "stream or queue '" + target + "' exists"}
               : ProbeFinding{Verdict::kFail,
                              fmt::format("{}; declare the stream '{}' (x-queue-type = stream) "
                                          "before sluice publishes to it",
                                          s.message(), target)});
  }
  return findings;
}

}  // namespace sluice::connectors
