// SPDX-License-Identifier: Apache-2.0

#pragma once

namespace sluice::connectors {

// Header names on every record an upstream receives: Kafka headers, MQTT 5 user properties, AMQP
// headers (RabbitMQ).
// docs/kafka-records.md describes their formats.
inline constexpr const char* kHeaderMqttTopic = "mqtt.topic";
inline constexpr const char* kHeaderMqttQos = "mqtt.qos";
inline constexpr const char* kHeaderGateway = "sluice.gateway";
inline constexpr const char* kHeaderSeq = "sluice.seq";
inline constexpr const char* kHeaderReceivedMs = "sluice.received_ms";
inline constexpr const char* kHeaderLogId = "sluice.log";
// Only on records whose MQTT message was retained; its value is "1".
inline constexpr const char* kHeaderMqttRetain = "mqtt.retain";
// Only on gap records (connectors/gap_record.h); its value is "1".
inline constexpr const char* kHeaderGap = "sluice.gap";

}  // namespace sluice::connectors
