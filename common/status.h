// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace sluice {

// The result of an operation inside the core, in the manner of LevelDB's Status: cheap when OK,
// and when not, a kind plus a message that carries its own context (file, key, broker).
// Exceptions are kept to the edges (CLI, third-party callbacks never let one escape).
class Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // the caller passed something that can never succeed
    kIoError,          // the operating system or SQLite failed an I/O operation
    kCorruption,       // data on disk is damaged or is not what it claims to be
    kFull,             // a configured bound (bytes, queue) or the disk is full
    kUnavailable,      // a peer (broker) cannot be reached right now: try again later
    kNotFound,
    kShutdown,  // the component is stopping and took nothing
    kFenced,    // another instance took over this one's identity upstream: stop, do not retry
  };

  Status() = default;

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string_view msg) { return {Code::kInvalidArgument, msg}; }
  static Status IoError(std::string_view msg) { return {Code::kIoError, msg}; }
  static Status Corruption(std::string_view msg) { return {Code::kCorruption, msg}; }
  static Status Full(std::string_view msg) { return {Code::kFull, msg}; }
  static Status Unavailable(std::string_view msg) { return {Code::kUnavailable, msg}; }
  static Status NotFound(std::string_view msg) { return {Code::kNotFound, msg}; }
  static Status Shutdown(std::string_view msg) { return {Code::kShutdown, msg}; }
  static Status Fenced(std::string_view msg) { return {Code::kFenced, msg}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  bool IsFull() const { return code_ == Code::kFull; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsShutdown() const { return code_ == Code::kShutdown; }

  const std::string& message() const;
  std::string ToString() const;
  // The same status with "context: " before its message (OK stays OK).
  Status WithContext(std::string_view context) const {
    if (ok()) return *this;
    std::string m(context);
    m += ": ";
    m += message();
    return Status(code_, m);
  }

 private:
  Status(Code code, std::string_view msg)
      : code_(code), msg_(std::make_shared<const std::string>(msg)) {}

  Code code_ = Code::kOk;
  // Shared so that copying a Status on the OK path and on the error path stays cheap.
  std::shared_ptr<const std::string> msg_;
};

}  // namespace sluice
