#include "server/connection_stream.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "joining_thread.h"

namespace hubcache {
namespace {

using namespace std::chrono_literals;

// A connected pair: `server` (non-blocking) goes into a ConnectionStream, the
// test speaks through `client`.
// A temporary file holding `content`, already unlinked: gone when closed.
UniqueFd UnlinkedFileWith(const std::string& content) {
  char path[] = "/tmp/hubcache-sendfile-XXXXXX";
  UniqueFd file(::mkstemp(path));
  REQUIRE(file.get() >= 0);
  ::unlink(path);
  REQUIRE(::write(file.get(), content.data(), content.size()) ==
          static_cast<ssize_t>(content.size()));
  return file;
}

struct SocketPair {
  UniqueFd server;
  UniqueFd client;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    server = UniqueFd(fds[0]);
    client = UniqueFd(fds[1]);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  }
  void Send(const std::string& bytes) const {
    REQUIRE(::send(client.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(bytes.size()));
  }
  // What the server wrote so far (waits briefly for the first byte).
  std::string Received() const {
    std::string out;
    char buffer[4096];
    ::fcntl(client.get(), F_SETFL, ::fcntl(client.get(), F_GETFL) | O_NONBLOCK);
    for (int i = 0; i < 200; ++i) {
      ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        out.append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (!out.empty()) break;
      std::this_thread::sleep_for(5ms);
    }
    return out;
  }
};

// Reads the stream as the exchange does (Peek, then Consume) until `limit`
// bytes, EOF, an error or a timeout; returns what it got.
std::string ReadAll(ConnectionStream& stream, size_t limit = 1 << 20) {
  std::string got;
  while (got.size() < limit) {
    std::string_view in = stream.Peek();
    if (in.empty()) break;
    size_t n = std::min(in.size(), limit - got.size());
    got.append(in.substr(0, n));
    stream.Consume(n);
  }
  return got;
}

std::string StatusLine(const std::string& response) {
  return response.substr(0, response.find("\r\n"));
}

TEST_CASE("ConnectionStream: bytes pass through Peek and Consume unchanged") {
  SocketPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  ConnectionStream stream(pair.server.get(), nullptr, "10.0.0.1", 1234, limits, stats);
  std::string head = "GET /v2/ HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
  pair.Send(head + "body");
  stream.BeginRequest();
  ::shutdown(pair.client.get(), SHUT_WR);
  CHECK(ReadAll(stream) == head + "body");
  CHECK_FALSE(stream.rejected());
  std::string ip;
  int port = 0;
  stream.get_remote_ip_and_port(ip, port);
  CHECK(ip == "10.0.0.1");
  CHECK(port == 1234);
}

TEST_CASE("ConnectionStream: a head trickling in slower than the header timeout gets 408") {
  SocketPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  limits.header_timeout = 300ms;
  ConnectionStream stream(pair.server.get(), nullptr, "10.0.0.1", 1, limits, stats);
  pair.Send("GET /v2/ HTTP/1.1\r\nHo");
  stream.BeginRequest();
  auto start = std::chrono::steady_clock::now();
  JoiningThread trickle([&] {
    for (int i = 0; i < 10; ++i) {  // one byte per 100 ms: alive, never done
      std::this_thread::sleep_for(100ms);
      if (::send(pair.client.get(), "s", 1, MSG_NOSIGNAL) != 1) break;
    }
  });
  ReadAll(stream);
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(stream.rejected());
  CHECK(stats.rejected_header_timeout.load() == 1);
  CHECK(took >= 250ms);
  CHECK(took < 900ms);
  CHECK(StatusLine(pair.Received()) == "HTTP/1.1 408 Request Timeout");
  trickle.join();
}

TEST_CASE(
    "ConnectionStream: after a response, a buffered request goes on, none parks, draining ends") {
  SocketPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  ConnectionStream stream(pair.server.get(), nullptr, "10.0.0.1", 1, limits, stats);
  std::atomic<bool> draining{false};
  // Nothing read yet: park (the socket tells when the client sends).
  CHECK(stream.AfterResponse(draining) == ConnectionStream::Next::kIdle);

  // Two pipelined requests arrive in one read; the second stays buffered.
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  pair.Send(first + second);
  stream.BeginRequest();
  std::string got;
  while (got.size() < first.size() + second.size()) {
    std::string_view in = stream.Peek();
    REQUIRE_FALSE(in.empty());
    got.append(in);
    stream.Consume(in.size());
  }
  CHECK(stream.AfterResponse(draining) == ConnectionStream::Next::kIdle);  // all consumed
  pair.Send(first + second);
  stream.BeginRequest();
  REQUIRE(stream.Peek().size() == first.size() + second.size());  // one read
  stream.Consume(first.size());
  CHECK(stream.AfterResponse(draining) == ConnectionStream::Next::kRequest);

  draining = true;
  stream.Consume(second.size());
  CHECK(stream.AfterResponse(draining) == ConnectionStream::Next::kGone);
}

TEST_CASE("ConnectionStream: SendFile sends file bytes after what was gathered, in order") {
  SocketPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  ConnectionStream stream(pair.server.get(), nullptr, "10.0.0.1", 1, limits, stats);
  UniqueFd file = UnlinkedFileWith("0123456789abcdef");
  REQUIRE(stream.can_send_file());
  CHECK(stream.write("head:", 5) == 5);  // gathered, sent before the file's bytes
  REQUIRE(stream.SendFile(file.get(), 4, 8));
  CHECK(stream.write("tail", 4) == 4);
  CHECK(stream.Flush());
  CHECK(pair.Received() == "head:456789abtail");
  // Past the end of the file: fewer bytes than asked is a failure.
  CHECK_FALSE(stream.SendFile(file.get(), 10, 8));
}

// A connected loopback TCP pair (the server end non-blocking, as the server's
// sockets are): TCP options such as TCP_CORK do nothing on a socketpair.
struct TcpPair {
  UniqueFd server;
  UniqueFd client;
  TcpPair() {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(listener.get() >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    auto* a = reinterpret_cast<sockaddr*>(&address);
    REQUIRE(::bind(listener.get(), a, length) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);
    REQUIRE(::getsockname(listener.get(), a, &length) == 0);
    client = UniqueFd(::socket(AF_INET, SOCK_STREAM, 0));
    REQUIRE(::connect(client.get(), a, length) == 0);
    server = UniqueFd(::accept(listener.get(), nullptr, nullptr));
    REQUIRE(server.get() >= 0);
    ::fcntl(server.get(), F_SETFL, ::fcntl(server.get(), F_GETFL) | O_NONBLOCK);
  }
};

int CorkOption(int fd) {
  int corked = -1;
  socklen_t size = sizeof(corked);
  REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_CORK, &corked, &size) == 0);
  return corked;
}

TEST_CASE(
    "ConnectionStream: a file body sent in calls under one Cork goes out whole, uncorked after") {
  TcpPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  ConnectionStream stream(pair.server.get(), nullptr, "127.0.0.1", 1, limits, stats);
  std::string content;
  for (size_t i = 0; content.size() < (3u << 20) + 17; ++i) content += std::to_string(i) + ",";
  UniqueFd file = UnlinkedFileWith(content);
  // The reader gives up after 5 s without a byte, so a failure cannot hang the test.
  timeval five_seconds{5, 0};
  ::setsockopt(pair.client.get(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof(five_seconds));
  std::string got;
  JoiningThread reader([&] {
    char buffer[65536];
    while (got.size() < 5 + content.size()) {
      ssize_t n = ::recv(pair.client.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      got.append(buffer, static_cast<size_t>(n));
    }
  });
  CHECK(stream.write("head:", 5) == 5);
  bool sent = true;
  int corked_within = -1;
  {
    ConnectionStream::Cork cork(stream, true);
    corked_within = CorkOption(pair.server.get());
    // Three calls, the last one short (17 bytes): nothing is held back at the end.
    for (size_t at = 0; at < content.size() && sent; at += 1u << 20) {
      sent = stream.SendFile(file.get(), static_cast<off_t>(at),
                             std::min<size_t>(1u << 20, content.size() - at));
    }
  }
  CHECK(corked_within == 1);
  CHECK(CorkOption(pair.server.get()) == 0);  // uncorked: the last partial segment goes out
  {
    ConnectionStream::Cork off(stream, false);
    CHECK(CorkOption(pair.server.get()) == 0);
  }
  reader.join();
  REQUIRE(sent);
  REQUIRE(got.size() == 5 + content.size());
  CHECK((got == "head:" + content));  // (not printed: 3 MiB)
}

TEST_CASE("ConnectionStream: small writes are gathered until a flush or a wait for the client") {
  SocketPair pair;
  ConnectionCounters stats;
  ConnectionLimits limits;
  ConnectionStream stream(pair.server.get(), nullptr, "10.0.0.1", 1, limits, stats);
  CHECK(stream.write("HTTP/1.1 200 OK\r\n\r\n", 19) == 19);
  CHECK(stream.write("{}", 2) == 2);
  char probe;
  CHECK(::recv(pair.client.get(), &probe, 1, MSG_DONTWAIT) == -1);  // nothing sent yet
  std::atomic<bool> draining{false};
  CHECK(stream.AfterResponse(draining) == ConnectionStream::Next::kIdle);  // flushes first
  CHECK(pair.Received() == "HTTP/1.1 200 OK\r\n\r\n{}");

  // A write too big to gather goes out at once, after what was gathered.
  std::string big(100'000, 'z');
  CHECK(stream.write("head", 4) == 4);
  // Received() left the client's end non-blocking: the reader would give up
  // at the first read that comes before the bytes (seen under TSan).
  ::fcntl(pair.client.get(), F_SETFL, ::fcntl(pair.client.get(), F_GETFL) & ~O_NONBLOCK);
  JoiningThread reader(
      [&] {
        std::string got;
        char buffer[65536];
        while (got.size() < 4 + big.size()) {
          ssize_t n = ::recv(pair.client.get(), buffer, sizeof(buffer), 0);
          if (n <= 0) break;
          got.append(buffer, static_cast<size_t>(n));
        }
        CHECK(got == "head" + big);
      },
      [&] { ::shutdown(pair.client.get(), SHUT_RDWR); });
  CHECK(stream.write(big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  reader.join();
}

}  // namespace
}  // namespace hubcache
