// SPDX-License-Identifier: Apache-2.0

#include "connectors/redelivery_filter.h"

#include <openssl/evp.h>

#include <stdexcept>

namespace sluice::connectors {

RedeliveryFilter::RedeliveryFilter(size_t window)
    : window_(window), md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
  if (md_ == nullptr || ctx_ == nullptr) {
    EVP_MD_free(md_);
    EVP_MD_CTX_free(ctx_);
    throw std::runtime_error("OpenSSL has no SHA-256 for the MQTT redelivery filter");
  }
}

RedeliveryFilter::~RedeliveryFilter() {
  EVP_MD_CTX_free(ctx_);
  EVP_MD_free(md_);
}

RedeliveryFilter::Digest RedeliveryFilter::HashLocked(std::string_view topic,
                                                      std::string_view payload) {
  Digest d{};
  unsigned int n = 0;
  // A cryptographic hash, so that two different messages of one packet id are never taken for
  // each other by chance (a 64-bit hash would make that rare, not impossible). The topic's length
  // goes first, so that no topic and payload pair reads as another.
  const uint64_t topic_bytes = topic.size();
  if (EVP_DigestInit_ex2(ctx_, md_, nullptr) != 1 ||
      EVP_DigestUpdate(ctx_, &topic_bytes, sizeof(topic_bytes)) != 1 ||
      EVP_DigestUpdate(ctx_, topic.data(), topic.size()) != 1 ||
      EVP_DigestUpdate(ctx_, payload.data(), payload.size()) != 1 ||
      EVP_DigestFinal_ex(ctx_, d.data(), &n) != 1 || n != d.size()) {
    throw std::runtime_error("SHA-256 of an MQTT message failed (OpenSSL EVP_Digest)");
  }
  return d;
}

void RedeliveryFilter::AddLocked(uint16_t packet_id, std::string_view topic,
                                 std::string_view payload) {
  if (window_ == 0 || packet_id == 0) return;
  Entry e;
  e.packet_id = packet_id;
  e.connection = connection_;
  e.payload_bytes = payload.size();
  e.digest = HashLocked(topic, payload);
  entries_.push_back(std::move(e));
  if (entries_.size() > window_) entries_.pop_front();
}

void RedeliveryFilter::Load(const std::vector<storage::Event>& stored) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const storage::Event& e : stored) AddLocked(e.packet_id, e.topic, e.payload);
}

void RedeliveryFilter::NewConnection() {
  std::lock_guard<std::mutex> lock(mu_);
  ++connection_;
}

void RedeliveryFilter::Stored(uint16_t packet_id, std::string_view topic,
                              std::string_view payload) {
  std::lock_guard<std::mutex> lock(mu_);
  AddLocked(packet_id, topic, payload);
}

bool RedeliveryFilter::IsRedelivery(uint16_t packet_id, std::string_view topic,
                                    std::string_view payload) {
  if (packet_id == 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  // The newest entry with the id decides: a broker never has two messages in flight with one
  // packet id, so an older entry with it was acknowledged before the id was used again, and a
  // redelivery can stand only for the newest.
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    Entry& e = *it;
    if (e.packet_id != packet_id) continue;
    // Stored on this connection: brokers resend only on a new connection (MQTT 3.1.1 4.4, MQTT 5
    // 4.4), so this DUP copy is not a resend of it; storing it again risks a duplicate only.
    if (e.consumed || e.connection >= connection_) return false;
    if (e.payload_bytes != payload.size() || e.digest != HashLocked(topic, payload)) return false;
    e.consumed = true;
    return true;
  }
  return false;
}

size_t RedeliveryFilter::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

}  // namespace sluice::connectors
