#pragma once

// The names of the metadata sluice attaches to every record it forwards: Kafka record headers, and
// MQTT 5 user properties on the MQTT upstream. docs/kafka-records.md describes their values. No
// dependencies, so that readers of sluice's output (sluice-verify) share the names without linking
// the connectors.
namespace sluice::connectors {

inline constexpr const char* kHeaderMqttTopic = "mqtt.topic";
inline constexpr const char* kHeaderMqttQos = "mqtt.qos";
inline constexpr const char* kHeaderGateway = "sluice.gateway";
inline constexpr const char* kHeaderSeq = "sluice.seq";
inline constexpr const char* kHeaderReceivedMs = "sluice.received_ms";
inline constexpr const char* kHeaderLogId = "sluice.log";
// Only on records whose MQTT message was retained; its value is "1".
inline constexpr const char* kHeaderMqttRetain = "mqtt.retain";
// Only on gap records (a range of events the log dropped); its value is "1".
inline constexpr const char* kHeaderGap = "sluice.gap";

}  // namespace sluice::connectors
