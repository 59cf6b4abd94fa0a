// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sluice::sim {

// A gap record as sluice sends it upstream when drop-oldest discarded events of its log that this
// upstream had not yet confirmed (docs/kafka-records.md, "Gap records"; the encoder is
// connectors/gap_record.cpp):
//
//   {"type":"gap","gateway":"plant-3","log":"5d0c...","first_seq":120,"last_seq":180,"count":61,
//    "first_received_ms":1764000000123,"last_received_ms":1764000004567}
//
// [first_seq, last_seq] are log sequence numbers (sluice.seq), not device seqs; `count` events of
// that range were dropped for this upstream (fewer than the range holds when other events in it
// were not for this upstream or had been confirmed already).
struct VerifyGap {
  std::string gateway;
  std::string log;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t count = 0;
  int64_t first_received_ms = 0;
  int64_t last_received_ms = 0;

  // Parses a gap record's value; InvalidArgument naming the field when it is not one (a type
  // other than "gap", a missing field, a number out of range, first_seq > last_seq, a count of 0
  // or larger than the range).
  static Status Decode(std::string_view value, VerifyGap* out);
};

}  // namespace sluice::sim
