#pragma once
// Keep-alive connections between requests, held without a thread of their
// own, and the workers that take them when their clients send again: an epoll
// set in which a served connection is parked as soon as it has no request
// buffered, and `waiters` workers (jobs on the worker pool, started through
// `start`) that sit in epoll_wait on it. The worker that takes a ready
// connection serves it on its own thread (`serve`) and then waits again, so a
// busy worker goes from one ready connection to the next without sleeping, as
// nginx's event loop does, instead of a thread per connection woken for each
// request (a context switch per request, and on two cores tens of runnable
// threads whose turns delay requests by up to 100 ms).
// A handler may block (a fill, a slow client): a monitor thread checks, every
// millisecond while no worker waits, whether any worker took a connection
// since its last look. If none did and clients are waiting, it counts the
// busy workers that can run (state R: running, or only waiting for a core);
// when none can, every one is blocked and each waiting client gets a worker of
// its own; when fewer than `waiters` can, as many more start. Workers that are
// only slow (a loaded machine) start none: more threads would only take
// turns. Workers beyond `waiters` leave once another one waits. The monitor also drops connections
// idle past their deadline (which closes them) and has those parked for a
// second give their buffers back (`release`), so hundreds of idle clients cost
// a few hundred bytes each.
// Thread-safety: every member may be called from any thread; a parked
// connection is touched by no one but this set until a worker takes it.
// Ownership: the set owns the connections parked in it and its monitor
// thread (joined by the destructor); `serve`, `start` and `release` must
// outlive it, and the owner stops the workers with Close() and joins its pool
// before destroying this.

#include <sys/types.h>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.h"

namespace hubcache {

struct Connection;

class IdleConnections {
 public:
  using Serve = std::function<void(std::shared_ptr<Connection>)>;
  using Start = std::function<void(std::function<void()>)>;
  using Release = std::function<void(Connection&)>;

  // Starts `waiters` workers through `start`, and the monitor.
  IdleConnections(Serve serve, Start start, Release release, size_t waiters);
  ~IdleConnections();  // Close(), then the monitor is joined
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;

  // Holds `connection` (its socket `fd`, with no request bytes buffered) until
  // its client sends something or `idle` passes. After Close(), drops it at once.
  void Park(std::shared_ptr<Connection> connection, int fd, std::chrono::milliseconds idle);
  // Drops every parked connection, and any parked from now on; the workers
  // return.
  void Close();
  size_t size();
  size_t workers();  // taking connections from the set, waiting or serving

 private:
  using Clock = std::chrono::steady_clock;
  struct Parked {
    std::shared_ptr<Connection> connection;
    Clock::time_point deadline;
    Clock::time_point release_at;  // max() once released
  };
  // A worker's job: serves `ready` (when not null: taken by the monitor for
  // it), then takes ready connections and serves them, until Close() or until
  // it is one too many.
  void Work(std::shared_ptr<Connection> ready);
  void Monitor();
  // Drops the expired connections into `expired`, releases long-parked ones'
  // buffers. Called with mutex_ held.
  void SweepLocked(Clock::time_point now, std::vector<Parked>& expired);
  // The parked connection on `fd`, out of the set; null if none (or the
  // wake-up). Called with mutex_ held.
  std::shared_ptr<Connection> TakeLocked(int fd);
  // Whether a connection is ready in the set, without taking it.
  bool AnyReady() const;

  const Serve serve_;
  const Start start_;
  const Release release_;
  const size_t waiters_;
  UniqueFd epoll_;
  UniqueFd wake_;  // an eventfd, readable once closed: wakes every worker
  std::mutex mutex_;
  std::condition_variable monitor_wake_;
  std::unordered_map<int, Parked> parked_;  // by socket; guarded by mutex_
  size_t working_ = 0;                      // in Work(); guarded by mutex_
  std::vector<pid_t> busy_;                 // serving workers' thread ids; guarded by mutex_
  size_t waiting_ = 0;                      // in epoll_wait; guarded by mutex_
  uint64_t taken_ = 0;                      // connections taken so far; guarded by mutex_
  bool monitor_fast_ = false;               // ticking every ms; guarded by mutex_
  bool closed_ = false;                     // guarded by mutex_
  bool stop_ = false;                       // the monitor ends; guarded by mutex_
  std::thread monitor_;
};

}  // namespace hubcache
