// SPDX-License-Identifier: Apache-2.0

#include "common/amqp_tls_peer.h"

#include <amqp_ssl_socket.h>
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

namespace sluice {

bool IsIpAddress(const std::string& host) {
  in6_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1 || inet_pton(AF_INET6, host.c_str(), &a) == 1;
}

bool SetAmqpTlsPeer(amqp_socket_t* socket, const std::string& host, bool verify) {
  const bool by_ip = IsIpAddress(host);
  amqp_ssl_socket_set_verify_peer(socket, verify ? 1 : 0);
  amqp_ssl_socket_set_verify_hostname(socket, verify && !by_ip ? 1 : 0);
  if (!verify || !by_ip) return true;
  auto* ctx = static_cast<SSL_CTX*>(amqp_ssl_socket_get_context(socket));
  return ctx != nullptr &&
         X509_VERIFY_PARAM_set1_ip_asc(SSL_CTX_get0_param(ctx), host.c_str()) == 1;
}

}  // namespace sluice
