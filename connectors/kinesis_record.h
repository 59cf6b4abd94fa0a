// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::connectors {

// The data of a Kinesis record sluice writes: a Kinesis record has only data and a partition
// key, so sluice's headers (the Kafka headers, MQTT 5 user properties) travel in a small frame
// in front of the payload (docs/kinesis-records.md):
//
//   magic "slu" | version 0x01 | header length N (uint32, big-endian) | N bytes: the headers as a
//   JSON object of strings | the payload, byte for byte
//
// The payload is the rest of the data after the frame, unchanged: a reader skips 8 + N bytes.
inline constexpr std::string_view kKinesisRecordMagic = "slu\x01";
inline constexpr size_t kKinesisRecordFrameBytes = 8;

// The record data for `headers` (in order) and `payload`.
std::string EncodeKinesisRecord(const std::vector<std::pair<std::string, std::string>>& headers,
                                std::string_view payload);

}  // namespace sluice::connectors
