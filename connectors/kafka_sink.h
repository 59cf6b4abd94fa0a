// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <librdkafka/rdkafkacpp.h>
#include <spdlog/logger.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/backoff.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "connectors/hold_list.h"
#include "connectors/kafka_checkpoint.h"
#include "connectors/record_headers.h"
#include "connectors/route_cache.h"
#include "connectors/router.h"
#include "connectors/sink.h"

namespace sluice::connectors {

// How often an event may arrive in Kafka (docs/guarantees.md).
enum class KafkaDelivery : uint8_t {
  // An idempotent producer; a crash re-sends what was sent since the cursor was last stored.
  kAtLeastOnce,
  // A transactional producer: each transaction holds a run of events and a checkpoint record
  // naming the log and the last seq in it, so that events and position commit together.
  kExactlyOnce,
};

struct KafkaSinkOptions {
  std::string brokers = "127.0.0.1:9092";
  std::string compression = "lz4";
  int linger_ms = 5;
  int batch_bytes = 1000000;
  // About 900 bytes of librdkafka memory each for a 100-byte event (docs/performance.md).
  int max_in_flight = 10000;
  int retry_backoff_ms = 250;
  int reconnect_max_ms = 10000;
  std::string gateway_id;
  std::string log_id;  // the log's random identity, sent as the sluice.log header
  // Where gap records go (docs/kafka-records.md, "Gap records"), keyed by the gateway id.
  std::string gap_topic = "sluice.gaps";
  std::map<std::string, std::string> properties;  // passed to librdkafka as they are
  // The upstream's name ([upstream.NAME]): with gateway_id, it names the transactional producer
  // and the checkpoint's key, so that every Kafka upstream keeps a checkpoint of its own.
  std::string upstream = "kafka";
  KafkaDelivery delivery = KafkaDelivery::kAtLeastOnce;
  // Exactly-once only: a transaction commits once it holds this many events or is this old.
  int transaction_max_events = 10000;
  int transaction_interval_ms = 100;
  // The broker aborts a transaction left open this long (a crashed sluice's); librdkafka's message
  // timeout is set to it too, since a record may not outlive its transaction. Shorter than Kafka's
  // 60 s because an open transaction holds back every read_committed consumer of its partitions,
  // those of other gateways included, until it ends.
  int transaction_timeout_ms = 10000;
  // The compacted topic that holds each upstream's checkpoint, keyed by gateway and upstream.
  std::string checkpoint_topic = "sluice.checkpoints";
  // The log's highest assigned seq (EventLog stats), asked when a checkpoint is read back. A
  // checkpoint beyond it means the log lost its newest events (a power cut under sync = "normal")
  // and will hand their seqs out again: the checkpoint then counts only up to the log's last seq,
  // so that no new event is taken for one Kafka already has. Null: not checked.
  std::function<uint64_t()> log_last_seq;
};

// The transactional.id of an exactly-once upstream: one per gateway and upstream, so that a second
// sluice started with the same gateway id fences the first.
inline std::string TransactionalId(const KafkaSinkOptions& options) {
  return "sluice-" + options.gateway_id + "-" + options.upstream;
}

// The Kafka sink on librdkafka's C++ producer.
//
// Ordering and duplicates: the producer is idempotent (enable.idempotence, acks=all) with no
// message timeout (message.timeout.ms=0): librdkafka retries transient failures itself, forever,
// keeping per-partition order and suppressing duplicates from its own retries. The record key is
// the route's device key, so all events of a device go to one partition, in sequence order.
//
// Gap markers (Event::kind == kGap) go to `gap_topic` as gap records (connectors/gap_record.h),
// keyed by the gateway id, and are confirmed and held like any event.
//
// Errors: every librdkafka error is classified by the one table in kafka_error_model.h
// (docs/kafka-records.md, "Error model"). A refusal the operator must fix (missing topic, ACL,
// credentials, broker setup) comes back as kHold (or Unavailable from Send) and sets HoldReason(),
// naming the topic and the fix, with a throttled error line; the next delivery to that topic
// clears it. While a topic is held its metadata is asked for now and then, so that a topic created
// meanwhile is used at once rather than after librdkafka's 5-minute metadata refresh. A fatal
// idempotence error rebuilds the producer, at most as often as a backoff allows, and reports what
// was in flight as kRetry; a rebuild that fails leaves no producer and sets error() for good.
//
// Exactly once (delivery = kExactlyOnce; docs/ARCHITECTURE.md, "Exactly once to Kafka"): the
// producer is transactional. A transaction opens with the first event sent and commits, with a
// checkpoint record naming the log and its last seq (KafkaCheckpoint), once it holds
// transaction_max_events or is transaction_interval_ms old. Its events are reported kDelivered
// only when the commit succeeded. On start, after an abort and after a rebuild, the sink reads the
// checkpoint back (read_committed) before it takes events again: events of the transaction in
// doubt up to the checkpoint are reported kDelivered, the others kRetry (or the refusal their
// delivery report gave), and any event sent with seq <= the checkpoint is reported kDelivered
// without being produced again. An abortable error aborts the transaction; a fatal one rebuilds
// the producer, whose initialisation fences the old one; being fenced by another producer with
// the same transactional.id fails the sink for good with Status::Fenced.
//
// Thread-safety: one thread calls every method (the forwarder), as Sink requires, except
// Connected(), HoldReason(), Holds() and error(); librdkafka's own threads never call into this
// class except through Poll.
class KafkaSink final : public Sink {
 public:
  // `router` and `clock` must outlive the sink; a null `clock` is the system clock.
  static Status Create(KafkaSinkOptions options, const Router* router, const Clock* clock,
                       std::shared_ptr<spdlog::logger> logger, std::unique_ptr<KafkaSink>* out);
  ~KafkaSink() override;

