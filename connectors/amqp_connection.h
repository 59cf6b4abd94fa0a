// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"
#include "connectors/socket_deadline.h"

// rabbitmq-c's connection handle, kept out of every header but this one's source.
struct amqp_connection_state_t_;

namespace sluice::connectors {

// How sluice reaches one RabbitMQ broker (AMQP 0-9-1): the [upstream.NAME] keys of kind
// "rabbitmq" (docs/configuration.md).
struct AmqpEndpoint {
  std::string url = "amqp://127.0.0.1:5672";  // amqp:// or amqps:// (TLS), host and port only
  std::string vhost = "/";
  std::string username = "guest";  // RabbitMQ's default user, which it admits only from localhost
  std::string password = "guest";  // never logged
  std::string ca_file;             // TLS: the CA that signed the broker's certificate
  std::string cert_file;           // TLS: a client certificate, with key_file
  std::string key_file;
  bool tls_verify = true;  // the broker's certificate and its host name
  std::chrono::seconds heartbeat{30};
  // Bounds every step of connecting, each RPC, and each call that writes to the broker
  // (basic.publish, heartbeats): a broker that stops reading ends the connection after this long
  // instead of holding the calling thread.
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds reconnect_min{500};
  std::chrono::milliseconds reconnect_max{30000};
  // The client-provided name RabbitMQ shows for the connection (management UI, rabbitmqctl
  // list_connections, its log).
  std::string connection_name = "sluice";
};

// The parts of an AMQP URL sluice accepts: "amqp[s]://HOST[:PORT]" (port 5672, or 5671 with TLS),
// IPv6 hosts in brackets. Credentials and the vhost have keys of their own, so that a URL, which
// is logged, never holds a secret. InvalidArgument naming what is wrong.
struct AmqpAddress {
  std::string host;
  int port = 0;
  bool tls = false;
};
Status ParseAmqpUrl(std::string_view url, AmqpAddress* out);

// An AMQP 0-9-1 argument table of strings and integers (x-queue-type, x-max-length...).
using AmqpArguments = std::vector<std::pair<std::string, std::variant<std::string, int64_t>>>;

// One message a broker handed back: a basic.return (publisher side) or a basic.deliver (consumer
// side).
struct AmqpMessage {
  uint64_t delivery_tag = 0;  // basic.deliver only
  std::string exchange;
  std::string routing_key;
  std::string message_id;
  std::vector<std::pair<std::string, std::string>> headers;  // string-valued entries, in order
  std::string body;
  uint16_t reply_code = 0;  // basic.return only
  std::string reply_text;   // basic.return only
};

// What the broker sent, as AmqpConnection::Next reads it.
struct AmqpEvent {
  enum class Kind {
    kNone,           // nothing within the timeout
    kAck,            // basic.ack: tag, multiple
    kNack,           // basic.nack: tag, multiple
    kReturn,         // basic.return: message
    kDeliver,        // basic.deliver: message
    kChannelClosed,  // channel.close from the broker: code, text (close-ok already sent)
    kBlocked,        // connection.blocked: a resource alarm; text is the broker's reason
    kUnblocked,      // connection.unblocked: every alarm cleared
  };
  Kind kind = Kind::kNone;
  uint64_t tag = 0;
  bool multiple = false;
  uint16_t code = 0;
  std::string text;
  AmqpMessage message;
};

// One AMQP connection through rabbitmq-c, with one channel open at a time. rabbitmq-c is not
// thread-safe: one thread uses an AmqpConnection for its whole life.
//
// Resource alarms: the connection announces the "connection.blocked" capability, so a RabbitMQ
// broker that runs low on memory or disk says so (kBlocked) when it stops reading from the
// socket, and again when it reads on (kUnblocked). No call blocks its thread for longer than
// endpoint.connect_timeout (a wait in Next for longer only by its own timeout): a call that
// cannot write in that time, because the broker stopped reading without a word or the network
// stalled, shuts the socket down and fails with Unavailable (SocketDeadline).
//
// Errors: Unavailable for what may pass by itself (the broker is down, the connection broke),
// InvalidArgument for what an operator must fix (credentials refused, TLS trust or host name,
// a vhost the user may not open); each names the broker, and never the password.
class AmqpConnection {
 public:
  // Connects (TCP or TLS as the URL says), logs in and opens channel 1; with `confirm`, puts it in
  // confirm mode (confirm.select). RPCs time out after endpoint.connect_timeout.
  static Status Open(const AmqpEndpoint& endpoint, bool confirm,
                     std::unique_ptr<AmqpConnection>* out);
  ~AmqpConnection();

  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  // basic.publish on the open channel: persistent (delivery_mode 2), with the message id,
  // timestamp (seconds) and string headers given. Unavailable when the connection broke or the
  // broker did not take the message within connect_timeout. Check blocked() first: a blocked
  // broker reads nothing more.
  Status Publish(std::string_view exchange, std::string_view routing_key, bool mandatory,
                 std::string_view message_id, int64_t timestamp_s,
                 const std::vector<std::pair<std::string, std::string>>& headers,
                 std::string_view body);

  // Waits up to `timeout` for what the broker sends next on the open channel. Unavailable when
  // the connection is gone (closed by the broker, broken, or missed heartbeats).
  Status Next(std::chrono::milliseconds timeout, AmqpEvent* out);

  // Opens the next channel after the broker closed the previous one (in confirm mode if the
  // first was): delivery tags restart at 1.
  Status ReopenChannel();

  // Administration, for tests and sluice-verify.
  Status DeclareQueue(const std::string& name, const AmqpArguments& arguments);
  Status DeleteQueue(const std::string& name);
  // Passive declarations: OK if the queue (or stream) or exchange exists, InvalidArgument with the
  // broker's 404 if not; nothing is created.
  Status CheckQueue(const std::string& name);
  Status CheckExchange(const std::string& name);
  // queue.purge: *count gets how many messages it removed.
  Status PurgeQueue(const std::string& name, uint64_t* count);
  Status DeclareExchange(const std::string& name, const std::string& type);
  Status Bind(const std::string& queue, const std::string& exchange, const std::string& key);
  // basic.qos(prefetch) and basic.consume with `arguments` (e.g. x-stream-offset), manual acks.
  Status Consume(const std::string& queue, uint16_t prefetch, const AmqpArguments& arguments);
  Status AckDelivery(uint64_t tag, bool multiple);

  const std::string& where() const { return where_; }
  // Between a connection.blocked and its connection.unblocked, as Next read them.
  bool blocked() const { return blocked_; }

 private:
  explicit AmqpConnection(std::string where) : where_(std::move(where)) {}
  // The error of the last RPC, with context; InvalidArgument for refusals an operator must fix.
  Status RpcError(std::string_view what);
  Status OpenChannel();
  // What a failed call's status code `rc` means, naming the deadline if it ended the call.
  std::string Why(int rc) const;

  amqp_connection_state_t_* conn_ = nullptr;
  std::unique_ptr<SocketDeadline> deadline_;  // watches conn_'s socket; null before it is open
  std::chrono::milliseconds call_limit_{0};   // endpoint.connect_timeout
  uint16_t channel_ = 0;
  bool confirm_ = false;
  bool open_ = false;     // logged in; a clean close is owed
  bool blocked_ = false;  // see blocked()
  const std::string where_;
};

}  // namespace sluice::connectors
