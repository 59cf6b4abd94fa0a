// SPDX-License-Identifier: Apache-2.0

#include "connectors/hold_list.h"

#include <utility>

namespace sluice::connectors {

HoldList::HoldList(std::string prefix, std::string accepter, std::shared_ptr<spdlog::logger> log)
    : prefix_(std::move(prefix)), accepter_(std::move(accepter)), log_(std::move(log)) {}

void HoldList::Add(const std::string& key, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = holds_.insert_or_assign(key, reason);
    if (added) count_++;
    size_ = holds_.size();
  }
  uint64_t suppressed = 0;
  if (log_throttle_.Allow(&suppressed)) {
    log_->error(
        "{}{}; the events stay in the log and are sent again, in order, once {} accepts them ({} "
        "more since the last report)",
        prefix_, reason, accepter_, suppressed);
  }
}

void HoldList::Erase(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  holds_.erase(key);
  size_ = holds_.size();
}

void HoldList::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  holds_.clear();
  size_ = 0;
}

std::string HoldList::Reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string reason;
  for (const auto& [key, r] : holds_) reason += (reason.empty() ? "" : "; ") + r;
  return reason;
}

std::vector<std::string> HoldList::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  for (const auto& [key, r] : holds_) keys.push_back(key);
  return keys;
}

}  // namespace sluice::connectors
