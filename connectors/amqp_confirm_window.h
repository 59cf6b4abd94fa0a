// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "connectors/sink.h"

namespace sluice::connectors {

// The publishes on one AMQP channel in confirm mode (confirm.select) that await the broker's
// basic.ack or basic.nack: delivery tag -> sluice seq. RabbitMQ numbers a channel's publishes 1,
// 2, 3... from confirm.select on, and answers each once, with `multiple` covering every tag up to
// the one named; a mandatory publish that no queue took comes back first as basic.return (which
// names no tag: the sink finds the publish by the seq it put in the message id).
//
// It also knows which ordering keys have a publish awaiting its confirm: the sink sends at most
// one per key (docs/ARCHITECTURE.md, "The RabbitMQ upstream"), because a broker may nack one
// publish and confirm the next (a queue at its x-max-length with x-overflow = reject-publish takes
// the next one once a consumer made room), and nothing can take a confirmed message back.
//
// Pure bookkeeping, no I/O, so that the tests can play a broker's answers to it. A new channel
// starts a new window (Reset): tags restart at 1.
//
// Thread-safety: none; the sink's forwarder thread owns it.
class AmqpConfirmWindow {
 public:
  // Why a publish was returned (basic.return), to be reported as a hold when its ack comes.
  struct Returned {
    uint16_t reply_code = 0;  // 312 NO_ROUTE, 313 NO_CONSUMERS
    std::string reply_text;
    std::string exchange;
    std::string routing_key;
  };

  // Records a publish of `seq`, of the ordering key whose hash is `key`, and returns its
  // delivery tag. REQUIRES: !KeyInFlight(key).
  uint64_t Add(uint64_t seq, uint64_t key);

  // True while a publish of `key` awaits its confirm. Keys are hashes: two keys that collide only
  // wait for each other.
  bool KeyInFlight(uint64_t key) const { return keys_.contains(key); }

  // basic.return for the publish of `seq`; false if no such publish awaits its confirm.
  bool MarkReturned(uint64_t seq, Returned why);

  // basic.ack: appends a Delivery per confirmed publish (kDelivered, or kHold for one that was
  // returned, its `error` naming exchange and routing key and the fix via `explain`). Tags not
  // awaited (already settled) are ignored.
  template <typename Explain>
  void Ack(uint64_t tag, bool multiple, Explain explain, std::vector<Delivery>* out) {
    for (auto& [t, entry] : Take(tag, multiple)) {
      if (entry.returned) {
        out->push_back({entry.seq, Delivery::Outcome::kHold, explain(entry.why)});
      } else {
        out->push_back({entry.seq, Delivery::Outcome::kDelivered, {}});
      }
    }
  }

  // basic.nack: appends Delivery{seq, kHold, reason} per refused publish.
  void Nack(uint64_t tag, bool multiple, const std::string& reason, std::vector<Delivery>* out);

  // The channel or connection is gone: every publish still awaited is forgotten (its confirm can
  // no longer come) and the next publish is tag 1 again. Returns how many there were.
  size_t Reset();

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // The seq of the oldest publish still awaited. REQUIRES: !empty().
  uint64_t oldest_seq() const { return entries_.begin()->second.seq; }
  uint64_t next_tag() const { return next_tag_; }

 private:
  struct Entry {
    uint64_t seq = 0;
    uint64_t key = 0;
    bool returned = false;
    Returned why;
  };

  // Removes and returns the entries `tag` and `multiple` name, oldest first.
  std::vector<std::pair<uint64_t, Entry>> Take(uint64_t tag, bool multiple);

  uint64_t next_tag_ = 1;
  std::map<uint64_t, Entry> entries_;    // by delivery tag
  std::map<uint64_t, uint64_t> by_seq_;  // seq -> delivery tag, for basic.return
  std::unordered_set<uint64_t> keys_;    // keys of the entries
};

}  // namespace sluice::connectors
