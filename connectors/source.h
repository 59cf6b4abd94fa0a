// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <functional>

#include "common/status.h"

namespace sluice::connectors {

// A place events come from (MQTT now). A source writes each event into the log through the
// LogWriter it was given, and acknowledges it to its producer only once the write succeeded.
class Source {
 public:
  virtual ~Source() = default;

  // Begins connecting in the background; returns at once. Connection problems are retried with
  // backoff and logged, never returned here.
  virtual Status Start() = 0;

  // Stops taking events: disconnects, and returns once no callback is running. Events that were
  // not written to the log are not acknowledged, so the broker keeps them.
  virtual void Stop() = 0;

  // True once connected and subscribed.
  virtual bool Ready() const = 0;
};

}  // namespace sluice::connectors
