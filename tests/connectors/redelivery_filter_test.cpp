// SPDX-License-Identifier: Apache-2.0

// RedeliveryFilter: which DUP messages are taken for an event already in the log.

#include "connectors/redelivery_filter.h"

#include <doctest/doctest.h>

namespace sluice::connectors {
namespace {

storage::Event Stored(uint16_t packet_id, const std::string& topic, const std::string& payload) {
  storage::Event e;
  e.packet_id = packet_id;
  e.topic = topic;
  e.payload = payload;
  e.qos = 1;
  return e;
}

TEST_CASE("RedeliveryFilter matches a DUP copy of an event stored on an earlier connection once") {
  RedeliveryFilter f(8);
  f.NewConnection();
  f.Stored(7, "dev/a", "reading 1");
  f.Stored(8, "dev/a", "reading 2");
  // Same connection: brokers resend only after a reconnect, so this is stored again.
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "reading 1"));
  f.NewConnection();
  CHECK(f.IsRedelivery(7, "dev/a", "reading 1"));
  // Consumed: a further copy is stored again (a duplicate at worst, never a loss).
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "reading 1"));
  CHECK(f.IsRedelivery(8, "dev/a", "reading 2"));
}

TEST_CASE("RedeliveryFilter needs the same packet id, topic and payload") {
  RedeliveryFilter f(8);
  f.NewConnection();
  f.Stored(7, "dev/a", "reading 1");
  f.NewConnection();
  CHECK_FALSE(f.IsRedelivery(6, "dev/a", "reading 1"));
  CHECK_FALSE(f.IsRedelivery(7, "dev/b", "reading 1"));
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "reading 2"));   // same length, other bytes
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "reading 1!"));  // a longer payload
  CHECK_FALSE(f.IsRedelivery(0, "dev/a", "reading 1"));   // QoS 0 has no packet id
  // None of the misses consumed the entry.
  CHECK(f.IsRedelivery(7, "dev/a", "reading 1"));
}

TEST_CASE("RedeliveryFilter: the newest stored event with a packet id decides") {
  RedeliveryFilter f(8);
  f.NewConnection();
  f.Stored(7, "dev/a", "old");
  f.Stored(7, "dev/a", "new");  // the broker used id 7 again once "old" was acknowledged
  f.NewConnection();
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "old"));
  CHECK(f.IsRedelivery(7, "dev/a", "new"));
  // The id's newest entry is consumed: "old" cannot stand in for it.
  CHECK_FALSE(f.IsRedelivery(7, "dev/a", "old"));
}

TEST_CASE("RedeliveryFilter remembers only the newest `window` stored events") {
  RedeliveryFilter f(3);
  f.NewConnection();
  for (uint16_t id = 1; id <= 5; ++id) f.Stored(id, "dev/a", "p" + std::to_string(id));
  CHECK(f.size() == 3);
  f.NewConnection();
  CHECK_FALSE(f.IsRedelivery(2, "dev/a", "p2"));
  CHECK(f.IsRedelivery(3, "dev/a", "p3"));
  CHECK(f.IsRedelivery(5, "dev/a", "p5"));
  f.Stored(0, "dev/a", "qos 0");  // not remembered
  CHECK(f.size() == 3);
}

TEST_CASE("RedeliveryFilter takes what the log stored before a restart as the first reference") {
  RedeliveryFilter f(4);
  f.Load({Stored(40, "dev/a", "x"), Stored(0, "dev/a", "qos 0"), Stored(41, "dev/b", "y")});
  CHECK(f.size() == 2);
  f.NewConnection();  // the first connection of the new process
  CHECK(f.IsRedelivery(41, "dev/b", "y"));
  CHECK(f.IsRedelivery(40, "dev/a", "x"));
  f.Stored(42, "dev/a", "z");
  CHECK_FALSE(f.IsRedelivery(42, "dev/a", "z"));
}

TEST_CASE("RedeliveryFilter with a window of 0 never matches") {
  RedeliveryFilter f(0);
  f.Load({Stored(1, "dev/a", "x")});
  f.NewConnection();
  f.Stored(2, "dev/a", "y");
  f.NewConnection();
  CHECK_FALSE(f.IsRedelivery(1, "dev/a", "x"));
  CHECK_FALSE(f.IsRedelivery(2, "dev/a", "y"));
  CHECK(f.size() == 0);
}

}  // namespace
}  // namespace sluice::connectors
