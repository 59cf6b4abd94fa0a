// SPDX-License-Identifier: Apache-2.0

// AmqpConfirmWindow against a fake channel: a scripted broker that numbers publishes as RabbitMQ
// does (1, 2, 3... per channel) and answers them with basic.ack / basic.nack (single or
// multiple) and basic.return, in the orders RabbitMQ may use.
#include "connectors/amqp_confirm_window.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using sluice::connectors::AmqpConfirmWindow;
using sluice::connectors::Delivery;
using Outcome = sluice::connectors::Delivery::Outcome;

namespace {

// One channel in confirm mode, as the broker sees it: the tags it assigned, in publish order.
struct FakeChannel {
  AmqpConfirmWindow window;
  std::vector<uint64_t> tags;  // tag of the i-th publish on this channel

  // Each publish has a key of its own unless one is given.
  void Publish(uint64_t seq, uint64_t key = 0) {
    tags.push_back(window.Add(seq, key == 0 ? 1000 + seq : key));
  }

  std::vector<Delivery> Ack(uint64_t tag, bool multiple) {
    std::vector<Delivery> out;
    window.Ack(
        tag, multiple,
        [](const AmqpConfirmWindow::Returned& why) { return "returned: " + why.routing_key; },
        &out);
    return out;
  }
  std::vector<Delivery> Nack(uint64_t tag, bool multiple) {
    std::vector<Delivery> out;
    window.Nack(tag, multiple, "queue full", &out);
    return out;
  }
};

std::vector<uint64_t> Seqs(const std::vector<Delivery>& ds, Outcome outcome) {
  std::vector<uint64_t> seqs;
  for (const Delivery& d : ds) {
    if (d.outcome == outcome) seqs.push_back(d.seq);
  }
  return seqs;
}

}  // namespace

TEST_CASE("AmqpConfirmWindow numbers a channel's publishes 1, 2, 3 and maps acks back to seqs") {
  FakeChannel ch;
  for (uint64_t seq : {101, 102, 105}) ch.Publish(seq);
  CHECK(ch.tags == std::vector<uint64_t>{1, 2, 3});
  CHECK(ch.window.size() == 3);
  CHECK(ch.window.oldest_seq() == 101);

  const auto first = ch.Ack(2, /*multiple=*/false);
  CHECK(Seqs(first, Outcome::kDelivered) == std::vector<uint64_t>{102});
  CHECK(ch.window.oldest_seq() == 101);
  // An answer to a tag already settled changes nothing.
  CHECK(ch.Ack(2, false).empty());
  CHECK(ch.window.size() == 2);
}

TEST_CASE("AmqpConfirmWindow: a multiple ack confirms every tag up to it, oldest first") {
  FakeChannel ch;
  for (uint64_t seq = 10; seq < 20; ++seq) ch.Publish(seq);
  const auto acked = ch.Ack(4, /*multiple=*/true);
  CHECK(Seqs(acked, Outcome::kDelivered) == std::vector<uint64_t>{10, 11, 12, 13});
  CHECK(ch.window.oldest_seq() == 14);
  // Out of order single acks, then a multiple one that covers the rest.
  CHECK(Seqs(ch.Ack(9, false), Outcome::kDelivered) == std::vector<uint64_t>{18});
  CHECK(Seqs(ch.Ack(10, true), Outcome::kDelivered) == std::vector<uint64_t>{14, 15, 16, 17, 19});
  CHECK(ch.window.empty());
}

TEST_CASE("AmqpConfirmWindow: a returned publish is held when its ack comes, the others pass") {
  FakeChannel ch;
  for (uint64_t seq : {1, 2, 3}) ch.Publish(seq);
  // RabbitMQ sends basic.return before the basic.ack of an unroutable mandatory publish.
  CHECK(ch.window.MarkReturned(2, {312, "NO_ROUTE", "", "missing-stream"}));
  CHECK_FALSE(ch.window.MarkReturned(99, {312, "NO_ROUTE", "", "x"}));
  const auto acked = ch.Ack(3, true);
  REQUIRE(acked.size() == 3);
  CHECK(Seqs(acked, Outcome::kDelivered) == std::vector<uint64_t>{1, 3});
  CHECK(Seqs(acked, Outcome::kHold) == std::vector<uint64_t>{2});
  CHECK(acked[1].error == "returned: missing-stream");
}

TEST_CASE("AmqpConfirmWindow: a nack holds the refused publishes only") {
  FakeChannel ch;
  for (uint64_t seq = 1; seq <= 5; ++seq) ch.Publish(seq);
  CHECK(Seqs(ch.Ack(1, false), Outcome::kDelivered) == std::vector<uint64_t>{1});
  const auto nacked = ch.Nack(3, /*multiple=*/true);
  CHECK(Seqs(nacked, Outcome::kHold) == std::vector<uint64_t>{2, 3});
  CHECK(nacked[0].error == "queue full");
  CHECK(ch.window.oldest_seq() == 4);
}

TEST_CASE("AmqpConfirmWindow: a new channel forgets what was unconfirmed and restarts at tag 1") {
  FakeChannel ch;
  for (uint64_t seq = 1; seq <= 4; ++seq) ch.Publish(seq);
  ch.Ack(2, true);
  CHECK(ch.window.Reset() == 2);
  CHECK(ch.window.empty());
  // A late ack of the old channel's tag 3 must not settle anything of the new channel.
  ch.tags.clear();
  ch.Publish(3);  // the forwarder sends the unconfirmed events again, in order
  ch.Publish(4);
  CHECK(ch.tags == std::vector<uint64_t>{1, 2});
  CHECK(Seqs(ch.Ack(0, true), Outcome::kDelivered) == std::vector<uint64_t>{3, 4});
}

TEST_CASE("AmqpConfirmWindow: a key is in flight from its publish until its ack, nack or a reset") {
  FakeChannel ch;
  constexpr uint64_t kA = 7;
  constexpr uint64_t kB = 8;
  CHECK_FALSE(ch.window.KeyInFlight(kA));
  ch.Publish(1, kA);
  ch.Publish(2, kB);
  CHECK(ch.window.KeyInFlight(kA));
  CHECK(ch.window.KeyInFlight(kB));
  // The broker refuses seq 1 (a full queue with reject-publish) and takes seq 2: key A is free for
  // the resend of seq 1, and no later event of A went out before it.
  CHECK(Seqs(ch.Nack(1, false), Outcome::kHold) == std::vector<uint64_t>{1});
  CHECK_FALSE(ch.window.KeyInFlight(kA));
  CHECK(ch.window.KeyInFlight(kB));
  CHECK(Seqs(ch.Ack(2, false), Outcome::kDelivered) == std::vector<uint64_t>{2});
  CHECK_FALSE(ch.window.KeyInFlight(kB));
  ch.Publish(3, kA);
  ch.Publish(4, kB);
  CHECK(ch.Ack(4, /*multiple=*/true).size() == 2);
  CHECK_FALSE(ch.window.KeyInFlight(kA));
  ch.Publish(5, kA);
  ch.window.Reset();
  CHECK_FALSE(ch.window.KeyInFlight(kA));
}
