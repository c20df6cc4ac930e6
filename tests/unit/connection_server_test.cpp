#include "server/connection_server.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
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

TEST_CASE(
    "ConnectionServer: clients arriving one after another do not get a lingering thread each") {
  // 40 clients, one after another, each connects, sends a request and reads
  // its answer (a fleet of daemons connecting). A worker lingers 5 ms for its client's
  // next request only while few workers serve; past that limit it parks the
  // connection at once and is free for the next client. Without the limit,
  // each client that comes while the earlier ones' workers linger gets a new
  // thread: one per client here (38-40 of 40; with the limit 4-5, at most 11
  // on a loaded machine).
  ConnectionLimits limits;
  limits.keepalive_timeout = 10s;
  limits.max_lingering_workers = 2;
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

}  // namespace
}  // namespace hubcache
