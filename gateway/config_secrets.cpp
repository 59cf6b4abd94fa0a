// SPDX-License-Identifier: Apache-2.0

#include "gateway/config_secrets.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <system_error>
#include <utility>

namespace sluice::gateway {

namespace {

constexpr std::string_view kCredentialsVariable = "${CREDENTIALS_DIRECTORY}";

std::string ErrnoText(int err) {
  return std::generic_category().message(err);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

ConfigEnvironment ConfigEnvironment::FromProcess() {
  ConfigEnvironment env;
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) env.credentials_directory = dir;
  return env;
}

Status ReadCappedFile(const std::string& path, size_t max_bytes, std::string* out) {
  // "e": O_CLOEXEC, so the descriptor does not leak into anything the daemon spawns.
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rbe"));
  if (!file) return Status::IoError("cannot open " + Quote(path) + ": " + ErrnoText(errno));
  std::string data;
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), file.get())) > 0) {
    data.append(buf, n);
    if (data.size() > max_bytes) {
      return Status::InvalidArgument(Quote(path) + " is larger than " + std::to_string(max_bytes) +
                                     " bytes");
    }
  }
  if (std::ferror(file.get())) {
    return Status::IoError("cannot read " + Quote(path) + ": " + ErrnoText(errno));
  }
  *out = std::move(data);
  return Status::Ok();
}

Status ReadConfigText(const std::string& path, std::string* out) {
  Status s = ReadCappedFile(path, kMaxConfigFileBytes, out);
  if (!s.ok()) return Status::IoError("configuration file: " + s.message());
  return Status::Ok();
}

std::string ExpandCredentials(const ConfigEnvironment& env, std::string* value, bool show) {
  if (value->find("${") == std::string::npos) return "";
  const std::string shown = show ? Quote(*value) : "the value (not shown)";
  if (!value->starts_with(kCredentialsVariable) ||
      value->find("${", kCredentialsVariable.size()) != std::string::npos) {
    return shown + ": only a leading ${CREDENTIALS_DIRECTORY} is expanded";
  }
  if (env.credentials_directory.empty()) {
    return shown +
           " refers to ${CREDENTIALS_DIRECTORY}, which is not set; systemd sets it for a service "
           "with LoadCredential= (docs/operations.md)";
  }
  value->replace(0, kCredentialsVariable.size(), env.credentials_directory);
  return "";
}

Status ReadSecretFile(const std::string& path, std::string* out) {
  std::string contents;
  Status s = ReadCappedFile(path, kMaxSecretFileBytes, &contents);
  if (!s.ok()) return s;
  if (contents.ends_with("\r\n")) {
    contents.resize(contents.size() - 2);
  } else if (contents.ends_with('\n')) {
    contents.pop_back();
  }
  if (contents.find('\0') != std::string::npos) {
    return Status::InvalidArgument(Quote(path) + " contains a NUL character");
  }
  *out = std::move(contents);
  return Status::Ok();
}

bool ReadFilePath(TableReader* r, const ConfigEnvironment& env, std::string_view key,
                  std::string* out) {
  std::string value;
  if (!r->String(key, &value)) return false;
  std::string problem = ExpandCredentials(env, &value);
  if (!problem.empty()) {
    r->Fail(key, problem);
    return false;
  }
  *out = std::move(value);
  return true;
}

bool ReadSecretFileKey(TableReader* r, const ConfigEnvironment& env, std::string_view key,
                       std::string* path, std::string* secret) {
  std::string name;
  if (!r->NonEmptyString(key, &name)) return false;
  // NonEmptyString marked the key as known; ReadFilePath reads it again to expand it.
  if (!ReadFilePath(r, env, key, &name) || !r->ok()) return false;
  Status s = ReadSecretFile(name, secret);
  if (!s.ok()) {
    r->Fail(key, s.message());
    return false;
  }
  *path = std::move(name);
  return true;
}

}  // namespace sluice::gateway
