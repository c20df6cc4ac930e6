#pragma once
// The HTTP front: a cpp-httplib server with a worker pool sized for hundreds of
// concurrent connections, idle keep-alive connections bounded by a timeout, and
// the registry handlers behind one catch-all route. The only place (with the
// handlers) that includes httplib.h.

#include <chrono>
#include <memory>
#include <string>

#include "cache/mirror.h"
#include "common/result.h"

namespace hubcache {

struct HttpOptions {
  std::string addr = ":5000";  // host:port; empty host = all interfaces
  int workers = 256;
  std::chrono::milliseconds keepalive_timeout{10'000};
};

class HttpServer {
 public:
  HttpServer(Mirror& mirror, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; fails when the address is taken or invalid.
  [[nodiscard]] Status Bind();
  int port() const { return port_; }
  // Serves until Stop() is called (from any thread, e.g. a signal watcher).
  void Run();
  void Stop();

 private:
  class Server;
  Mirror& mirror_;
  HttpOptions options_;
  std::unique_ptr<Server> server_;
  int port_ = 0;
};

}  // namespace hubcache
