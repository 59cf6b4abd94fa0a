// SPDX-License-Identifier: Apache-2.0

#include "common/aws_credentials.h"

#include <algorithm>
#include <cctype>
#include <utility>

namespace sluice {

std::string ParseAwsCredentials(std::string_view text, AwsCredentials* out) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) {
      v.remove_suffix(1);
    }
    return v;
  };
  AwsCredentials c;
  int sections = 0;
  int line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    line_no++;
    if (line.empty() || line.front() == '#' || line.front() == ';') continue;
    if (line.front() == '[') {
      if (++sections > 1) {
        return "holds more than one [profile] section; give sluice a file with one";
      }
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return "line " + std::to_string(line_no) + " is not KEY = VALUE";
    }
    const std::string_view key = trim(line.substr(0, eq));
    const std::string value(trim(line.substr(eq + 1)));
    if (key == "aws_access_key_id") {
      c.access_key_id = value;
    } else if (key == "aws_secret_access_key") {
      c.secret_access_key = value;
    } else if (key == "aws_session_token") {
      c.session_token = value;
    } else {
      const bool printable = std::all_of(key.begin(), key.end(), [](char ch) {
        return std::isalnum(static_cast<unsigned char>(ch)) != 0 || ch == '_';
      });
      return "line " + std::to_string(line_no) + ": unknown key" +
             (printable && key.size() <= 40 ? " '" + std::string(key) + "'" : "") +
             "; it takes aws_access_key_id, aws_secret_access_key and aws_session_token";
    }
  }
  if (c.access_key_id.empty()) return "sets no aws_access_key_id";
  if (c.secret_access_key.empty()) return "sets no aws_secret_access_key";
  if (c.access_key_id.find(':') != std::string::npos) {
    return "its aws_access_key_id contains ':', which no access key id does";
  }
  *out = std::move(c);
  return "";
}

}  // namespace sluice
