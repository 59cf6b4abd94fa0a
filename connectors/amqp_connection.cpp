// SPDX-License-Identifier: Apache-2.0

#include "connectors/amqp_connection.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "common/amqp_tls_peer.h"
#include "sluice/version.h"

namespace sluice::connectors {

namespace {

// RabbitMQ's own limit is 2047 channels; a channel is reopened only after the broker closed the
// previous one, which each needs an operator's fix, so a connection never gets near it.
constexpr int kChannelMax = 2047;
// 128 KiB frames, RabbitMQ's default frame_max: larger messages are split into body frames.
constexpr int kFrameMax = 131072;

amqp_bytes_t Bytes(std::string_view s) {
  return {s.size(), const_cast<char*>(s.data())};
}

std::string Str(amqp_bytes_t b) {
  return b.len == 0 ? std::string() : std::string(static_cast<const char*>(b.bytes), b.len);
}

// How often the socket's deadline looks at a call in progress: a tenth of the limit, within
// reason, so that a stuck call ends soon after it and an idle connection costs next to nothing.
std::chrono::milliseconds DeadlineTick(std::chrono::milliseconds limit) {
  return std::clamp(limit / 10, std::chrono::milliseconds(10), std::chrono::milliseconds(250));
}

// Makes one rabbitmq-c call with `deadline` armed for `limit` (null before the socket is open).
template <typename Call>
auto Bounded(SocketDeadline* deadline, std::chrono::milliseconds limit, Call&& call) {
  if (deadline != nullptr) deadline->Arm(limit);
  auto result = call();
  if (deadline != nullptr) deadline->Disarm();
  return result;
}

amqp_table_entry_t Utf8Entry(const char* key, std::string_view value) {
  amqp_table_entry_t e{};
  e.key = amqp_cstring_bytes(key);
  e.value.kind = AMQP_FIELD_KIND_UTF8;
  e.value.value.bytes = Bytes(value);
  return e;
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// Entries own their text in `store`, which must outlive the table.
amqp_table_t MakeTable(const AmqpArguments& args, std::vector<amqp_table_entry_t>* entries) {
  entries->clear();
  for (const auto& [key, value] : args) {
    amqp_table_entry_t e{};
    e.key = Bytes(key);
    if (const auto* s = std::get_if<std::string>(&value)) {
      e.value.kind = AMQP_FIELD_KIND_UTF8;
      e.value.value.bytes = Bytes(*s);
    } else {
      e.value.kind = AMQP_FIELD_KIND_I64;
      e.value.value.i64 = std::get<int64_t>(value);
    }
    entries->push_back(e);
  }
  return {static_cast<int>(entries->size()), entries->empty() ? nullptr : entries->data()};
}

void ReadProperties(const amqp_basic_properties_t& p, AmqpMessage* m) {
  if ((p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) m->message_id = Str(p.message_id);
  if ((p._flags & AMQP_BASIC_HEADERS_FLAG) == 0) return;
  for (int i = 0; i < p.headers.num_entries; ++i) {
    const amqp_table_entry_t& e = p.headers.entries[i];
    if (e.value.kind == AMQP_FIELD_KIND_UTF8 || e.value.kind == AMQP_FIELD_KIND_BYTES) {
      m->headers.emplace_back(Str(e.key), Str(e.value.value.bytes));
    }
  }
}

// What a failed socket open means for the operator: TLS trust and host-name failures do not pass
// by themselves.
Status SocketOpenError(int rc, const std::string& where, const AmqpEndpoint& e, bool ip_host) {
  switch (rc) {
    case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
      if (ip_host) {
        return Status::InvalidArgument(fmt::format(
            "{}: the broker's TLS certificate is not signed by a trusted CA, or does not hold the "
            "IP address in url; set tls.ca_file to the CA that signed it{}, and connect by an "
            "address or name the certificate holds",
            where, e.ca_file.empty() ? "" : " (now " + e.ca_file + ")"));
      }
      return Status::InvalidArgument(fmt::format(
          "{}: the broker's TLS certificate is not signed by a trusted CA; set tls.ca_file to the "
          "CA that signed it{}",
          where, e.ca_file.empty() ? "" : " (now " + e.ca_file + ")"));
    case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
      return Status::InvalidArgument(fmt::format(
          "{}: the broker's TLS certificate does not name the host in url; connect by a name the "
          "certificate holds, or give the broker a certificate for this one",
          where));
    case AMQP_STATUS_SSL_CONNECTION_FAILED:
      return Status::InvalidArgument(fmt::format(
          "{}: TLS handshake failed (the port may not speak TLS, or the broker refuses the client "
          "certificate: check tls.cert_file and tls.key_file)",
          where));
    default:
      return Status::Unavailable(
          fmt::format("{}: cannot connect: {}", where, amqp_error_string2(rc)));
  }
}

}  // namespace

Status ParseAmqpUrl(std::string_view url, AmqpAddress* out) {
  AmqpAddress a;
  std::string_view rest;
  if (url.starts_with("amqp://")) {
    rest = url.substr(7);
    a.port = 5672;
  } else if (url.starts_with("amqps://")) {
    rest = url.substr(8);
    a.port = 5671;
    a.tls = true;
  } else {
    return Status::InvalidArgument("'" + std::string(url) +
                                   "' must start with amqp:// or amqps://");
  }
  if (rest.find('@') != std::string_view::npos) {
    return Status::InvalidArgument("'" + std::string(url) +
                                   "' holds credentials; set username and password_file instead");
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return Status::InvalidArgument("'" + std::string(url) +
                                   "' names a path (a vhost); set vhost instead");
  }
  std::string_view port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("'" + std::string(url) + "' has a '[' without its ']'");
    }
    a.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (rest.starts_with(":"))
      port = rest.substr(1);
    else if (!rest.empty())
      return Status::InvalidArgument("'" + std::string(url) + "' is garbled");
  } else {
    const size_t colon = rest.rfind(':');
    a.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (a.host.empty()) {
    return Status::InvalidArgument("'" + std::string(url) +
                                   "' names no host, e.g. \"amqps://rabbit.example:5671\"");
  }
  if (!port.empty() || rest.ends_with(":")) {
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p < 1 || p > 65535) {
      return Status::InvalidArgument("'" + std::string(url) + "' has a bad port '" +
                                     std::string(port) + "'");
    }
    a.port = p;
  }
  *out = std::move(a);
  return Status::Ok();
}

AmqpConnection::~AmqpConnection() {
  if (conn_ == nullptr) return;
  // Best effort, bounded by the RPC timeout: a broker that is gone fails these at once. A blocked
  // broker reads nothing, so closing cleanly would only wait the timeout out.
  if (open_ && !blocked_) {
    SocketDeadline* d = deadline_.get();
    if (channel_ != 0) {
      Bounded(d, call_limit_,
              [&] { return amqp_channel_close(conn_, channel_, AMQP_REPLY_SUCCESS); });
    }
    Bounded(d, call_limit_, [&] { return amqp_connection_close(conn_, AMQP_REPLY_SUCCESS); });
  }
  deadline_.reset();
  amqp_destroy_connection(conn_);
}

Status AmqpConnection::Open(const AmqpEndpoint& e, bool confirm,
                            std::unique_ptr<AmqpConnection>* out) {
  AmqpAddress addr;
  if (Status s = ParseAmqpUrl(e.url, &addr); !s.ok()) return s;
  std::unique_ptr<AmqpConnection> c(new AmqpConnection("RabbitMQ broker " + e.url));
  c->confirm_ = confirm;
  c->conn_ = amqp_new_connection();
  if (c->conn_ == nullptr) return Status::Unavailable(c->where_ + ": out of memory");
  amqp_socket_t* socket = addr.tls ? amqp_ssl_socket_new(c->conn_) : amqp_tcp_socket_new(c->conn_);
  if (socket == nullptr) return Status::Unavailable(c->where_ + ": cannot make a socket");
  const bool by_ip = addr.tls && IsIpAddress(addr.host);
  if (addr.tls) {
    if (!SetAmqpTlsPeer(socket, addr.host, e.tls_verify)) {
      return Status::InvalidArgument(
          fmt::format("{}: cannot set up the check of IP address {} against the broker's "
                      "certificate",
                      c->where_, addr.host));
    }
    if (!e.ca_file.empty()) {
      if (int rc = amqp_ssl_socket_set_cacert(socket, e.ca_file.c_str()); rc != AMQP_STATUS_OK) {
        return Status::InvalidArgument(fmt::format("{}: cannot load tls.ca_file {}: {}", c->where_,
                                                   e.ca_file, amqp_error_string2(rc)));
      }
    }
    if (!e.cert_file.empty()) {
      if (int rc = amqp_ssl_socket_set_key(socket, e.cert_file.c_str(), e.key_file.c_str());
          rc != AMQP_STATUS_OK) {
        return Status::InvalidArgument(
            fmt::format("{}: cannot load tls.cert_file {} with tls.key_file {}: {}", c->where_,
                        e.cert_file, e.key_file, amqp_error_string2(rc)));
      }
    }
  }
  timeval tv = ToTimeval(e.connect_timeout);
  if (int rc = amqp_socket_open_noblock(socket, addr.host.c_str(), addr.port, &tv);
      rc != AMQP_STATUS_OK) {
    return SocketOpenError(rc, c->where_, e, by_ip);
  }
  // rabbitmq-c (0.11) keeps the socket non-blocking and writes basic.publish, heartbeats and the
  // request of every RPC through amqp_try_send(..., amqp_time_infinite()): on EAGAIN it poll()s
  // without a timeout until the broker reads. A broker that stops reading (a resource alarm whose
  // connection.blocked went unseen, a stalled network) would hold the forwarder there until the
  // watchdog restarts sluice. What rabbitmq-c offers does not bound it: amqp_set_rpc_timeout
  // covers only the wait for an RPC's reply; SO_SNDTIMEO has no effect on a non-blocking send,
  // which fails with EAGAIN at once, and the library's own poll() is what waits; and a poll() for
  // POLLOUT before publishing promises room for some bytes, not for a whole message of up to
  // max_event_bytes. Shutting the socket down from another thread is what ends that poll(): the
  // send then fails, the call returns an error, and rabbitmq-c's state is touched only by its own
  // thread. So every call below runs with the socket's deadline armed.
  c->call_limit_ = e.connect_timeout;
  if (Status s = SocketDeadline::Create(amqp_socket_get_sockfd(socket),
                                        DeadlineTick(e.connect_timeout), &c->deadline_);
      !s.ok()) {
    return Status::Unavailable(c->where_ + ": " + s.message());
  }
  amqp_set_handshake_timeout(c->conn_, &tv);
  amqp_set_rpc_timeout(c->conn_, &tv);
  // rabbitmq-c announces the capabilities authentication_failure_close and
  // exchange_exchange_bindings by itself, not connection.blocked, without which RabbitMQ blocks
  // a connection during a resource alarm without a word. It merges the "capabilities" table given
  // here into its own (amqp_merge_capabilities), so both of its own stay announced.
  amqp_table_entry_t capability{};
  capability.key = amqp_cstring_bytes("connection.blocked");
  capability.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  capability.value.value.boolean = 1;
  amqp_table_entry_t properties[4] = {Utf8Entry("product", "sluice"),
                                      Utf8Entry("version", kVersion),
                                      Utf8Entry("connection_name", e.connection_name),
                                      {}};
  properties[3].key = amqp_cstring_bytes("capabilities");
  properties[3].value.kind = AMQP_FIELD_KIND_TABLE;
  properties[3].value.value.table = {1, &capability};
  const amqp_table_t client_properties = {4, properties};
  const amqp_rpc_reply_t login = Bounded(c->deadline_.get(), c->call_limit_, [&] {
    return amqp_login_with_properties(
        c->conn_, e.vhost.c_str(), kChannelMax, kFrameMax, static_cast<int>(e.heartbeat.count()),
        &client_properties, AMQP_SASL_METHOD_PLAIN, e.username.c_str(), e.password.c_str());
  });
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    if (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        login.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      const auto* m = static_cast<const amqp_connection_close_t*>(login.reply.decoded);
      const std::string text = Str(m->reply_text);
      if (m->reply_code == AMQP_ACCESS_REFUSED) {
        return Status::InvalidArgument(fmt::format(
            "{}: login refused ({}): check username '{}' and its password (password_file)",
            c->where_, text, e.username));
      }
      if (m->reply_code == AMQP_NOT_ALLOWED) {
        return Status::InvalidArgument(fmt::format(
            "{}: vhost '{}' refused ({}): create it, or give user '{}' permissions on it",
            c->where_, e.vhost, text, e.username));
      }
      return Status::Unavailable(
          fmt::format("{}: login failed: {} {}", c->where_, m->reply_code, text));
    }
    if (login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
        login.library_error == AMQP_STATUS_CONNECTION_CLOSED) {
      // Brokers that do not tell a refused login apart close the socket instead.
      return Status::Unavailable(fmt::format(
          "{}: the broker closed the connection during login (a refused username '{}' or "
          "password, or the broker is stopping)",
          c->where_, e.username));
    }
    return c->RpcError("login");
  }
  c->open_ = true;
  if (Status s = c->OpenChannel(); !s.ok()) return s;
  *out = std::move(c);
  return Status::Ok();
}

