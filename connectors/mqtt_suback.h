// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/token.h>

#include <chrono>
#include <string>

namespace sluice::connectors {

// What the broker's SUBACK said about one topic filter. The return code is the granted QoS
// (0..2) or a failure: 0x80 in MQTT 3.1.1, a reason code >= 0x80 in MQTT 5 (e.g. 0x87 "not
// authorized").
struct SubackVerdict {
  enum class Kind {
    kGranted,     // granted at the requested QoS
    kDowngraded,  // granted below the requested QoS: events may be lost before they are logged
    kRefused,     // no subscription: nothing published on the filter reaches sluice
  };
  Kind kind = Kind::kGranted;
  // For kDowngraded and kRefused: names the filter, what was asked and what the broker answered,
  // fit for a log line and the /readyz reason.
  std::string problem;
};

// Judges one filter's SUBACK return code against the QoS sluice asked for.
SubackVerdict JudgeSuback(const std::string& filter, int requested_qos, int return_code);

// How waiting for a SUBACK ended.
enum class SubackWait {
  kAnswered,  // *code holds the SUBACK's return code
  kTimedOut,  // no SUBACK by the deadline
  kFailed,    // the SUBSCRIBE failed otherwise (the connection was lost): *error says how
};

// Waits until `deadline` for the SUBACK of a one-filter SUBSCRIBE and sets *code to its return
// code for JudgeSuback. Paho reports a refusal as a failed token: MQTT 5 with the reason code,
// MQTT 3.1.1 with return code 0x80; both count as answered.
SubackWait AwaitSubackCode(const mqtt::token_ptr& token,
                           std::chrono::steady_clock::time_point deadline, int* code,
                           std::string* error);

}  // namespace sluice::connectors
