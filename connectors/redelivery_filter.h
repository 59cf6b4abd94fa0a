// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/event.h"

namespace sluice::connectors {

// Recognises a QoS 1/2 message that the MQTT broker delivers again (DUP set, same packet id)
// although sluice had already stored it: the process died, or the connection broke, after the
// commit and before the broker read the PUBACK. When and why this is sound is in
// docs/ARCHITECTURE.md, "Redeliveries from the broker".
//
// It remembers the last `window` stored messages by packet id, payload length and a SHA-256 of
// the topic and payload (neither is kept), each with the connection it came on. A message matches
// an entry only if it has DUP set, was stored on an earlier connection (or before this process
// started: Load), and has the same packet id, topic and payload. A matched entry is consumed: a
// further DUP copy is stored again (at worst a duplicate, never a loss; see the architecture page
// for why).
//
// Thread-safe: Paho's callback thread stores and matches, the connector thread starts
// connections.
class RedeliveryFilter {
 public:
  explicit RedeliveryFilter(size_t window);
  ~RedeliveryFilter();
  RedeliveryFilter(const RedeliveryFilter&) = delete;
  RedeliveryFilter& operator=(const RedeliveryFilter&) = delete;

  // The events the log stored before this process started, oldest first
  // (EventLog::RecentIngress); events without a packet id are ignored.
  void Load(const std::vector<storage::Event>& stored);
  // A connection is about to be made: what was stored so far came on an earlier one. Called
  // before CONNECT, so that no message of the new connection can be stored under the old one.
  void NewConnection();
  // A message with this packet id, topic and payload is in the log.
  void Stored(uint16_t packet_id, std::string_view topic, std::string_view payload);
  // True if a message delivered with DUP is one stored on an earlier connection; the entry is
  // consumed. Packet id 0 (QoS 0) never matches.
  bool IsRedelivery(uint16_t packet_id, std::string_view topic, std::string_view payload);

  size_t size() const;  // entries remembered, consumed ones included

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    uint16_t packet_id = 0;
    uint64_t connection = 0;  // 0: stored before this process started
    size_t payload_bytes = 0;
    Digest digest{};
    bool consumed = false;
  };
  // REQUIRES: mu_ held (the context is reused: every message is hashed once, in Paho's callback).
  Digest HashLocked(std::string_view topic, std::string_view payload);
  void AddLocked(uint16_t packet_id, std::string_view topic, std::string_view payload);

  const size_t window_;
  // Fetched and made once: OpenSSL's implicit fetch and a context per message cost three times
  // the hash of a 100-byte payload.
  EVP_MD* const md_;
  mutable std::mutex mu_;
  EVP_MD_CTX* const ctx_;      // GUARDED_BY(mu_)
  std::deque<Entry> entries_;  // GUARDED_BY(mu_) oldest first, at most window_
  uint64_t connection_ = 0;    // GUARDED_BY(mu_) the current connection, counted from 1
};

}  // namespace sluice::connectors
