#include "gateway/metrics_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace sluice::gateway {

namespace {

constexpr size_t kWorkerThreads = 2;
constexpr auto kStartTimeout = std::chrono::seconds(5);

std::string Endpoint(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

void Answer(const MetricsServer::Check& check, httplib::Response& res) {
  const Status s = check();
  if (s.ok()) {
    res.status = 200;
    res.set_content("ok\n", "text/plain; charset=utf-8");
  } else {
    res.status = 503;
    res.set_content(s.message() + "\n", "text/plain; charset=utf-8");
  }
}

}  // namespace

MetricsServer::MetricsServer(MetricsServerOptions options, const MetricsRegistry* registry,
                             Check health, Check ready, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)),
      registry_(registry),
      health_(std::move(health)),
      ready_(std::move(ready)),
      log_(std::move(logger)),
      server_(std::make_unique<httplib::Server>()) {}

MetricsServer::~MetricsServer() {
  Stop();
}

Status MetricsServer::Listen() {
  // cpp-httplib's default sets SO_REUSEPORT, under which a second process could bind the same
  // port and take half the scrapes; SO_REUSEADDR only allows a restart over TIME_WAIT.
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // A scrape is small and rare: two workers are plenty, instead of one per core.
  server_->new_task_queue = [] {
    return new httplib::ThreadPool(kWorkerThreads);  // owned by the server, per its API
  };
  server_->set_read_timeout(std::chrono::seconds(5));
  server_->set_write_timeout(std::chrono::seconds(5));
  server_->set_payload_max_length(64 * 1024);
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_->ExpositionText(), MetricsRegistry::kContentType);
  });
  server_->Get("/healthz",
               [this](const httplib::Request&, httplib::Response& res) { Answer(health_, res); });
  server_->Get("/readyz",
               [this](const httplib::Request&, httplib::Response& res) { Answer(ready_, res); });
  server_->set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
          // Not an std::exception: reported as unknown.
        }
        log_->error("metrics endpoint: {} failed: {}", req.path, what);
        res.status = 500;
        res.set_content("internal error\n", "text/plain; charset=utf-8");
      });

  errno = 0;
  if (options_.port == 0) {
    const int port = server_->bind_to_any_port(options_.address);
    if (port > 0) port_ = static_cast<uint16_t>(port);
  } else if (server_->bind_to_port(options_.address, options_.port)) {
    port_ = options_.port;
  }
  if (port_ == 0) {
    const int err = errno;
    return Status::Unavailable("metrics.listen: cannot listen on " +
                               Endpoint(options_.address, options_.port) + ": " +
                               (err != 0 ? std::strerror(err) : "bind failed") +
                               (err == EADDRINUSE ? " (another process holds the port; choose "
                                                    "another metrics.listen or port 0)"
                                                  : ""));
  }
  return Status::Ok();
}

void MetricsServer::Start() {
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) log_->error("metrics endpoint stopped serving");
    loop_exited_ = true;
  });
  // Stop() is a no-op for a server whose loop has not begun yet, which would leave the thread
  // running; so return only once the loop runs.
  const auto deadline = std::chrono::steady_clock::now() + kStartTimeout;
  while (!server_->is_running() && !loop_exited_.load() &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log_->info("serving /metrics, /healthz and /readyz on http://{}",
             Endpoint(options_.address, port_));
}

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
}

}  // namespace sluice::gateway