  Status Send(const storage::Event& event) override;
  void Poll(std::chrono::milliseconds timeout, std::vector<Delivery>* out) override;
  size_t InFlight() const override { return in_flight_; }
  bool Connected() const override { return connected_.load(); }
  std::string HoldReason() const override;
  Status error() const override;
  // How often an upstream refusal started a hold (a topic, or the cluster, became held).
  uint64_t Holds() const override { return holds_.Count(); }
  uint64_t TransactionsCommitted() const override { return txn_commits_.load(); }
  uint64_t TransactionsAborted() const override { return txn_aborts_.load(); }
  const std::string& name() const override { return name_; }

  // Waits up to `timeout` for every in-flight event to be reported (shutdown).
  void Drain(std::chrono::milliseconds timeout, std::vector<Delivery>* out);

  // Raises a fatal producer error through librdkafka's own test hook, as a broker fencing the
  // idempotent producer would; the next Poll rebuilds the producer. Tests only.
  void InjectFatalErrorForTesting();

 private:
  class Callbacks;

  KafkaSink(KafkaSinkOptions options, const Router* router, const Clock* clock,
            std::shared_ptr<spdlog::logger> logger);
  Status BuildProducer();
  // While nothing is in flight no delivery report says whether Kafka answers, so an idle sink asks
  // for metadata now and then to learn that it is connected (readiness, metrics).
  void ProbeConnection();
  void RebuildAfterFatal(const std::string& reason, std::vector<Delivery>* out);
  // Records a refusal of `topic` ("" for the cluster) that the operator must fix; returns the
  // reason, with the fix.
  std::string Hold(const std::string& topic, RdKafka::ErrorCode err, const std::string& detail);
  // A delivery to `topic` proves that the cluster and the topic accept events again.
  void ClearHolds(const std::string& topic);
  // Asks for the metadata of held topics, so that librdkafka learns that a topic now exists.
  void ProbeHeldTopics();
  void FailForGood(const Status& s);

  // Exactly once. The transaction's state, advanced by Poll.
  enum class TxnState : uint8_t {
    kInit,        // the producer needs init_transactions
    kResync,      // the checkpoint must be read back before events are taken again
    kReady,       // no transaction open
    kOpen,        // a transaction holds events
    kCommitting,  // its checkpoint is produced; commit_transaction is (re)tried
    kAborting,    // abort_transaction is (re)tried
  };
  bool transactional() const { return options_.delivery == KafkaDelivery::kExactlyOnce; }
  // Destroys the producer, ending its transaction first (see the .cpp file for why).
  void ReleaseProducer();
  void AdvanceTransaction(std::vector<Delivery>* out);
  // A delivery report inside a transaction: nothing is confirmed before the commit; a refusal
  // dooms the transaction and is kept for the event's report after the abort.
  void OnTransactionalReport(const Delivery& d, RdKafka::ErrorCode err);
  // Reads the checkpoint back and settles the events of the transaction in doubt by it.
  bool Resync(std::vector<Delivery>* out);
  // An error from a transactional call: true if the call may simply be tried again later.
  bool TransactionError(const char* what, const RdKafka::Error* error, std::vector<Delivery>* out);
  bool Fenced(RdKafka::ErrorCode err) const;
  std::chrono::milliseconds UntilCommitDue() const;

  const KafkaSinkOptions options_;
  RouteCache routes_;  // the router's answers; used by Send only, on the forwarder thread
  const SystemClock system_clock_;
  const Clock* const clock_;  // borrowed, or &system_clock_
  std::shared_ptr<spdlog::logger> log_;
  const std::string name_ = "kafka";
  std::unique_ptr<Callbacks> callbacks_;
  std::unique_ptr<RdKafka::Producer> producer_;
  size_t in_flight_ = 0;
  std::atomic<bool> connected_{false};
  mutable std::mutex mu_;
  Status error_;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point next_probe_{};
  Backoff rebuild_backoff_{std::chrono::milliseconds(500), std::chrono::seconds(30)};
  std::chrono::steady_clock::time_point next_rebuild_{};
  std::chrono::steady_clock::time_point next_hold_probe_{};
  // Key: a topic, or "" for the cluster; one topic's delivery does not clear another's hold.
  HoldList holds_{"", "Kafka", log_};
  LogThrottle fatal_log_{std::chrono::seconds(30)};

  // Exactly once; owned by the forwarder thread.
  std::unique_ptr<KafkaCheckpoint> checkpoint_;
  TxnState txn_state_ = TxnState::kInit;
  std::vector<uint64_t> txn_seqs_;  // the open (or in-doubt) transaction's events, in order
  // Refusals reported inside the open transaction, by seq, for the reports after the abort.
  std::map<uint64_t, Delivery> txn_refusals_;
  bool txn_doomed_ = false;       // a record of the transaction failed: it must abort
  bool checkpoint_sent_ = false;  // the transaction's checkpoint record is produced
  bool commit_started_ = false;   // commit_transaction timed out and must be called again
  std::chrono::steady_clock::time_point txn_began_{};
  std::chrono::steady_clock::time_point next_txn_try_{};
  Backoff txn_backoff_{std::chrono::milliseconds(200), std::chrono::seconds(10)};
  // Every event of the log with seq <= this is in Kafka, committed (the checkpoint read back).
  uint64_t committed_through_ = 0;
  std::vector<Delivery> settled_;  // confirmed without being produced, for the next Poll
  LogThrottle txn_log_{std::chrono::seconds(30)};
  bool foreign_checkpoint_logged_ = false;
  std::atomic<uint64_t> txn_commits_{0};
  std::atomic<uint64_t> txn_aborts_{0};
};

}  // namespace sluice::connectors
