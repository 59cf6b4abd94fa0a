// SPDX-License-Identifier: Apache-2.0

#include "gateway/toml_reader.h"

#include <algorithm>
#include <cctype>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

namespace sluice::gateway {

namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// toml++ quotes what it found ("expected 'true', saw 'tru_'", "unknown escape sequence '\\q'"),
// which may be the start of a password written without quotes. What it expected (punctuation, a
// keyword) is kept; any other quoted text is replaced, since the position already points at it.
std::string WithoutQuotedText(std::string_view description) {
  static constexpr std::string_view kKeywords[] = {"true", "false", "inf", "nan"};
  std::string out;
  size_t pos = 0;
  for (;;) {
    const size_t open = description.find('\'', pos);
    const size_t close = open == std::string_view::npos ? open : description.find('\'', open + 1);
    if (close == std::string_view::npos) break;
    const std::string_view quoted = description.substr(open + 1, close - open - 1);
    const bool keyword =
        std::find(std::begin(kKeywords), std::end(kKeywords), quoted) != std::end(kKeywords);
    const bool punctuation = std::none_of(quoted.begin(), quoted.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '\\' ||
             static_cast<unsigned char>(c) >= 0x80;
    });
    out.append(description.substr(pos, open - pos));
    out += keyword || punctuation ? "'" + std::string(quoted) + "'" : std::string("'...'");
    pos = close + 1;
  }
  out.append(description.substr(pos));
  return out;
}

}  // namespace

std::string Quote(std::string_view s) {
  constexpr size_t kMaxShown = 60;
  std::string out = "'";
  if (s.size() > kMaxShown) {
    out.append(s.substr(0, kMaxShown));
    out += "...";
  } else {
    out.append(s);
  }
  out += "'";
  return out;
}

