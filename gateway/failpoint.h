// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <functional>
#include <string>

#include "common/status.h"

namespace sluice::gateway {

// Fault injection for tests of the delivery guarantees, in the spirit of etcd's gofail: a named
// point in the code that, when armed, kills the process with SIGKILL on its N-th hit, the way a
// crash or power cut would at that exact moment.
//
// Armed only through the environment of `sluice run`: SLUICE_FAILPOINT="<name>:<n>", for example
// "mqtt.before_commit:100" or "mqtt.after_commit:100" (the points the MQTT source offers; see
// docs/ARCHITECTURE.md). Unset, the hook does nothing and costs one branch.
//
// A point whose name ends in ".wedge" hangs the thread that hits it, for good, instead of killing
// the process: what a deadlock or a stuck system call would do. "forwarder.wedge:1" hangs the
// forwarder when it first reads events from the log, to prove that the watchdog pings stop.
using FailpointHook = std::function<void(const char* name)>;

// Parses a SLUICE_FAILPOINT value; an empty value gives an empty hook. InvalidArgument names
// what is wrong with a malformed value.
Status ParseFailpoint(const std::string& spec, FailpointHook* out);

}  // namespace sluice::gateway
