// SPDX-License-Identifier: Apache-2.0

#include "gateway/config_file.h"

#include <toml++/toml.h>

#include <algorithm>
#include <set>

#include "gateway/toml_reader.h"

namespace sluice::gateway {

namespace {

void DiffTables(const toml::table& a, const toml::table& b, const std::string& prefix,
                std::vector<std::string>* out) {
  std::set<std::string> keys;
  for (auto&& [k, v] : a) keys.insert(std::string(k.str()));
  for (auto&& [k, v] : b) keys.insert(std::string(k.str()));
  for (const std::string& key : keys) {
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    const toml::node* x = a.get(key);
    const toml::node* y = b.get(key);
    if (x != nullptr && y != nullptr && x->is_table() && y->is_table()) {
      DiffTables(*x->as_table(), *y->as_table(), name, out);
    } else if (toml::node_view<const toml::node>(x) != toml::node_view<const toml::node>(y)) {
      out->push_back(name);
    }
  }
}

}  // namespace

std::vector<std::string> ChangedTomlKeys(const std::string& before, const std::string& after) {
  toml::table a;
  toml::table b;
  std::vector<std::string> out;
  TomlErrors errors("");
  if (!ParseTomlText(before, "", &errors, &a) || !ParseTomlText(after, "", &errors, &b)) return out;
  DiffTables(a, b, "", &out);
  return out;
}

ConfigFile::ConfigFile(std::string path, ConfigEnvironment env)
    : path_(std::move(path)), env_(std::move(env)) {}

Status ConfigFile::Load(Config* out) {
  std::string text;
  Status s = ReadConfigText(path_, &text);
  if (!s.ok()) return s;
  Config config;
  s = ParseConfig(text, path_, &config, env_);
  if (!s.ok()) return s;
  text_ = std::move(text);
  config_ = config;
  *out = std::move(config);
  return Status::Ok();
}

Status ConfigFile::Reload(Config* out, std::vector<std::string>* changed) {
  std::string text;
  Status s = ReadConfigText(path_, &text);
  if (!s.ok()) return s;
  Config config;
  s = ParseConfig(text, path_, &config, env_);
  if (!s.ok()) return s;
  std::vector<std::string> keys = ChangedTomlKeys(text_, text);
  auto note = [&](bool differs, const std::string& key) {
    if (differs && std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  };
  // The file names stayed, the secrets in them did not.
  for (const auto& [key, secret] : config.secret_files) {
    auto before = config_.secret_files.find(key);
    note(before != config_.secret_files.end() && before->second != secret, key);
  }
  text_ = std::move(text);
  config_ = config;
  *out = std::move(config);
  *changed = std::move(keys);
  return Status::Ok();
}

}  // namespace sluice::gateway
