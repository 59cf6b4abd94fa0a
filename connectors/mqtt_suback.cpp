// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_suback.h"

#include <fmt/format.h>
#include <mqtt/exception.h>

namespace sluice::connectors {

namespace {
// MQTT 5 section 3.9.3; in MQTT 3.1.1 only 0x80 exists.
const char* FailureName(int code) {
  switch (code) {
    case 0x80:
      return "unspecified error";
    case 0x83:
      return "implementation specific error";
    case 0x87:
      return "not authorized";
    case 0x8F:
      return "topic filter invalid";
    case 0x91:
      return "packet identifier in use";
    case 0x97:
      return "quota exceeded";
    case 0x9E:
      return "shared subscriptions not supported";
    case 0xA1:
      return "subscription identifiers not supported";
    case 0xA2:
      return "wildcard subscriptions not supported";
    default:
      return "refused";
  }
}
}  // namespace

SubackVerdict JudgeSuback(const std::string& filter, int requested_qos, int return_code) {
  SubackVerdict v;
  if (return_code >= 0x80 || return_code < 0) {
    v.kind = SubackVerdict::Kind::kRefused;
    v.problem = fmt::format("the MQTT broker refused the subscription to '{}' (0x{:02X} {})",
                            filter, return_code, FailureName(return_code));
  } else if (return_code > 2) {
    // Neither a QoS nor a failure code: a broker that breaks the protocol has not subscribed us
    // in any way sluice can rely on.
    v.kind = SubackVerdict::Kind::kRefused;
    v.problem = fmt::format(
        "the MQTT broker answered the subscription to '{}' with an invalid code 0x{:02X}", filter,
        return_code);
  } else if (return_code < requested_qos) {
    v.kind = SubackVerdict::Kind::kDowngraded;
    v.problem = fmt::format(
        "the MQTT broker granted '{}' at QoS {} instead of {}: its events may be lost before "
        "they are logged",
        filter, return_code, requested_qos);
  }
  return v;
}

SubackWait AwaitSubackCode(const mqtt::token_ptr& token,
                           std::chrono::steady_clock::time_point deadline, int* code,
                           std::string* error) {
  *code = -1;
  try {
    if (!token->wait_until(deadline)) return SubackWait::kTimedOut;
    const mqtt::subscribe_response response = token->get_subscribe_response();
    if (!response.get_reason_codes().empty()) *code = response.get_reason_codes().front();
    return SubackWait::kAnswered;
  } catch (const mqtt::exception& e) {
    if (e.get_reason_code() >= 0x80) {
      *code = e.get_reason_code();
      return SubackWait::kAnswered;
    }
    if (e.get_return_code() == 0x80) {
      *code = 0x80;
      return SubackWait::kAnswered;
    }
    *error = e.what();
  } catch (const std::exception& e) {
    *error = e.what();
  }
  return SubackWait::kFailed;
}

}  // namespace sluice::connectors
