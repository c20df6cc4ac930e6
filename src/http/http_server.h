#pragma once
// The HTTP front: a cpp-httplib server with a worker pool sized for hundreds of
// concurrent connections, idle keep-alive connections bounded by a timeout, and
// the registry handlers behind one catch-all route. The only place (with the
// handlers) that includes httplib.h.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include <functional>

#include "cache/mirror.h"
#include "common/result.h"

namespace httplib {
class Server;
}

namespace hubcache {

class AdminHandlers;
class ClientAuth;
class ObservabilityHandlers;
class TlsContext;

struct HttpOptions {
  std::string addr = ":5000";  // host:port; empty host = all interfaces
  int workers = 1024;          // most connections served at once (http/worker_pool.h)
  std::chrono::milliseconds keepalive_timeout{10'000};
  std::shared_ptr<TlsContext> tls;   // null = plain HTTP
  std::shared_ptr<ClientAuth> auth;  // never null
};

class HttpServer {
 public:
  HttpServer(Mirror& mirror, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Opens the access log and binds the listening socket; fails when the log
  // cannot be opened or the address is taken or invalid.
  [[nodiscard]] Status Bind();
  int port() const { return port_; }
  // Serves until Stop() or StopAccepting() is called (from any thread).
  void Run();
  // Graceful: no new connections; Run() returns once open ones are done.
  void StopAccepting();
  // Immediate: also cuts transfers in flight.
  void Stop();
  // A top-level section of /stats from outside the HTTP layer (e.g.
  // "prewarm"), filled by `provider` on each request. Call before Run().
  void AddStatsSection(std::string key, std::function<nlohmann::json()> provider);

 private:
  Mirror& mirror_;
  std::shared_ptr<ObservabilityHandlers> observability_;
  std::shared_ptr<AdminHandlers> admin_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::function<void()> raise_backlog_;   // reach the listening socket, which
  std::function<void()> stop_accepting_;  // only a subclass of httplib's can
  int port_ = 0;
};

}  // namespace hubcache
