// SPDX-License-Identifier: Apache-2.0

// docs/configuration.md against the schema as the parser states it (ListConfigKeys): every key the
// parser asks for has a row in the key table of its section, and every row names a key the parser
// asks for. The manual page sluice.toml(5) is that page converted (cmake/ManPages.cmake), so a key
// documented here is documented there; tests/gateway/cli_man_page_test.sh checks the conversion.

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "gateway/config.h"

namespace sluice::gateway {

namespace {

// The upstream names below, one of each kind, so that a recorded key tells its kind.
constexpr std::string_view kKafkaUpstream = "upstream.central";
constexpr std::string_view kMqttUpstream = "upstream.cloud";
constexpr std::string_view kKinesisUpstream = "upstream.stream";
constexpr std::string_view kRabbitmqUpstream = "upstream.rabbit";

// A Kinesis upstream needs a credentials file that exists; one for every case of this file.
std::string CredentialsFile() {
  static const std::string path = [] {
    const std::string p = std::filesystem::temp_directory_path() /
                          ("sluice-config-documented-" + std::to_string(::getpid()));
    std::ofstream(p) << "aws_access_key_id = AKID\naws_secret_access_key = secret\n";
    return p;
  }();
  return path;
}

// The new form with every kind of upstream. A key is asked for whether it is set or not, so a
// valid document that reaches every table lists every key; the old form has a table of its own.
std::string NewForm() {
  return R"(
[gateway]
id = "gw-1"
[upstream.central]
kind = "kafka"
[upstream.cloud]
kind = "mqtt"
[upstream.stream]
kind = "kinesis"
region = "eu-west-1"
credentials_file = ")" +
         CredentialsFile() + R"("
[upstream.rabbit]
kind = "rabbitmq"
[[route]]
mqtt = "devices/#"
to = { central = "telemetry", cloud = true, stream = "telemetry", rabbit = "telemetry" }
)";
}
// The kinds and the upstream of each in NewForm().
constexpr std::pair<std::string_view, std::string_view> kKinds[] = {
    {"kafka", kKafkaUpstream},
    {"mqtt", kMqttUpstream},
    {"kinesis", kKinesisUpstream},
    {"rabbitmq", kRabbitmqUpstream}};
constexpr const char* kOldForm = R"(
[gateway]
id = "gw-1"
[[route]]
mqtt = "devices/#"
kafka_topic = "telemetry"
)";

// A section of docs/configuration.md as the table it documents: "storage", "mqtt.tls", "route",
// "upstream.NAME", "upstream.NAME kind=kafka" (the keys of one kind of upstream).
using DocKeys = std::map<std::string, std::set<std::string>>;

// The code spans of a Markdown line: `a` and `b` in "x `a` y `b`".
std::vector<std::string> CodeSpans(const std::string& line) {
  std::vector<std::string> spans;
  for (size_t open = line.find('`'); open != std::string::npos; open = line.find('`', open)) {
    const size_t close = line.find('`', open + 1);
    if (close == std::string::npos) break;
    spans.push_back(line.substr(open + 1, close - open - 1));
    open = close + 1;
  }
  return spans;
}

bool AllOf(const std::string& s, std::string_view chars) {
  return !s.empty() && s.find_first_not_of(chars) == std::string::npos;
}

constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kKeyChars = "abcdefghijklmnopqrstuvwxyz_";

