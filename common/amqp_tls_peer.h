// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <amqp.h>

#include <string>

namespace sluice {

// Sets how a rabbitmq-c TLS socket checks the broker it connects to `host`: with `verify`, the
// certificate chain and the name, without, neither. rabbitmq-c matches a host against the
// certificate's DNS names only, so an IP address would never match; for one, OpenSSL checks the
// certificate's IP addresses instead, during the chain's verification (the context's parameters
// pass to the connection), and rabbitmq-c's own name check stays off. False when OpenSSL refused
// the address (the socket must not be used then).
bool SetAmqpTlsPeer(amqp_socket_t* socket, const std::string& host, bool verify);

// True for an IPv4 or IPv6 address, as a URL's host holds it (without brackets).
bool IsIpAddress(const std::string& host);

}  // namespace sluice
