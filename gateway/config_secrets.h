// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "gateway/toml_reader.h"

namespace sluice::gateway {

// Everything the configuration reads from outside its own text: the configuration file itself,
// the files that hold secrets, and systemd's credential directory. One capped reader serves all of
// them, at start (run, check-config, status) and on SIGHUP alike.

// What a configuration may refer to outside itself.
struct ConfigEnvironment {
  // systemd's $CREDENTIALS_DIRECTORY (LoadCredential=); empty when unset. File keys and
  // [kafka.properties] values may begin with "${CREDENTIALS_DIRECTORY}/".
  std::string credentials_directory;
  static ConfigEnvironment FromProcess();  // reads the process environment
};

// A configuration file is a few KiB; anything this large is the wrong file.
inline constexpr size_t kMaxConfigFileBytes = 1 << 20;
// MQTT encodes a password with a 16-bit length prefix; a file may add a CR LF.
inline constexpr size_t kMaxSecretFileBytes = 65535 + 2;

// Reads at most `max_bytes`, so that a path naming /dev/zero or a huge file by mistake gives an
// error promptly instead of exhausting memory. The error names the path, never the contents.
Status ReadCappedFile(const std::string& path, size_t max_bytes, std::string* out);

// ReadCappedFile with kMaxConfigFileBytes; errors begin with "configuration file: ".
Status ReadConfigText(const std::string& path, std::string* out);

// Expands a leading ${CREDENTIALS_DIRECTORY} in *value (systemd's LoadCredential=). Returns the
// problem, or empty when *value is usable. `show` false leaves the value out of the problem (a
// kafka property may hold a secret).
std::string ExpandCredentials(const ConfigEnvironment& env, std::string* value, bool show = true);

// A secret kept in a file, capped at kMaxSecretFileBytes: editors and `echo` end the file with a
// newline that is not part of the secret, so one trailing LF or CR LF is removed. A NUL is refused.
Status ReadSecretFile(const std::string& path, std::string* out);

// Reads a file-name key of `r` and expands ${CREDENTIALS_DIRECTORY}; true when present and usable.
bool ReadFilePath(TableReader* r, const ConfigEnvironment& env, std::string_view key,
                  std::string* out);

// Reads the file-name key `key` of `r` and then the secret in that file. True when the key was
// present and the secret was read into *secret; *path gets the expanded file name.
bool ReadSecretFileKey(TableReader* r, const ConfigEnvironment& env, std::string_view key,
                       std::string* path, std::string* secret);

}  // namespace sluice::gateway
