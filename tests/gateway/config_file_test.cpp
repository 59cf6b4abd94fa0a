// SPDX-License-Identifier: Apache-2.0

// gateway/config_file.h, and the parts of gateway/config.h that systemd deployments rely on:
// ${CREDENTIALS_DIRECTORY} in file keys (LoadCredential=) and gateway.stop_timeout_s.
#include "gateway/config_file.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

using sluice::testing::TempDir;

constexpr const char* kRoute = R"(
[[route]]
mqtt = "devices/+/telemetry"
kafka_topic = "telemetry"
)";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

bool Has(const std::vector<std::string>& keys, const std::string& key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

TEST_CASE("mqtt.password_file under ${CREDENTIALS_DIRECTORY} reads the systemd credential") {
  TempDir creds;
  WriteFile(creds.File("mqtt-password"), "s3cret\n");
  ConfigEnvironment env;
  env.credentials_directory = creds.path().string();
  Config c;
  Status s =
      ParseConfig(std::string("[mqtt]\nusername = \"u\"\n"
                              "password_file = \"${CREDENTIALS_DIRECTORY}/mqtt-password\"\n") +
                      kRoute,
                  "t.toml", &c, env);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.mqtt.connection.password == "s3cret");
  CHECK(c.secret_files.at("mqtt.password_file") == "s3cret");
}

TEST_CASE("${CREDENTIALS_DIRECTORY} without the variable set is an error naming the key") {
  Config c;
  Status s =
      ParseConfig(std::string("[mqtt]\nusername = \"u\"\n"
                              "password_file = \"${CREDENTIALS_DIRECTORY}/mqtt-password\"\n") +
                      kRoute,
                  "t.toml", &c, ConfigEnvironment{});
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("mqtt.password_file") != std::string::npos);
  CHECK(s.message().find("LoadCredential=") != std::string::npos);
}

TEST_CASE("Only a leading ${CREDENTIALS_DIRECTORY} is expanded; other variables are errors") {
  ConfigEnvironment env;
  env.credentials_directory = "/run/credentials/sluice.service";
  Config c;
  Status s = ParseConfig(std::string("[mqtt.tls]\nkey_file = \"/etc/${HOME}/key.pem\"\n") + kRoute,
                         "t.toml", &c, env);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("mqtt.tls.key_file") != std::string::npos);
  CHECK(s.message().find("only a leading ${CREDENTIALS_DIRECTORY}") != std::string::npos);

  s = ParseConfig(
      std::string("[mqtt.tls]\nkey_file = \"${CREDENTIALS_DIRECTORY}/key.pem\"\n") + kRoute,
      "t.toml", &c, env);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.mqtt.connection.key_file == "/run/credentials/sluice.service/key.pem");
}

TEST_CASE("kafka.sasl_password_file becomes sasl.password; kafka properties expand credentials") {
  TempDir creds;
  WriteFile(creds.File("kafka-sasl"), "k-pass\r\n");
  ConfigEnvironment env;
  env.credentials_directory = creds.path().string();
  Config c;
  Status s = ParseConfig(std::string("[kafka]\nsasl_password_file = "
                                     "\"${CREDENTIALS_DIRECTORY}/kafka-sasl\"\n"
                                     "[kafka.properties]\n\"ssl.key.location\" = "
                                     "\"${CREDENTIALS_DIRECTORY}/kafka-key\"\n") +
                             kRoute,
                         "t.toml", &c, env);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(c.upstreams.at(0).kafka.properties.at("sasl.password") == "k-pass");
  CHECK(c.upstreams.at(0).kafka.properties.at("ssl.key.location") == creds.File("kafka-key"));

  s = ParseConfig(std::string("[kafka]\nsasl_password_file = \"") + creds.File("kafka-sasl") +
                      "\"\n[kafka.properties]\n\"sasl.password\" = \"x\"\n" + kRoute,
                  "t.toml", &c, env);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("kafka.sasl_password_file") != std::string::npos);
  CHECK(s.message().find("mutually exclusive") != std::string::npos);
}

TEST_CASE("gateway.stop_timeout_s defaults to 30 and is range-checked") {
  Config c;
  REQUIRE(ParseConfig(kRoute, "t.toml", &c).ok());
  CHECK(c.gateway.stop_timeout_s == 30);
  Status s = ParseConfig(std::string("[gateway]\nstop_timeout_s = 0\n") + kRoute, "t.toml", &c);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("gateway.stop_timeout_s") != std::string::npos);
}

TEST_CASE("ChangedTomlKeys names changed, added and removed keys, routes as a whole") {
  const std::string before = std::string("[gateway]\nid = \"g\"\nlog_level = \"info\"\n") +
                             "[kafka.properties]\nsecurity.protocol = \"SSL\"\n" + kRoute;
  const std::string after = std::string("[gateway]\nid = \"g\"\nlog_level = \"debug\"\n") +
                            "[mqtt]\nurl = \"tcp://10.0.0.1:1883\"\n" +
                            "[kafka.properties]\nsecurity.protocol = \"SASL_SSL\"\n" + kRoute +
                            "[[route]]\nmqtt = \"a/#\"\nkafka_topic = \"a\"\n";
  const auto keys = ChangedTomlKeys(before, after);
  CHECK(keys.size() == 4);
  CHECK(Has(keys, "gateway.log_level"));
  CHECK(Has(keys, "mqtt"));  // a whole section added
  CHECK(Has(keys, "kafka.properties.security.protocol"));
  CHECK(Has(keys, "route"));
  CHECK(ChangedTomlKeys(before, before).empty());
}

