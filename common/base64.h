// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <string_view>

namespace sluice {

// Standard base64 (RFC 4648 section 4, with padding): how the JSON protocol of Amazon Kinesis
// carries a record's bytes.
std::string Base64Encode(std::string_view bytes);

// False on a character outside the alphabet or a length that is not a multiple of four.
bool Base64Decode(std::string_view text, std::string* out);

}  // namespace sluice
