// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <librdkafka/rdkafkacpp.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace sluice::connectors {

struct KafkaSinkOptions;

using KafkaSettings = std::vector<std::pair<std::string, std::string>>;

// A librdkafka setting that sluice owns: the user may not set it in [kafka.properties] (or only to
// the values listed as allowed), either because sluice's guarantees rest on its value or because a
// typed configuration key sets it.
struct OwnedKafkaSetting {
  std::string_view key;
  // The value the sink sets, from its options; null for a key that sluice refuses but does not set
  // through librdkafka's string API (an alias of an owned key, a callback set through its own API,
  // or a value librdkafka derives from enable.idempotence).
  std::string (*value)(const KafkaSinkOptions&);
  std::string_view reason;  // shown to the user who tries to set it
  // Values the user may still choose, separated by '|', because each keeps the guarantee the entry
  // protects; empty: the key is refused whatever its value.
  std::string_view allowed = {};
};

// Whether the user may set `name` to `value` under the entry: only a value in its allowed list.
bool OwnedSettingAllows(const OwnedKafkaSetting& setting, std::string_view value);

// The one table of settings that sluice owns (docs/configuration.md). The configuration refuses
// every key in it (but for a value its entry allows), and the sink sets every key that has a value.
std::span<const OwnedKafkaSetting> OwnedKafkaSettings();

// The entry that `name` would set, or null. librdkafka accepts a topic-level property on the
// global configuration under its own name or with a "topic." prefix, so both forms are found.
const OwnedKafkaSetting* FindOwnedKafkaSetting(std::string_view name);

// The settings the producer gets from the table, in table order.
KafkaSettings OwnedProducerSettings(const KafkaSinkOptions& options);

// Everything the sink's producer gets besides the user's properties: OwnedProducerSettings, then
// client.id "sluice-<gateway id>" unless the properties name one. What `sluice check-config
// --probe` connects with too, so that it connects as the daemon does.
KafkaSettings ProducerSettings(const KafkaSinkOptions& options);

// `msg` with every value of `properties` that stands as a word of its own replaced by "<key>":
// librdkafka's texts may quote a property's value (a path, a password), and none may reach a log
// line, systemd's STATUS= or the probe's output. (Inside a longer word, "ssl" of
// "ssl.ca.location" say, it is the text, not the value.)
std::string WithoutPropertyValues(const std::map<std::string, std::string>& properties,
                                  std::string msg);

// Builds a librdkafka global configuration: the user's properties first, then `fixed`, so that
// the settings a component's guarantees rest on always win. The error names the key but never a
// user property's value, nor librdkafka's own text for it (which quotes the value): a property may
// hold a password. On an error from a user property, *bad_key (if given) is set to its name.
Status BuildKafkaConf(const std::map<std::string, std::string>& user, const KafkaSettings& fixed,
                      std::unique_ptr<RdKafka::Conf>* out, std::string* bad_key = nullptr);

// The names of every property librdkafka knows, global and topic-level (for "did you mean").
std::vector<std::string> KafkaPropertyNames();

}  // namespace sluice::connectors
