#include "gateway/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "connectors/kafka_conf.h"
#include "connectors/topic_pattern.h"

namespace sluice::gateway {

namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

// A log smaller than this could not hold even a short broker outage; it is almost always a unit
// mistake ("max_bytes = 512" meant as MiB).
constexpr uint64_t kMinStorageBytes = kMiB;
// One event must fit in one SQLite row and one Kafka message comfortably.
constexpr uint64_t kMaxEventBytes = 16 * kMiB;
// MQTT 3.1.1 encodes strings with a 16-bit length prefix.
constexpr uint64_t kMaxMqttStringBytes = 65535;
constexpr int64_t kMaxBackoffMs = 3'600'000;
// librdkafka's topic name rules (and Kafka's): at most 249 characters.
constexpr size_t kMaxKafkaTopicLength = 249;

std::string ErrnoText(int err) {
  return std::generic_category().message(err);
}

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

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

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

namespace {

std::string FormatBytes(uint64_t n) {
  if (n >= kGiB && n % kGiB == 0) return std::to_string(n / kGiB) + " GiB";
  if (n >= kMiB && n % kMiB == 0) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB && n % kKiB == 0) return std::to_string(n / kKiB) + " KiB";
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

// "512MiB", "64 KB", "1048576". KB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of 1024, as
// the SI and IEC define them; units are matched case-insensitively. Returns false on anything
// else, including overflow.
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

// The known name a typo most likely meant, if any is close enough to be worth suggesting.
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

// The type of a node without its value, for keys that may hold a secret.
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

// Collects the first error of a parse. Later failures are dropped: one precise message beats a
// cascade of follow-on complaints.
class Context {
 public:
  Context(std::string_view origin, const ConfigEnvironment* env) : origin_(origin), env_(env) {}

  bool ok() const { return status_.ok(); }
  const ConfigEnvironment& env() const { return *env_; }
  const Status& status() const { return status_; }

  // `where` may be null for a value that came from a default.
  void Fail(const toml::source_region* where, std::string_view message) {
    if (!status_.ok()) return;
    status_ = Status::InvalidArgument(Locate(where) + std::string(message));
  }

