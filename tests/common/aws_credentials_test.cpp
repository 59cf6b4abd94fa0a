// SPDX-License-Identifier: Apache-2.0

#include "common/aws_credentials.h"

#include <doctest/doctest.h>

#include "common/base64.h"

namespace sluice {
namespace {

TEST_CASE("ParseAwsCredentials reads one profile of the AWS CLI's credentials file") {
  AwsCredentials c;
  CHECK(ParseAwsCredentials("[default]\n# comment\naws_access_key_id = AKID\r\n"
                            "aws_secret_access_key=s3cr3t/+=\naws_session_token = tok\n",
                            &c) == "");
  CHECK(c.access_key_id == "AKID");
  CHECK(c.secret_access_key == "s3cr3t/+=");
  CHECK(c.session_token == "tok");
}

TEST_CASE("ParseAwsCredentials names what is wrong and never shows a value") {
  AwsCredentials c;
  CHECK(ParseAwsCredentials("aws_access_key_id = AKID\n", &c) == "sets no aws_secret_access_key");
  CHECK(ParseAwsCredentials("aws_secret_access_key = s3cr3t\n", &c) == "sets no aws_access_key_id");
  const std::string bad = ParseAwsCredentials("aws_access_key_id = AKID\nTOPSECRET\n", &c);
  CHECK(bad == "line 2 is not KEY = VALUE");
  const std::string unknown = ParseAwsCredentials("region = s3cr3t\n", &c);
  CHECK(unknown.find("unknown key 'region'") != std::string::npos);
  CHECK(unknown.find("s3cr3t") == std::string::npos);
  CHECK(ParseAwsCredentials("[a]\naws_access_key_id=A\naws_secret_access_key=B\n[b]\n", &c)
            .find("more than one") != std::string::npos);
  CHECK(c.access_key_id.empty());  // untouched on error
}

TEST_CASE("Base64 round-trips every byte and refuses what is not base64") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n : {0u, 1u, 2u, 3u, 4u, 255u, 256u}) {
    std::string back;
    REQUIRE(Base64Decode(Base64Encode(all.substr(0, n)), &back));
    CHECK(back == all.substr(0, n));
  }
  CHECK(Base64Encode("hello") == "aGVsbG8=");
  std::string out;
  CHECK_FALSE(Base64Decode("aGVsbG8", &out));
  CHECK_FALSE(Base64Decode("aG!sbG8=", &out));
  CHECK_FALSE(Base64Decode("a=Vs", &out));
}

}  // namespace
}  // namespace sluice
