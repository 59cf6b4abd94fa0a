// SPDX-License-Identifier: Apache-2.0

// CurlLibrary: libcurl loaded at run time, and a clear error when it cannot be.

#include "common/curl_library.h"

#include <doctest/doctest.h>

#include <string>

namespace sluice {
namespace {

TEST_CASE("CurlLibrary loads the system's libcurl once, with every function it needs") {
  const CurlLibrary* first = nullptr;
  const CurlLibrary* second = nullptr;
  REQUIRE(CurlLibrary::Get(&first).ok());
  REQUIRE(CurlLibrary::Get(&second).ok());
  CHECK(first == second);
  const curl_version_info_data* info = first->version_info(CURLVERSION_NOW);
  REQUIRE(info != nullptr);
  CHECK(info->version_num >= CurlLibrary::kMinVersion);
  // A handle made and freed through the pointers, and an error text: the functions are bound to
  // libcurl's, not left null.
  CURL* h = first->easy_init();
  REQUIRE(h != nullptr);
  CHECK(first->easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/") == CURLE_OK);
  first->easy_cleanup(h);
  CHECK(std::string(first->easy_strerror(CURLE_COULDNT_CONNECT)).find("onnect") !=
        std::string::npos);
}

TEST_CASE("CurlLibrary names the library and the package when it cannot load it") {
  std::unique_ptr<CurlLibrary> lib;
  const Status s = CurlLibrary::Load("libsluice-test-no-such-curl.so.4", &lib);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("libsluice-test-no-such-curl.so.4") != std::string::npos);
  CHECK(s.message().find("libcurl4") != std::string::npos);
  CHECK(lib == nullptr);
}

}  // namespace
}  // namespace sluice
