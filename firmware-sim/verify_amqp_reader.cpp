// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/verify_amqp_reader.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <charconv>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/amqp_tls_peer.h"

namespace sluice::sim {

namespace {

constexpr amqp_channel_t kChannel = 1;

amqp_bytes_t Bytes(std::string_view s) {
  return {s.size(), const_cast<char*>(s.data())};
}

std::string_view View(amqp_bytes_t b) {
  return {static_cast<const char*>(b.bytes), b.len};
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string ReplyText(amqp_rpc_reply_t r) {
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) return amqp_error_string2(r.library_error);
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
    if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
      return std::to_string(m->reply_code) + " " + std::string(View(m->reply_text));
    }
    if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
      return std::to_string(m->reply_code) + " " + std::string(View(m->reply_text));
    }
  }
  return "no reply";
}

bool NotFound(amqp_rpc_reply_t r) {
  return r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
         r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
         static_cast<const amqp_channel_close_t*>(r.reply.decoded)->reply_code == AMQP_NOT_FOUND;
}

}  // namespace

VerifyAmqpReader::VerifyAmqpReader(VerifyAmqpReaderOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock) {}

VerifyAmqpReader::~VerifyAmqpReader() {
  Close();
}

void VerifyAmqpReader::Close() {
  if (conn_ == nullptr) return;
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
}

Status VerifyAmqpReader::Open(VerifyAmqpReaderOptions options, const Clock* clock,
                              std::unique_ptr<VerifyAmqpReader>* out) {
  std::unique_ptr<VerifyAmqpReader> r(new VerifyAmqpReader(std::move(options), clock));
  if (Status s = r->Connect(); !s.ok()) return s;
  *out = std::move(r);
  return Status::Ok();
}

Status VerifyAmqpReader::Connect() {
  const std::string& url = options_.url;
  const bool tls = url.starts_with("amqps://");
  if (!tls && !url.starts_with("amqp://")) {
    return Status::InvalidArgument("--url '" + url + "' must start with amqp:// or amqps://");
  }
  std::string hostport = url.substr(tls ? 8 : 7);
  if (!hostport.empty() && hostport.back() == '/') hostport.pop_back();
  int port = tls ? 5671 : 5672;
  std::string host = hostport;
  if (const size_t colon = hostport.rfind(':');
      colon != std::string::npos && hostport.find(']', colon) == std::string::npos) {
    host = hostport.substr(0, colon);
    const std::string p = hostport.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size()) {
      return Status::InvalidArgument("--url '" + url + "' has a bad port");
    }
  }
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);

  Close();
  conn_ = amqp_new_connection();
  amqp_socket_t* socket = tls ? amqp_ssl_socket_new(conn_) : amqp_tcp_socket_new(conn_);
  if (socket == nullptr) return Status::Unavailable(url + ": cannot make a socket");
  if (tls) {
    if (!SetAmqpTlsPeer(socket, host, !options_.insecure)) {
      return Status::InvalidArgument(url + ": cannot set up the check of IP address " + host);
    }
    if (!options_.ca_file.empty() &&
        amqp_ssl_socket_set_cacert(socket, options_.ca_file.c_str()) != AMQP_STATUS_OK) {
      return Status::InvalidArgument("cannot load --ca-file " + options_.ca_file);
    }
    if (!options_.cert_file.empty() &&
        amqp_ssl_socket_set_key(socket, options_.cert_file.c_str(), options_.key_file.c_str()) !=
            AMQP_STATUS_OK) {
      return Status::InvalidArgument("cannot load --cert-file/--key-file");
    }
  }
  timeval tv = ToTimeval(options_.connect_timeout);
  if (int rc = amqp_socket_open_noblock(socket, host.c_str(), port, &tv); rc != AMQP_STATUS_OK) {
    return Status::Unavailable(url + ": cannot connect: " + amqp_error_string2(rc));
  }
  amqp_set_rpc_timeout(conn_, &tv);
  amqp_rpc_reply_t r =
      amqp_login(conn_, options_.vhost.c_str(), 0, 131072, 30, AMQP_SASL_METHOD_PLAIN,
                 options_.username.c_str(), options_.password.c_str());
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    return Status::Unavailable(url + ": login as '" + options_.username +
                               "' failed: " + ReplyText(r));
  }
  amqp_channel_open(conn_, kChannel);
  if (r = amqp_get_rpc_reply(conn_); r.reply_type != AMQP_RESPONSE_NORMAL) {
    return Status::Unavailable(url + ": channel.open: " + ReplyText(r));
  }
  amqp_basic_qos(conn_, kChannel, 0, options_.prefetch, 0);
  if (r = amqp_get_rpc_reply(conn_); r.reply_type != AMQP_RESPONSE_NORMAL) {
    return Status::Unavailable(url + ": basic.qos: " + ReplyText(r));
  }
  auto consume = [&](const std::string& stream, int64_t next, const char* tag) -> Status {
    amqp_table_entry_t entry{};
    entry.key = Bytes("x-stream-offset");
    if (next < 0) {
      entry.value.kind = AMQP_FIELD_KIND_UTF8;
      entry.value.value.bytes = Bytes("first");
    } else {
      entry.value.kind = AMQP_FIELD_KIND_I64;
      entry.value.value.i64 = next;
    }
    const amqp_table_t args{1, &entry};
    amqp_basic_consume(conn_, kChannel, Bytes(stream), Bytes(tag), 0, /*no_ack=*/0, 0, args);
    const amqp_rpc_reply_t c = amqp_get_rpc_reply(conn_);
    if (c.reply_type == AMQP_RESPONSE_NORMAL) return Status::Ok();
    if (NotFound(c)) return Status::NotFound(url + ": no stream '" + stream + "'");
    return Status::Unavailable(url + ": basic.consume '" + stream + "': " + ReplyText(c));
  };
  if (Status s = consume(options_.stream, next_offset_, "events"); !s.ok()) return s;
  if (!options_.gap_stream.empty()) {
    if (Status s = consume(options_.gap_stream, next_gap_offset_, "gaps"); !s.ok()) return s;
  }
  return Status::Ok();
}

