// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "common/status.h"

namespace sluice::gateway {

// A generic, typed reader of TOML tables: it knows types, sizes, ranges, positions and unknown
// keys, and nothing about what sluice's configuration means (that is gateway/config.cpp). No
// message it writes shows a value the caller marked secret.

// `s` in single quotes for a message, shortened past 60 characters.
std::string Quote(std::string_view s);

// "512 MiB", "1 GiB", "1000 bytes": the unit a person would have written.
std::string FormatBytes(uint64_t n);

// "512MiB", "64 KB", "1048576". KB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of 1024, as
// the SI and IEC define them; units are matched case-insensitively. False on anything else,
// including overflow.
bool ParseSize(std::string_view s, uint64_t* out);

// The known name a typo most likely meant, if any is close enough to be worth suggesting.
std::optional<std::string> ClosestMatch(std::string_view wrong,
                                        const std::vector<std::string>& known);

// "a string ('x')", "an integer (5)", "a table": what was found, for type errors.
std::string Describe(const toml::node& node);
// As Describe without the value, for keys that may hold a secret.
std::string DescribeType(const toml::node& node);

// Collects the first error of a parse, prefixed with "origin:line:column: " (or "line L, column
// C: " without an origin). Later failures are dropped: one precise message beats a cascade of
// follow-on complaints. The state one parse shares between its TableReaders.
class TomlErrors {
 public:
  explicit TomlErrors(std::string_view origin) : origin_(origin) {}

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  // `where` may be null for a value that came from a default or from another file.
  void Fail(const toml::source_region* where, std::string_view message);

  // For the tests that hold docs/configuration.md to the schema: from now on the dotted name of
  // every key a TableReader of this parse asks for, present or not, is appended to *keys, which
  // must outlive the parse. Off (null) by default.
  void RecordKeysIn(std::vector<std::string>* keys) { keys_ = keys; }
  bool recording_keys() const { return keys_ != nullptr; }
  void RecordKey(std::string name) { keys_->push_back(std::move(name)); }

 private:
  std::string Locate(const toml::source_region* where) const;

  std::string origin_;
  Status status_;
  std::vector<std::string>* keys_ = nullptr;
};

// Parses TOML text into *out. A syntax error goes to `errors` with its position; toml++'s own
// description is kept but for the text it quotes, which may be a password written without quotes.
// Never throws.
bool ParseTomlText(std::string_view text, std::string_view origin, TomlErrors* errors,
                   toml::table* out);

// Reads the keys of one TOML table, remembering which ones it was asked for so that whatever is
// left over can be reported as unknown with a suggestion. A null table stands for an absent
// section: every key keeps its default. `path` is the table's dotted name in messages ("storage",
// "upstream.cloud.tls", "route[2]"); empty for the document itself.
class TableReader {
 public:
  // `errors` must outlive the reader; `table` belongs to the parsed document and may be null.
  TableReader(TomlErrors* errors, const toml::table* table, std::string path)
      : errors_(errors), table_(table), path_(std::move(path)) {}

  TableReader(const TableReader&) = delete;
  TableReader& operator=(const TableReader&) = delete;

  // The dotted name of `key` in this table.
  std::string Name(std::string_view key) const;
  const std::string& path() const { return path_; }
  const toml::table* table() const { return table_; }
  TomlErrors* errors() const { return errors_; }
  bool ok() const { return errors_->ok(); }

  const toml::source_region* TableSource() const { return table_ ? &table_->source() : nullptr; }

  // The node for `key`, or null when absent. Marks the key as known either way.
  const toml::node* Get(std::string_view key);
  // Whether `key` is present, without marking it as known.
  bool Has(std::string_view key) const { return Where(key) != nullptr; }
  const toml::source_region* Where(std::string_view key) const;

  // Fails at the key's position (or the table's, when the key is absent) with "NAME: problem".
  void Fail(std::string_view key, std::string_view problem);
  // `secret`: the value is left out of the message.
  void TypeError(std::string_view key, const toml::node& node, std::string_view expected,
                 bool secret = false);

  // The following return true when the key is present and valid and *out was set; false leaves
  // *out as it was (its default), having reported a problem if the key was present.

  // Every string ends up in a C API (Paho, librdkafka, SQLite) that would cut it at a NUL, so a
  // NUL is refused here.
  bool String(std::string_view key, std::string* out, bool secret = false);
  bool NonEmptyString(std::string_view key, std::string* out);
  bool Bool(std::string_view key, bool* out);
  bool Integer(std::string_view key, int64_t min, int64_t max, int64_t* out);

  template <std::integral T>
  bool Integer(std::string_view key, int64_t min, int64_t max, T* out) {
    int64_t v;
    if (!Integer(key, min, max, &v)) return false;
    *out = static_cast<T>(v);
    return true;
  }

  // An integer in the duration's own unit (a key named *_ms for milliseconds, *_s for seconds).
  template <class Rep, class Period>
  bool Duration(std::string_view key, int64_t min, int64_t max,
                std::chrono::duration<Rep, Period>* out) {
    int64_t v;
    if (!Integer(key, min, max, &v)) return false;
    *out = std::chrono::duration<Rep, Period>(static_cast<Rep>(v));
    return true;
  }

  // An integer number of bytes or a string such as "512MiB", within [min, max].
  bool Size(std::string_view key, uint64_t min, uint64_t max, uint64_t* out);
  // One of `allowed`; otherwise the list and, for a near miss, a suggestion.
  bool Choice(std::string_view key, std::initializer_list<std::string_view> allowed,
              std::string* out);
  // A sub-table, or null when absent or (after reporting it) of the wrong type.
  const toml::table* Table(std::string_view key);

  // Reports the first key that no Get asked for, suggesting the closest known one.
  void RejectUnknownKeys();

 private:
  TomlErrors* const errors_;
  const toml::table* const table_;
  const std::string path_;
  std::vector<std::string> known_;
};

}  // namespace sluice::gateway
