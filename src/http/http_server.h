#pragma once
// The HTTP front: the listening socket (server/listener.h), the TLS context,
// the connection handling (server/connection_server.h: connection limits, slowloris,
// idle keep-alive connections parked without a thread), every request read by
// the one strict parser (server/exchange.h) and routed to the observability,
// admin and registry handlers. Thread-safe as documented per method.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <openssl/ssl.h>
#include "cache/mirror.h"
#include "common/result.h"

#include "server/connection_counters.h"
#include "server/connection_stream.h"
#include "server/listener.h"

namespace hubcache {

class AdminHandlers;
class ClientAuth;
class ConnectionServer;
class ObservabilityHandlers;
class TlsContext;

struct HttpOptions {
  std::string addr = ":5000";        // host:port; empty host = all interfaces
  ConnectionLimits limits;           // connections, timeouts, request heads
  std::shared_ptr<TlsContext> tls;   // null = plain HTTP
  std::shared_ptr<ClientAuth> auth;  // never null
  // Fields added to every routed response, one line per pair, in this order
  // (REGISTRY_HTTP_HEADERS_*); names and values validated by config.
  std::vector<std::pair<std::string, std::string>> response_headers;
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
  class Router;

  Mirror& mirror_;
  ConnectionCounters connection_counters_;  // before what borrows it
  std::shared_ptr<ObservabilityHandlers> observability_;
  std::shared_ptr<AdminHandlers> admin_;
  HttpOptions options_;
  struct SslCtxFree {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
  };
  std::unique_ptr<SSL_CTX, SslCtxFree> tls_;  // null: plain HTTP; used by connections_
  std::unique_ptr<ConnectionServer> connections_;
  std::unique_ptr<Router> router_;  // borrowed by connections_
  Listener listener_;
  int port_ = 0;
};

}  // namespace hubcache
