// SPDX-License-Identifier: Apache-2.0

#include "connectors/mqtt_connect_failure.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <mqtt/async_client.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "connectors/mqtt_endpoint.h"

namespace sluice::connectors {

namespace {

bool IsIpAddress(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  if (e == 0) return "no detail from OpenSSL";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// A TCP connection to host:port within `timeout`, or -1.
int ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (errno != EINPROGRESS || poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) return -1;
  // The handshake below runs blocking, bounded by these timeouts.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

}  // namespace

std::string MqttReasonText(int reason) {
  std::string name = mqtt::exception::reason_code_str(reason);
  if (name.empty()) name = "reason code";
  return fmt::format("{} 0x{:02x}", name, reason);
}

std::string ExplainMqttConnectFailure(const MqttConnection& c, const mqtt::exception& e,
                                      const std::string& where,
                                      std::chrono::milliseconds tls_timeout) {
  const int rc = e.get_return_code();
  // Paho C before 1.3.15 puts an MQTT 5 CONNACK reason code in the return code.
  const int reason = e.get_reason_code() >= 0x80 ? static_cast<int>(e.get_reason_code())
                     : rc >= 0x80                ? rc
                                                 : 0;
  const std::string& url = c.url;
  const std::string& user = c.username;
  // MQTT 3.1.1 CONNACK return codes (section 3.2.2.3) arrive as Paho's return code; MQTT 5
  // CONNACK reason codes (section 3.2.2.2) as the reason code.
  if (reason == 0x86 || rc == 4) {
    return fmt::format(
        "MQTT broker {} refuses sluice's user name or password (user '{}'): check username and "
        "password (or password_file) in {}",
        url, user, where);
  }
  if (reason == 0x87 || reason == 0x8A || rc == 5) {
    // Mosquitto answers a wrong password with "not authorized", too.
    return fmt::format(
        "MQTT broker {} does not authorize client '{}' (user '{}', {}): check username and "
        "password (or password_file) in {}, and that the broker lets this user and client id "
        "connect",
        url, c.client_id, user, reason >= 0x80 ? MqttReasonText(reason) : "CONNACK return code 5",
        where);
  }
  if (reason == 0x85 || rc == 2) {
    return fmt::format("MQTT broker {} refuses client id '{}': set another client_id in {}", url,
                       c.client_id, where);
  }
  if (reason == 0x84 || rc == 1) {
    return fmt::format("MQTT broker {} does not speak MQTT {}: change protocol in {}", url,
                       c.protocol == MqttProtocol::kV5 ? "5" : "3.1.1", where);
  }
  if (reason == 0x8C) {
    return fmt::format("MQTT broker {} refuses the authentication method ({}): check {}", url,
                       MqttReasonText(reason), where);
  }
  if (c.tls && rc == MQTTASYNC_FAILURE && reason == 0) {
    const std::string tls = DiagnoseMqttTls(c, tls_timeout);
    if (!tls.empty()) {
      return fmt::format(
          "TLS connection to MQTT broker {} failed: {}; check tls.ca_file (the CA that signed "
          "the broker's certificate), that the certificate names the host of url (host-name "
          "verification is {}), and tls.cert_file/tls.key_file in {}",
          url, tls, c.tls_verify ? "on" : "off", where);
    }
  }
  return "";
}

std::string DiagnoseMqttTls(const MqttConnection& c, std::chrono::milliseconds timeout) {
  BrokerEndpoint ep;
  if (!ParseBrokerEndpoint(c.url, &ep).ok()) return "";
  // Only what this handshake itself says is reported; a broker that cannot be reached at all is
  // not a TLS problem.
  const int fd = ConnectTcp(ep.host, ep.port, timeout);
  if (fd < 0) return "";
  ERR_clear_error();
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        &SSL_CTX_free);
  auto finish = [&](std::string r) {
    close(fd);
    return r;
  };
  if (!ctx) return finish("");
  if (!c.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), c.ca_file.c_str(), nullptr) != 1) {
      return finish(fmt::format("cannot load tls.ca_file '{}' ({})", c.ca_file, OpenSslError()));
    }
  } else {
    SSL_CTX_set_default_verify_paths(ctx.get());
  }
  if (!c.cert_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx.get(), c.cert_file.c_str()) != 1) {
    return finish(fmt::format("cannot load tls.cert_file '{}' ({})", c.cert_file, OpenSslError()));
  }
  if (!c.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), c.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return finish(fmt::format("cannot load tls.key_file '{}' ({})", c.key_file, OpenSslError()));
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
      return finish(fmt::format("tls.key_file '{}' does not belong to tls.cert_file '{}'",
                                c.key_file, c.cert_file));
    }
  }
  SSL_CTX_set_verify(ctx.get(), c.tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  if (!ssl) return finish("");
  SSL_set_fd(ssl.get(), fd);
  const bool ip = IsIpAddress(ep.host);
  if (!ip) SSL_set_tlsext_host_name(ssl.get(), ep.host.c_str());
  if (c.tls_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, ep.host.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, ep.host.c_str(), 0);
    }
  }
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    if (verify != X509_V_OK) {
      return finish(fmt::format("the broker's certificate does not verify for host '{}': {}",
                                ep.host, X509_verify_cert_error_string(verify)));
    }
    // No word from OpenSSL: the broker did not answer in time or closed the connection, which
    // is not a TLS problem of sluice's settings.
    if (ERR_peek_error() == 0) return finish("");
    return finish(fmt::format("TLS handshake failed: {}", OpenSslError()));
  }
  // With TLS 1.3 the broker judges sluice's client certificate after the handshake and says so
  // with an alert: read briefly for one (a healthy broker sends nothing before CONNECT).
  char byte;
  if (SSL_read(ssl.get(), &byte, 1) <= 0 && ERR_peek_error() != 0) {
    return finish(
        fmt::format("the broker refused the TLS session: {} (tls.cert_file/"
                    "tls.key_file: a client certificate its CA signed)",
                    OpenSslError()));
  }
  return finish("");
}

}  // namespace sluice::connectors
