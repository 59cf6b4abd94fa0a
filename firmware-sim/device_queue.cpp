// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/device_queue.h"

#include <algorithm>
#include <vector>

namespace sluice::sim {

namespace {
bool Older(const OutgoingEvent& a, const OutgoingEvent& b) {
  return a.boot != b.boot ? a.boot < b.boot : a.seq < b.seq;
}
}  // namespace

DeviceQueue::DeviceQueue(size_t capacity, size_t window) : capacity_(capacity), window_(window) {}

void DeviceQueue::Push(OutgoingEvent e) {
  if (waiting_.size() >= capacity_) {
    Drop(waiting_.front());
    ++dropped_overflow_;
    waiting_.pop_front();
  }
  waiting_.push_back(std::move(e));
}

const OutgoingEvent& DeviceQueue::StartSend(uint64_t tag) {
  auto it = in_flight_.emplace(tag, std::move(waiting_.front())).first;
  waiting_.pop_front();
  return it->second;
}

bool DeviceQueue::Confirm(uint64_t tag) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  in_flight_.erase(it);
  ++sent_;
  return true;
}

bool DeviceQueue::Fail(uint64_t tag, uint32_t current_boot) {
  auto it = in_flight_.find(tag);
  if (it == in_flight_.end()) return false;
  OutgoingEvent e = std::move(it->second);
  in_flight_.erase(it);
  if (e.boot == current_boot) {
    Requeue(std::move(e));
  } else {
    Drop(e);
  }
  return true;
}

void DeviceQueue::FailAllInFlight(uint32_t current_boot) {
  std::vector<uint64_t> tags;
  tags.reserve(in_flight_.size());
  for (const auto& [tag, e] : in_flight_) tags.push_back(tag);
  for (uint64_t tag : tags) Fail(tag, current_boot);
}

void DeviceQueue::DropWaiting() {
  for (const OutgoingEvent& e : waiting_) Drop(e);
  waiting_.clear();
}

void DeviceQueue::DropAll() {
  DropWaiting();
  for (const auto& [tag, e] : in_flight_) Drop(e);
  in_flight_.clear();
}

void DeviceQueue::Drop(const OutgoingEvent& e) {
  dropped_[e.boot].Add(e.seq);
  ++dropped_total_;
}

void DeviceQueue::Requeue(OutgoingEvent e) {
  auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), e, Older);
  waiting_.insert(pos, std::move(e));
  if (waiting_.size() > capacity_) {
    Drop(waiting_.front());
    ++dropped_overflow_;
    waiting_.pop_front();
  }
}

}  // namespace sluice::sim