Status AmqpConnection::OpenChannel() {
  const uint16_t next = static_cast<uint16_t>(channel_ + 1);
  if (next > kChannelMax) {
    return Status::Unavailable(where_ + ": every channel of this connection was used");
  }
  Bounded(deadline_.get(), call_limit_, [&] { return amqp_channel_open(conn_, next); });
  if (Status s = RpcError("channel.open"); !s.ok()) return s;
  channel_ = next;
  if (confirm_) {
    Bounded(deadline_.get(), call_limit_, [&] { return amqp_confirm_select(conn_, channel_); });
    if (Status s = RpcError("confirm.select"); !s.ok()) return s;
  }
  return Status::Ok();
}

Status AmqpConnection::ReopenChannel() {
  return OpenChannel();
}

Status AmqpConnection::RpcError(std::string_view what) {
  const amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return Status::Ok();
    case AMQP_RESPONSE_NONE:
      return Status::Unavailable(fmt::format("{}: {}: no reply", where_, what));
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return Status::Unavailable(fmt::format("{}: {}: {}", where_, what, Why(r.library_error)));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
    amqp_connection_close_ok_t ok{};
    Bounded(deadline_.get(), call_limit_,
            [&] { return amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok); });
    open_ = false;
    return Status::Unavailable(fmt::format("{}: {}: the broker closed the connection: {} {}",
                                           where_, what, m->reply_code, Str(m->reply_text)));
  }
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
    amqp_channel_close_ok_t ok{};
    Bounded(deadline_.get(), call_limit_,
            [&] { return amqp_send_method(conn_, channel_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok); });
    const std::string msg = fmt::format("{}: {}: the broker closed the channel: {} {}", where_,
                                        what, m->reply_code, Str(m->reply_text));
    // The channel is gone; the next RPC needs a new one.
    if (OpenChannel().ok()) {
      return m->reply_code == AMQP_NOT_FOUND || m->reply_code == AMQP_ACCESS_REFUSED ||
                     m->reply_code == AMQP_PRECONDITION_FAILED
                 ? Status::InvalidArgument(msg)
                 : Status::Unavailable(msg);
    }
    return Status::Unavailable(msg);
  }
  return Status::Unavailable(
      fmt::format("{}: {}: unexpected reply method {:#x}", where_, what, r.reply.id));
}