Status VerifyAmqpReader::Read(const std::function<void(const ConsumedRecord&)>& on_record,
                              const std::function<void(const std::string&)>& on_warning,
                              Stats* stats) {
  *stats = Stats{};
  const auto start = clock_->Now();
  auto last = start;
  while (true) {
    const auto now = clock_->Now();
    if (options_.max_records > 0 && stats->records >= options_.max_records) {
      stats->stop = ReadStop::kCount;
      break;
    }
    if (now - start >= options_.timeout) {
      stats->stop = ReadStop::kTimeout;
      break;
    }
    if (now - last >= options_.idle_timeout) {
      stats->stop = ReadStop::kIdle;
      break;
    }
    amqp_maybe_release_buffers(conn_);
    amqp_envelope_t env{};
    timeval tv = ToTimeval(std::chrono::milliseconds(200));
    const amqp_rpc_reply_t r = amqp_consume_message(conn_, &env, &tv, 0);
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
      continue;
    }
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      on_warning(options_.url + ": connection lost (" + ReplyText(r) + "); reconnecting");
      stats->reconnects++;
      Status s = Connect();
      while (!s.ok() && clock_->Now() - start < options_.timeout) {
        // Pacing between attempts at a broker that is down, not synchronisation.
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        s = Connect();
      }
      if (!s.ok()) return s;
      continue;
    }
    last = clock_->Now();
    const bool gap_stream = View(env.consumer_tag) == "gaps";
    ConsumedRecord rec;
    rec.topic = View(env.routing_key);
    rec.value = View(env.message.body);
    rec.offset = static_cast<int64_t>(arrivals_++);
    rec.gap = gap_stream;
    const amqp_basic_properties_t& p = env.message.properties;
    if ((p._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
      for (int i = 0; i < p.headers.num_entries; ++i) {
        const amqp_table_entry_t& e = p.headers.entries[i];
        const std::string_view key = View(e.key);
        if (key == "x-stream-offset" && e.value.kind == AMQP_FIELD_KIND_I64) {
          rec.offset = e.value.value.i64;
          (gap_stream ? next_gap_offset_ : next_offset_) = e.value.value.i64 + 1;
          continue;
        }
        if (e.value.kind != AMQP_FIELD_KIND_UTF8 && e.value.kind != AMQP_FIELD_KIND_BYTES) continue;
        const std::string_view value = View(e.value.value.bytes);
        if (key == "sluice.seq") rec.log_seq = ParseHeaderNumber(value);
        if (key == "sluice.log") rec.log_id = value;
        if (key == "sluice.gap" && value == "1") rec.gap = true;
      }
    }
    on_record(rec);
    if (rec.gap) {
      stats->gap_records++;
    } else {
      stats->records++;
    }
    amqp_basic_ack(conn_, kChannel, env.delivery_tag, 0);
    amqp_destroy_envelope(&env);
  }
  stats->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_->Now() - start);
  return Status::Ok();
}

}  // namespace sluice::sim
