// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <string>

namespace sluice::connectors {

// What one check of `sluice check-config --probe` found about a broker: one line of its output.
struct ProbeFinding {
  enum class Verdict {
    kOk,    // works as the daemon needs it
    kWarn,  // works, but deserves a look (no certificate verification, a topic not created yet)
    kFail,  // the daemon would not work so: the text says what is wrong and, where known, the fix
  };
  Verdict verdict = Verdict::kOk;
  std::string text;  // no secret ever: the checks leave out passwords and property values
};

}  // namespace sluice::connectors
