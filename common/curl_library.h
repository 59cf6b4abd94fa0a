// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace sluice {

// libcurl, loaded when the first HTTPS client is made rather than linked into the daemon. Linked,
// libcurl brings Debian's whole tree behind it (GnuTLS through librtmp, Kerberos, LDAP, libssh2,
// p11-kit), about 3.6 MiB of resident memory in every sluice, though only a Kinesis upstream
// uses it (docs/performance.md, "Memory").
//
// The functions are those of <curl/curl.h>, called through these pointers; the daemon's link
// has no libcurl, so a direct call fails to link. Immutable once loaded; thread-safe.
class CurlLibrary {
 public:
  // The soname of libcurl 7.x and 8.x (Debian's libcurl4).
  static constexpr char kSoname[] = "libcurl.so.4";
  // What the callers need: CURLOPT_AWS_SIGV4 (7.75.0) and CURLOPT_PROTOCOLS_STR (7.85.0).
  static constexpr unsigned kMinVersion = 0x075500;

  // The process's libcurl, loaded from kSoname on the first call; later calls return the same
  // library, or the same error. Unavailable, naming the library and the package, when it is
  // missing or older than kMinVersion.
  static Status Get(const CurlLibrary** out);
  // Loads `soname` afresh; Get's work, exposed so that tests can name a library that is not there.
  // The library stays loaded for the life of the process (libcurl cannot be unloaded safely once
  // it initialised TLS).
  static Status Load(const std::string& soname, std::unique_ptr<CurlLibrary>* out);

  CurlLibrary(const CurlLibrary&) = delete;
  CurlLibrary& operator=(const CurlLibrary&) = delete;

  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::curl_version_info) version_info = nullptr;

 private:
  CurlLibrary() = default;
};

}  // namespace sluice
