// SPDX-License-Identifier: Apache-2.0

#include "connectors/amqp_confirm_window.h"

#include <utility>

namespace sluice::connectors {

uint64_t AmqpConfirmWindow::Add(uint64_t seq, uint64_t key) {
  const uint64_t tag = next_tag_++;
  entries_[tag] = Entry{seq, key, false, {}};
  by_seq_[seq] = tag;
  keys_.insert(key);
  return tag;
}

bool AmqpConfirmWindow::MarkReturned(uint64_t seq, Returned why) {
  const auto it = by_seq_.find(seq);
  if (it == by_seq_.end()) return false;
  Entry& e = entries_.at(it->second);
  e.returned = true;
  e.why = std::move(why);
  return true;
}

std::vector<std::pair<uint64_t, AmqpConfirmWindow::Entry>> AmqpConfirmWindow::Take(uint64_t tag,
                                                                                   bool multiple) {
  std::vector<std::pair<uint64_t, Entry>> taken;
  if (multiple) {
    // Tag 0 with multiple set means every outstanding publish (AMQP 0-9-1, basic.ack).
    auto end = tag == 0 ? entries_.end() : entries_.upper_bound(tag);
    for (auto it = entries_.begin(); it != end;) {
      by_seq_.erase(it->second.seq);
      keys_.erase(it->second.key);
      taken.emplace_back(it->first, std::move(it->second));
      it = entries_.erase(it);
    }
  } else if (auto it = entries_.find(tag); it != entries_.end()) {
    by_seq_.erase(it->second.seq);
    keys_.erase(it->second.key);
    taken.emplace_back(it->first, std::move(it->second));
    entries_.erase(it);
  }
  return taken;
}

void AmqpConfirmWindow::Nack(uint64_t tag, bool multiple, const std::string& reason,
                             std::vector<Delivery>* out) {
  for (auto& [t, entry] : Take(tag, multiple)) {
    out->push_back({entry.seq, Delivery::Outcome::kHold, reason});
  }
}

size_t AmqpConfirmWindow::Reset() {
  const size_t n = entries_.size();
  entries_.clear();
  by_seq_.clear();
  keys_.clear();
  next_tag_ = 1;
  return n;
}

}  // namespace sluice::connectors
