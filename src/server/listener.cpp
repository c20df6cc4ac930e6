#include "server/listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/log.h"

namespace hubcache {
namespace {

int LocalPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return -1;
}

}  // namespace

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

Status Listener::Bind(const std::string& host, int port) {
  const std::string where = (host.empty() ? "*" : host) + ":" + std::to_string(port);
  if (fd_ >= 0) return Fail(ErrorKind::kInternal, "already listening on " + where);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc =
          ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return Fail(ErrorKind::kConfigInvalid, "cannot listen on " + where + ": " + ::gai_strerror(rc));
  }
  // Every interface: IPv6's "::" first, which takes IPv4 clients too (as the
  // CNCF registry's ":5000" does), then "0.0.0.0" where IPv6 is off.
  std::vector<addrinfo*> candidates;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) candidates.push_back(ai);
  if (host.empty()) {
    std::stable_partition(candidates.begin(), candidates.end(),
                          [](const addrinfo* ai) { return ai->ai_family == AF_INET6; });
  }
  int error = 0;
  for (addrinfo* ai : candidates) {
    if (fd_ >= 0) break;
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
      int v6_only = host.empty() ? 0 : 1;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6_only, sizeof(v6_only));
    }
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      error = errno;
      ::close(fd);
      continue;
    }
    fd_ = fd;
  }
  ::freeaddrinfo(found);
  if (fd_ < 0) {
    return Fail(ErrorKind::kConfigInvalid,
                "cannot listen on " + where + ": " + std::strerror(error));
  }
  port_ = LocalPort(fd_);
  return {};
}

void Listener::Run(const std::function<void(int fd)>& accepted) {
  auto last_warning = std::chrono::steady_clock::time_point{};
  while (!stopping_.load()) {
    int fd = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      accepted(fd);
      continue;
    }
    const int error = errno;
    if (stopping_.load()) break;
    if (error == EINTR || error == ECONNABORTED || error == EAGAIN || error == EPROTO) continue;
    if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
      // Out of descriptors or memory: connections being served will give
      // some back; accepting again at once would spin.
      auto now = std::chrono::steady_clock::now();
      if (now - last_warning > std::chrono::seconds(10)) {
        Logger("http")->warn("cannot accept a connection: {}", std::strerror(error));
        last_warning = now;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    Logger("http")->error("accepting connections failed: {}", std::strerror(error));
    break;
  }
}

void Listener::StopAccepting() {
  stopping_.store(true);
  // Wakes a blocked accept() (it fails with EINVAL); the socket closes with
  // the Listener, so that no other thread's descriptor can take its number.
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace hubcache
