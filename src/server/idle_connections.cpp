#include "server/idle_connections.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"

namespace hubcache {
namespace {

// How often deadlines are checked: idle connections close at most this late.
constexpr auto kSweep = std::chrono::milliseconds(250);
// While no worker waits, how often the monitor looks for a stall: a request
// that comes while every worker blocks waits at most about this long for one
// more to start.
constexpr auto kStallCheck = std::chrono::milliseconds(1);
// At most this many stalled clients get a worker each per tick.
constexpr int kStallBatch = 64;
// Ticks in a row with a worker waiting before the monitor slows down again.
constexpr int kCalmTicks = 100;
// A connection parked this long gives its buffers back: a busy client's next
// request comes sooner (and is served without mapping them again), a quiet
// one's costs no buffer.
constexpr auto kReleaseAfter = std::chrono::seconds(1);

// The calling thread's id, for the monitor to read its state.
pid_t ThisThread() {
  thread_local const pid_t tid = ::gettid();
  return tid;
}

// How many of `threads` (of this process) can run: state R in
// /proc/self/task/<tid>/stat, running or waiting for a core. A thread blocked
// in a system call or on a lock is S or D.
size_t CountRunnable(const std::vector<pid_t>& threads) {
  size_t runnable = 0;
  for (pid_t tid : threads) {
    char path[64];
    std::snprintf(path, sizeof(path), "/proc/self/task/%d/stat", static_cast<int>(tid));
    UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) continue;
    char stat[512];
    const ssize_t n = ::read(fd.get(), stat, sizeof(stat) - 1);
    if (n <= 0) continue;
    stat[n] = '\0';
    // "tid (name) S ...": the name may hold spaces and parentheses.
    const char* close = std::strrchr(stat, ')');
    if (close != nullptr && close[1] == ' ' && close[2] == 'R') ++runnable;
  }
  return runnable;
}

}  // namespace

IdleConnections::IdleConnections(Serve serve, Start start, Release release, size_t waiters)
    : serve_(std::move(serve)),
      start_(std::move(start)),
      release_(std::move(release)),
      waiters_(std::max<size_t>(waiters, 1)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (epoll_.get() < 0 || wake_.get() < 0) {
    Logger("http")->error("cannot create the idle connection set: {}", std::strerror(errno));
    epoll_.Reset();
    return;
  }
  // Level-triggered and never read: once written (Close), every worker wakes.
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_.get();
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &event);
  working_ = waiters_;
  for (size_t i = 0; i < waiters_; ++i) start_([this] { Work(nullptr); });
  monitor_ = std::thread(&IdleConnections::Monitor, this);
}

IdleConnections::~IdleConnections() {
  Close();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  monitor_wake_.notify_one();
  if (monitor_.joinable()) monitor_.join();
}

void IdleConnections::Park(std::shared_ptr<Connection> connection, int fd,
                           std::chrono::milliseconds idle) {
  // Kept until the socket is armed: its descriptor stays open meanwhile, even
  // if a worker takes the connection (or Close() drops it) at once.
  std::shared_ptr<Connection> keep = connection;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || epoll_.get() < 0) return;  // `connection` is dropped: closed
    const auto now = Clock::now();
    parked_[fd] = Parked{std::move(connection), now + idle, now + kReleaseAfter};
  }
  // One-shot: a readable socket is handed to one worker, then is no longer
  // watched until it is parked again. It stays in the set meanwhile (re-armed
  // here, outside the lock: the system call is the longest part), and leaves
  // it when it is closed.
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &event) == 0 ||
      (errno == ENOENT && ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0)) {
    return;
  }
  Logger("http")->warn("cannot watch an idle connection: {}", std::strerror(errno));
  std::lock_guard lock(mutex_);
  auto it = parked_.find(fd);
  if (it != parked_.end() && it->second.connection == keep) parked_.erase(it);
}

void IdleConnections::Close() {
  std::unordered_map<int, Parked> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& [fd, parked] : parked_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    dropped.swap(parked_);
    uint64_t one = 1;
    if (wake_.get() >= 0) (void)::write(wake_.get(), &one, sizeof(one));
  }
  // `dropped` goes out of scope here, without the lock: the connections close.
}

