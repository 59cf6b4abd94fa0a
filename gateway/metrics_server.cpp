// SPDX-License-Identifier: Apache-2.0

#include "gateway/metrics_server.h"

// Why an accept loop of our own rather than cpp-httplib (Debian 12 ships 0.11 as a shared
// library, its limits compiled in): httplib hands each accepted socket to a worker thread for the
// connection's whole life, and its read timeout applies per recv(), so two clients trickling a
// header byte now and then kept both workers, and /healthz waited behind them (15 s measured);
// its task queue sees only an opaque closure that owns the socket, so it cannot refuse a
// connection beyond a cap without leaking the descriptor, and every idle connection it accepted
// stayed open. The surface here is three GET paths with tiny answers: one poll(2) loop with
// non-blocking sockets, a connection cap, a deadline per request and no keep-alive is simpler
// than working around that, and no client can make another one wait.

#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

namespace sluice::gateway {

namespace {

// Deadlines here are waited out by poll(2), which sleeps in real time, so they are measured on
// the steady clock rather than on an injected Clock that a test could stop.
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kMaxRequestHead = 8 * 1024;
// After accept fails (e.g. EMFILE: no descriptor left), wait this long before trying again rather
// than spin on a listening socket that stays readable.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
// Refused and timed-out connections are counted; a warning says so at most this often, so that a
// scan of the port cannot flood the log.
constexpr auto kWarnInterval = std::chrono::seconds(60);

std::string Endpoint(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string Render(int status, std::string_view content_type, const std::string& body,
                   bool head_only, std::string_view extra_headers = {}) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
      status, Reason(status), content_type, body.size(), extra_headers);
  if (!head_only) out += body;
  return out;
}

constexpr std::string_view kText = "text/plain; charset=utf-8";

// The request head ends at the first empty line; npos while it is incomplete.
size_t HeadEnd(const std::string& in) {
  const size_t crlf = in.find("\r\n\r\n");
  const size_t lf = in.find("\n\n");
  return std::min(crlf, lf);
}

}  // namespace

struct MetricsServer::Connection {
  int fd = -1;
  std::string in;
  std::string out;
  size_t sent = 0;
  bool writing = false;
  SteadyClock::time_point deadline;
};

MetricsServer::MetricsServer(MetricsServerOptions options, const MetricsRegistry* registry,
                             Check health, Check ready, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      registry_(registry),
      health_(std::move(health)),
      ready_(std::move(ready)),
      log_(std::move(logger)) {}

MetricsServer::~MetricsServer() {
  Stop();
}

Status MetricsServer::Listen() {
  const std::string endpoint = Endpoint(options_.address, options_.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int gai =
      getaddrinfo(options_.address.c_str(), std::to_string(options_.port).c_str(), &hints, &found);
  if (gai != 0) {
    return Status::Unavailable("metrics.listen: cannot listen on " + endpoint + ": " +
                               gai_strerror(gai));
  }
  int err = 0;
  for (addrinfo* a = found; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      err = errno;
      continue;
    }
    // SO_REUSEADDR only allows a restart over TIME_WAIT; SO_REUSEPORT is left off, under which a
    // second process could bind the same port and take half the scrapes.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, options_.listen_backlog) != 0) {
      err = errno;
      close(fd);
      continue;
    }
    listen_fd_ = fd;
  }
  freeaddrinfo(found);
  if (listen_fd_ < 0) {
    return Status::Unavailable("metrics.listen: cannot listen on " + endpoint + ": " +
                               (err != 0 ? std::strerror(err) : "no address to bind") +
                               (err == EADDRINUSE ? " (another process holds the port; choose "
                                                    "another metrics.listen or port 0)"
                                                  : ""));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len) == 0) {
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    err = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    return Status::Unavailable("metrics.listen: eventfd: " + std::string(std::strerror(err)));
  }
  // Three quarters of the descriptor limit stay for the connectors, the log and the libraries.
  max_connections_ = std::max<size_t>(options_.max_connections, 1);
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_connections_ =
        std::clamp<size_t>(static_cast<size_t>(nofile.rlim_cur / 4), 1, max_connections_);
  }
  return Status::Ok();
}

void MetricsServer::Start() {
  thread_ = std::thread([this] { Serve(); });
  log_->info("serving /metrics, /healthz and /readyz on http://{} (at most {} connections)",
             Endpoint(options_.address, port_), max_connections_);
}

void MetricsServer::Stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    if (write(wake_fd_, &one, sizeof one) < 0) {
      log_->error("metrics endpoint: cannot wake the server thread: {}", std::strerror(errno));
    }
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fd_}) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
  }
}

MetricsServerStats MetricsServer::Stats() const {
  MetricsServerStats s;
  s.accepted = accepted_.load();
  s.answered = answered_.load();
  s.evicted = evicted_.load();
  s.timed_out = timed_out_.load();
  return s;
}

