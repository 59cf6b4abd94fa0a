// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/log_throttle.h"

namespace sluice::connectors {

// The refusals of one upstream that an operator must fix, each under what it refuses (a topic, a
// stream, a routing key; "" for the whole upstream): what a sink's HoldReason() says and Holds()
// counts, with one error line per refusal, at most every 30 s, telling that nothing is lost.
//
// Thread-safe: the forwarder's thread adds and erases, any thread reads.
class HoldList {
 public:
  // The log line is "<prefix><reason>; the events stay in the log and are sent again, in order,
  // once <accepter> accepts them (...)".
  HoldList(std::string prefix, std::string accepter, std::shared_ptr<spdlog::logger> log);

  // Records `reason` for `key` (replacing an earlier one) and logs it. A key not held before
  // counts as a new hold.
  void Add(const std::string& key, const std::string& reason);
  void Erase(const std::string& key);
  void Clear();

  // Every current reason, joined by "; "; empty while nothing is held.
  std::string Reason() const;
  // The keys held now, in order.
  std::vector<std::string> Keys() const;
  // Holds begun since the list was made.
  uint64_t Count() const { return count_.load(); }
  // Nothing is held now. Lock-free: a sink asks on every delivery whether there is a hold to clear.
  bool Empty() const { return size_.load(std::memory_order_relaxed) == 0; }

 private:
  const std::string prefix_;
  const std::string accepter_;
  const std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> holds_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> count_{0};
  std::atomic<size_t> size_{0};  // holds_.size(), written under mu_
  LogThrottle log_throttle_{std::chrono::seconds(30)};
};

}  // namespace sluice::connectors
