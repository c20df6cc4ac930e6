#pragma once
// The listening socket and its accept loop. Bind() opens host:port (a name or
// an IPv4/IPv6 literal, port 0 for any free port) with the system's largest
// backlog: a burst of clients at a rollout must not find a queue of five. Run()
// hands every accepted connection to a callback (which owns it from then on)
// until StopAccepting(), which leaves connections already accepted alone.
// Thread-safety: Bind() and Run() on one thread; StopAccepting() from any
// thread, any number of times. Owns the listening socket.

#include <atomic>
#include <functional>
#include <string>

#include "common/result.h"

namespace hubcache {

class Listener {
 public:
  Listener() = default;
  ~Listener();
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // `host` empty: every interface. Fails with the address in the message.
  [[nodiscard]] Status Bind(const std::string& host, int port);
  int port() const { return port_; }

  // Accepts until StopAccepting(); `accepted` gets each new connection's fd.
  void Run(const std::function<void(int fd)>& accepted);
  void StopAccepting();

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace hubcache