std::string AmqpConnection::Why(int rc) const {
  if (deadline_ == nullptr || !deadline_->fired()) return amqp_error_string2(rc);
  return fmt::format(
      "the broker took nothing for {} ms (connect_timeout_ms): it stopped reading (a resource "
      "alarm, or it is overloaded) or the network stalled; the connection was closed",
      call_limit_.count());
}

Status AmqpConnection::Publish(std::string_view exchange, std::string_view routing_key,
                               bool mandatory, std::string_view message_id, int64_t timestamp_s,
                               const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string_view body) {
  std::vector<amqp_table_entry_t> entries;
  entries.reserve(headers.size());
  for (const auto& [name, value] : headers) {
    amqp_table_entry_t e{};
    e.key = Bytes(name);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = Bytes(value);
    entries.push_back(e);
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                 AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_HEADERS_FLAG;
  props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  props.message_id = Bytes(message_id);
  props.timestamp = static_cast<uint64_t>(timestamp_s);
  props.headers = {static_cast<int>(entries.size()), entries.empty() ? nullptr : entries.data()};
  const int rc = Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_basic_publish(conn_, channel_, Bytes(exchange), Bytes(routing_key),
                              mandatory ? 1 : 0, 0, &props, Bytes(body));
  });
  if (rc != AMQP_STATUS_OK) {
    open_ = false;
    return Status::Unavailable(fmt::format("{}: basic.publish failed: {}", where_, Why(rc)));
  }
  return Status::Ok();
}

