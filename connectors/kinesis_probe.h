// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "connectors/kinesis_sink.h"
#include "connectors/probe_finding.h"

namespace sluice::connectors {

// `sluice check-config --probe` for a Kinesis upstream: asks the endpoint about each stream
// (DescribeStream), signed with the configured credentials, and says what the daemon would meet:
// an endpoint that does not answer or whose certificate is not trusted, refused credentials, a
// missing stream, a stream not yet ACTIVE. `where` ("[upstream.NAME]") prefixes the texts.
std::vector<ProbeFinding> ProbeKinesis(const KinesisSinkOptions& options,
                                       const std::vector<std::string>& streams,
                                       const std::string& where, std::chrono::milliseconds timeout);

}  // namespace sluice::connectors