// Every section whose heading names a table (`[storage]`, `[[route]]`, `[upstream.NAME.tls]`, or
// `kind = "kafka"` below `[upstream.NAME]`), with the keys of its key tables (first column "Key"),
// and the keys headings name (`route.kafka_topic`). Plain string matching: std::regex would cost
// the build seconds of compile time.
DocKeys ReadDocKeys(std::istream& in) {
  DocKeys docs;
  // The table each heading level names; a `kind` heading refines the one above it.
  std::map<size_t, std::string> open;
  std::string section;
  bool key_table = false;
  bool code = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) code = !code;
    if (code) continue;
    if (line.rfind("#", 0) == 0) {
      const size_t level = line.find(' ');
      open.erase(open.lower_bound(level), open.end());
      section.clear();
      const std::vector<std::string> spans = CodeSpans(line);
      const std::string first = spans.empty() ? "" : spans[0];
      const size_t brackets = first.rfind("[[", 0) == 0 ? 2 : 1;
      if (first.size() > 2 * brackets && first.front() == '[' && first.back() == ']') {
        section = first.substr(brackets, first.size() - 2 * brackets);
      } else if (first.rfind("kind = \"", 0) == 0 && first.back() == '"' && !open.empty()) {
        section = open.rbegin()->second + " kind=" + first.substr(8, first.size() - 9);
      }
      if (!section.empty()) {
        open[level] = section;
        docs[section];
      }
      for (const std::string& span : spans) {
        const size_t dot = span.find('.');
        if (dot != std::string::npos && AllOf(span.substr(0, dot), kLower) &&
            AllOf(span.substr(dot + 1), kKeyChars)) {
          docs[span.substr(0, dot)].insert(span.substr(dot + 1));
        }
      }
      continue;
    }
    if (line.rfind("| Key |", 0) == 0) {
      key_table = true;
    } else if (line.rfind("|", 0) != 0) {
      key_table = false;
    } else if (key_table && !section.empty()) {
      // | `key` | type | default | meaning |
      const size_t cell = line.find_first_not_of(' ', 1);
      const std::vector<std::string> spans = CodeSpans(line.substr(0, line.find('|', 1)));
      if (cell != std::string::npos && line[cell] == '`' && spans.size() == 1 &&
          AllOf(spans[0], kKeyChars)) {
        docs[section].insert(spans[0]);
      }
    }
  }
  return docs;
}

// A recorded key as (section of docs/configuration.md, key), or an empty section for a key that is
// no schema key: route[N].to.NAME names an upstream, and its value is the route's target there.
std::pair<std::string, std::string> DocName(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  if (dot == std::string::npos) return {"", dotted};
  std::string table = dotted.substr(0, dot);
  const std::string key = dotted.substr(dot + 1);
  // route[N] -> route
  if (table.rfind("route[", 0) == 0 && table.find(']') != std::string::npos) {
    table = "route" + table.substr(table.find(']') + 1);
  }
  if (table == "route.to") return {"", ""};
  // "The old `[kafka]` table takes these keys too" (of kind = "kafka").
  if (table == kKafkaUpstream || table == "kafka") return {"upstream.NAME kind=kafka", key};
  if (table == kMqttUpstream) return {"upstream.NAME kind=mqtt", key};
  if (table == kKinesisUpstream) return {"upstream.NAME kind=kinesis", key};
  if (table == kRabbitmqUpstream) return {"upstream.NAME kind=rabbitmq", key};
  for (std::string_view upstream :
       {kKafkaUpstream, kMqttUpstream, kKinesisUpstream, kRabbitmqUpstream}) {
    if (table.rfind(std::string(upstream) + ".", 0) == 0) {
      table = "upstream.NAME" + table.substr(upstream.size());
    }
  }
  return {table, key};
}

// The table a section's keys belong to, without the kind: "upstream.NAME kind=kafka" ->
// "upstream.NAME".
std::string TableOf(const std::string& section) {
  return section.substr(0, section.find(' '));
}

// Keys the parser asks for that docs/configuration.md does not document.
std::vector<std::string> Undocumented(const std::vector<std::string>& recorded,
                                      const DocKeys& docs) {
  std::vector<std::string> missing;
  for (const std::string& dotted : recorded) {
    const auto [section, key] = DocName(dotted);
    if (key.empty()) continue;
    bool found = false;
    if (section.empty()) {
      // A top-level table: a section of its own ([gateway], [[route]], [upstream.NAME]).
      for (const auto& [name, keys] : docs) {
        found = found || name == key || name.rfind(key + ".", 0) == 0;
      }
    } else {
      // A key of the section, of the section's table when it is one kind's, or a table of its own
      // ([upstream.NAME.properties]).
      for (const std::string& s : {section, TableOf(section)}) {
        auto it = docs.find(s);
        found = found || (it != docs.end() && it->second.count(key) != 0);
      }
      found = found || docs.count(TableOf(section) + "." + key) != 0;
    }
    if (!found) missing.push_back(dotted);
  }
  return missing;
}

