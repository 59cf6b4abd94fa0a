// SPDX-License-Identifier: Apache-2.0

// SocketDeadline on real loopback TCP sockets: a peer that reads nothing fills the kernel's
// buffers, and a wait for room to write then lasts as long as the deadline lets it, the way
// rabbitmq-c waits in basic.publish when a broker stops reading.

#include "connectors/socket_deadline.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

namespace sluice::connectors {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// A connected loopback TCP pair; `writer` is non-blocking, as rabbitmq-c keeps its socket.
struct TcpPair {
  int writer = -1;
  int reader = -1;
  TcpPair() {
    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listener >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(listener, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    writer = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(writer >= 0);
    REQUIRE(connect(writer, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    reader = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(reader >= 0);
    close(listener);
    REQUIRE(fcntl(writer, F_SETFL, fcntl(writer, F_GETFL) | O_NONBLOCK) == 0);
  }
  ~TcpPair() {
    close(writer);
    close(reader);
  }
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;

  // Writes until the kernel takes no more: the reader reads nothing.
  void Fill() const {
    std::vector<char> chunk(1 << 16, 'x');
    while (send(writer, chunk.data(), chunk.size(), MSG_NOSIGNAL) > 0) {
    }
    REQUIRE((errno == EAGAIN || errno == EWOULDBLOCK));
  }
};

TEST_CASE(
    "SocketDeadline ends a wait to write to a peer that reads nothing, once its limit passed") {
  TcpPair pair;
  pair.Fill();
  std::unique_ptr<SocketDeadline> deadline;
  REQUIRE(SocketDeadline::Create(pair.writer, 10ms, &deadline).ok());

  const auto limit = 300ms;
  const auto start = SteadyClock::now();
  deadline->Arm(limit);
  // rabbitmq-c waits without a timeout; 30 s only keeps a broken deadline from hanging the test.
  pollfd p{pair.writer, POLLOUT, 0};
  const int ready = poll(&p, 1, 30000);
  const char byte = 'y';
  const ssize_t sent = send(pair.writer, &byte, 1, MSG_NOSIGNAL);
  const int send_errno = errno;
  const bool fired = deadline->Disarm();
  const auto waited = SteadyClock::now() - start;

  CHECK(ready == 1);
  CHECK(fired);
  CHECK(deadline->fired());
  CHECK(sent == -1);
  CHECK(send_errno == EPIPE);
  CHECK(waited >= limit);
  // At most two ticks late; the rest is room for a loaded machine.
  CHECK(waited < limit + 5s);
}

TEST_CASE("SocketDeadline leaves alone calls that end within their limit, however many") {
  TcpPair pair;
  std::unique_ptr<SocketDeadline> deadline;
  REQUIRE(SocketDeadline::Create(pair.writer, 5ms, &deadline).ok());

  // Calls of about 20 ms each, one after another, for well over the limit in all: only one call
  // that lasts the limit may end the socket.
  const auto limit = 300ms;
  const auto start = SteadyClock::now();
  int calls = 0;
  while (SteadyClock::now() - start < 2 * limit) {
    deadline->Arm(limit);
    pollfd p{pair.writer, POLLIN, 0};  // nothing arrives: a call that waits 20 ms and returns
    CHECK(poll(&p, 1, 20) == 0);
    CHECK_FALSE(deadline->Disarm());
    calls++;
  }
  CHECK(calls > 1);
  CHECK_FALSE(deadline->fired());

  // The socket still works both ways, and outlives the deadline: the duplicate is its own.
  deadline.reset();
  const char byte = 'z';
  REQUIRE(send(pair.writer, &byte, 1, MSG_NOSIGNAL) == 1);
  char got = 0;
  pollfd p{pair.reader, POLLIN, 0};
  REQUIRE(poll(&p, 1, 10000) == 1);
  CHECK(recv(pair.reader, &got, 1, 0) == 1);
  CHECK(got == 'z');
}

TEST_CASE("SocketDeadline refuses a descriptor that is not open") {
  std::unique_ptr<SocketDeadline> deadline;
  const Status s = SocketDeadline::Create(-1, 10ms, &deadline);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("cannot duplicate socket -1") != std::string::npos);
  CHECK(deadline == nullptr);
}

}  // namespace
}  // namespace sluice::connectors
