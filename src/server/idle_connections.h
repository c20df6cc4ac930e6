#pragma once
// Keep-alive connections between requests, held without a thread: an epoll
// set watched by one thread. A parked connection whose client sends again is
// handed to `resume` (which queues it for a worker); one idle past its
// deadline is dropped, which closes it. So hundreds of idle clients cost a
// few hundred bytes each instead of a worker thread's stack each.
// Thread-safe.

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/unique_fd.h"

namespace hubcache {

struct Connection;

class IdleConnections {
 public:
  using Resume = std::function<void(std::shared_ptr<Connection>)>;

  explicit IdleConnections(Resume resume);
  ~IdleConnections();  // Close(), then the thread is joined
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;

  // Holds `connection` (its socket `fd`) until the client sends something or
  // `idle` passes. After Close(), drops it at once.
  void Park(std::shared_ptr<Connection> connection, int fd, std::chrono::milliseconds idle);
  // Drops every parked connection, and any parked from now on.
  void Close();
  size_t size();

 private:
  using Clock = std::chrono::steady_clock;
  struct Parked {
    std::shared_ptr<Connection> connection;
    Clock::time_point deadline;
  };
  void Loop();
  void Wake();

  const Resume resume_;
  UniqueFd epoll_;
  UniqueFd wake_;  // an eventfd: Close() and the destructor wake the loop
  std::mutex mutex_;
  std::unordered_map<int, Parked> parked_;  // by socket; guarded by mutex_
  bool closed_ = false;                     // guarded by mutex_
  bool stop_ = false;                       // guarded by mutex_
  std::thread thread_;
};

}  // namespace hubcache
