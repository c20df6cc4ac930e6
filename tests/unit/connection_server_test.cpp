#include "server/connection_server.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "wait_for.h"

namespace hubcache {
namespace {

using namespace std::chrono_literals;

// Reads from `fd` until `want` bytes arrived, EOF, or 5 s passed.
std::string ReadSome(int fd, size_t want) {
  std::string got;
  char buffer[256];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  while (got.size() < want) {
    ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    got.append(buffer, static_cast<size_t>(n));
  }
  return got;
}

// Answers every request "ok".
struct OkRouter : RequestRouter {
  Admission Admit(RequestContext&, httplib::Request&, HttpResponse&) override { return {}; }
  void Handle(httplib::Request&, HttpResponse& res, RequestBody&) override {
    res.set_content("ok", "text/plain");
  }
  void Finish(const RequestContext&, const httplib::Request&, const HttpResponse&) override {}
};

const std::string kRequest = "GET / HTTP/1.1\r\nHost: m\r\n\r\n";
const std::string kOk =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

struct LineServer {
  ConnectionCounters stats;
  OkRouter router;
  ConnectionServer server;
  explicit LineServer(ConnectionLimits limits) : server(limits, stats) {
    server.SetRouter(&router);
  }
  // The client's end of a new connection being served.
  int Connect() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    server.Serve(fds[0], nullptr);  // returns once the connection is parked
    return fds[1];
  }
};

TEST_CASE("ConnectionServer: a quiet connection waits parked, holding no worker") {
  ConnectionLimits limits;
  limits.keepalive_timeout = 10s;
  LineServer s(limits);
  int client = s.Connect();
  CHECK(s.server.idle_connections() == 1);
  CHECK(s.stats.connections_open == 1);

  // Its next request is served by a worker, then it parks again.
  REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
          static_cast<ssize_t>(kRequest.size()));
  CHECK(testing::WithoutDate(ReadSome(client, kOk.size() + testing::kDateLineBytes)) == kOk);
  CHECK(WaitFor([&] { return s.server.idle_connections() == 1; }));
  REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
          static_cast<ssize_t>(kRequest.size()));
  CHECK(testing::WithoutDate(ReadSome(client, kOk.size() + testing::kDateLineBytes)) == kOk);

  // The client closing ends it and gives its admission back.
  ::close(client);
  CHECK(WaitFor([&] { return s.stats.connections_open == 0; }));
  CHECK(s.server.idle_connections() == 0);
}

TEST_CASE("ConnectionServer: clients arriving one after another do not get a thread each") {
  // 40 clients, one after another, each connects, sends a request and reads
  // its answer (a fleet of daemons connecting). A served connection is parked
  // at once, so its worker is free for the next client; when workers waited
  // a few ms for their client's next request, each client that came meanwhile
  // got a new thread (38-40 of 40; now 4-5, at most 11 on a loaded machine).
  ConnectionLimits limits;
  limits.keepalive_timeout = 10s;
  LineServer s(limits);
  constexpr int kClients = 40;
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) {
    // Served from a worker, as the listener does.
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    s.server.workers().enqueue([&s, fd = fds[0]] { s.server.Serve(fd, nullptr); });
    const int fd = fds[1];
    clients.push_back(fd);
    REQUIRE(::send(fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(kRequest.size()));
    CHECK(testing::WithoutDate(ReadSome(fd, kOk.size() + testing::kDateLineBytes)) == kOk);
  }
  const size_t threads = s.server.workers().threads();
  CAPTURE(threads);
  CHECK(threads <= kClients / 2);
  CHECK(WaitFor([&] { return s.server.idle_connections() == kClients; }));  // all parked
  for (int fd : clients) ::close(fd);
  CHECK(WaitFor([&] { return s.stats.connections_open == 0; }));
}

TEST_CASE("ConnectionServer: a parked connection closes when idle too long, or on drain") {
  ConnectionLimits limits;
  limits.keepalive_timeout = 300ms;
  LineServer s(limits);
  int first = s.Connect();
  auto start = std::chrono::steady_clock::now();
  CHECK(ReadSome(first, 1).empty());  // EOF: closed by the server
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  ::close(first);

  limits.keepalive_timeout = 30s;
  LineServer t(limits);
  int second = t.Connect();
  CHECK(t.server.idle_connections() == 1);
  t.server.Drain();
  CHECK(ReadSome(second, 1).empty());
  CHECK(t.stats.connections_open == 0);
  ::close(second);
}

