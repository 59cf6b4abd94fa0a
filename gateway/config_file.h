// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "gateway/config.h"

namespace sluice::gateway {

// The daemon's configuration file, read at start and again on SIGHUP, both times through the one
// capped reader (ReadConfigText), so a path naming /dev/zero fails promptly either way.
//
// Reload() validates the whole file before anything changes: a bad file leaves the last good
// configuration in force. It reports every key whose value differs from the last good file, by
// comparing the two TOML documents (so keys are named as the file names them, such as
// "kafka.properties.security.protocol" or "route"), plus each secret file key
// (Config::secret_files: "mqtt.password_file", "upstream.NAME.password_file",
// "upstream.NAME.sasl_password_file", ...) whose secret changed behind an unchanged file name.
// Which of those keys take effect at run time is the caller's decision (main.cpp:
// gateway.log_level, gateway.stop_timeout_s). Not thread-safe: the main thread owns it.
class ConfigFile {
 public:
  ConfigFile(std::string path, ConfigEnvironment env);

  const std::string& path() const { return path_; }

  // Reads and validates the file and makes it the last good configuration.
  Status Load(Config* out);

  // As Load, and fills `changed` with the keys that differ from the last good configuration.
  // On error neither the last good configuration nor *out changes.
  Status Reload(Config* out, std::vector<std::string>* changed);

 private:
  const std::string path_;
  const ConfigEnvironment env_;
  std::string text_;  // of the last good configuration
  Config config_;     // the last good configuration
};

// Dotted keys whose values differ between two TOML documents (both must parse); a key present in
// one only counts as changed. Tables are compared key by key, arrays (such as [[route]]) whole.
std::vector<std::string> ChangedTomlKeys(const std::string& before, const std::string& after);

}  // namespace sluice::gateway
