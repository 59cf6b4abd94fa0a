// SPDX-License-Identifier: Apache-2.0

#pragma once

// A fault on the veth link between this host and the chaos tests' network namespace (the
// chaos_netns fixture, tests/integration/chaos_net.sh): what runs inside the namespace (Kafka,
// or a test's own kinesalite) is reached only through that link, so a cut makes sluice's TCP
// connections hang as on a real network instead of being refused. Not thread-safe: one test's
// thread.

#include <string>

namespace sluice::itest {

// True, after printing "SKIP: <reason>", where the chaos_netns fixture found no network
// namespaces on this host (it writes the reason to $SLUICE_CHAOS_STATE/skip); CTest reports the
// test skipped on that line.
bool NetnsUnavailable();

class LinkFault {
 public:
  // The script and the namespace from SLUICE_CHAOS_NET and SLUICE_CHAOS_NETNS; throws
  // std::runtime_error naming a variable that is not set.
  LinkFault();
  // Heals the link when a fault is still on, so that a failed assertion does not leave the
  // fixture's namespace cut off for the next test.
  ~LinkFault();
  LinkFault(const LinkFault&) = delete;
  LinkFault& operator=(const LinkFault&) = delete;

  // `fault`: link-down, blackhole or impair (see chaos_net.sh).
  void Apply(const std::string& fault);
  void Heal();

 private:
  std::string script_;
  std::string ns_;
  bool active_ = false;
};

}  // namespace sluice::itest