TEST_CASE("ConnectionServer: admission counts per client and in total") {
  ConnectionLimits limits;
  limits.max_connections = 2;
  LineServer s(limits);
  int a = s.Connect();
  int b = s.Connect();
  int c = s.Connect();  // over the total: answered 503 and closed
  std::string answer = ReadSome(c, 1000);
  CHECK(answer.rfind("HTTP/1.1 503 Service Unavailable", 0) == 0);
  CHECK(answer.find("UNAVAILABLE") != std::string::npos);
  CHECK(s.stats.rejected_connections == 1);
  CHECK(s.stats.connections_open == 2);
  for (int fd : {a, b, c}) ::close(fd);
  CHECK(WaitFor([&] { return s.stats.connections_open == 0; }));
}

// Answers "ok", but holds a request for /block until Release().
struct BlockingRouter : OkRouter {
  std::mutex mutex;
  std::condition_variable released_cv;
  bool released = false;
  std::atomic<int> blocked{0};
  void Handle(httplib::Request& req, HttpResponse& res, RequestBody& body) override {
    if (req.path == "/block") {
      ++blocked;
      std::unique_lock lock(mutex);
      released_cv.wait(lock, [&] { return released; });
    }
    OkRouter::Handle(req, res, body);
  }
  void Release() {
    {
      std::lock_guard lock(mutex);
      released = true;
    }
    released_cv.notify_all();
  }
};

TEST_CASE("ConnectionServer: while every worker blocks in a handler, another client is served") {
  // A fill or a slow client holds the worker serving it; the workers that
  // take parked connections are few (one per core), so when all of them
  // block, one more must start for a client that sends meanwhile.
  ConnectionCounters stats;
  BlockingRouter router;
  ConnectionLimits limits;
  limits.keepalive_timeout = 10s;
  ConnectionServer server(limits, stats);
  server.SetRouter(&router);
  auto connect = [&] {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    server.Serve(fds[0], nullptr);
    return fds[1];
  };
  const size_t workers = server.connection_workers();
  CAPTURE(workers);
  REQUIRE(workers >= 1);
  const std::string block = "GET /block HTTP/1.1\r\nHost: m\r\n\r\n";
  std::vector<int> blockers;
  for (size_t i = 0; i < workers; ++i) {
    int fd = connect();
    blockers.push_back(fd);
    REQUIRE(::send(fd, block.data(), block.size(), 0) == static_cast<ssize_t>(block.size()));
  }
  REQUIRE(WaitFor([&] { return router.blocked == static_cast<int>(workers); }));

  int client = connect();
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(::send(client, kRequest.data(), kRequest.size(), 0) ==
          static_cast<ssize_t>(kRequest.size()));
  CHECK(testing::WithoutDate(ReadSome(client, kOk.size() + testing::kDateLineBytes)) == kOk);
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(server.connection_workers() > workers);

  // Once the handlers return, the extra workers leave.
  router.Release();
  for (int fd : blockers) {
    CHECK(testing::WithoutDate(ReadSome(fd, kOk.size() + testing::kDateLineBytes)) == kOk);
  }
  CHECK(WaitFor([&] { return server.connection_workers() == workers; }));
  for (int fd : blockers) ::close(fd);
  ::close(client);
  CHECK(WaitFor([&] { return stats.connections_open == 0; }));
}

TEST_CASE("ConnectionServer: many busy clients are served by a few workers, not a thread each") {
  // 32 clients, each sending requests back to back for a while. The workers
  // go from one ready connection to the next; with a thread per connection
  // (the design before) this took 32 or more, and on two cores their turns
  // delayed requests by up to 100 ms.
  ConnectionLimits limits;
  limits.keepalive_timeout = 10s;
  LineServer s(limits);
  constexpr int kClients = 32;
  constexpr int kRequests = 100;
  std::vector<int> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(s.Connect());
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int fd : clients) {
    threads.emplace_back([fd, &answered] {
      for (int i = 0; i < kRequests; ++i) {
        if (::send(fd, kRequest.data(), kRequest.size(), MSG_NOSIGNAL) !=
            static_cast<ssize_t>(kRequest.size())) {
          return;
        }
        if (testing::WithoutDate(ReadSome(fd, kOk.size() + testing::kDateLineBytes)) != kOk) {
          return;
        }
        ++answered;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(answered == kClients * kRequests);
  const size_t threads_used = s.server.workers().threads();
  CAPTURE(threads_used);
  CHECK(threads_used <= kClients / 2);
  for (int fd : clients) ::close(fd);
  CHECK(WaitFor([&] { return s.stats.connections_open == 0; }));
}

}  // namespace
}  // namespace hubcache
