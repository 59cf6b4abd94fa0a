// SPDX-License-Identifier: Apache-2.0

#pragma once

// One integration test's own sluice daemon, configuration and temporary directory against the
// brokers of a CTest fixture, and what the test reads back: the log's counters and the daemon's
// output. Tests that need more (an admin client, a notify socket) derive from it.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/event_log.h"
#include "tests/integration/harness.h"
#include "tests/integration/notify_listener.h"
#include "tests/test_util.h"

namespace sluice::itest {

struct SluiceFixture {
  // `family` keeps each suite's names apart on the shared brokers: the gateway id is
  // <name>-<suffix>, events go to <family>/<name>-<suffix>/<device>/data and to the Kafka topic
  // <family>-<name>-<suffix>. Throws std::runtime_error when the environment lacks a variable.
  SluiceFixture(const std::string& family, const std::string& name, int qos = 1);

  // Starts (or restarts) sluice and waits until this run subscribed: the broker then keeps what
  // is published for it. Waits as systemd does, for this run's READY=1 on the fixture's own
  // notify socket. REQUIRES: `extra_env` names no NOTIFY_SOCKET (use Launch for that). The first
  // start writes the config: `config_text` as is when given, otherwise from cfg.
  void StartSluice(const std::vector<std::string>& extra_env = {},
                   const std::string& config_text = "");
  // Starts (or restarts) sluice without waiting, for tests that wait on something else. The
  // first start runs the config at `config_path`; later starts run the same file again.
  void Launch(const std::string& config_path, const std::vector<std::string>& extra_env = {});

  // The event log: `log_path` when set, otherwise the one cfg names.
  std::string LogPath() const;
  std::optional<storage::LogStats> MaybeStats() const;  // nullopt while the log cannot be read
  storage::LogStats Stats() const;                      // zeros while the log cannot be read
  uint64_t Cursor() const { return Stats().cursor; }
  uint64_t LastSeq() const { return Stats().last_seq; }
  std::string Log() const;  // every run's output so far, "" before the first start

  Env env;
  sluice::testing::TempDir dir;
  TestConfig cfg;
  std::string log_path;  // for a config that puts the log outside cfg.dir
  std::unique_ptr<SluiceProcess> process;
  std::unique_ptr<NotifyListener> notify;  // created by the first StartSluice
};

}  // namespace sluice::itest
