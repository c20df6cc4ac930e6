#pragma once
// Serves accepted client connections in place of cpp-httplib's own loop (which
// offers no limit on connections and only a per-read timeout): admission
// against the total and per-client connection limits, the TLS handshake, and
// the keep-alive loop over a ConnectionStream, whose head limits stop slow or
// oversized requests. Each request is served by ServeExchange (server/exchange.h)
// with the router set once.
// A connection over a limit is answered (plain HTTP; a TLS one is closed) and
// counted. Between requests a connection with no request buffered is parked
// in IdleConnections, holding no worker thread, and served by one of the
// workers waiting there when its client sends again. Thread-safe.

#include <openssl/ssl.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "server/connection_counters.h"
#include "server/connection_stream.h"
#include "server/exchange.h"
#include "server/idle_connections.h"
#include "server/worker_pool.h"

namespace hubcache {

class ConnectionServer;

// One admitted client connection. Destroying it closes it (a lingering close
// after a refusal, a TLS close_notify after a clean end) and gives its
// admission back.
struct Connection {
  Connection(ConnectionServer& server, int fd, SSL* ssl, std::string ip, int port,
             const ConnectionLimits& limits, ConnectionCounters& counters);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ConnectionServer& server;
  const int fd;
  SSL* const ssl;  // null: plain HTTP
  const std::string ip;
  ConnectionStream stream;
  int requests_left;
  bool clean = false;  // ended between requests, nothing pending: close_notify
};

class ConnectionServer {
 public:
  ConnectionServer(ConnectionLimits limits, ConnectionCounters& counters);
  ~ConnectionServer();  // Shutdown()

  // Who answers requests (borrowed, outlives this); set once, before any
  // connection is served.
  void SetRouter(RequestRouter* router) { router_ = router; }

  // The workers that serve connections (the listener queues new ones here too).
  WorkerPool& workers() { return *workers_; }

  // Serves `fd` (accepted, owned from here on); `tls` null means plain HTTP.
  void Serve(int fd, SSL_CTX* tls);

  // Graceful stop: parked connections close, the others after their current
  // request (responses say Connection: close).
  void Drain();
  // Drain() and waits for every connection being served to end.
  void Shutdown();

  size_t idle_connections() { return idle_.size(); }
  // Workers taking parked connections as their clients send (waiting or
  // serving one).
  size_t connection_workers() { return idle_.workers(); }

 private:
  friend struct Connection;
  enum class Admission { kAdmitted, kOverTotal, kOverClient };
  Admission Admit(const std::string& ip);
  void Release(const std::string& ip);
  // Serves requests while they come, then parks the connection or ends it.
  // `readable`: the client sent something (a parked connection taken).
  void Continue(std::shared_ptr<Connection> connection, bool readable);

  const ConnectionLimits limits_;
  ConnectionCounters& counters_;
  RequestRouter* router_ = nullptr;
  std::atomic<bool> draining_{false};
  std::mutex mutex_;
  int open_ = 0;                       // guarded by mutex_
  std::map<std::string, int> per_ip_;  // open connections by address; guarded
  std::unique_ptr<WorkerPool> workers_;
  // After workers_, whose jobs its waiters are: Shutdown() closes it and
  // joins them before either goes.
  IdleConnections idle_;
};

}  // namespace hubcache
