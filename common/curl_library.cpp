// SPDX-License-Identifier: Apache-2.0

#include "common/curl_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <utility>

namespace sluice {

namespace {

template <typename Fn>
bool Bind(void* handle, const char* name, Fn* fn) {
  void* p = ::dlsym(handle, name);
  if (p == nullptr) return false;
  *fn = reinterpret_cast<Fn>(p);
  return true;
}

std::string VersionText(unsigned v) {
  char text[16];
  std::snprintf(text, sizeof text, "%u.%u.%u", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
  return text;
}

}  // namespace

Status CurlLibrary::Load(const std::string& soname, std::unique_ptr<CurlLibrary>* out) {
  const std::string what = "the Kinesis upstream's HTTPS client needs libcurl (" + soname +
                           ", Debian's package libcurl4)";
  // RTLD_LOCAL: nothing else resolves symbols against it; never dlclose'd (see Load's comment).
  void* handle = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = ::dlerror();
    return Status::Unavailable(
        what + ", which cannot be loaded: " + (err != nullptr ? err : "unknown error"));
  }
  std::unique_ptr<CurlLibrary> lib(new CurlLibrary());
  const char* missing = nullptr;
  if (!Bind(handle, "curl_easy_init", &lib->easy_init)) missing = "curl_easy_init";
  if (!Bind(handle, "curl_easy_cleanup", &lib->easy_cleanup)) missing = "curl_easy_cleanup";
  if (!Bind(handle, "curl_easy_reset", &lib->easy_reset)) missing = "curl_easy_reset";
  if (!Bind(handle, "curl_easy_setopt", &lib->easy_setopt)) missing = "curl_easy_setopt";
  if (!Bind(handle, "curl_easy_perform", &lib->easy_perform)) missing = "curl_easy_perform";
  if (!Bind(handle, "curl_easy_getinfo", &lib->easy_getinfo)) missing = "curl_easy_getinfo";
  if (!Bind(handle, "curl_easy_strerror", &lib->easy_strerror)) missing = "curl_easy_strerror";
  if (!Bind(handle, "curl_slist_append", &lib->slist_append)) missing = "curl_slist_append";
  if (!Bind(handle, "curl_slist_free_all", &lib->slist_free_all)) missing = "curl_slist_free_all";
  if (!Bind(handle, "curl_version_info", &lib->version_info)) missing = "curl_version_info";
  if (missing != nullptr) {
    return Status::Unavailable(what + "; the library loaded has no " + missing);
  }
  const curl_version_info_data* info = lib->version_info(CURLVERSION_NOW);
  if (info == nullptr || info->version_num < kMinVersion) {
    return Status::Unavailable(what + " " + VersionText(kMinVersion) +
                               " or newer; the one loaded is " +
                               (info != nullptr ? VersionText(info->version_num) : "unknown"));
  }
  *out = std::move(lib);
  return Status::Ok();
}

Status CurlLibrary::Get(const CurlLibrary** out) {
  struct Loaded {
    std::unique_ptr<CurlLibrary> lib;
    Status status;
  };
  // Loaded once, on first use, by whichever thread comes first (C++ guarantees the others wait);
  // never changed after.
  static const Loaded loaded = [] {
    Loaded l;
    l.status = Load(kSoname, &l.lib);
    return l;
  }();
  if (!loaded.status.ok()) return loaded.status;
  *out = loaded.lib.get();
  return Status::Ok();
}

}  // namespace sluice
