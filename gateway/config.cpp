// SPDX-License-Identifier: Apache-2.0

#include "gateway/config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <toml++/toml.h>

#include "common/aws_credentials.h"
#include "connectors/kafka_conf.h"
#include "connectors/topic_pattern.h"
#include "gateway/toml_reader.h"

namespace sluice::gateway {

namespace {

constexpr uint64_t kMiB = 1024 * 1024;
// A log smaller than this could not hold even a short broker outage; it is almost always a unit
// mistake ("max_bytes = 512" meant as MiB).
constexpr uint64_t kMinStorageBytes = kMiB;
// One event must fit in one SQLite row and one Kafka message comfortably.
constexpr uint64_t kMaxEventBytes = 16 * kMiB;
// The journal is read whole at start; beyond this it only delays the start and holds memory.
constexpr uint64_t kMaxJournalBytes = 256 * kMiB;
// MQTT encodes strings with a 16-bit length prefix.
constexpr uint64_t kMaxMqttStringBytes = 65535;
constexpr int64_t kMaxBackoffMs = 3'600'000;
// Ten years: longer is a unit mistake (milliseconds for seconds).
constexpr int64_t kMaxRetainAgeS = 10ll * 365 * 24 * 3600;
// librdkafka's topic name rules (and Kafka's): at most 249 characters.
constexpr size_t kMaxKafkaTopicLength = 249;
// Cursor names are stored in the log and are metric labels.
constexpr size_t kMaxUpstreamNameLength = 64;

// Defaults that belong to no component's options: where the daemon keeps its log, and what a
// route that says `NAME = true` publishes to on an MQTT upstream.
constexpr std::string_view kDefaultLogPath = "/var/lib/sluice/events.db";
constexpr std::string_view kDefaultMqttTopic = "{mqtt_topic}";
// The old form's one upstream: the cursor name the log has always used, so that a file rewritten
// into the new form under this name resends nothing.
constexpr std::string_view kLegacyUpstream = "kafka";

std::string ErrnoText(int err) {
  return std::generic_category().message(err);
}

// The entries of a table in the order they were written: toml++ keeps tables sorted by key.
std::vector<std::pair<std::string, const toml::node*>> InFileOrder(const toml::table& table) {
  std::vector<std::pair<std::string, const toml::node*>> entries;
  for (auto&& [key, node] : table) entries.emplace_back(std::string(key.str()), &node);
  auto position = [](const toml::node* n) {
    return std::pair(n->source().begin.line, n->source().begin.column);
  };
  std::stable_sort(entries.begin(), entries.end(), [&](const auto& a, const auto& b) {
    return position(a.second) < position(b.second);
  });
  return entries;
}

// ---- [gateway] ----

// Problems with a gateway id, or empty when it is usable. The id names this gateway in Kafka
// headers, metrics and the default MQTT client ids, where spaces and control characters break
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

void ReadGateway(TomlErrors* errors, const toml::table* table, GatewayConfig* out) {
  TableReader r(errors, table, "gateway");
  if (r.String("id", &out->id)) {
    std::string problem = GatewayIdProblem(out->id);
    if (!problem.empty()) r.Fail("id", Quote(out->id) + " " + problem);
  } else if (!r.Has("id")) {
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) {
      errors->Fail(nullptr, "gateway.id is not set and the host name is unavailable (" +
                                ErrnoText(errno) + "); set gateway.id");
    } else {
      out->id = host;
      std::string problem = GatewayIdProblem(out->id);
      if (!problem.empty()) {
        errors->Fail(nullptr, "gateway.id is not set and the host name " + Quote(out->id) +
                                  " cannot serve as one (it " + problem + "); set gateway.id");
      }
    }
  }
  r.Choice("log_level", {"trace", "debug", "info", "warn", "error", "critical", "off"},
           &out->log_level);
  r.Integer("stop_timeout_s", 1, 3600, &out->stop_timeout_s);
  r.RejectUnknownKeys();
}

// ---- [storage] ----

void ReadStorage(TomlErrors* errors, const toml::table* table, Config* config) {
  TableReader r(errors, table, "storage");
  storage::SqliteEventLogOptions& out = config->storage;
  r.NonEmptyString("path", &out.path);
  r.Size("max_bytes", kMinStorageBytes, std::numeric_limits<uint64_t>::max(), &out.max_bytes);
  std::string overflow;
  if (r.Choice("overflow", {"drop-oldest", "reject-new"}, &overflow)) {
    out.overflow =
        overflow == "drop-oldest" ? storage::Overflow::kDropOldest : storage::Overflow::kRejectNew;
  }
  std::string sync;
  if (r.Choice("sync", {"normal", "full"}, &sync)) {
    out.sync = sync == "full" ? storage::Sync::kFull : storage::Sync::kNormal;
  }
  storage::LogWriterOptions& writer = config->writer;
  r.Duration("commit_interval_ms", 1, 60'000, &writer.commit_interval);
  r.Integer("commit_after_events", 1, 1'000'000, &writer.commit_after_events);
  if (r.Integer("commit_max_events", 1, 1'000'000, &writer.commit_max_events)) {
    // The writer's queue holds ten commits' worth (the default 20000 for the default 2000), so
    // that a larger commit does not make the source wait on a queue sized for a smaller one.
    writer.queue_capacity = std::max<size_t>(writer.commit_max_events * 10, 1000);
  }
  r.Size("journal_bytes", storage::IngressJournal::kMinCapacityBytes, kMaxJournalBytes,
         &config->journal.capacity_bytes);
  uint64_t& max_event_bytes = config->mqtt.max_event_bytes;
  r.Size("max_event_bytes", 1, kMaxEventBytes, &max_event_bytes);
  // Only a set max_event_bytes can reach max_bytes: the default is far below the minimum log size.
  if (r.ok() && max_event_bytes >= out.max_bytes) {
    r.Fail("max_event_bytes", FormatBytes(max_event_bytes) +
                                  " must be less than storage.max_bytes (" +
                                  FormatBytes(out.max_bytes) + ")");
  }
  uint64_t retain_bytes = 0;
  if (r.Size("retain_bytes", 0, std::numeric_limits<uint64_t>::max(), &retain_bytes)) {
    // Retained events count in max_bytes; a budget that fills the log leaves no room for new ones.
    if (retain_bytes >= out.max_bytes) {
      r.Fail("retain_bytes", FormatBytes(retain_bytes) + " must be less than storage.max_bytes (" +
                                 FormatBytes(out.max_bytes) + ")");
    }
    out.retain_bytes = retain_bytes;
  }
  int64_t retain_age_s = 0;
  if (r.Integer("retain_age_s", 0, kMaxRetainAgeS, &retain_age_s)) {
    if (retain_age_s > 0 && out.retain_bytes == 0) {
      r.Fail("retain_age_s",
             "keeps nothing while storage.retain_bytes is 0; set storage.retain_bytes (the "
             "budget confirmed events may use) as well");
    }
    out.retain_age = std::chrono::seconds(retain_age_s);
  }
  r.RejectUnknownKeys();
}

// ---- MQTT connections: [mqtt] (the local broker) and MQTT upstreams ----

bool IsTlsScheme(std::string_view url) {
  return url.starts_with("ssl://") || url.starts_with("mqtts://") || url.starts_with("wss://");
}

// How the two kinds of MQTT connection differ in the file.
struct MqttConnectionRules {
  std::vector<std::string_view> schemes;
  // [mqtt.tls] enabled must agree with the URL (the source, as it always was); an upstream takes
  // TLS from the URL alone.
  bool tls_enabled_key = false;
  std::string default_client_id;
};

// reconnect_min_ms and reconnect_max_ms, the bounds of a reconnect backoff: min <= max.
void ReadReconnectRange(TableReader* r, std::chrono::milliseconds* min_out,
                        std::chrono::milliseconds* max_out) {
  r->Duration("reconnect_min_ms", 1, kMaxBackoffMs, min_out);
  r->Duration("reconnect_max_ms", 1, kMaxBackoffMs, max_out);
  if (r->ok() && *min_out > *max_out) {
    const std::string min = std::to_string(min_out->count());
    const std::string max = std::to_string(max_out->count());
    if (r->Has("reconnect_min_ms")) {
      r->Fail("reconnect_min_ms",
              min + " must not exceed " + r->Name("reconnect_max_ms") + " (" + max + ")");
    } else {
      r->Fail("reconnect_max_ms",
              max + " must not be less than " + r->Name("reconnect_min_ms") + " (" + min + ")");
    }
  }
}

void ReadMqttConnection(TableReader* r, const ConfigEnvironment& env,
                        const MqttConnectionRules& rules, connectors::MqttConnection* out,
                        std::map<std::string, std::string>* secret_files) {
  TomlErrors* errors = r->errors();
  if (r->String("url", &out->url)) {
    auto scheme = std::find_if(rules.schemes.begin(), rules.schemes.end(),
                               [&](std::string_view s) { return out->url.starts_with(s); });
    if (scheme == rules.schemes.end()) {
      std::string list;
      for (size_t i = 0; i < rules.schemes.size(); ++i) {
        list += (i == 0                          ? ""
                 : i + 1 == rules.schemes.size() ? " or "
                                                 : ", ") +
                std::string(rules.schemes[i]);
      }
      r->Fail("url", Quote(out->url) + " must start with " + list);
    } else if (out->url.size() == scheme->size()) {
      r->Fail("url", Quote(out->url) + " names no host, e.g. \"" + std::string(*scheme) +
                         "broker.example:" + (IsTlsScheme(*scheme) ? "8883" : "1883") + "\"");
    }
  }

  if (r->String("client_id", &out->client_id)) {
    // Zero-length ids are allowed by MQTT only for clean sessions; sluice depends on a persistent
    // session, which the broker keys by client id.
    if (out->client_id.empty() || out->client_id.size() > kMaxMqttStringBytes) {
      r->Fail("client_id", "must be 1..65535 bytes long (MQTT 3.1.1), not " +
                               std::to_string(out->client_id.size()));
    }
  } else if (!r->Has("client_id")) {
    out->client_id = rules.default_client_id;
    if (out->client_id.size() > kMaxMqttStringBytes) {
      errors->Fail(r->TableSource(), r->Name("client_id") + " defaults to " +
                                         Quote(out->client_id) +
                                         ", which is longer than MQTT's 65535 bytes; set it");
    }
  }

  const bool has_username = r->String("username", &out->username);
  const bool has_password = r->String("password", &out->password, /*secret=*/true);
  bool has_password_file = false;
  if (r->Has("password_file") && has_password) {
    r->Get("password_file");
    r->Fail("password_file", r->Name("password") + " and " + r->Name("password_file") +
                                 " are mutually exclusive; set one");
  } else {
    std::string path;
    has_password_file = ReadSecretFileKey(r, env, "password_file", &path, &out->password);
    if (has_password_file) (*secret_files)[r->Name("password_file")] = out->password;
  }
  if (has_username && out->username.size() > kMaxMqttStringBytes) {
    r->Fail("username", "is longer than MQTT's 65535 bytes");
  }
  if (out->password.size() > kMaxMqttStringBytes) {
    r->Fail(has_password_file ? "password_file" : "password", "is longer than MQTT's 65535 bytes");
  }
  // MQTT 3.1.1 section 3.1.2.9: a password may only be sent together with a user name.
  if ((has_password || has_password_file) && out->username.empty()) {
    r->Fail(has_password ? "password" : "password_file",
            "a password needs " + r->Name("username") +
                "; MQTT 3.1.1 sends a password only with a user name");
  }

  std::string protocol;
  if (r->Choice("protocol", {"5", "3.1.1"}, &protocol)) {
    out->protocol =
        protocol == "3.1.1" ? connectors::MqttProtocol::kV311 : connectors::MqttProtocol::kV5;
  }
  r->Duration("keepalive_s", 0, 65535, &out->keepalive);
  ReadReconnectRange(r, &out->reconnect_min, &out->reconnect_max);

  const toml::table* tls_table = r->Table("tls");
  TableReader tls(errors, tls_table, r->Name("tls"));
  if (rules.tls_enabled_key) tls.Bool("enabled", &out->tls);
  const bool tls_url = IsTlsScheme(out->url);
  for (std::string_view key : {"ca_file", "cert_file", "key_file"}) {
    std::string* field = key == "ca_file"     ? &out->ca_file
                         : key == "cert_file" ? &out->cert_file
                                              : &out->key_file;
    if (ReadFilePath(&tls, env, key, field) && !rules.tls_enabled_key && !tls_url) {
      tls.Fail(key, "is set but " + r->Name("url") + " " + Quote(out->url) +
                        " is not a TLS URL; use ssl:// or mqtts://");
    }
  }
  if (tls.Bool("verify", &out->tls_verify) && !rules.tls_enabled_key && !tls_url) {
    tls.Fail("verify", "is set but " + r->Name("url") + " " + Quote(out->url) +
                           " is not a TLS URL; use ssl:// or mqtts://");
  }
  tls.RejectUnknownKeys();
  if (!rules.tls_enabled_key) {
    out->tls = tls_url;
  } else if (r->ok() && out->tls != tls_url) {
    // Paho picks TLS from the URL scheme and ignores the TLS options otherwise, so a mismatch
    // would either send the password in clear text or fail every connection attempt.
    const std::string enabled = tls.Name("enabled");
    r->Fail("url", out->tls ? Quote(out->url) + " is not a TLS URL but " + enabled +
                                  " is true; use ssl://, mqtts:// or wss://"
                            : Quote(out->url) + " is a TLS URL but " + enabled + " is false; set " +
                                  enabled + " = true or use tcp://, mqtt:// or ws://");
  }
}

void ReadSourceMqtt(TomlErrors* errors, const toml::table* table, const ConfigEnvironment& env,
                    Config* config) {
  TableReader r(errors, table, "mqtt");
  MqttConnectionRules rules;
  rules.schemes = {"tcp://", "ssl://", "mqtt://", "mqtts://", "ws://", "wss://"};
  rules.tls_enabled_key = true;
  rules.default_client_id = "sluice-" + config->gateway.id;
  ReadMqttConnection(&r, env, rules, &config->mqtt.connection, &config->secret_files);
  r.RejectUnknownKeys();
}

// ---- Kafka ----

// Where each property was written, so that librdkafka's refusal can point at its line.
using PropertySources = std::map<std::string, toml::source_region>;

// Flattens a properties table into librdkafka's dotted names. Unquoted dotted TOML keys such as
// `security.protocol = "SSL"` parse as nested tables, so nesting is folded back into the name.
// No message here shows a value: a property may be a password under a misspelt name.
void ReadProperties(TomlErrors* errors, const ConfigEnvironment& env, const toml::table& table,
                    const std::string& table_name, const std::string& prefix,
                    std::map<std::string, std::string>* out, PropertySources* sources) {
  for (auto&& [key, node] : table) {
    if (!errors->ok()) return;
    const std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    // librdkafka takes names as C strings: "acks\u0000x" would reach it as "acks", past the
    // refusal below.
    if (const size_t nul = name.find('\0'); nul != std::string::npos) {
      errors->Fail(&key.source(),
                   table_name + " '" + name.substr(0, nul) +
                       "\\u0000...': a property name must not contain a NUL character");
      return;
    }
    const std::string where = table_name + " '" + name + "'";
    if (const auto* sub = node.as_table()) {
      ReadProperties(errors, env, *sub, table_name, name, out, sources);
      continue;
    }
    const connectors::OwnedKafkaSetting* owned = connectors::FindOwnedKafkaSetting(name);
    if (owned != nullptr && owned->allowed.empty()) {
      errors->Fail(&key.source(), where + " cannot be set here: " + std::string(owned->reason));
      return;
    }
    std::string value;
    if (const auto* s = node.as_string()) {
      value = s->get();
      if (value.find('\0') != std::string::npos) {
        errors->Fail(&node.source(), where + ": contains a NUL character");
        return;
      }
      // For file properties such as ssl.key.location.
      std::string problem = ExpandCredentials(env, &value, /*show=*/false);
      if (!problem.empty()) {
        errors->Fail(&node.source(), where + ": " + problem);
        return;
      }
    } else if (const auto* i = node.as_integer()) {
      value = std::to_string(i->get());
    } else if (const auto* b = node.as_boolean()) {
      value = b->get() ? "true" : "false";
    } else {
      errors->Fail(&node.source(),
                   where + ": expected a string, integer or boolean, found " + DescribeType(node));
      return;
    }
    if (owned != nullptr && !connectors::OwnedSettingAllows(*owned, value)) {
      // The value stays out of the message, as everywhere in the properties.
      errors->Fail(&node.source(),
                   where + " cannot take this value: " + std::string(owned->reason));
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
void CheckKafkaProperties(TomlErrors* errors, const std::map<std::string, std::string>& properties,
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
  // The password read from sasl_password_file has no line of its own.
  errors->Fail(at == sources.end() ? nullptr : &at->second, message);
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

// The keys of a Kafka upstream, in the old [kafka] table and in [upstream.NAME] (kind = "kafka")
// alike; `legacy` leaves out the keys the old form never had.
void ReadKafkaOptions(TableReader* r, const ConfigEnvironment& env, bool legacy,
                      connectors::KafkaSinkOptions* out,
                      std::map<std::string, std::string>* secret_files) {
  TomlErrors* errors = r->errors();
  if (r->NonEmptyString("brokers", &out->brokers)) {
    const std::string problem = BrokerListProblem(out->brokers);
    if (!problem.empty()) r->Fail("brokers", problem);
  }
  r->Choice("compression", {"none", "gzip", "snappy", "lz4", "zstd"}, &out->compression);
  // Ranges follow librdkafka's limits for the properties these keys map to.
  r->Integer("linger_ms", 0, 900'000, &out->linger_ms);
  r->Integer("batch_bytes", 1, 2'147'483'647, &out->batch_bytes);
  r->Integer("max_in_flight_events", 1, 10'000'000, &out->max_in_flight);
  r->Integer("retry_backoff_ms", 1, 300'000, &out->retry_backoff_ms);
  r->Integer("reconnect_max_ms", 1, kMaxBackoffMs, &out->reconnect_max_ms);
  if (!legacy && r->String("gap_topic", &out->gap_topic)) {
    const std::string problem = KafkaTopicProblem(out->gap_topic);
    if (!problem.empty()) r->Fail("gap_topic", Quote(out->gap_topic) + " " + problem);
  }
  {
    std::string delivery;
    if (r->Choice("delivery", {"at-least-once", "exactly-once"}, &delivery)) {
      out->delivery = delivery == "exactly-once" ? connectors::KafkaDelivery::kExactlyOnce
                                                 : connectors::KafkaDelivery::kAtLeastOnce;
    }
    r->Integer("transaction_max_events", 1, 1'000'000, &out->transaction_max_events);
    r->Integer("transaction_interval_ms", 1, 60'000, &out->transaction_interval_ms);
    // librdkafka's range for transaction.timeout.ms.
    r->Integer("transaction_timeout_ms", 1000, 2'147'483'647, &out->transaction_timeout_ms);
    if (r->String("checkpoint_topic", &out->checkpoint_topic)) {
      const std::string problem = KafkaTopicProblem(out->checkpoint_topic);
      if (!problem.empty()) {
        r->Fail("checkpoint_topic", Quote(out->checkpoint_topic) + " " + problem);
      }
    }
  }
  PropertySources sources;
  if (const toml::table* properties = r->Table("properties")) {
    ReadProperties(errors, env, *properties, r->Name("properties"), "", &out->properties, &sources);
  }
  std::string path;
  std::string password;
  if (errors->ok() && ReadSecretFileKey(r, env, "sasl_password_file", &path, &password)) {
    if (out->properties.count("sasl.password") != 0) {
      r->Fail("sasl_password_file", r->Name("sasl_password_file") + " and " +
                                        r->Name("properties") +
                                        " 'sasl.password' are mutually exclusive; set one");
    } else {
      (*secret_files)[r->Name("sasl_password_file")] = password;
      out->properties["sasl.password"] = std::move(password);
    }
  } else {
    r->Get("sasl_password_file");  // known, even when an earlier error skipped it
  }
  if (errors->ok()) CheckKafkaProperties(errors, out->properties, sources);
}

// ---- MQTT topic templates ----

// TODO(connectors/topic_template.h): switch to its template parser once it lands; until then
// this restates its rules (placeholders in braces, no wildcards).
// What is wrong with an MQTT topic template, or empty. `placeholders` are the names it may use;
// null accepts any well-formed name (a template checked again where a route uses it).
std::string TopicTemplateProblem(std::string_view text,
                                 const std::vector<std::string>* placeholders) {
  if (text.empty()) return "must not be empty";
  if (text.size() > kMaxMqttStringBytes) return "is longer than MQTT's 65535 bytes";
  if (text.find_first_of("+#") != std::string_view::npos) {
    return Quote(text) + " contains '+' or '#'; a topic to publish to has no wildcards";
  }
  if (text.front() == '$') {
    return Quote(text) + " begins with '$', which brokers reserve for their own topics";
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') return Quote(text) + " has a '}' without its '{'";
    if (text[i] != '{') continue;
    const size_t close = text.find('}', i + 1);
    if (close == std::string_view::npos) return Quote(text) + " has a '{' without its '}'";
    const std::string name(text.substr(i + 1, close - i - 1));
    const bool well_formed = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
    });
    if (!well_formed) {
      return Quote(text) + ": {" + name + "} is not a placeholder (a name of A-Z, a-z, 0-9, _)";
    }
    if (placeholders != nullptr &&
        std::find(placeholders->begin(), placeholders->end(), name) == placeholders->end()) {
      std::string list;
      for (const std::string& p : *placeholders) {
        list += list.empty() ? "{" : ", {";
        list += p;
        list += '}';
      }
      std::string problem = Quote(text) + ": placeholder {" + name + "} is not one of " + list;
      if (auto hint = ClosestMatch(name, *placeholders)) {
        problem += " (did you mean {" + *hint + "}?)";
      }
      return problem;
    }
    i = close;
  }
  return "";
}

// The capture of a key pattern ("device" for "devices/{device}/#"), if it has one.
std::optional<std::string> KeyCapture(std::string_view key_pattern) {
  size_t start = 0;
  while (start <= key_pattern.size()) {
    size_t slash = key_pattern.find('/', start);
    if (slash == std::string_view::npos) slash = key_pattern.size();
    const std::string_view level = key_pattern.substr(start, slash - start);
    if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      return std::string(level.substr(1, level.size() - 2));
    }
    start = slash + 1;
  }
  return std::nullopt;
}

// ---- RabbitMQ upstreams ----

// AMQP 0-9-1 short strings (exchange names, routing keys, vhosts) hold at most 255 bytes.
constexpr size_t kMaxAmqpShortString = 255;

void ReadRabbitmqOptions(TableReader* r, const ConfigEnvironment& env,
                         connectors::AmqpSinkOptions* out,
                         std::map<std::string, std::string>* secret_files) {
  TomlErrors* errors = r->errors();
  connectors::AmqpEndpoint& e = out->endpoint;
  connectors::AmqpAddress address;
  if (r->String("url", &e.url)) {
    const Status s = connectors::ParseAmqpUrl(e.url, &address);
    if (!s.ok()) r->Fail("url", s.message());
  } else if (!connectors::ParseAmqpUrl(e.url, &address).ok()) {
    r->Fail("url", "the default " + Quote(e.url) + " does not parse");  // a bug, not the file's
  }
  if (r->String("vhost", &e.vhost) && (e.vhost.empty() || e.vhost.size() > kMaxAmqpShortString)) {
    r->Fail("vhost", "must be 1..255 bytes long (\"/\" is RabbitMQ's default vhost)");
  }
  const bool has_username = r->String("username", &e.username);
  if (has_username && (e.username.empty() || e.username.size() > kMaxAmqpShortString)) {
    r->Fail("username", "must be 1..255 bytes long");
  }
  const bool has_password = r->String("password", &e.password, /*secret=*/true);
  bool has_password_file = false;
  if (r->Has("password_file") && has_password) {
    r->Get("password_file");
    r->Fail("password_file", r->Name("password") + " and " + r->Name("password_file") +
                                 " are mutually exclusive; set one");
  } else {
    std::string path;
    has_password_file = ReadSecretFileKey(r, env, "password_file", &path, &e.password);
    if (has_password_file) (*secret_files)[r->Name("password_file")] = e.password;
  }
  // The default password belongs to the default user only.
  if (r->ok() && has_username && !has_password && !has_password_file) {
    r->Fail("username", Quote(e.username) + " needs " + r->Name("password_file") + " (or " +
                            r->Name("password") + ")");
  }

  const toml::table* tls_table = r->Table("tls");
  TableReader tls(errors, tls_table, r->Name("tls"));
  for (std::string_view key : {"ca_file", "cert_file", "key_file"}) {
    std::string* field = key == "ca_file"     ? &e.ca_file
                         : key == "cert_file" ? &e.cert_file
                                              : &e.key_file;
    if (ReadFilePath(&tls, env, key, field) && !address.tls) {
      tls.Fail(key, "is set but " + r->Name("url") + " " + Quote(e.url) +
                        " is not a TLS URL; use amqps://");
    }
  }
  if (tls.Bool("verify", &e.tls_verify) && !address.tls) {
    tls.Fail("verify", "is set but " + r->Name("url") + " " + Quote(e.url) +
                           " is not a TLS URL; use amqps://");
  }
  if (tls.ok() && e.cert_file.empty() != e.key_file.empty()) {
    tls.Fail(e.cert_file.empty() ? "key_file" : "cert_file",
             "needs " + tls.Name(e.cert_file.empty() ? "cert_file" : "key_file") +
                 " too: a client certificate goes with its key");
  }
  tls.RejectUnknownKeys();

  r->Duration("heartbeat_s", 0, 65535, &e.heartbeat);
  // Every AMQP call, a publish included, may block the forwarder this long: at most half of the
  // unit's WatchdogSec (30 s), so that a broker that stops reading never gets sluice restarted.
  r->Duration("connect_timeout_ms", 100, 15'000, &e.connect_timeout);
  ReadReconnectRange(r, &e.reconnect_min, &e.reconnect_max);
  if (r->String("exchange", &out->exchange) && out->exchange.size() > kMaxAmqpShortString) {
    r->Fail("exchange", "is longer than AMQP's 255 bytes");
  }
  r->Integer("max_in_flight", 1, 1'000'000, &out->max_in_flight);
  if (r->String("gap_routing_key", &out->gap_routing_key)) {
    // A gap record belongs to no MQTT message and no route.
    static const std::vector<std::string> kGapPlaceholders = {"gateway"};
    std::string problem = TopicTemplateProblem(out->gap_routing_key, &kGapPlaceholders);
    if (problem.empty() && out->gap_routing_key.size() > kMaxAmqpShortString) {
      problem = "is longer than AMQP's 255 bytes";
    }
    if (!problem.empty()) r->Fail("gap_routing_key", problem);
  }
}

// ---- [upstream.NAME] ----

std::string UpstreamNameProblem(std::string_view name) {
  if (name.empty() || name.size() > kMaxUpstreamNameLength) {
    return "must be 1..64 characters long";
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok)
      return "may contain only A-Z, a-z, 0-9, '_' and '-' (it names a cursor and a metric label)";
  }
  return "";
}

// Every key of each kind of upstream but `kind`, to say which kind a key belongs to when another
// kind is given it. The keys each kind reads are stated by its reader below;
// tests/gateway/config_documented_test.cpp fails when a reader asks for a key missing from its
// kind's list (it would be named as another kind's) or when a key some kinds lack is not named.
constexpr std::string_view kKafkaKeys[] = {"brokers",
                                           "compression",
                                           "linger_ms",
                                           "batch_bytes",
                                           "max_in_flight_events",
                                           "retry_backoff_ms",
                                           "reconnect_max_ms",
                                           "gap_topic",
                                           "properties",
                                           "sasl_password_file",
                                           "delivery",
                                           "transaction_max_events",
                                           "transaction_interval_ms",
                                           "transaction_timeout_ms",
                                           "checkpoint_topic"};
constexpr std::string_view kMqttKeys[] = {
    "url",           "protocol",    "client_id",        "username",         "password",
    "password_file", "keepalive_s", "reconnect_min_ms", "reconnect_max_ms", "tls",
    "max_in_flight", "topic",       "gap_topic"};
constexpr std::string_view kKinesisKeys[] = {"region",
                                             "endpoint",
                                             "credentials_file",
                                             "tls",
                                             "gap_stream",
                                             "batch_records",
                                             "reconnect_min_ms",
                                             "reconnect_max_ms",
                                             "request_timeout_ms"};

constexpr std::string_view kRabbitmqKeys[] = {
    "url",      "vhost",         "username",           "password",         "password_file",
    "tls",      "heartbeat_s",   "connect_timeout_ms", "reconnect_min_ms", "reconnect_max_ms",
    "exchange", "max_in_flight", "gap_routing_key"};

struct KindKeys {
  UpstreamKind kind;
  std::span<const std::string_view> keys;
};
constexpr KindKeys kKindKeys[] = {{UpstreamKind::kKafka, kKafkaKeys},
                                  {UpstreamKind::kMqtt, kMqttKeys},
                                  {UpstreamKind::kKinesis, kKinesisKeys},
                                  {UpstreamKind::kRabbitmq, kRabbitmqKeys}};

bool KindHasKey(UpstreamKind kind, std::string_view key) {
  for (const KindKeys& k : kKindKeys) {
    if (k.kind == kind) return std::find(k.keys.begin(), k.keys.end(), key) != k.keys.end();
  }
  return false;
}

// "is a key of kind "mqtt" or "kinesis"" when `key` is no key of `kind` but another kind's;
// empty otherwise.
std::string OtherKindsKey(UpstreamKind kind, std::string_view key) {
  if (KindHasKey(kind, key)) return "";
  std::string owners;
  for (const KindKeys& k : kKindKeys) {
    if (k.kind == kind || !KindHasKey(k.kind, key)) continue;
    owners += (owners.empty() ? "\"" : " or \"") + std::string(ToString(k.kind)) + "\"";
  }
  return owners.empty() ? "" : "is a key of kind " + owners;
}

// ---- Kinesis upstreams ----

// Kinesis stream names: 1..128 of a-z, A-Z, 0-9, '_', '.', '-'.
std::string KinesisStreamProblem(std::string_view stream) {
  if (stream.empty() || stream.size() > 128) return "must be 1..128 characters long";
  for (char c : stream) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return "may contain only a-z, A-Z, 0-9, '.', '_' and '-' (a Kinesis stream name)";
  }
  return "";
}

void ReadKinesisOptions(TableReader* r, const ConfigEnvironment& env,
                        connectors::KinesisSinkOptions* out,
                        std::map<std::string, std::string>* secret_files) {
  TomlErrors* errors = r->errors();
  if (!r->Has("region")) {
    errors->Fail(r->TableSource(),
                 r->Name("region") + " is required for kind \"kinesis\", e.g. \"eu-west-1\"");
    return;
  }
  if (r->NonEmptyString("region", &out->region)) {
    const bool ok = std::all_of(out->region.begin(), out->region.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!ok) r->Fail("region", Quote(out->region) + " is not a region name, e.g. \"eu-west-1\"");
  }
  if (r->String("endpoint", &out->endpoint)) {
    if (!out->endpoint.starts_with("https://")) {
      r->Fail("endpoint", Quote(out->endpoint) + " must start with https://");
    } else if (out->endpoint.size() == 8 || out->endpoint[8] == '/' || out->endpoint[8] == ':') {
      r->Fail("endpoint",
              Quote(out->endpoint) + " names no host, e.g. \"https://kinesis.example\"");
    }
    while (out->endpoint.ends_with('/')) out->endpoint.pop_back();
  }
  if (!r->Has("credentials_file")) {
    errors->Fail(r->TableSource(),
                 r->Name("credentials_file") +
                     " is required for kind \"kinesis\": a file with aws_access_key_id and "
                     "aws_secret_access_key (docs/configuration.md)");
    return;
  }
  std::string path;
  std::string text;
  if (ReadSecretFileKey(r, env, "credentials_file", &path, &text)) {
    const std::string problem = ParseAwsCredentials(text, &out->credentials);
    if (!problem.empty()) {
      r->Fail("credentials_file", "file " + Quote(path) + " " + problem);
    } else {
      (*secret_files)[r->Name("credentials_file")] = text;
    }
  }
  const toml::table* tls_table = r->Table("tls");
  TableReader tls(errors, tls_table, r->Name("tls"));
  ReadFilePath(&tls, env, "ca_file", &out->ca_file);
  tls.Bool("verify", &out->tls_verify);
  tls.RejectUnknownKeys();
  if (r->String("gap_stream", &out->gap_stream)) {
    const std::string problem = KinesisStreamProblem(out->gap_stream);
    if (!problem.empty()) r->Fail("gap_stream", Quote(out->gap_stream) + " " + problem);
  }
  r->Integer("batch_records", 1, 500, &out->batch_records);
  r->Duration("reconnect_min_ms", 1, kMaxBackoffMs, &out->retry_min);
  r->Duration("reconnect_max_ms", 1, kMaxBackoffMs, &out->retry_max);
  if (r->ok() && out->retry_min > out->retry_max) {
    r->Fail(r->Has("reconnect_min_ms") ? "reconnect_min_ms" : "reconnect_max_ms",
            std::to_string(out->retry_min.count()) + " ms must not exceed " +
                r->Name("reconnect_max_ms") + " (" + std::to_string(out->retry_max.count()) +
                " ms)");
  }
  // The request runs on the forwarder's thread: a longer wait would look like a wedged forwarder
  // to the watchdog (Daemon::kStallLimit, 30 s).
  r->Duration("request_timeout_ms", 1000, 20'000, &out->request_timeout);
}

// The MQTT upstreams' `topic` keys: the template a route's `NAME = true` stands for.
using DefaultTopics = std::map<std::string, std::string>;

void ReadUpstream(TomlErrors* errors, const ConfigEnvironment& env, const std::string& name,
                  const toml::node& node, const GatewayConfig& gateway, Config* config,
                  DefaultTopics* default_topics) {
  const std::string path = "upstream." + name;
  if (const std::string problem = UpstreamNameProblem(name); !problem.empty()) {
    errors->Fail(&node.source(), "upstream " + Quote(name) + ": the name " + problem);
    return;
  }
  const toml::table* table = node.as_table();
  if (table == nullptr) {
    errors->Fail(&node.source(),
                 path + ": expected a table ([" + path + "]), found " + Describe(node));
    return;
  }
  TableReader r(errors, table, path);
  UpstreamConfig upstream;
  upstream.name = name;
  std::string kind;
  if (!r.Has("kind")) {
    errors->Fail(&table->source(),
                 path + ".kind is required: \"kafka\", \"mqtt\", \"kinesis\" or \"rabbitmq\"");
    return;
  }
  if (!r.Choice("kind", {"kafka", "mqtt", "kinesis", "rabbitmq"}, &kind)) return;
  upstream.kind = kind == "mqtt"       ? UpstreamKind::kMqtt
                  : kind == "kinesis"  ? UpstreamKind::kKinesis
                  : kind == "rabbitmq" ? UpstreamKind::kRabbitmq
                                       : UpstreamKind::kKafka;
  // A key of another kind would be "unknown" below; say what it is instead.
  for (auto&& [key, value] : *table) {
    const std::string other = OtherKindsKey(upstream.kind, key.str());
    if (!other.empty()) {
      r.Fail(key.str(), other + ", but " + path + " is kind \"" + kind + "\"");
      return;
    }
  }
  if (upstream.kind == UpstreamKind::kKafka) {
    upstream.kafka.gateway_id = gateway.id;
    upstream.kafka.upstream = name;
    ReadKafkaOptions(&r, env, /*legacy=*/false, &upstream.kafka, &config->secret_files);
  } else if (upstream.kind == UpstreamKind::kKinesis) {
    upstream.kinesis.name = name;
    upstream.kinesis.gateway_id = gateway.id;
    ReadKinesisOptions(&r, env, &upstream.kinesis, &config->secret_files);
  } else if (upstream.kind == UpstreamKind::kRabbitmq) {
    upstream.rabbitmq.name = name;
    upstream.rabbitmq.gateway_id = gateway.id;
    ReadRabbitmqOptions(&r, env, &upstream.rabbitmq, &config->secret_files);
  } else {
    connectors::MqttSinkOptions& mqtt = upstream.mqtt;
    mqtt.name = name;
    mqtt.gateway_id = gateway.id;
    MqttConnectionRules rules;
    rules.schemes = {"tcp://", "mqtt://", "ssl://", "mqtts://"};
    rules.default_client_id = "sluice-" + gateway.id + "-" + name;
    ReadMqttConnection(&r, env, rules, &mqtt.connection, &config->secret_files);
    // MQTT packet identifiers are 16 bits: no more QoS 1 messages can be unacknowledged at once.
    r.Integer("max_in_flight", 1, 65535, &mqtt.max_in_flight);
    std::string topic(kDefaultMqttTopic);
    if (r.String("topic", &topic)) {
      // The route's captures are checked where a route uses it; here only what no route can fix.
      // Which captures it may use depends on the route; ReadTarget checks that.
      const std::string problem = TopicTemplateProblem(topic, nullptr);
      if (!problem.empty()) r.Fail("topic", problem);
    }
    (*default_topics)[name] = topic;
    if (r.String("gap_topic", &mqtt.gap_topic)) {
      // A gap record belongs to no MQTT message and no route.
      static const std::vector<std::string> kGapPlaceholders = {"gateway"};
      const std::string problem = TopicTemplateProblem(mqtt.gap_topic, &kGapPlaceholders);
      if (!problem.empty()) r.Fail("gap_topic", problem);
    }
    // Two connections with one client id to one broker take the session from each other in turn.
    const auto same_session = [&](const connectors::MqttConnection& other) {
      return other.url == mqtt.connection.url && other.client_id == mqtt.connection.client_id;
    };
    if (r.ok() && same_session(config->mqtt.connection)) {
      r.Fail("client_id", Quote(mqtt.connection.client_id) +
                              " is also mqtt.client_id on the same broker; the two connections "
                              "would take the session from each other");
    }
    for (const UpstreamConfig& other : config->upstreams) {
      if (r.ok() && other.kind == UpstreamKind::kMqtt && same_session(other.mqtt.connection)) {
        r.Fail("client_id", Quote(mqtt.connection.client_id) + " is also upstream." + other.name +
                                ".client_id on the same broker");
      }
    }
  }
  r.RejectUnknownKeys();
  if (errors->ok()) config->upstreams.push_back(std::move(upstream));
}

void ReadUpstreams(TomlErrors* errors, const ConfigEnvironment& env, const toml::table& table,
                   Config* config, DefaultTopics* default_topics) {
  for (const auto& [name, node] : InFileOrder(table)) {
    ReadUpstream(errors, env, name, *node, config->gateway, config, default_topics);
    if (!errors->ok()) return;
  }
  if (config->upstreams.empty()) {
    errors->Fail(&table.source(),
                 "upstream: no [upstream.NAME] block; sluice needs at least one upstream to "
                 "forward to (docs/configuration.md)");
  }
}

// ---- The old form and its rewrite ----

// TOML text for a key or a value, strings in double quotes.
std::string TomlKey(std::string_view key) {
  const bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
  if (bare) return std::string(key);
  std::ostringstream os;
  os << toml::toml_formatter{toml::value<std::string>(std::string(key)), toml::format_flags::none};
  return os.str();
}

std::string TomlValue(const toml::node& node) {
  std::ostringstream os;
  os << toml::toml_formatter{node, toml::format_flags::none};
  return os.str();
}

// librdkafka properties that hold a secret (librdkafka marks them sensitive): the rewrite names
// them but does not show their values.
bool IsSecretKafkaProperty(std::string_view name) {
  static constexpr std::string_view kSecret[] = {"sasl.password",
                                                 "ssl.key.password",
                                                 "ssl.keystore.password",
                                                 "ssl.key.pem",
                                                 "ssl_key",
                                                 "sasl.oauthbearer.client.secret",
                                                 "sasl.oauthbearer.config"};
  return std::find(std::begin(kSecret), std::end(kSecret), name) != std::end(kSecret);
}

// How much of the old form's text a rewrite may show. Once the file was validated, every property
// name is one librdkafka knows and only the sensitive ones are hidden. An error about mixing the
// forms comes before that: a password may sit under a misspelt name, so no property value, and
// no value of a key the old form does not have, is shown.
enum class Shown { kValidated, kUnvalidated };

std::string HiddenLine(std::string_view key, std::string_view table) {
  return "# " + TomlKey(key) + " = ...  (as in " + std::string(table) + "; not shown)\n";
}

void RewriteProperties(const toml::table& table, const std::string& prefix, Shown shown,
                       std::string* out) {
  for (auto&& [key, node] : table) {
    const std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const auto* sub = node.as_table()) {
      RewriteProperties(*sub, name, shown, out);
    } else if (shown == Shown::kUnvalidated || IsSecretKafkaProperty(name)) {
      *out += HiddenLine(name, "[kafka.properties]");
    } else {
      *out += TomlKey(name) + " = " + TomlValue(node) + "\n";
    }
  }
}

// The old [kafka] table as the new form's [upstream.kafka] block.
std::string RewriteKafkaTable(const toml::table* kafka, Shown shown) {
  static constexpr std::string_view kKeys[] = {"brokers",
                                               "compression",
                                               "linger_ms",
                                               "batch_bytes",
                                               "max_in_flight_events",
                                               "retry_backoff_ms",
                                               "reconnect_max_ms",
                                               "sasl_password_file",
                                               "delivery",
                                               "transaction_max_events",
                                               "transaction_interval_ms",
                                               "transaction_timeout_ms",
                                               "checkpoint_topic"};
  std::string out = "[upstream." + std::string(kLegacyUpstream) + "]\nkind = \"kafka\"\n";
  const toml::table* properties = nullptr;
  if (kafka != nullptr) {
    for (const auto& [key, node] : InFileOrder(*kafka)) {
      if (key == "properties" && node->is_table()) {
        properties = node->as_table();
      } else if (shown == Shown::kUnvalidated &&
                 std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
        out += HiddenLine(key, "[kafka]");
      } else {
        out += TomlKey(key) + " = " + TomlValue(*node) + "\n";
      }
    }
  }
  if (properties != nullptr && !properties->empty()) {
    out += "\n[upstream." + std::string(kLegacyUpstream) + ".properties]\n";
    RewriteProperties(*properties, "", shown, &out);
  }
  return out;
}

// One old-form [[route]] with `to` in place of kafka_topic.
std::string RewriteRoute(const toml::table& route, Shown shown) {
  static constexpr std::string_view kKeys[] = {"mqtt", "key", "qos", "retained", "forward_retain"};
  std::string out = "[[route]]\n";
  for (const auto& [key, node] : InFileOrder(route)) {
    if (key == "kafka_topic") {
      out += "to = { " + std::string(kLegacyUpstream) + " = " + TomlValue(*node) + " }\n";
    } else if (shown == Shown::kUnvalidated &&
               std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys)) {
      out += HiddenLine(key, "the route");
    } else {
      out += TomlKey(key) + " = " + TomlValue(*node) + "\n";
    }
  }
  return out;
}

std::string LegacyRewrite(const toml::table* kafka, const toml::array* routes, Shown shown) {
  std::string out = RewriteKafkaTable(kafka, shown);
  if (routes != nullptr) {
    for (const toml::node& route : *routes) {
      if (const toml::table* t = route.as_table()) {
        // Two appends: GCC 12 warns (-Wrestrict, a false positive) on "\n" + std::string.
        out += '\n';
        out += RewriteRoute(*t, shown);
      }
    }
  }
  return out;
}

// ---- [metrics] ----

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

void ReadMetrics(TomlErrors* errors, const toml::table* table, MetricsConfig* out) {
  TableReader r(errors, table, "metrics");
  r.Bool("enabled", &out->enabled);
  if (r.NonEmptyString("listen", &out->listen)) {
    std::string problem = SplitListen(out->listen, &out->address, &out->port);
    if (!problem.empty()) r.Fail("listen", problem);
  }
  r.RejectUnknownKeys();
}

// ---- [[route]] ----

// What the routes are read against.
struct RouteContext {
  bool new_form = false;
  const Config* config = nullptr;
  const DefaultTopics* default_topics = nullptr;
  // The old form's rewrite, for the error that mixes the forms.
  std::string legacy_rewrite;
};

// The placeholders a route's template may use: those of every route and its key's capture.
std::vector<std::string> TemplatePlaceholders(const std::string& key_pattern) {
  std::vector<std::string> placeholders = {"gateway", "mqtt_topic"};
  if (auto capture = KeyCapture(key_pattern)) placeholders.push_back(*capture);
  return placeholders;
}

// What a route must name on an upstream of `kind` other than MQTT, for "needs ...".
const char* TargetNoun(UpstreamKind kind) {
  switch (kind) {
    case UpstreamKind::kKinesis:
      return "a stream name here";
    case UpstreamKind::kRabbitmq:
      return "a routing key here (with the default exchange: the stream's name)";
    case UpstreamKind::kKafka:
    case UpstreamKind::kMqtt:
      break;
  }
  return "a topic name here";
}

// Why `target` cannot be a route's target on an upstream of `kind` other than MQTT; empty if it
// can.
std::string TargetProblem(UpstreamKind kind, const std::string& target,
                          const std::string& key_pattern) {
  switch (kind) {
    case UpstreamKind::kKafka:
      if (std::string p = KafkaTopicProblem(target); !p.empty()) {
        return "Kafka topic " + Quote(target) + " " + p;
      }
      return "";
    case UpstreamKind::kKinesis:
      if (std::string p = KinesisStreamProblem(target); !p.empty()) {
        return "Kinesis stream " + Quote(target) + " " + p;
      }
      return "";
    case UpstreamKind::kRabbitmq: {
      std::vector<std::string> placeholders = TemplatePlaceholders(key_pattern);
      std::string p = TopicTemplateProblem(target, &placeholders);
      if (p.empty() && target.size() > kMaxAmqpShortString) {
        p = "routing key " + Quote(target) + " is longer than AMQP's 255 bytes";
      }
      return p;
    }
    case UpstreamKind::kMqtt:
      break;
  }
  return "";
}

void ReadTarget(TableReader* to, const RouteContext& rc, const std::string& upstream_name,
                const toml::node& node, const RouteConfig& route, RouteConfig* out) {
  const std::string key_name = to->Name(upstream_name);
  const UpstreamConfig* upstream = FindUpstream(*rc.config, upstream_name);
  if (upstream == nullptr) {
    std::vector<std::string> names;
    for (const UpstreamConfig& u : rc.config->upstreams) names.push_back(u.name);
    std::string message = key_name + ": no upstream is named " + Quote(upstream_name);
    if (auto hint = ClosestMatch(upstream_name, names)) {
      message += " (did you mean '" + *hint + "'?)";
    } else {
      std::string list;
      for (const std::string& n : names) {
        if (!list.empty()) list += ", ";
        list += n;
      }
      message += "; the upstreams are " + list;
    }
    to->errors()->Fail(&node.source(), message);
    return;
  }
  to->Get(upstream_name);
  RouteTarget target;
  target.upstream = upstream_name;
  if (upstream->kind != UpstreamKind::kMqtt) {
    // Only an MQTT upstream has a target of its own (`topic`) that `true` can stand for.
    if (node.is_boolean()) {
      to->Fail(upstream_name, "upstream." + upstream_name + " is kind \"" +
                                  ToString(upstream->kind) + "\" and needs " +
                                  TargetNoun(upstream->kind) + ", e.g. " + upstream_name +
                                  " = \"telemetry\"");
      return;
    }
    if (!to->String(upstream_name, &target.target)) return;
    const std::string problem = TargetProblem(upstream->kind, target.target, route.key_pattern);
    if (!problem.empty()) {
      to->Fail(upstream_name, problem);
      return;
    }
  } else {
    const std::string topic_key = "upstream." + upstream_name + ".topic";
    if (const auto* flag = node.as_boolean()) {
      if (!flag->get()) {
        to->Fail(upstream_name,
                 "false feeds nothing; leave the upstream out of " + to->path() + " instead");
        return;
      }
      target.target = rc.default_topics->at(upstream_name);
    } else if (!to->String(upstream_name, &target.target)) {
      return;
    }
    std::vector<std::string> placeholders = TemplatePlaceholders(route.key_pattern);
    std::string problem = TopicTemplateProblem(target.target, &placeholders);
    if (!problem.empty()) {
      if (node.is_boolean()) problem = "true takes " + topic_key + ", which " + problem;
      if (problem.find("placeholder") != std::string::npos) {
        problem += "; a route's template may use the capture of its key (" +
                   (route.key_pattern.empty() ? std::string("this route has no key")
                                              : "key " + Quote(route.key_pattern)) +
                   ")";
      }
      to->Fail(upstream_name, problem);
      return;
    }
  }
  out->targets.push_back(std::move(target));
}

void ReadRoute(TomlErrors* errors, const toml::table& table, const std::string& name,
               const RouteContext& rc, RouteConfig* out) {
  TableReader r(errors, &table, name);
  if (r.String("mqtt", &out->mqtt_filter)) {
    Status s = connectors::ValidateTopicFilter(out->mqtt_filter);
    if (!s.ok()) r.Fail("mqtt", s.message());
  } else if (!r.Has("mqtt")) {
    errors->Fail(r.TableSource(),
                 name + ".mqtt is required (the MQTT topic filter to subscribe to)");
  }
  if (r.String("key", &out->key_pattern)) {
    connectors::KeyPattern pattern;
    Status s = connectors::KeyPattern::Parse(out->key_pattern, &pattern);
    if (!s.ok()) r.Fail("key", s.message());
  }
  r.Integer("qos", 0, 2, &out->qos);
  std::string retained;
  if (r.Choice("retained", {"ingest", "skip"}, &retained)) {
    out->retained = retained == "skip" ? RetainedPolicy::kSkip : RetainedPolicy::kIngest;
  }
  r.Bool("forward_retain", &out->forward_retain);
  // Both forms' keys are known in either, so that a typo is named before a missing target is.
  r.Get("to");
  r.Get("kafka_topic");
  r.RejectUnknownKeys();
  if (!errors->ok()) return;

  const bool has_kafka_topic = r.Has("kafka_topic");
  const bool has_to = r.Has("to");
  if (has_kafka_topic && has_to) {
    r.Fail("kafka_topic", "the old form of " + name + ".to; set one of them, e.g. to = { " +
                              std::string(kLegacyUpstream) + " = \"...\" }");
    return;
  }
  if (rc.new_form) {
    if (has_kafka_topic) {
      std::string upstream = "NAME";
      for (const UpstreamConfig& u : rc.config->upstreams) {
        if (u.kind == UpstreamKind::kKafka) {
          upstream = u.name;
          break;
        }
      }
      std::string topic;
      if (const toml::node* node = table.get("kafka_topic")) topic = TomlValue(*node);
      r.Fail("kafka_topic",
             "belongs to the old form ([kafka], route.kafka_topic), which cannot be mixed with "
             "[upstream.*]; write to = { " +
                 upstream + " = " + topic + " }");
      return;
    }
    const toml::table* to = r.Table("to");
    if (to == nullptr) {
      if (!has_to) {
        errors->Fail(r.TableSource(),
                     name +
                         ".to is required: the upstreams this route feeds and its target on "
                         "each, e.g. to = { central = \"telemetry\" }");
      }
      return;
    }
    if (to->empty()) {
      r.Fail("to", "names no upstream; e.g. to = { central = \"telemetry\" }");
      return;
    }
    TableReader to_reader(errors, to, r.Name("to"));
    for (const auto& [upstream, node] : InFileOrder(*to)) {
      ReadTarget(&to_reader, rc, upstream, *node, *out, out);
      if (!errors->ok()) return;
    }
  } else {
    if (has_to) {
      r.Fail("to", "names upstreams, but no [upstream.NAME] block is configured" +
                       std::string(rc.legacy_rewrite.empty()
                                       ? ""
                                       : "; the old form ([kafka], route.kafka_topic) cannot be "
                                         "mixed with the new one. The whole file in the new "
                                         "form uses, in place of [kafka] and every [[route]]:\n" +
                                             rc.legacy_rewrite));
      return;
    }
    RouteTarget target;
    target.upstream = std::string(kLegacyUpstream);
    if (r.String("kafka_topic", &target.target)) {
      std::string problem = KafkaTopicProblem(target.target);
      if (!problem.empty()) {
        r.Fail("kafka_topic", Quote(target.target) + " " + problem);
        return;
      }
      out->targets.push_back(std::move(target));
    } else if (!has_kafka_topic) {
      errors->Fail(r.TableSource(),
                   name +
                       ".kafka_topic is required (the Kafka topic to produce to); or, in the "
                       "new form, name upstreams in [upstream.NAME] blocks and set " +
                       name + ".to");
    }
  }
}

void ReadRoutes(TomlErrors* errors, const toml::node* node, const RouteContext& rc,
                std::vector<RouteConfig>* out) {
  static constexpr std::string_view kNoRoutes =
      "no [[route]] is configured; sluice needs at least one to know which MQTT topics to "
      "forward to which upstream";
  if (node == nullptr) {
    errors->Fail(nullptr, kNoRoutes);
    return;
  }
  const toml::array* routes = node->as_array();
  if (routes == nullptr) {
    errors->Fail(&node->source(),
                 "route: expected an array of tables ([[route]]), found " + Describe(*node));
    return;
  }
  if (routes->empty()) {
    errors->Fail(&node->source(), kNoRoutes);
    return;
  }
  for (size_t i = 0; i < routes->size(); ++i) {
    const std::string name = "route[" + std::to_string(i + 1) + "]";
    const toml::node& element = *routes->get(i);
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      errors->Fail(&element.source(), name + ": expected a table, found " + Describe(element));
      return;
    }
    RouteConfig route;
    ReadRoute(errors, *table, name, rc, &route);
    if (!errors->ok()) return;
    // Two subscriptions with one filter are one subscription at the broker: the second route
    // could never be told apart from the first.
    for (size_t j = 0; j < out->size(); ++j) {
      if ((*out)[j].mqtt_filter == route.mqtt_filter) {
        errors->Fail(table->get("mqtt") ? &table->get("mqtt")->source() : nullptr,
                     name + ".mqtt: filter " + Quote(route.mqtt_filter) +
                         " is already routed by route[" + std::to_string(j + 1) + "]");
        return;
      }
    }
    out->push_back(std::move(route));
  }
}

// Every upstream is fed by a route: one that none feeds would hold its cursor back for nothing.
void CheckEveryUpstreamFed(TomlErrors* errors, const toml::table* upstream_tables,
                           const Config& config) {
  for (const UpstreamConfig& u : config.upstreams) {
    const bool fed = std::any_of(config.routes.begin(), config.routes.end(), [&](const auto& r) {
      return std::any_of(r.targets.begin(), r.targets.end(),
                         [&](const RouteTarget& t) { return t.upstream == u.name; });
    });
    if (fed) continue;
    const toml::node* node = upstream_tables ? upstream_tables->get(u.name) : nullptr;
    errors->Fail(node ? &node->source() : nullptr,
                 "upstream." + u.name + " is fed by no route; name it in a route's `to` (to = { " +
                     u.name + " = ... }) or remove it");
    return;
  }
}

Status ParseDocument(const toml::table& doc, TomlErrors* errors, const ConfigEnvironment& env,
                     Config* out) {
  Config config;
  config.storage.path = std::string(kDefaultLogPath);
  TableReader top(errors, &doc, "");
  const toml::table* gateway = top.Table("gateway");
  const toml::table* storage = top.Table("storage");
  const toml::table* mqtt = top.Table("mqtt");
  const toml::table* kafka = top.Table("kafka");
  const toml::table* upstreams = top.Table("upstream");
  const toml::table* metrics = top.Table("metrics");
  const toml::node* routes = top.Get("route");
  // Unknown sections first: a misspelt [storge] would otherwise surface as a confusing default.
  top.RejectUnknownKeys();
  if (!errors->ok()) return errors->status();

  ReadGateway(errors, gateway, &config.gateway);
  ReadStorage(errors, storage, &config);
  ReadSourceMqtt(errors, mqtt, env, &config);
  ReadMetrics(errors, metrics, &config.metrics);
  if (!errors->ok()) return errors->status();

  RouteContext rc;
  rc.new_form = top.Has("upstream");
  rc.config = &config;
  DefaultTopics default_topics;
  rc.default_topics = &default_topics;
  const toml::array* route_array = routes ? routes->as_array() : nullptr;
  if (rc.new_form) {
    if (kafka != nullptr) {
      errors->Fail(&kafka->source(),
                   "kafka: [kafka] is the old form's one upstream and cannot be mixed with "
                   "[upstream.*]; write it as an upstream block:\n" +
                       RewriteKafkaTable(kafka, Shown::kUnvalidated));
      return errors->status();
    }
    ReadUpstreams(errors, env, *upstreams, &config, &default_topics);
  } else {
    const bool legacy_parts =
        kafka != nullptr ||
        (route_array != nullptr &&
         std::any_of(route_array->begin(), route_array->end(), [](const toml::node& n) {
           return n.is_table() && n.as_table()->contains("kafka_topic");
         }));
    if (legacy_parts) rc.legacy_rewrite = LegacyRewrite(kafka, route_array, Shown::kUnvalidated);
    UpstreamConfig upstream;
    upstream.name = std::string(kLegacyUpstream);
    upstream.kind = UpstreamKind::kKafka;
    upstream.kafka.gateway_id = config.gateway.id;
    TableReader r(errors, kafka, "kafka");
    ReadKafkaOptions(&r, env, /*legacy=*/true, &upstream.kafka, &config.secret_files);
    r.RejectUnknownKeys();
    config.upstreams.push_back(std::move(upstream));
  }
  if (!errors->ok()) return errors->status();

  ReadRoutes(errors, routes, rc, &config.routes);
  if (!errors->ok()) return errors->status();
  CheckEveryUpstreamFed(errors, upstreams, config);
  if (!errors->ok()) return errors->status();

  if (!rc.new_form) config.legacy_rewrite = LegacyRewrite(kafka, route_array, Shown::kValidated);
  config.storage.cursors.clear();
  for (const UpstreamConfig& u : config.upstreams) config.storage.cursors.push_back(u.name);
  for (const RouteConfig& r : config.routes) {
    // Paho C sends PUBREC for a QoS 2 message before the callback runs, so the broker would forget
    // it before it is in the log; QoS 1 is acknowledged only after the commit (the daemon warns).
    config.mqtt.subscriptions.push_back(
        {r.mqtt_filter, std::min(r.qos, 1), r.retained == RetainedPolicy::kIngest});
  }
  *out = std::move(config);
  return Status::Ok();
}

}  // namespace

Status ParseConfig(const std::string& toml_text, const std::string& origin, Config* out,
                   const ConfigEnvironment& env) {
  TomlErrors errors(origin);
  toml::table doc;
  if (!ParseTomlText(toml_text, origin, &errors, &doc)) return errors.status();
  return ParseDocument(doc, &errors, env, out);
}

Status LoadConfigFile(const std::string& path, Config* out, const ConfigEnvironment& env) {
  std::string text;
  Status s = ReadConfigText(path, &text);
  if (!s.ok()) return s;
  return ParseConfig(text, path, out, env);
}

Status ListConfigKeys(const std::string& toml_text, std::vector<std::string>* keys,
                      const ConfigEnvironment& env) {
  TomlErrors errors("");
  errors.RecordKeysIn(keys);
  toml::table doc;
  if (!ParseTomlText(toml_text, "", &errors, &doc)) return errors.status();
  Config config;
  return ParseDocument(doc, &errors, env, &config);
}

const UpstreamConfig* FindUpstream(const Config& config, std::string_view name) {
  for (const UpstreamConfig& u : config.upstreams) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

const char* ToString(UpstreamKind k) {
  switch (k) {
    case UpstreamKind::kKafka:
      return "kafka";
    case UpstreamKind::kMqtt:
      return "mqtt";
    case UpstreamKind::kKinesis:
      return "kinesis";
    case UpstreamKind::kRabbitmq:
      return "rabbitmq";
  }
  return "unknown";
}

}  // namespace sluice::gateway