void MetricsServer::Respond(Connection& c) {
  c.writing = true;
  c.deadline = SteadyClock::now() + options_.write_timeout;
  const size_t end = HeadEnd(c.in);
  if (end == std::string::npos) {
    c.out = Render(431, kText, "request head too large\n", false);
    return;
  }
  const std::string_view head(c.in.data(), end);
  const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) {
    c.out = Render(400, kText, "bad request\n", false);
    return;
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    c.out = Render(405, kText, "method not allowed\n", false, "Allow: GET, HEAD\r\n");
    return;
  }
  auto answer = [&](const Check& check) {
    const Status s = check();
    c.out = s.ok() ? Render(200, kText, "ok\n", head_only)
                   : Render(503, kText, s.message() + "\n", head_only);
  };
  try {
    if (path == "/metrics") {
      c.out = Render(200, MetricsRegistry::kContentType, registry_->ExpositionText(), head_only);
    } else if (path == "/healthz") {
      answer(health_);
    } else if (path == "/readyz") {
      answer(ready_);
    } else {
      c.out = Render(404, kText, "not found\n", head_only);
    }
  } catch (const std::exception& e) {
    log_->error("metrics endpoint: {} failed: {}", path, e.what());
    c.out = Render(500, kText, "internal error\n", head_only);
  }
}

void MetricsServer::Serve() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  SteadyClock::time_point accept_paused_until{};
  SteadyClock::time_point last_warning{};
  SteadyClock::time_point last_accept_error{};
  uint64_t warned_evicted = 0;
  uint64_t warned_timed_out = 0;

  auto close_conn = [](Connection& c) {
    close(c.fd);
    c.fd = -1;
  };
  // Sends what the socket takes now; closes the connection once the answer is out.
  auto flush = [&](Connection& c) {
    while (c.sent < c.out.size()) {
      const ssize_t n =
          send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.sent += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        close_conn(c);  // the client went away
        return;
      }
    }
    ++answered_;
    close_conn(c);
  };
  // Reads what has arrived; answers once the request head is complete (or too large).
  auto receive = [&](Connection& c) {
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
        if (HeadEnd(c.in) != std::string::npos || c.in.size() > kMaxRequestHead) break;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        close_conn(c);  // closed or reset before a complete request: nothing to answer
        return;
      }
    }
    Respond(c);
    flush(c);
  };
  auto warn = [&](SteadyClock::time_point now) {
    const uint64_t ev = evicted_.load();
    const uint64_t to = timed_out_.load();
    if ((ev == warned_evicted && to == warned_timed_out) || now - last_warning < kWarnInterval) {
      return;
    }
    log_->warn(
        "metrics endpoint on port {}: closed {} connections unanswered to stay within {} "
        "connections and {} without a complete request within {} ms (or an unread answer); "
        "a client is holding connections open",
        port_, ev - warned_evicted, max_connections_, to - warned_timed_out,
        options_.request_timeout.count());
    last_warning = now;
    warned_evicted = ev;
    warned_timed_out = to;
  };

  for (;;) {
    auto now = SteadyClock::now();
    const bool accepting = now >= accept_paused_until;
    fds.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
    SteadyClock::time_point wake_at =
        accepting ? SteadyClock::time_point::max() : accept_paused_until;
    for (const Connection& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.writing ? POLLOUT : POLLIN), 0});
      wake_at = std::min(wake_at, c.deadline);
    }
    int timeout_ms = -1;
    if (wake_at != SteadyClock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60'000));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      log_->error("metrics endpoint stopped serving: poll: {}", std::strerror(errno));
      break;
    }
    if (fds[0].revents != 0) break;  // Stop

    now = SteadyClock::now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      if (fds[i + 2].revents != 0) {
        if (c.writing) {
          flush(c);
        } else {
          receive(c);
        }
      }
      if (c.fd >= 0 && now >= c.deadline) {
        ++timed_out_;
        close_conn(c);
      }
    }
    std::erase_if(conns, [](const Connection& c) { return c.fd < 0; });

    while (fds[1].revents != 0) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          // EMFILE, ENFILE, ENOBUFS, ENOMEM: out of descriptors or memory, which some other part
          // of the process holds, since this one stays below its cap.
          if (now - last_accept_error >= kWarnInterval) {
            log_->error("metrics endpoint: accept: {}; pausing {} ms between attempts",
                        std::strerror(errno), kAcceptPause.count());
            last_accept_error = now;
          }
          accept_paused_until = now + kAcceptPause;
        }
        break;
      }
      ++accepted_;
      // At the cap the oldest connection makes room: a client that sends its request with the
      // connection (as every HTTP client does) is answered just below, before anyone can evict
      // it, so only connections that hold a slot without asking anything lose it.
      if (conns.size() >= max_connections_) {
        ++evicted_;
        close_conn(conns.front());
        conns.erase(conns.begin());
      }
      Connection& c = conns.emplace_back();
      c.fd = fd;
      c.deadline = now + options_.request_timeout;
      receive(c);
      if (c.fd < 0) conns.pop_back();
    }
    warn(now);
  }
  for (Connection& c : conns) close_conn(c);
}

}  // namespace sluice::gateway