size_t IdleConnections::size() {
  std::lock_guard lock(mutex_);
  return parked_.size();
}

size_t IdleConnections::workers() {
  std::lock_guard lock(mutex_);
  return working_;
}

void IdleConnections::SweepLocked(Clock::time_point now, std::vector<Parked>& expired) {
  for (auto it = parked_.begin(); it != parked_.end();) {
    Parked& parked = it->second;
    if (parked.deadline <= now) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
      expired.push_back(std::move(parked));
      it = parked_.erase(it);
      continue;
    }
    if (parked.release_at <= now) {
      release_(*parked.connection);
      parked.release_at = Clock::time_point::max();
    }
    ++it;
  }
}

void IdleConnections::Work(std::shared_ptr<Connection> ready) {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (!ready) {
      if (closed_) {
        --working_;
        return;
      }
      ++waiting_;
      lock.unlock();
      epoll_event event{};
      const int n = ::epoll_wait(epoll_.get(), &event, 1, -1);
      lock.lock();
      --waiting_;
      if (n != 1 || !(ready = TakeLocked(event.data.fd))) continue;
    }
    // The last waiting one taken: the monitor watches for a stall from now.
    const bool wake_monitor = waiting_ == 0 && !monitor_fast_;
    busy_.push_back(ThisThread());
    lock.unlock();
    if (wake_monitor) monitor_wake_.notify_one();
    serve_(std::move(ready));
    lock.lock();
    busy_.erase(std::find(busy_.begin(), busy_.end(), ThisThread()));
    // One too many (started for a stall that has passed): leaves, unless it
    // is the only one left to wait.
    if (working_ > waiters_ && waiting_ > 0) {
      --working_;
      return;
    }
  }
}

bool IdleConnections::AnyReady() const {
  pollfd p{epoll_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

std::shared_ptr<Connection> IdleConnections::TakeLocked(int fd) {
  if (fd == wake_.get()) return nullptr;
  auto it = parked_.find(fd);
  if (it == parked_.end()) return nullptr;
  std::shared_ptr<Connection> connection = std::move(it->second.connection);
  parked_.erase(it);
  ++taken_;
  return connection;
}

void IdleConnections::Monitor() {
  std::unique_lock lock(mutex_);
  auto next_sweep = Clock::now() + kSweep;
  uint64_t taken_before = taken_;
  int calm = 0;
  while (!stop_) {
    monitor_wake_.wait_for(lock, monitor_fast_ ? kStallCheck : kSweep);
    if (stop_) break;
    const auto now = Clock::now();
    std::vector<Parked> expired;
    if (now >= next_sweep) {
      next_sweep = now + kSweep;
      SweepLocked(now, expired);
    }
    std::vector<std::shared_ptr<Connection>> stalled;
    if (!closed_ && waiting_ == 0) {
      monitor_fast_ = true;
      calm = 0;
      // Nobody waits and nobody took a connection since the last look. If
      // clients are waiting and the busy workers are blocked (not merely
      // slow), more start: a worker for each waiting client when none can
      // run, up to `waiters` that can run otherwise.
      if (taken_ == taken_before) {
        const std::vector<pid_t> busy = busy_;
        lock.unlock();
        int want = 0;
        if (AnyReady()) {
          const size_t runnable = CountRunnable(busy);
          want = runnable == 0 ? kStallBatch
                               : static_cast<int>(waiters_ - std::min(runnable, waiters_));
        }
        epoll_event events[kStallBatch];
        const int n = want > 0 ? ::epoll_wait(epoll_.get(), events, want, 0) : 0;
        lock.lock();
        for (int i = 0; i < n && !closed_; ++i) {
          if (auto connection = TakeLocked(events[i].data.fd)) {
            stalled.push_back(std::move(connection));
          }
        }
        working_ += stalled.size();
      }
    } else if (monitor_fast_ && ++calm >= kCalmTicks) {
      monitor_fast_ = false;
    }
    taken_before = taken_;
    lock.unlock();
    expired.clear();  // without the lock: the expired connections close
    for (auto& connection : stalled) {
      start_([this, connection = std::move(connection)]() mutable { Work(std::move(connection)); });
    }
    lock.lock();
  }
}

}  // namespace hubcache
