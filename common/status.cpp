// SPDX-License-Identifier: Apache-2.0

#include "common/status.h"

namespace sluice {

namespace {
const char* CodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk:
      return "OK";
    case Status::Code::kInvalidArgument:
      return "invalid argument";
    case Status::Code::kIoError:
      return "I/O error";
    case Status::Code::kCorruption:
      return "corruption";
    case Status::Code::kFull:
      return "full";
    case Status::Code::kUnavailable:
      return "unavailable";
    case Status::Code::kNotFound:
      return "not found";
    case Status::Code::kShutdown:
      return "shutting down";
    case Status::Code::kFenced:
      return "fenced";
  }
  return "unknown";
}
}  // namespace

const std::string& Status::message() const {
  static const std::string kEmpty;
  return msg_ ? *msg_ : kEmpty;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message();
}

}  // namespace sluice