Status AmqpConnection::Next(std::chrono::milliseconds timeout, AmqpEvent* out) {
  *out = AmqpEvent{};
  amqp_maybe_release_buffers(conn_);
  amqp_frame_t frame{};
  timeval tv = ToTimeval(timeout);
  // The wait may send a heartbeat first, which is a write like any other.
  const int rc = Bounded(deadline_.get(), timeout + call_limit_,
                         [&] { return amqp_simple_wait_frame_noblock(conn_, &frame, &tv); });
  if (rc == AMQP_STATUS_TIMEOUT) return Status::Ok();
  if (rc != AMQP_STATUS_OK) {
    open_ = false;
    return Status::Unavailable(fmt::format("{}: connection lost: {}", where_, Why(rc)));
  }
  if (frame.frame_type != AMQP_FRAME_METHOD)
    return Status::Ok();  // stray content of a closed channel
  const amqp_method_t& m = frame.payload.method;
  switch (m.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const auto* ack = static_cast<const amqp_basic_ack_t*>(m.decoded);
      out->kind = AmqpEvent::Kind::kAck;
      out->tag = ack->delivery_tag;
      out->multiple = ack->multiple != 0;
      return Status::Ok();
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* nack = static_cast<const amqp_basic_nack_t*>(m.decoded);
      out->kind = AmqpEvent::Kind::kNack;
      out->tag = nack->delivery_tag;
      out->multiple = nack->multiple != 0;
      return Status::Ok();
    }
    case AMQP_BASIC_RETURN_METHOD:
    case AMQP_BASIC_DELIVER_METHOD: {
      AmqpMessage& msg = out->message;
      if (m.id == AMQP_BASIC_RETURN_METHOD) {
        const auto* ret = static_cast<const amqp_basic_return_t*>(m.decoded);
        out->kind = AmqpEvent::Kind::kReturn;
        msg.reply_code = ret->reply_code;
        msg.reply_text = Str(ret->reply_text);
        msg.exchange = Str(ret->exchange);
        msg.routing_key = Str(ret->routing_key);
      } else {
        const auto* d = static_cast<const amqp_basic_deliver_t*>(m.decoded);
        out->kind = AmqpEvent::Kind::kDeliver;
        msg.delivery_tag = d->delivery_tag;
        msg.exchange = Str(d->exchange);
        msg.routing_key = Str(d->routing_key);
      }
      // The content header and body frames follow at once.
      amqp_message_t content{};
      const amqp_rpc_reply_t r = Bounded(deadline_.get(), call_limit_, [&] {
        return amqp_read_message(conn_, frame.channel, &content, 0);
      });
      if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        open_ = false;
        return Status::Unavailable(
            fmt::format("{}: connection lost reading a message: {}", where_, Why(r.library_error)));
      }
      ReadProperties(content.properties, &msg);
      msg.body = Str(content.body);
      amqp_destroy_message(&content);
      return Status::Ok();
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      const auto* close = static_cast<const amqp_channel_close_t*>(m.decoded);
      out->kind = AmqpEvent::Kind::kChannelClosed;
      out->code = close->reply_code;
      out->text = Str(close->reply_text);
      amqp_channel_close_ok_t ok{};
      Bounded(deadline_.get(), call_limit_, [&] {
        return amqp_send_method(conn_, frame.channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      });
      return Status::Ok();
    }
    case AMQP_CONNECTION_BLOCKED_METHOD: {
      const auto* blocked = static_cast<const amqp_connection_blocked_t*>(m.decoded);
      blocked_ = true;
      out->kind = AmqpEvent::Kind::kBlocked;
      out->text = Str(blocked->reason);
      return Status::Ok();
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      blocked_ = false;
      out->kind = AmqpEvent::Kind::kUnblocked;
      return Status::Ok();
    case AMQP_CONNECTION_CLOSE_METHOD: {
      const auto* close = static_cast<const amqp_connection_close_t*>(m.decoded);
      const std::string text = Str(close->reply_text);
      amqp_connection_close_ok_t ok{};
      Bounded(deadline_.get(), call_limit_,
              [&] { return amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok); });
      open_ = false;
      return Status::Unavailable(fmt::format("{}: the broker closed the connection: {} {}", where_,
                                             close->reply_code, text));
    }
    default:
      return Status::Ok();
  }
}

