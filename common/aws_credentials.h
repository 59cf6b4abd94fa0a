// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <string_view>

namespace sluice {

// Credentials of an AWS identity. Never logged, never part of a message.
struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials only; empty otherwise
};

// Reads the AWS CLI's credentials file format, one profile: "aws_access_key_id = ...",
// "aws_secret_access_key = ...", optionally "aws_session_token = ...", '#' and ';' comments, at
// most one [section] line. Returns the problem (never a value), or empty when *out was filled.
std::string ParseAwsCredentials(std::string_view text, AwsCredentials* out);

}  // namespace sluice