std::string FormatBytes(uint64_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + " GiB";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + " KiB";
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

bool ParseSize(std::string_view s, uint64_t* out) {
  auto trim = [](std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  };
  s = trim(s);
  size_t digits = 0;
  uint64_t number = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') {
    const uint64_t d = static_cast<uint64_t>(s[digits] - '0');
    if (number > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    number = number * 10 + d;
    ++digits;
  }
  if (digits == 0) return false;
  std::string unit(trim(s.substr(digits)));
  std::transform(unit.begin(), unit.end(), unit.begin(), [](char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},          {"b", 1},      {"kb", 1000},         {"kib", kKiB},
      {"mb", 1000'000}, {"mib", kMiB}, {"gb", 1000'000'000}, {"gib", kGiB},
  };
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    if (number > std::numeric_limits<uint64_t>::max() / factor) return false;
    *out = number * factor;
    return true;
  }
  return false;
}

std::optional<std::string> ClosestMatch(std::string_view wrong,
                                        const std::vector<std::string>& known) {
  std::optional<std::string> best;
  size_t best_distance = std::max<size_t>(2, wrong.size() / 3) + 1;
  for (const std::string& candidate : known) {
    size_t distance = EditDistance(wrong, candidate);
    // "topic" for "kafka_topic", "warning" for "warn": when one name contains the other, the
    // hint is as good as for a typo.
    if ((wrong.size() >= 3 && candidate.find(wrong) != std::string::npos) ||
        (candidate.size() >= 3 && wrong.find(candidate) != std::string_view::npos)) {
      distance = std::min<size_t>(distance, 2);
    }
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::string Describe(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string (" + Quote(node.as_string()->get()) + ")";
    case toml::node_type::integer:
      return "an integer (" + std::to_string(node.as_integer()->get()) + ")";
    case toml::node_type::floating_point: {
      std::ostringstream os;
      os << node.as_floating_point()->get();
      return "a floating-point number (" + os.str() + ")";
    }
    case toml::node_type::boolean:
      return std::string("a boolean (") + (node.as_boolean()->get() ? "true" : "false") + ")";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

std::string DescribeType(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    default:
      return Describe(node);  // tables, arrays, dates: no value is shown for these
  }
}

void TomlErrors::Fail(const toml::source_region* where, std::string_view message) {
  if (!status_.ok()) return;
  status_ = Status::InvalidArgument(Locate(where) + std::string(message));
}

std::string TomlErrors::Locate(const toml::source_region* where) const {
  const bool has_position = where != nullptr && where->begin.line > 0;
  std::string line;
  std::string column;
  if (has_position) {
    line = std::to_string(where->begin.line);
    column = std::to_string(where->begin.column);
  }
  if (!origin_.empty()) {
    return origin_ + (has_position ? ":" + line + ":" + column : "") + ": ";
  }
  return has_position ? "line " + line + ", column " + column + ": " : "";
}

bool ParseTomlText(std::string_view text, std::string_view origin, TomlErrors* errors,
                   toml::table* out) {
  // toml++ reports syntax errors by exception or by result depending on how it was built; neither
  // may leave this function.
  try {
#if TOML_EXCEPTIONS
    *out = toml::parse(text, origin);
    return true;
  } catch (const toml::parse_error& e) {
    errors->Fail(&e.source(), "syntax error: " + WithoutQuotedText(e.description()));
    return false;
#else
    toml::parse_result result = toml::parse(text, origin);
    if (!result) {
      errors->Fail(&result.error().source(),
                   "syntax error: " + WithoutQuotedText(result.error().description()));
      return false;
    }
    *out = std::move(result).table();
    return true;
#endif
  } catch (const std::exception& e) {
    // Only allocation failure is expected here; report it rather than crash the daemon at start.
    errors->Fail(nullptr, std::string("cannot parse: ") + e.what());
    return false;
  }
}

std::string TableReader::Name(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

const toml::node* TableReader::Get(std::string_view key) {
  known_.emplace_back(key);
  if (errors_->recording_keys()) errors_->RecordKey(Name(key));
  return table_ ? table_->get(key) : nullptr;
}

const toml::source_region* TableReader::Where(std::string_view key) const {
  const toml::node* node = table_ ? table_->get(key) : nullptr;
  return node ? &node->source() : nullptr;
}

void TableReader::Fail(std::string_view key, std::string_view problem) {
  const toml::source_region* where = Where(key);
  errors_->Fail(where ? where : TableSource(), Name(key) + ": " + std::string(problem));
}

void TableReader::TypeError(std::string_view key, const toml::node& node, std::string_view expected,
                            bool secret) {
  errors_->Fail(&node.source(), Name(key) + ": expected " + std::string(expected) + ", found " +
                                    (secret ? DescribeType(node) : Describe(node)));
}

bool TableReader::String(std::string_view key, std::string* out, bool secret) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  const auto* value = node->as_string();
  if (value == nullptr) {
    TypeError(key, *node, "a string", secret);
    return false;
  }
  if (value->get().find('\0') != std::string::npos) {
    Fail(key, "contains a NUL character");
    return false;
  }
  *out = value->get();
  return true;
}

bool TableReader::NonEmptyString(std::string_view key, std::string* out) {
  std::string value;
  if (!String(key, &value)) return false;
  if (value.empty()) {
    Fail(key, "must not be empty");
    return false;
  }
  *out = std::move(value);
  return true;
}

bool TableReader::Bool(std::string_view key, bool* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  const auto* value = node->as_boolean();
  if (value == nullptr) {
    TypeError(key, *node, "a boolean (true or false)");
    return false;
  }
  *out = value->get();
  return true;
}

bool TableReader::Integer(std::string_view key, int64_t min, int64_t max, int64_t* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  const auto* value = node->as_integer();
  if (value == nullptr) {
    TypeError(key, *node, "an integer");
    return false;
  }
  const int64_t v = value->get();
  if (v < min || v > max) {
    Fail(key, std::to_string(v) + " is out of range; allowed range is " + std::to_string(min) +
                  ".." + std::to_string(max));
    return false;
  }
  *out = v;
  return true;
}

bool TableReader::Size(std::string_view key, uint64_t min, uint64_t max, uint64_t* out) {
  const toml::node* node = Get(key);
  if (node == nullptr) return false;
  uint64_t v = 0;
  if (const auto* integer = node->as_integer()) {
    if (integer->get() < 0) {
      Fail(key, std::to_string(integer->get()) + " is negative; a size is a number of bytes");
      return false;
    }
    v = static_cast<uint64_t>(integer->get());
  } else if (const auto* text = node->as_string()) {
    if (!ParseSize(text->get(), &v)) {
      Fail(key, Quote(text->get()) +
                    " is not a size; use a number of bytes or a string such as \"512MiB\" "
                    "(units B, KB, KiB, MB, MiB, GB, GiB)");
      return false;
    }
  } else {
    TypeError(key, *node, "an integer or a size string such as \"512MiB\"");
    return false;
  }
  if (v < min || v > max) {
    std::string range = max == std::numeric_limits<uint64_t>::max()
                            ? "at least " + FormatBytes(min)
                            : "between " + FormatBytes(min) + " and " + FormatBytes(max);
    Fail(key, FormatBytes(v) + " is out of range; it must be " + range);
    return false;
  }
  *out = v;
  return true;
}

bool TableReader::Choice(std::string_view key, std::initializer_list<std::string_view> allowed,
                         std::string* out) {
  std::string value;
  if (!String(key, &value)) return false;
  if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) {
    *out = std::move(value);
    return true;
  }
  std::string list;
  std::vector<std::string> names;
  for (std::string_view name : allowed) {
    // Two appends: GCC 12 warns (-Wrestrict, a false positive) on "|" + std::string here.
    if (!list.empty()) list += '|';
    list += name;
    names.emplace_back(name);
  }
  std::string problem = Quote(value) + " is not one of " + list;
  if (auto hint = ClosestMatch(value, names)) problem += " (did you mean '" + *hint + "'?)";
  Fail(key, problem);
  return false;
}

const toml::table* TableReader::Table(std::string_view key) {
  const toml::node* node = Get(key);
  if (node == nullptr) return nullptr;
  const toml::table* table = node->as_table();
  if (table == nullptr) TypeError(key, *node, "a table");
  return table;
}

void TableReader::RejectUnknownKeys() {
  if (table_ == nullptr) return;
  for (auto&& [key, node] : *table_) {
    (void)node;
    if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
    std::string message = "unknown key '" + Name(key.str()) + "'";
    if (auto hint = ClosestMatch(key.str(), known_)) {
      message += " (did you mean '" + Name(*hint) + "'?)";
    }
    errors_->Fail(&key.source(), message);
    return;
  }
}

}  // namespace sluice::gateway
