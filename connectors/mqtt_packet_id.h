// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/message.h>

#include <cstdint>

namespace sluice::connectors {

// The packet identifier a received PUBLISH carried: 1..65535 for QoS 1/2, 0 for QoS 0. Paho C
// copies it into the message it delivers (MQTTAsync_message::msgid) and Paho C++ keeps that struct
// whole, but Paho C++ 1.2 offers no accessor for it outside its own unit tests; mqtt_packet_id.cpp
// is the one place that reads it.
uint16_t PacketIdOf(const mqtt::message& msg);

}  // namespace sluice::connectors