Status AmqpConnection::DeclareQueue(const std::string& name, const AmqpArguments& arguments) {
  std::vector<amqp_table_entry_t> entries;
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_queue_declare(conn_, channel_, Bytes(name), 0, 1, 0, 0,
                              MakeTable(arguments, &entries));
  });
  return RpcError("queue.declare " + name);
}

Status AmqpConnection::CheckQueue(const std::string& name) {
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_queue_declare(conn_, channel_, Bytes(name), 1, 0, 0, 0, amqp_empty_table);
  });
  return RpcError("queue.declare (passive) " + name);
}

Status AmqpConnection::CheckExchange(const std::string& name) {
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_exchange_declare(conn_, channel_, Bytes(name), amqp_empty_bytes, 1, 0, 0, 0,
                                 amqp_empty_table);
  });
  return RpcError("exchange.declare (passive) " + name);
}

Status AmqpConnection::DeleteQueue(const std::string& name) {
  Bounded(deadline_.get(), call_limit_,
          [&] { return amqp_queue_delete(conn_, channel_, Bytes(name), 0, 0); });
  return RpcError("queue.delete " + name);
}

Status AmqpConnection::PurgeQueue(const std::string& name, uint64_t* count) {
  const amqp_queue_purge_ok_t* ok = Bounded(
      deadline_.get(), call_limit_, [&] { return amqp_queue_purge(conn_, channel_, Bytes(name)); });
  if (Status s = RpcError("queue.purge " + name); !s.ok()) return s;
  *count = ok != nullptr ? ok->message_count : 0;
  return Status::Ok();
}

