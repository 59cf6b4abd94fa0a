// SPDX-License-Identifier: Apache-2.0

// Paho C++ 1.2 (Debian 12) declares message::c_struct() only under UNIT_TESTS. The macro adds that
// one inline accessor and changes nothing else in the class (no member, no layout), so this file
// alone defines it, before any Paho header, and no other file may.
#define UNIT_TESTS 1
#include <mqtt/message.h>
#undef UNIT_TESTS

#include "connectors/mqtt_packet_id.h"

namespace sluice::connectors {

uint16_t PacketIdOf(const mqtt::message& msg) {
  // Paho C sets msgid for every received PUBLISH (Protocol_processPublication) and Paho C++ copies
  // the struct whole (message(topic, const MQTTAsync_message&)); QoS 0 carries none on the wire.
  if (msg.get_qos() == 0) return 0;
  const int id = msg.c_struct().msgid;
  return id > 0 && id <= 0xFFFF ? static_cast<uint16_t>(id) : 0;
}

}  // namespace sluice::connectors
