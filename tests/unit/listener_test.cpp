#include "server/listener.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "joining_thread.h"
#include "wait_for.h"

namespace hubcache {
namespace {

using namespace std::chrono_literals;

// A client connection to 127.0.0.1:port (or ::1), -1 when refused.
UniqueFd Connect(int port, bool v6 = false) {
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (v6) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(static_cast<uint16_t>(port));
    addr.sin6_addr = in6addr_loopback;
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  }
  return fd;
}

TEST_CASE("Listener: port 0 takes a free port; each accepted connection reaches the callback") {
  Listener listener;
  REQUIRE(listener.Bind("127.0.0.1", 0));
  REQUIRE(listener.port() > 0);
  std::atomic<int> accepted{0};
  std::vector<int> fds;
  JoiningThread runner(
      [&] {
        listener.Run([&](int fd) {
          fds.push_back(fd);  // only the accepting thread touches it until join
          ++accepted;
        });
      },
      [&] { listener.StopAccepting(); });
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect(listener.port()));
    REQUIRE(clients.back().valid());
  }
  CHECK(WaitFor([&] { return accepted.load() == 3; }, 5s));
  listener.StopAccepting();
  runner.join();  // StopAccepting woke the blocked accept
  CHECK(fds.size() == 3u);
  for (int fd : fds) ::close(fd);
  // Stopped: nobody accepts any more (the socket is shut down; a connect may
  // still complete into the backlog, but the callback never sees it).
  (void)Connect(listener.port());
  CHECK(accepted.load() == 3);
}

TEST_CASE("Listener: StopAccepting before Run makes Run return at once") {
  Listener listener;
  REQUIRE(listener.Bind("127.0.0.1", 0));
  listener.StopAccepting();
  listener.StopAccepting();  // twice is fine
  auto start = std::chrono::steady_clock::now();
  listener.Run([](int fd) { ::close(fd); });
  CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("Listener: a taken port, an unknown host or a foreign address fail with the address") {
  Listener first;
  REQUIRE(first.Bind("127.0.0.1", 0));
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());

  Listener second;
  auto busy = second.Bind("127.0.0.1", first.port());
  REQUIRE_FALSE(busy);
  CHECK(busy.error().message.find("cannot listen on " + taken) != std::string::npos);
  CHECK(busy.error().message.find("in use") != std::string::npos);

  Listener unknown;
  auto bad_host = unknown.Bind("no-such-host.invalid", 0);
  REQUIRE_FALSE(bad_host);
  CHECK(bad_host.error().message.find("no-such-host.invalid:0") != std::string::npos);

  Listener foreign;
  auto not_ours = foreign.Bind("192.0.2.1", 0);  // TEST-NET-1: on no interface here
  REQUIRE_FALSE(not_ours);
  CHECK(not_ours.error().message.find("192.0.2.1:0") != std::string::npos);

  Listener twice;
  REQUIRE(twice.Bind("127.0.0.1", 0));
  CHECK_FALSE(twice.Bind("127.0.0.1", 0));
}

TEST_CASE("Listener: an empty host listens on every interface, IPv4 and IPv6 alike") {
  Listener listener;
  REQUIRE(listener.Bind("", 0));
  std::atomic<int> accepted{0};
  JoiningThread runner(
      [&] {
        listener.Run([&](int fd) {
          ::close(fd);
          ++accepted;
        });
      },
      [&] { listener.StopAccepting(); });
  CHECK(Connect(listener.port()).valid());
  CHECK(Connect(listener.port(), /*v6=*/true).valid());
  CHECK(WaitFor([&] { return accepted.load() == 2; }, 5s));
  listener.StopAccepting();
}

}  // namespace
}  // namespace hubcache