Status AmqpConnection::DeclareExchange(const std::string& name, const std::string& type) {
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_exchange_declare(conn_, channel_, Bytes(name), Bytes(type), 0, 1, 0, 0,
                                 amqp_empty_table);
  });
  return RpcError("exchange.declare " + name);
}

Status AmqpConnection::Bind(const std::string& queue, const std::string& exchange,
                            const std::string& key) {
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_queue_bind(conn_, channel_, Bytes(queue), Bytes(exchange), Bytes(key),
                           amqp_empty_table);
  });
  return RpcError("queue.bind " + queue);
}

Status AmqpConnection::Consume(const std::string& queue, uint16_t prefetch,
                               const AmqpArguments& arguments) {
  Bounded(deadline_.get(), call_limit_,
          [&] { return amqp_basic_qos(conn_, channel_, 0, prefetch, 0); });
  if (Status s = RpcError("basic.qos"); !s.ok()) return s;
  std::vector<amqp_table_entry_t> entries;
  Bounded(deadline_.get(), call_limit_, [&] {
    return amqp_basic_consume(conn_, channel_, Bytes(queue), amqp_empty_bytes, 0, /*no_ack=*/0, 0,
                              MakeTable(arguments, &entries));
  });
  return RpcError("basic.consume " + queue);
}

Status AmqpConnection::AckDelivery(uint64_t tag, bool multiple) {
  const int rc = Bounded(deadline_.get(), call_limit_,
                         [&] { return amqp_basic_ack(conn_, channel_, tag, multiple ? 1 : 0); });
  if (rc != AMQP_STATUS_OK) {
    open_ = false;
    return Status::Unavailable(fmt::format("{}: basic.ack failed: {}", where_, Why(rc)));
  }
  return Status::Ok();
}

}  // namespace sluice::connectors