TEST_CASE("ConfigFile keeps the last good configuration when a reload finds a bad file") {
  TempDir dir;
  const std::string path = dir.File("sluice.toml");
  WriteFile(path, std::string("[gateway]\nid = \"g\"\nlog_level = \"info\"\n") + kRoute);
  ConfigFile file(path, ConfigEnvironment{});
  Config c;
  REQUIRE(file.Load(&c).ok());

  WriteFile(path, std::string("[gateway]\nid = \"g\"\nlog_level = \"loud\"\n") + kRoute);
  Config bad;
  bad.gateway.log_level = "untouched";
  std::vector<std::string> changed = {"untouched"};
  Status s = file.Reload(&bad, &changed);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("gateway.log_level") != std::string::npos);
  CHECK(bad.gateway.log_level == "untouched");
  CHECK(changed == std::vector<std::string>{"untouched"});

  // The next good file is compared with the last good one, not with the bad one.
  WriteFile(path, std::string("[gateway]\nid = \"g\"\nlog_level = \"debug\"\n") + kRoute);
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(c.gateway.log_level == "debug");
  CHECK(changed == std::vector<std::string>{"gateway.log_level"});
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed.empty());
}

TEST_CASE("ConfigFile reports a changed secret behind an unchanged password_file") {
  TempDir dir;
  const std::string secret = dir.File("pw");
  WriteFile(secret, "one\n");
  const std::string path = dir.File("sluice.toml");
  WriteFile(path, "[mqtt]\nusername = \"u\"\npassword_file = \"" + secret + "\"\n" + kRoute);
  ConfigFile file(path, ConfigEnvironment{});
  Config c;
  REQUIRE(file.Load(&c).ok());
  WriteFile(secret, "two\n");
  std::vector<std::string> changed;
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed == std::vector<std::string>{"mqtt.password_file"});
}

TEST_CASE("ConfigFile reports a changed secret behind an unchanged file of any upstream") {
  TempDir dir;
  WriteFile(dir.File("cloud-pw"), "one\n");
  WriteFile(dir.File("sasl"), "k-one\n");
  WriteFile(dir.File("legacy-sasl"), "l-one\n");
  const std::string path = dir.File("sluice.toml");
  WriteFile(path, "[upstream.central]\nkind = \"kafka\"\nsasl_password_file = \"" +
                      dir.File("sasl") +
                      "\"\n[upstream.cloud]\nkind = \"mqtt\"\nurl = \"tcp://c:1883\"\n"
                      "username = \"u\"\npassword_file = \"" +
                      dir.File("cloud-pw") +
                      "\"\n[[route]]\nmqtt = \"a/#\"\nto = { central = \"a\", cloud = true }\n");
  ConfigFile file(path, ConfigEnvironment{});
  Config c;
  REQUIRE(file.Load(&c).ok());
  std::vector<std::string> changed;
  WriteFile(dir.File("cloud-pw"), "two\n");
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed == std::vector<std::string>{"upstream.cloud.password_file"});
  CHECK(c.upstreams.at(1).mqtt.connection.password == "two");
  WriteFile(dir.File("sasl"), "k-two\n");
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed == std::vector<std::string>{"upstream.central.sasl_password_file"});
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed.empty());

  // The old form names the key as its file does.
  WriteFile(path, "[kafka]\nsasl_password_file = \"" + dir.File("legacy-sasl") + "\"\n" + kRoute);
  REQUIRE(file.Reload(&c, &changed).ok());
  WriteFile(dir.File("legacy-sasl"), "l-two\n");
  REQUIRE(file.Reload(&c, &changed).ok());
  CHECK(changed == std::vector<std::string>{"kafka.sasl_password_file"});
}

// One capped reader serves start and SIGHUP: before it, ConfigFile read without a limit, so
// `sluice run -c /dev/zero` (and a reload of a file replaced by a link to it) never returned.
TEST_CASE("ConfigFile refuses a configuration file that never ends, at load and on reload") {
  const auto start = std::chrono::steady_clock::now();
  {
    ConfigFile endless("/dev/zero", ConfigEnvironment{});
    Config c;
    const Status s = endless.Load(&c);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("'/dev/zero' is larger than 1048576 bytes") != std::string::npos);
  }
  TempDir dir;
  const std::string path = dir.File("sluice.toml");
  const std::string secret = dir.File("pw");
  WriteFile(secret, "one\n");
  WriteFile(path,
            std::string("[gateway]\nid = \"g\"\n[mqtt]\nusername = \"u\"\npassword_file = \"") +
                secret + "\"\n" + kRoute);
  ConfigFile file(path, ConfigEnvironment{});
  Config c;
  REQUIRE(file.Load(&c).ok());
  std::vector<std::string> changed;

  std::filesystem::remove(secret);
  std::filesystem::create_symlink("/dev/zero", secret);
  Status s = file.Reload(&c, &changed);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("mqtt.password_file") != std::string::npos);
  CHECK(s.message().find("is larger than") != std::string::npos);

  std::filesystem::remove(path);
  std::filesystem::create_symlink("/dev/zero", path);
  s = file.Reload(&c, &changed);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("is larger than 1048576 bytes") != std::string::npos);
  CHECK(c.mqtt.connection.password == "one");
  // Promptly: the cap bounds the work, whatever the file.
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

}  // namespace
}  // namespace sluice::gateway
