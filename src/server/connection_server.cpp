#include "server/connection_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/log.h"

namespace hubcache {
namespace {

// Half-closes, then reads and drops what the client still sends (a body the
// answer refused, up to kLingerBytes within kLingerTime) before closing:
// closing with unread bytes would reset the connection, and a reset can
// destroy the answer before the client, still sending, has read it.
constexpr auto kLingerTime = std::chrono::milliseconds(1'000);
constexpr size_t kLingerBytes = 16 << 20;

void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  const auto deadline = std::chrono::steady_clock::now() + kLingerTime;
  char sink[64 * 1024];
  for (size_t drained = 0; drained < kLingerBytes;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, sink, sizeof(sink), 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(fd);
}

// The answer to a connection over a limit, sent without waiting: it fits in
// any socket buffer.
void Refuse(int fd, int status, const char* code, const char* message) {
  std::string response = ErrorResponse(status, code, message);
  (void)::send(fd, response.data(), response.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

Connection::Connection(ConnectionServer& server, int fd, SSL* ssl, std::string ip, int port,
                       const ConnectionLimits& limits, ConnectionCounters& counters)
    : server(server),
      fd(fd),
      ssl(ssl),
      ip(ip),
      stream(fd, ssl, std::move(ip), port, limits, counters),
      requests_left(limits.max_requests_per_connection) {}

Connection::~Connection() {
  if (ssl) {
    if (clean) SSL_shutdown(ssl);  // one try: a close_notify, not waiting for the peer's
    SSL_free(ssl);
  }
  if (stream.rejected() || stream.close_after_response()) {
    LingeringClose(fd);
  } else {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
  server.Release(ip);
}

ConnectionServer::ConnectionServer(ConnectionLimits limits, ConnectionCounters& counters)
    : limits_(limits),
      counters_(counters),
      // A worker per connection being served, and some beyond the limit so
      // that connections over it are refused at once rather than queued.
      workers_(std::make_unique<WorkerPool>(
          WorkerPoolOptions{static_cast<size_t>(limits.max_connections) + 64})),
      idle_(
          [this](std::shared_ptr<Connection> connection) { Continue(std::move(connection), true); },
          [this](std::function<void()> job) { workers_->enqueue(std::move(job)); },
          [](Connection& connection) { connection.stream.ReleaseBuffers(); },
          // One per core, as nginx has a worker process per core: more only
          // take turns on the cores, and a request waits for its worker's
          // turn (3 on 2 cores: p99 1.7 ms, max 10-58 ms; 2: 1.4 ms, 5-9 ms).
          std::max(2u, std::thread::hardware_concurrency())) {}

ConnectionServer::~ConnectionServer() { Shutdown(); }

void ConnectionServer::Drain() {
  draining_ = true;
  idle_.Close();
}

void ConnectionServer::Shutdown() {
  Drain();
  workers_->shutdown();
}

ConnectionServer::Admission ConnectionServer::Admit(const std::string& ip) {
  std::lock_guard lock(mutex_);
  if (open_ >= limits_.max_connections) return Admission::kOverTotal;
  int& mine = per_ip_[ip];
  if (mine >= limits_.max_connections_per_client) return Admission::kOverClient;
  ++mine;
  ++open_;
  ++counters_.connections_open;
  return Admission::kAdmitted;
}

void ConnectionServer::Release(const std::string& ip) {
  std::lock_guard lock(mutex_);
  --open_;
  --counters_.connections_open;
  auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && --it->second <= 0) per_ip_.erase(it);
}

void ConnectionServer::Serve(int fd, SSL_CTX* tls) {
  std::string ip;
  int port = 0;
  SocketAddress(fd, true, ip, port);
  switch (Admit(ip)) {
    case Admission::kAdmitted:
      break;
    case Admission::kOverTotal:
      ++counters_.rejected_connections;
      Logger("http")->debug("{}: refused, {} connections open (--max-connections)", ip,
                            limits_.max_connections);
      if (!tls) {
        Refuse(fd, 503, "UNAVAILABLE", "too many connections to this mirror; try again shortly");
      }
      LingeringClose(fd);
      return;
    case Admission::kOverClient:
      ++counters_.rejected_connections_per_client;
      Logger("http")->debug("{}: refused, {} connections open from it", ip,
                            limits_.max_connections_per_client);
      if (!tls) {
        Refuse(fd, 429, "TOOMANYREQUESTS", "too many connections from this address");
      }
      LingeringClose(fd);
      return;
  }

  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  SSL* ssl = nullptr;
  if (tls) {
    ssl = SSL_new(tls);
    if (!ssl) {
      ::close(fd);
      Release(ip);
      return;
    }
    // Idle connections give their TLS record buffers back.
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_set_fd(ssl, fd);
    SSL_set_accept_state(ssl);
  }
  auto connection = std::make_shared<Connection>(*this, fd, ssl, ip, port, limits_, counters_);
  if (ssl && !connection->stream.Handshake()) return;
  Continue(std::move(connection), false);
}

void ConnectionServer::Continue(std::shared_ptr<Connection> connection, bool readable) {
  // A connection with no request buffered is parked at once, a new one too:
  // its next request is taken by a waiting worker (IdleConnections), which
  // then goes on to the next ready connection, and no worker sleeps on one
  // client.
  ConnectionStream& stream = connection->stream;
  while (connection->requests_left > 0) {
    if (!readable) {
      auto next = stream.AfterResponse(draining_);
      if (next == ConnectionStream::Next::kGone) break;
      if (next == ConnectionStream::Next::kIdle) {
        connection->clean = true;
        int fd = connection->fd;
        idle_.Park(std::move(connection), fd, limits_.keepalive_timeout);
        return;
      }
    }
    readable = false;
    stream.BeginRequest();
    ExchangeEnd end =
        ServeExchange(stream, limits_, connection->ssl,
                      connection->requests_left == 1 || draining_.load(), *router_, counters_);
    if (end != ExchangeEnd::kKeepAlive) {
      // What was written goes out even after a failure (a response cut short
      // still shows its status and headers).
      bool flushed = !stream.rejected() && stream.Flush();
      connection->clean = end == ExchangeEnd::kClose && flushed;
      return;
    }
    --connection->requests_left;
  }
  connection->clean = !stream.rejected() && stream.Flush();
}

}  // namespace hubcache