// Keys docs/configuration.md documents that the parser never asks for.
std::vector<std::string> Unread(const std::vector<std::string>& recorded, const DocKeys& docs) {
  std::set<std::pair<std::string, std::string>> read;
  std::set<std::string> top;
  for (const std::string& dotted : recorded) {
    auto [section, key] = DocName(dotted);
    if (section.empty()) top.insert(key);
    read.insert({section, key});
    read.insert({TableOf(section), key});
  }
  std::vector<std::string> stale;
  for (const auto& [section, keys] : docs) {
    const std::string table = TableOf(section);
    if (top.count(table.substr(0, table.find('.'))) == 0) stale.push_back("[" + section + "]");
    for (const std::string& key : keys) {
      if (read.count({section, key}) == 0) stale.push_back(section + ": " + key);
    }
  }
  return stale;
}

// The keys of both forms, each once.
std::vector<std::string> RecordedKeys() {
  std::vector<std::string> keys;
  for (const std::string& text : {NewForm(), std::string(kOldForm)}) {
    Status s = ListConfigKeys(text, &keys);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
  const std::set<std::string> unique(keys.begin(), keys.end());
  return {unique.begin(), unique.end()};
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

std::string ReadDoc() {
  std::ifstream in(SLUICE_SOURCE_DIR "/docs/configuration.md");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("ListConfigKeys names every key the parser asks for, set or not") {
  std::vector<std::string> keys;
  REQUIRE(ListConfigKeys(NewForm(), &keys).ok());
  const std::set<std::string> set(keys.begin(), keys.end());
  for (const char* key :
       {"gateway.id", "storage.max_bytes", "mqtt.tls.ca_file", "metrics.listen",
        "upstream.central.brokers", "upstream.central.properties", "upstream.cloud.tls.verify",
        "upstream.cloud.max_in_flight", "upstream.stream.region", "upstream.stream.tls.ca_file",
        "route[1].qos", "route[1].to.central", "kafka"}) {
    CHECK_MESSAGE(set.count(key) == 1, key);
  }
  // A key of the other kind is no key of that upstream.
  CHECK(set.count("upstream.central.max_in_flight") == 0);
  CHECK(set.count("upstream.cloud.brokers") == 0);
  CHECK(set.count("upstream.stream.url") == 0);
  CHECK(set.count("upstream.stream.tls.cert_file") == 0);

  std::vector<std::string> none;
  CHECK_FALSE(ListConfigKeys("[storage]\nmax_bytes = \"tiny\"\n", &none).ok());
}

TEST_CASE("docs/configuration.md documents every key the parser reads, and no other") {
  const std::vector<std::string> recorded = RecordedKeys();
  std::istringstream doc(ReadDoc());
  const DocKeys docs = ReadDocKeys(doc);
  // The page is read as meant: its sections, each with its rows.
  REQUIRE(docs.count("storage") == 1);
  CHECK(docs.at("storage").count("max_bytes") == 1);
  CHECK(docs.at("upstream.NAME kind=kafka").count("brokers") == 1);
  CHECK(docs.at("upstream.NAME kind=mqtt").count("max_in_flight") == 1);
  CHECK(docs.at("upstream.NAME kind=kinesis").count("region") == 1);
  CHECK(docs.at("upstream.NAME kind=rabbitmq").count("exchange") == 1);
  CHECK(docs.at("upstream.NAME.tls").count("ca_file") == 1);
  CHECK(docs.at("route").count("to") == 1);

  const std::vector<std::string> missing = Undocumented(recorded, docs);
  CHECK_MESSAGE(missing.empty(),
                "keys the parser reads that docs/configuration.md lacks: ", Join(missing));
  const std::vector<std::string> stale = Unread(recorded, docs);
  CHECK_MESSAGE(stale.empty(),
                "keys docs/configuration.md documents that the parser never reads: ", Join(stale));
}

TEST_CASE("A key missing from docs/configuration.md, or in the wrong kind's table, is reported") {
  const std::vector<std::string> recorded = RecordedKeys();
  std::string text = ReadDoc();
  // Without the row of storage.journal_bytes.
  const size_t row = text.find("| `journal_bytes` |");
  REQUIRE(row != std::string::npos);
  std::string without = text;
  without.erase(row, without.find('\n', row) + 1 - row);
  std::istringstream in(without);
  CHECK(Undocumented(recorded, ReadDocKeys(in)) ==
        std::vector<std::string>{"storage.journal_bytes"});

  // An MQTT upstream's key in the Kafka kind's table: undocumented for one, stale for the other.
  std::string moved = text;
  const size_t kafka_row = moved.find("| `brokers` |");
  REQUIRE(kafka_row != std::string::npos);
  moved.insert(kafka_row, "| `max_in_flight` | integer | `1` | A row in the wrong table. |\n");
  std::istringstream moved_in(moved);
  const DocKeys docs = ReadDocKeys(moved_in);
  CHECK(Unread(recorded, docs) ==
        std::vector<std::string>{"upstream.NAME kind=kafka: max_in_flight"});
}

// The parser names a key of another upstream kind as such (gateway/config.cpp keeps a list per
// kind for that message): every key some kinds read and another does not must be named as theirs
// when that other kind gets it, or an operator gets "unknown key" instead; and no key a kind reads
// may be named as another kind's when that kind gets it.
TEST_CASE("Every key only some upstream kinds read is named as theirs when another kind gets it") {
  std::vector<std::string> keys;
  REQUIRE(ListConfigKeys(NewForm(), &keys).ok());
  // The first part of each key below each kind's upstream.
  std::map<std::string, std::set<std::string>> own;
  for (const auto& [kind, upstream] : kKinds) {
    const std::string prefix = std::string(upstream) + ".";
    for (const std::string& k : keys) {
      if (k.rfind(prefix, 0) != 0) continue;
      const std::string rest = k.substr(prefix.size());
      own[std::string(kind)].insert(rest.substr(0, rest.find_first_of(".[")));
    }
  }
  REQUIRE(own["kafka"].count("brokers") == 1);
  REQUIRE(own["mqtt"].count("url") == 1);
  REQUIRE(own["kinesis"].count("region") == 1);
  REQUIRE(own["rabbitmq"].count("vhost") == 1);
  auto parse_extra = [](const std::string& kind, const std::string& key) {
    std::string text = NewForm() + "\n[upstream.extra]\nkind = \"" + kind + "\"\n" + key + " = 1\n";
    if (kind == "kinesis") {
      text += "region = \"eu-west-1\"\ncredentials_file = \"" + CredentialsFile() + "\"\n";
    }
    Config c;
    return ParseConfig(text, "t.toml", &c);
  };
  int checked = 0;
  for (const auto& [mine, mine_upstream] : kKinds) {
    for (const auto& [other, other_upstream] : kKinds) {
      if (mine == other) continue;
      for (const std::string& key : own[std::string(mine)]) {
        if (own[std::string(other)].count(key) != 0) continue;
        CAPTURE(key);
        CAPTURE(other);
        const Status s = parse_extra(std::string(other), key);
        REQUIRE_FALSE(s.ok());
        CHECK_MESSAGE(s.message().find("is a key of kind") != std::string::npos, s.message());
        CHECK_MESSAGE(s.message().find("\"" + std::string(mine) + "\"") != std::string::npos,
                      s.message());
        ++checked;
      }
    }
  }
  CHECK(checked >= 40);
  // A kind's own key, even one other kinds have too, is never called another kind's.
  for (const auto& [kind, upstream] : kKinds) {
    for (const std::string& key : own[std::string(kind)]) {
      if (key == "region" || key == "credentials_file") continue;  // given by parse_extra
      CAPTURE(key);
      const Status s = parse_extra(std::string(kind), key);
      CHECK_MESSAGE(s.message().find("is a key of kind") == std::string::npos, s.message());
    }
  }
}

}  // namespace sluice::gateway