  std::string Locate(const toml::source_region* where) const {
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

 private:
  std::string origin_;
  const ConfigEnvironment* env_;  // outlives the context
  Status status_;
};

constexpr std::string_view kCredentialsVariable = "${CREDENTIALS_DIRECTORY}";

// Expands a leading ${CREDENTIALS_DIRECTORY} in a file name (systemd's LoadCredential=). Returns
// the problem, or empty when *path is usable.
// `show` false leaves the value out of the problem (a kafka property may hold a secret).
std::string ExpandCredentials(const ConfigEnvironment& env, std::string* path, bool show = true) {
  if (path->find("${") == std::string::npos) return "";
  const std::string shown = show ? Quote(*path) : "the value (not shown)";
  if (!path->starts_with(kCredentialsVariable) ||
      path->find("${", kCredentialsVariable.size()) != std::string::npos) {
    return shown + ": only a leading ${CREDENTIALS_DIRECTORY} is expanded";
  }
  if (env.credentials_directory.empty()) {
    return shown +
           " refers to ${CREDENTIALS_DIRECTORY}, which is not set; systemd sets it for a service "
           "with LoadCredential= (docs/operations.md)";
  }
  path->replace(0, kCredentialsVariable.size(), env.credentials_directory);
  return "";
}

// A secret kept in a file: editors and `echo` end the file with a newline that is not part of
// the secret.
Status ReadSecretFile(const std::string& path, std::string* out) {
  std::string contents;
  // A secret longer than MQTT's limit plus a CR LF is refused later anyway.
  Status s = ReadCappedFile(path, kMaxMqttStringBytes + 2, &contents);
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

// Reads the keys of one TOML table, remembering which ones it was asked for so that whatever is
// left over can be reported as unknown with a suggestion. A null table stands for an absent
// section: every key keeps its default.
class TableReader {
 public:
  TableReader(Context* ctx, const toml::table* table, std::string path)
      : ctx_(ctx), table_(table), path_(std::move(path)) {}

  TableReader(const TableReader&) = delete;
  TableReader& operator=(const TableReader&) = delete;

  std::string Name(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  const toml::source_region* TableSource() const { return table_ ? &table_->source() : nullptr; }

  // The node for `key`, or null when absent. Marks the key as known either way.
  const toml::node* Get(std::string_view key) {
    known_.emplace_back(key);
    return table_ ? table_->get(key) : nullptr;
  }

  const toml::source_region* Where(std::string_view key) const {
    const toml::node* node = table_ ? table_->get(key) : nullptr;
    return node ? &node->source() : nullptr;
  }

  void Fail(std::string_view key, std::string_view problem) {
    ctx_->Fail(Where(key), Name(key) + ": " + std::string(problem));
  }

  // `secret`: the value is left out of the message.
  void TypeError(std::string_view key, const toml::node& node, std::string_view expected,
                 bool secret = false) {
    ctx_->Fail(&node.source(), Name(key) + ": expected " + std::string(expected) + ", found " +
                                   (secret ? DescribeType(node) : Describe(node)));
  }

  // The following return true when the key is present and valid and *out was set.

  bool String(std::string_view key, std::string* out, bool secret = false) {
    const toml::node* node = Get(key);
    if (node == nullptr) return false;
    const auto* value = node->as_string();
    if (value == nullptr) {
      TypeError(key, *node, "a string", secret);
      return false;
    }
    // Every string ends up in a C API (Paho, librdkafka, SQLite path) that would cut it short.
    if (value->get().find('\0') != std::string::npos) {
      Fail(key, "contains a NUL character");
      return false;
    }
    *out = value->get();
    return true;
  }

  bool NonEmptyString(std::string_view key, std::string* out) {
    std::string value;
    if (!String(key, &value)) return false;
    if (value.empty()) {
      Fail(key, "must not be empty");
      return false;
    }
    *out = std::move(value);
    return true;
  }

  // A file name; a leading ${CREDENTIALS_DIRECTORY} is expanded.
  bool FilePath(std::string_view key, std::string* out) {
    std::string value;
    if (!String(key, &value)) return false;
    std::string problem = ExpandCredentials(ctx_->env(), &value);
    if (!problem.empty()) {
      Fail(key, problem);
      return false;
    }
    *out = std::move(value);
    return true;
  }

  bool Bool(std::string_view key, bool* out) {
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

  bool Integer(std::string_view key, int64_t min, int64_t max, int64_t* out) {
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

  bool Uint32(std::string_view key, uint32_t min, uint32_t max, uint32_t* out) {
    int64_t v;
    if (!Integer(key, min, max, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }

  // An integer number of bytes or a string such as "512MiB", within [min, max].
  bool Size(std::string_view key, uint64_t min, uint64_t max, uint64_t* out) {
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

  bool Choice(std::string_view key, std::initializer_list<std::string_view> allowed,
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
      list += (list.empty() ? "" : "|") + std::string(name);
      names.emplace_back(name);
    }
    std::string problem = Quote(value) + " is not one of " + list;
    if (auto hint = ClosestMatch(value, names)) problem += " (did you mean '" + *hint + "'?)";
    Fail(key, problem);
    return false;
  }

  // A sub-table, or null when absent or (after reporting it) of the wrong type.
  const toml::table* Table(std::string_view key) {
    const toml::node* node = Get(key);
    if (node == nullptr) return nullptr;
    const toml::table* table = node->as_table();
    if (table == nullptr) TypeError(key, *node, "a table");
    return table;
  }

  void RejectUnknownKeys() {
    if (table_ == nullptr) return;
    for (auto&& [key, node] : *table_) {
      (void)node;
      if (std::find(known_.begin(), known_.end(), key.str()) != known_.end()) continue;
      std::string message = "unknown key '" + Name(key.str()) + "'";
      if (auto hint = ClosestMatch(key.str(), known_)) {
        message += " (did you mean '" + Name(*hint) + "'?)";
      }
      ctx_->Fail(&key.source(), message);
      return;
    }
  }

 private:
  Context* const ctx_;              // outlives the reader
  const toml::table* const table_;  // owned by the parsed document; may be null
  const std::string path_;
  std::vector<std::string> known_;
};

// Problems with a gateway id, or empty when it is usable. The id names this gateway in Kafka
// headers, metrics and the default MQTT client id, where spaces and control characters break
// parsing downstream.
std::string GatewayIdProblem(std::string_view id) {
  if (id.empty()) return "must not be empty";
  for (char c : id) {
    const auto u = static_cast<unsigned char>(c);
    if (u == ' ') return "must not contain spaces";
    if (u < 0x21 || u > 0x7e) return "must contain only printable ASCII characters";
  }
  return "";
}

void ReadGateway(Context* ctx, const toml::table* table, GatewayConfig* out) {
  TableReader r(ctx, table, "gateway");
  if (r.String("id", &out->id)) {
    std::string problem = GatewayIdProblem(out->id);
    if (!problem.empty()) r.Fail("id", Quote(out->id) + " " + problem);
  } else if (r.Where("id") == nullptr) {
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) {
      ctx->Fail(nullptr, "gateway.id is not set and the host name is unavailable (" +
                             ErrnoText(errno) + "); set gateway.id");
    } else {
      out->id = host;
      std::string problem = GatewayIdProblem(out->id);
      if (!problem.empty()) {
        ctx->Fail(nullptr, "gateway.id is not set and the host name " + Quote(out->id) +
                               " cannot serve as one (it " + problem + "); set gateway.id");
      }
    }
  }
  r.Choice("log_level", {"trace", "debug", "info", "warn", "error", "critical", "off"},
           &out->log_level);
  r.Uint32("stop_timeout_s", 1, 3600, &out->stop_timeout_s);
  r.RejectUnknownKeys();
}

void ReadStorage(Context* ctx, const toml::table* table, StorageConfig* out) {
  TableReader r(ctx, table, "storage");
  r.NonEmptyString("path", &out->path);
  r.Size("max_bytes", kMinStorageBytes, std::numeric_limits<uint64_t>::max(), &out->max_bytes);
  std::string overflow;
  if (r.Choice("overflow", {"drop-oldest", "reject-new"}, &overflow)) {
    out->overflow =
        overflow == "drop-oldest" ? OverflowPolicy::kDropOldest : OverflowPolicy::kRejectNew;
  }
  std::string sync;
  if (r.Choice("sync", {"normal", "full"}, &sync)) {
    out->sync = sync == "full" ? SyncMode::kFull : SyncMode::kNormal;
  }
  r.Uint32("commit_interval_ms", 1, 60'000, &out->commit_interval_ms);
  r.Uint32("commit_max_events", 1, 1'000'000, &out->commit_max_events);
  r.Size("max_event_bytes", 1, kMaxEventBytes, &out->max_event_bytes);
  // Only a set max_event_bytes can reach max_bytes: the default is far below the minimum log size.
  if (ctx->ok() && out->max_event_bytes >= out->max_bytes) {
    r.Fail("max_event_bytes", FormatBytes(out->max_event_bytes) +
                                  " must be less than storage.max_bytes (" +
                                  FormatBytes(out->max_bytes) + ")");
  }
  r.RejectUnknownKeys();
}

bool IsTlsScheme(std::string_view url) {
  return url.starts_with("ssl://") || url.starts_with("mqtts://") || url.starts_with("wss://");
}

void ReadTls(Context* ctx, const toml::table* table, TlsConfig* out) {
  TableReader r(ctx, table, "mqtt.tls");
  r.Bool("enabled", &out->enabled);
  r.FilePath("ca_file", &out->ca_file);
  r.FilePath("cert_file", &out->cert_file);
  r.FilePath("key_file", &out->key_file);
  r.Bool("verify", &out->verify);
  r.RejectUnknownKeys();
}

void ReadMqtt(Context* ctx, const toml::table* table, const std::string& gateway_id,
              MqttConfig* out) {
  TableReader r(ctx, table, "mqtt");
  if (r.String("url", &out->url)) {
    static constexpr std::string_view kSchemes[] = {"tcp://",   "ssl://", "mqtt://",
                                                    "mqtts://", "ws://",  "wss://"};
    auto scheme = std::find_if(std::begin(kSchemes), std::end(kSchemes),
                               [&](std::string_view s) { return out->url.starts_with(s); });
    if (scheme == std::end(kSchemes)) {
      r.Fail("url", Quote(out->url) +
                        " must start with tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://");
    } else if (out->url.size() == scheme->size()) {
      r.Fail("url", Quote(out->url) + " names no host, e.g. \"tcp://127.0.0.1:1883\"");
    }
  }

  if (r.String("client_id", &out->client_id)) {
    // Zero-length ids are allowed by MQTT only for clean sessions; sluice depends on a persistent
    // session, which the broker keys by client id.
    if (out->client_id.empty() || out->client_id.size() > kMaxMqttStringBytes) {
      r.Fail("client_id", "must be 1..65535 bytes long (MQTT 3.1.1), not " +
                              std::to_string(out->client_id.size()));
    }
  } else if (r.Where("client_id") == nullptr) {
    out->client_id = "sluice-" + gateway_id;
    if (out->client_id.size() > kMaxMqttStringBytes) {
      ctx->Fail(nullptr,
                "mqtt.client_id defaults to \"sluice-\" + gateway.id, which is longer "
                "than MQTT's 65535 bytes; set mqtt.client_id");
    }
  }

  const bool has_username = r.String("username", &out->username);
  const bool has_password = r.String("password", &out->password, /*secret=*/true);
  const bool has_password_file = r.NonEmptyString("password_file", &out->password_file) &&
                                 r.FilePath("password_file", &out->password_file);
  if (has_username && out->username.size() > kMaxMqttStringBytes) {
    r.Fail("username", "is longer than MQTT's 65535 bytes");
  }
  if (has_password && has_password_file) {
    r.Fail("password_file", "mqtt.password and mqtt.password_file are mutually exclusive; set one");
  } else if (has_password_file && ctx->ok()) {
    Status s = ReadSecretFile(out->password_file, &out->password);
    if (!s.ok()) r.Fail("password_file", s.message());
  }
  if (out->password.size() > kMaxMqttStringBytes) {
    r.Fail(has_password_file ? "password_file" : "password", "is longer than MQTT's 65535 bytes");
  }
  // MQTT 3.1.1 section 3.1.2.9: a password may only be sent together with a user name.
  if ((has_password || has_password_file) && out->username.empty()) {
    r.Fail(has_password ? "password" : "password_file",
           "a password needs mqtt.username; MQTT 3.1.1 sends a password only with a user name");
  }

  std::string protocol;
  if (r.Choice("protocol", {"5", "3.1.1"}, &protocol)) {
    out->protocol = protocol == "3.1.1" ? MqttProtocolVersion::kV311 : MqttProtocolVersion::kV5;
  }
  r.Uint32("keepalive_s", 0, 65535, &out->keepalive_s);
  r.Uint32("reconnect_min_ms", 1, kMaxBackoffMs, &out->reconnect_min_ms);
  r.Uint32("reconnect_max_ms", 1, kMaxBackoffMs, &out->reconnect_max_ms);
  if (ctx->ok() && out->reconnect_min_ms > out->reconnect_max_ms) {
    if (r.Where("reconnect_min_ms") != nullptr) {
      r.Fail("reconnect_min_ms", std::to_string(out->reconnect_min_ms) +
                                     " must not exceed mqtt.reconnect_max_ms (" +
                                     std::to_string(out->reconnect_max_ms) + ")");
    } else {
      r.Fail("reconnect_max_ms", std::to_string(out->reconnect_max_ms) +
                                     " must not be less than mqtt.reconnect_min_ms (" +
                                     std::to_string(out->reconnect_min_ms) + ")");
    }
  }

  ReadTls(ctx, r.Table("tls"), &out->tls);
  // Paho picks TLS from the URL scheme and ignores the TLS options otherwise, so a mismatch would
  // either send the password in clear text or fail every connection attempt.
  if (ctx->ok() && out->tls.enabled != IsTlsScheme(out->url)) {
    r.Fail("url", out->tls.enabled ? Quote(out->url) +
                                         " is not a TLS URL but mqtt.tls.enabled is true; use "
                                         "ssl://, mqtts:// or wss://"
                                   : Quote(out->url) +
                                         " is a TLS URL but mqtt.tls.enabled is false; set "
                                         "mqtt.tls.enabled = true or use tcp://, mqtt:// or ws://");
  }
  r.RejectUnknownKeys();
}

// Where each property was written, so that librdkafka's refusal can point at its line.
using PropertySources = std::map<std::string, toml::source_region>;

// Flattens [kafka.properties] into librdkafka's dotted names. Unquoted dotted TOML keys such as
// `security.protocol = "SSL"` parse as nested tables, so nesting is folded back into the name.
// No message here shows a value: a property may be a password under a misspelt name.
void ReadProperties(Context* ctx, const toml::table& table, const std::string& prefix,
                    std::map<std::string, std::string>* out, PropertySources* sources) {
  for (auto&& [key, node] : table) {
    if (!ctx->ok()) return;
    const std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    // librdkafka takes names as C strings: "acks\u0000x" would reach it as "acks", past the
    // refusal below.
    if (const size_t nul = name.find('\0'); nul != std::string::npos) {
      ctx->Fail(&key.source(), "kafka.properties '" + name.substr(0, nul) +
                                   "\\u0000...': a property name must not contain a NUL character");
      return;
    }
    const std::string where = "kafka.properties '" + name + "'";
    if (const auto* sub = node.as_table()) {
      ReadProperties(ctx, *sub, name, out, sources);
      continue;
    }
    const connectors::OwnedKafkaSetting* owned = connectors::FindOwnedKafkaSetting(name);
    if (owned != nullptr && owned->allowed.empty()) {
      ctx->Fail(&key.source(), where + " cannot be set here: " + std::string(owned->reason));
      return;
    }
    std::string value;
    if (const auto* s = node.as_string()) {
      value = s->get();
      if (value.find('\0') != std::string::npos) {
        ctx->Fail(&node.source(), where + ": contains a NUL character");
        return;
      }
      // For file properties such as ssl.key.location.
      std::string problem = ExpandCredentials(ctx->env(), &value, /*show=*/false);
      if (!problem.empty()) {
        ctx->Fail(&node.source(), where + ": " + problem);
        return;
      }
    } else if (const auto* i = node.as_integer()) {
      value = std::to_string(i->get());
    } else if (const auto* b = node.as_boolean()) {
      value = b->get() ? "true" : "false";
    } else {
      ctx->Fail(&node.source(),
                where + ": expected a string, integer or boolean, found " + DescribeType(node));
      return;
    }
    if (owned != nullptr && !connectors::OwnedSettingAllows(*owned, value)) {
      // The value stays out of the message, as everywhere in [kafka.properties].
      ctx->Fail(&node.source(), where + " cannot take this value: " + std::string(owned->reason));
      return;
    }
    (*out)[name] = std::move(value);
    sources->insert_or_assign(name, key.source());
  }
}

// Builds librdkafka's configuration from the properties, as the sink does at start, so that a
// property librdkafka refuses (a misspelt name, a bad value) is a configuration error before
// anything starts rather than a failure of `run` that systemd restarts forever. The sink adds
// sluice's own settings on top, which the configuration's own ranges already checked.
void CheckKafkaProperties(Context* ctx, const std::map<std::string, std::string>& properties,
                          const PropertySources& sources) {
  std::unique_ptr<RdKafka::Conf> conf;
  std::string bad_key;
  Status s = connectors::BuildKafkaConf(properties, {}, &conf, &bad_key);
  if (s.ok()) return;
  auto at = sources.find(bad_key);
  std::string message = s.message();
  if (message.find("is not a librdkafka property") != std::string::npos) {
    if (auto hint = ClosestMatch(bad_key, connectors::KafkaPropertyNames())) {
      message += "; did you mean '" + *hint + "'?";
    }
  }
  // The password read from kafka.sasl_password_file has no line of its own.
  ctx->Fail(at == sources.end() ? nullptr : &at->second, message);
}

// What is wrong with a librdkafka bootstrap list ("host:port,host:port", each optionally with
// a security-protocol scheme such as SASL_SSL://); empty when it is well formed. librdkafka itself
// accepts a bad entry and only logs resolution failures forever, so a typo would look like an
// outage instead of a configuration error.
std::string BrokerListProblem(std::string_view list) {
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    std::string_view entry =
        list.substr(start, comma == std::string_view::npos ? list.npos : comma - start);
    while (!entry.empty() && entry.front() == ' ') entry.remove_prefix(1);
    while (!entry.empty() && entry.back() == ' ') entry.remove_suffix(1);
    const std::string quoted = Quote(entry);
    if (entry.empty()) return "has an empty entry; expected host:port[,host:port...]";
    if (const size_t scheme = entry.find("://"); scheme != std::string_view::npos) {
      std::string name(entry.substr(0, scheme));
      for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (name != "PLAINTEXT" && name != "SSL" && name != "SASL_PLAINTEXT" && name != "SASL_SSL")
        return "entry " + quoted +
               " has an unknown scheme; use host:port, or PLAINTEXT://, SSL://, "
               "SASL_PLAINTEXT:// or SASL_SSL://";
      entry.remove_prefix(scheme + 3);
    }
    std::string_view host = entry;
    std::string_view port;
    if (entry.starts_with('[')) {  // [IPv6]:port
      const size_t close = entry.find(']');
      if (close == std::string_view::npos) return "entry " + quoted + " has an unclosed '['";
      host = entry.substr(0, close + 1);
      if (close + 1 < entry.size()) {
        if (entry[close + 1] != ':') return "entry " + quoted + " has text after ']'";
        port = entry.substr(close + 2);
        if (port.empty()) return "entry " + quoted + " has an empty port";
      }
    } else if (const size_t colon = entry.rfind(':'); colon != std::string_view::npos) {
      host = entry.substr(0, colon);
      port = entry.substr(colon + 1);
      if (port.empty()) return "entry " + quoted + " has an empty port";
    }
    if (host.empty() || host == "[]") return "entry " + quoted + " names no host";
    if (host.find_first_of("/ @?#") != std::string_view::npos)
      return "entry " + quoted + " is not host:port (e.g. kafka1:9092)";
    if (!port.empty()) {
      uint64_t n = 0;
      for (char c : port) {
        if (c < '0' || c > '9' || n > 65535) return "entry " + quoted + " has a bad port";
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (n == 0 || n > 65535) return "entry " + quoted + " has a port outside 1..65535";
    }
    if (comma == std::string_view::npos) return "";
    start = comma + 1;
  }
}

void ReadKafka(Context* ctx, const toml::table* table, KafkaConfig* out) {
  TableReader r(ctx, table, "kafka");
  if (r.NonEmptyString("brokers", &out->brokers)) {
    const std::string problem = BrokerListProblem(out->brokers);
    if (!problem.empty()) r.Fail("brokers", problem);
  }
  r.Choice("compression", {"none", "gzip", "snappy", "lz4", "zstd"}, &out->compression);
  // Ranges follow librdkafka's limits for the properties these keys map to.
  r.Uint32("linger_ms", 0, 900'000, &out->linger_ms);
  r.Uint32("batch_bytes", 1, 2'147'483'647, &out->batch_bytes);
  r.Uint32("max_in_flight_events", 1, 10'000'000, &out->max_in_flight_events);
  r.Uint32("retry_backoff_ms", 1, 300'000, &out->retry_backoff_ms);
  r.Uint32("reconnect_max_ms", 1, kMaxBackoffMs, &out->reconnect_max_ms);
  PropertySources sources;
  if (const toml::table* properties = r.Table("properties")) {
    ReadProperties(ctx, *properties, "", &out->properties, &sources);
  }
  if (r.NonEmptyString("sasl_password_file", &out->sasl_password_file) &&
      r.FilePath("sasl_password_file", &out->sasl_password_file) && ctx->ok()) {
    std::string password;
    Status s = ReadSecretFile(out->sasl_password_file, &password);
    if (!s.ok()) {
      r.Fail("sasl_password_file", s.message());
    } else if (out->properties.count("sasl.password") != 0) {
      r.Fail("sasl_password_file",
             "kafka.sasl_password_file and kafka.properties 'sasl.password' are mutually "
             "exclusive; set one");
    } else {
      out->properties["sasl.password"] = std::move(password);
    }
  }
  if (ctx->ok()) CheckKafkaProperties(ctx, out->properties, sources);
  r.RejectUnknownKeys();
}

// Splits "HOST:PORT" or "[IPV6]:PORT"; returns a problem, or empty when it is usable.
std::string SplitListen(const std::string& listen, std::string* host, uint16_t* port) {
  static constexpr std::string_view kForm =
      " is not HOST:PORT, e.g. \"127.0.0.1:9464\" or \"[::1]:9464\"";
  std::string port_text;
  if (listen.starts_with('[')) {
    const auto close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Quote(listen) + std::string(kForm);
    }
    *host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    const auto colon = listen.rfind(':');
    if (colon == std::string::npos) return Quote(listen) + std::string(kForm);
    *host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (host->find(':') != std::string::npos) {
      return Quote(listen) + " has an IPv6 address without brackets; write \"[" + *host +
             "]:" + port_text + "\"";
    }
  }
  if (host->empty()) return Quote(listen) + " names no host" + std::string(kForm);
  for (char c : *host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-' || c == ':' || c == '%' || c == '_';
    if (!ok) return Quote(listen) + ": host " + Quote(*host) + " is not an address or host name";
  }
  if (port_text.empty() || port_text.size() > 5 ||
      port_text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port_text) > 65535) {
    return Quote(listen) + ": port " + Quote(port_text) +
           " is not a number in 0..65535 (0: any free port)";
  }
  *port = static_cast<uint16_t>(std::stoul(port_text));
  return "";
}

void ReadMetrics(Context* ctx, const toml::table* table, MetricsConfig* out) {
  TableReader r(ctx, table, "metrics");
  r.Bool("enabled", &out->enabled);
  if (r.NonEmptyString("listen", &out->listen)) {
    std::string problem = SplitListen(out->listen, &out->address, &out->port);
    if (!problem.empty()) r.Fail("listen", problem);
  }
  r.RejectUnknownKeys();
}

std::string KafkaTopicProblem(std::string_view topic) {
  if (topic.empty()) return "must not be empty";
  if (topic.size() > kMaxKafkaTopicLength) {
    return "is " + std::to_string(topic.size()) + " characters long; Kafka allows at most 249";
  }
  if (topic == "." || topic == "..") return "must not be '.' or '..'";
  for (char c : topic) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return "may contain only a-z, A-Z, 0-9, '.', '_' and '-'";
  }
  return "";
}

void ReadRoute(Context* ctx, const toml::table& table, const std::string& name, RouteConfig* out) {
  TableReader r(ctx, &table, name);
  if (r.String("mqtt", &out->mqtt_filter)) {
    Status s = connectors::ValidateTopicFilter(out->mqtt_filter);
    if (!s.ok()) r.Fail("mqtt", s.message());
  } else if (r.Where("mqtt") == nullptr) {
    ctx->Fail(r.TableSource(), name + ".mqtt is required (the MQTT topic filter to subscribe to)");
  }
  if (r.String("kafka_topic", &out->kafka_topic)) {
    std::string problem = KafkaTopicProblem(out->kafka_topic);
    if (!problem.empty()) r.Fail("kafka_topic", Quote(out->kafka_topic) + " " + problem);
  } else if (r.Where("kafka_topic") == nullptr) {
    ctx->Fail(r.TableSource(), name + ".kafka_topic is required (the Kafka topic to produce to)");
  }
  if (r.String("key", &out->key_pattern)) {
    connectors::KeyPattern pattern;
    Status s = connectors::KeyPattern::Parse(out->key_pattern, &pattern);
    if (!s.ok()) r.Fail("key", s.message());
  }
  int64_t qos;
  if (r.Integer("qos", 0, 2, &qos)) out->qos = static_cast<int>(qos);
  std::string retained;
  if (r.Choice("retained", {"ingest", "skip"}, &retained)) {
    out->retained = retained == "skip" ? RetainedPolicy::kSkip : RetainedPolicy::kIngest;
  }
  r.RejectUnknownKeys();
}

void ReadRoutes(Context* ctx, const toml::node* node, std::vector<RouteConfig>* out) {
  static constexpr std::string_view kNoRoutes =
      "no [[route]] is configured; sluice needs at least one to know which MQTT topics to "
      "forward to which Kafka topic";
  if (node == nullptr) {
    ctx->Fail(nullptr, kNoRoutes);
    return;
  }
  const toml::array* routes = node->as_array();
  if (routes == nullptr) {
    ctx->Fail(&node->source(),
              "route: expected an array of tables ([[route]]), found " + Describe(*node));
    return;
  }
  if (routes->empty()) {
    ctx->Fail(&node->source(), kNoRoutes);
    return;
  }
  for (size_t i = 0; i < routes->size(); ++i) {
    const std::string name = "route[" + std::to_string(i + 1) + "]";
    const toml::node& element = *routes->get(i);
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      ctx->Fail(&element.source(), name + ": expected a table, found " + Describe(element));
      return;
    }
    RouteConfig route;
    ReadRoute(ctx, *table, name, &route);
    if (!ctx->ok()) return;
    // Two subscriptions with one filter are one subscription at the broker: the second route
    // could never be told apart from the first.
    for (size_t j = 0; j < out->size(); ++j) {
      if ((*out)[j].mqtt_filter == route.mqtt_filter) {
        ctx->Fail(table->get("mqtt") ? &table->get("mqtt")->source() : nullptr,
                  name + ".mqtt: filter " + Quote(route.mqtt_filter) +
                      " is already routed by route[" + std::to_string(j + 1) + "]");
        return;
      }
    }
    out->push_back(std::move(route));
  }
}

Status ParseDocument(const toml::table& doc, const std::string& origin,
                     const ConfigEnvironment& env, Config* out) {
  Context ctx(origin, &env);
  Config config;
  TableReader top(&ctx, &doc, "");
  const toml::table* gateway = top.Table("gateway");
  const toml::table* storage = top.Table("storage");
  const toml::table* mqtt = top.Table("mqtt");
  const toml::table* kafka = top.Table("kafka");
  const toml::table* metrics = top.Table("metrics");
  const toml::node* routes = top.Get("route");
  // Unknown sections first: a misspelt [storge] would otherwise surface as a confusing default.
  top.RejectUnknownKeys();

  ReadGateway(&ctx, gateway, &config.gateway);
  ReadStorage(&ctx, storage, &config.storage);
  ReadMqtt(&ctx, mqtt, config.gateway.id, &config.mqtt);
  ReadKafka(&ctx, kafka, &config.kafka);
  ReadMetrics(&ctx, metrics, &config.metrics);
  ReadRoutes(&ctx, routes, &config.routes);
  if (!ctx.ok()) return ctx.status();
  *out = std::move(config);
  return Status::Ok();
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

ConfigEnvironment ConfigEnvironment::FromProcess() {
  ConfigEnvironment env;
  if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) env.credentials_directory = dir;
  return env;
}

Status ParseConfig(const std::string& toml_text, const std::string& origin, Config* out,
                   const ConfigEnvironment& env) {
  Context ctx(origin, &env);
  // toml++ reports syntax errors by exception or by result depending on how it was built; neither
  // may leave this function.
  try {
#if TOML_EXCEPTIONS
    const toml::table doc = toml::parse(std::string_view(toml_text), std::string_view(origin));
    return ParseDocument(doc, origin, env, out);
  } catch (const toml::parse_error& e) {
    ctx.Fail(&e.source(), "syntax error: " + WithoutQuotedText(e.description()));
    return ctx.status();
#else
    toml::parse_result result = toml::parse(std::string_view(toml_text), std::string_view(origin));
    if (!result) {
      ctx.Fail(&result.error().source(),
               "syntax error: " + WithoutQuotedText(result.error().description()));
      return ctx.status();
    }
    return ParseDocument(result.table(), origin, env, out);
#endif
  } catch (const std::exception& e) {
    // Only allocation failure is expected here; report it rather than crash the daemon at start.
    ctx.Fail(nullptr, std::string("cannot parse configuration: ") + e.what());
    return ctx.status();
  }
}

Status LoadConfigFile(const std::string& path, Config* out, const ConfigEnvironment& env) {
  std::string text;
  Status s = ReadConfigText(path, &text);
  if (!s.ok()) return s;
  return ParseConfig(text, path, out, env);
}

const char* ToString(OverflowPolicy p) {
  switch (p) {
    case OverflowPolicy::kDropOldest:
      return "drop-oldest";
    case OverflowPolicy::kRejectNew:
      return "reject-new";
  }
  return "unknown";
}

const char* ToString(SyncMode m) {
  switch (m) {
    case SyncMode::kNormal:
      return "normal";
    case SyncMode::kFull:
      return "full";
  }
  return "unknown";
}

}  // namespace sluice::gateway
