// SPDX-License-Identifier: Apache-2.0

#include "tests/integration/link_fault.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/integration/harness.h"

namespace sluice::itest {

bool NetnsUnavailable() {
  std::ifstream in(MustEnv("SLUICE_CHAOS_STATE") + "/skip");
  if (!in) return false;
  std::stringstream reason;
  reason << in.rdbuf();
  std::printf("SKIP: %s\n", reason.str().c_str());
  return true;
}

LinkFault::LinkFault() : script_(MustEnv("SLUICE_CHAOS_NET")), ns_(MustEnv("SLUICE_CHAOS_NETNS")) {}

LinkFault::~LinkFault() {
  if (active_) Heal();
}

void LinkFault::Apply(const std::string& fault) {
  active_ = true;
  REQUIRE(Shell(script_ + " " + fault + " " + ns_) == 0);
}

void LinkFault::Heal() {
  active_ = false;
  CHECK(Shell(script_ + " heal " + ns_) == 0);
}

}  // namespace sluice::itest
