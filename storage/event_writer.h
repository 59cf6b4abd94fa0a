// SPDX-License-Identifier: Apache-2.0

#pragma once

#include "common/status.h"
#include "storage/event.h"

namespace sluice::storage {

// Where a source puts the events it receives: the LogWriter in the daemon, a fake in tests.
//
// Contract: Write(event, durable=true) returns OK only once the event is in the log to the degree
// the log's sync mode names, so that a source may acknowledge it to its own sender then;
// durable=false may return once the event is queued. Any other status: the event is not in the
// log (Shutdown while stopping, or the log's fatal error). Thread-safe.
class EventWriter {
 public:
  virtual ~EventWriter() = default;
  virtual Status Write(Event event, bool durable) = 0;
};

}  // namespace sluice::storage
