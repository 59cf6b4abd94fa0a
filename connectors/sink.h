// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "storage/event.h"

namespace sluice::connectors {

// What became of one event handed to a Sink.
struct Delivery {
  // The sink's error model (for Kafka: docs/kafka-records.md, "Error model") maps every upstream
  // answer to one of these; the Forwarder decides what each means for the log and the cursor.
  enum class Outcome {
    kDelivered,  // the upstream confirmed it durably (Kafka: acks=all)
    kRejected,   // this event can never be accepted (e.g. too large on its own): dead-letter it
    kRetry,      // transient, or lost in flight (e.g. the producer was rebuilt): send it again, in
                 // order. seq 0 means every event in flight was lost.
    kHold,       // the upstream refuses until an operator acts (topic missing, ACL, quota,
                 // authentication, broker config): keep it in the log, keep the cursor, send it
                 // again in order after a backoff. `error` says what to do.
    kTooLarge,   // refused as part of a batch that was too large: send it again alone; only an
                 // event refused as too large while alone is dead-lettered.
  };
  uint64_t seq = 0;
  Outcome outcome = Outcome::kDelivered;
  std::string error;  // for kRejected / kRetry: the upstream's reason
};

// An upstream event log (Kafka now; others later). The Forwarder owns ordering and the log's
// cursor; a sink only moves events and reports what became of each.
//
// Contract: events are handed over with Send in sequence order; for events that share a key, the
// sink keeps that order upstream, also across its own retries. Every event accepted by Send is
// reported exactly once by Poll, in any order. Transient upstream failures are retried inside the
// sink without limit; only permanent refusals come back as kRejected.
//
// Thread-safety: one thread (the forwarder) calls every method, except Connected(), HoldReason()
// and the counters (Holds(), Throttled(), Transactions*()), which any thread may call (readiness,
// metrics, status).
class Sink {
 public:
  virtual ~Sink() = default;

  // Hands one event over. OK: accepted, Poll will report it. Full: the sink's queue is full, call
  // Poll and send the same event again. InvalidArgument: refused for good before sending (the
  // caller dead-letters it). Unavailable: refused for now (transient, or an operator must act,
  // then HoldReason() says so): the caller sends the same event again later, in order.
  virtual Status Send(const storage::Event& event) = 0;

  // Serves delivery reports, waiting up to `timeout` for the first one; appends to `out`.
  virtual void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) = 0;

  // Events accepted and not yet reported.
  virtual size_t InFlight() const = 0;

  // True while the sink believes the upstream is reachable.
  virtual bool Connected() const = 0;

  // Why the upstream currently refuses events until an operator acts (for logs, `/readyz` and
  // status), with the fix; empty while there is no such refusal. Cleared by the next delivery.
  virtual std::string HoldReason() const = 0;

  // How often a refusal that an operator must fix began (a topic, or the whole upstream, became
  // held), since the sink was made.
  virtual uint64_t Holds() const { return 0; }

  // Records the upstream refused for lack of throughput and that the sink sent again, since the
  // sink was made (Kinesis: ProvisionedThroughputExceededException; 0 for sinks whose client
  // retries on its own).
  virtual uint64_t Throttled() const { return 0; }

  // Transactions committed and aborted, since the sink was made (a Kafka upstream with delivery =
  // "exactly-once"; 0 for every other sink).
  virtual uint64_t TransactionsCommitted() const { return 0; }
  virtual uint64_t TransactionsAborted() const { return 0; }

  // The sink failed for good (e.g. its client could not be rebuilt): the forwarder stops with
  // this error and the daemon exits, so that the service manager restarts it. OK while usable.
  virtual Status error() const { return Status::Ok(); }

  virtual const std::string& name() const = 0;
};

}  // namespace sluice::connectors
