#include "server/idle_connections.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"

namespace hubcache {
namespace {

// How often deadlines are checked: idle connections close at most this late.
constexpr int kTickMs = 250;

}  // namespace

IdleConnections::IdleConnections(Resume resume)
    : resume_(std::move(resume)),
      epoll_(::epoll_create1(EPOLL_CLOEXEC)),
      wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (epoll_.get() < 0 || wake_.get() < 0) {
    Logger("http")->error("cannot create the idle connection set: {}", std::strerror(errno));
  } else {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = wake_.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &event);
  }
  thread_ = std::thread(&IdleConnections::Loop, this);
}

IdleConnections::~IdleConnections() {
  Close();
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  Wake();
  thread_.join();
}

void IdleConnections::Park(std::shared_ptr<Connection> connection, int fd,
                           std::chrono::milliseconds idle) {
  std::lock_guard lock(mutex_);
  if (closed_ || epoll_.get() < 0) return;  // `connection` is dropped: closed
  // One-shot: a readable socket is handed on once, then is no longer watched.
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  event.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return;
  parked_[fd] = Parked{std::move(connection), Clock::now() + idle};
}

void IdleConnections::Close() {
  std::unordered_map<int, Parked> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& [fd, parked] : parked_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    dropped.swap(parked_);
  }
  // `dropped` goes out of scope here, without the lock: the connections close.
}

size_t IdleConnections::size() {
  std::lock_guard lock(mutex_);
  return parked_.size();
}

void IdleConnections::Wake() {
  uint64_t one = 1;
  if (wake_.get() >= 0) (void)::write(wake_.get(), &one, sizeof(one));
}

void IdleConnections::Loop() {
  std::vector<epoll_event> events(256);
  auto next_sweep = Clock::now() + std::chrono::milliseconds(kTickMs);
  for (;;) {
    int n = epoll_.get() < 0 ? 0
                             : ::epoll_wait(epoll_.get(), events.data(),
                                            static_cast<int>(events.size()), kTickMs);
    if (epoll_.get() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(kTickMs));
    std::vector<std::shared_ptr<Connection>> ready;
    std::vector<Parked> expired;
    {
      std::lock_guard lock(mutex_);
      if (stop_) return;
      for (int i = 0; i < n; ++i) {
        int fd = events[static_cast<size_t>(i)].data.fd;
        if (fd == wake_.get()) {
          uint64_t count;
          (void)::read(wake_.get(), &count, sizeof(count));
          continue;
        }
        auto it = parked_.find(fd);
        if (it == parked_.end()) continue;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        ready.push_back(std::move(it->second.connection));
        parked_.erase(it);
      }
      auto now = Clock::now();
      if (now >= next_sweep) {
        next_sweep = now + std::chrono::milliseconds(kTickMs);
        for (auto it = parked_.begin(); it != parked_.end();) {
          if (it->second.deadline > now) {
            ++it;
            continue;
          }
          ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
          expired.push_back(std::move(it->second));
          it = parked_.erase(it);
        }
      }
    }
    // Outside the lock: resuming queues work, dropping closes sockets.
    for (auto& connection : ready) resume_(std::move(connection));
  }
}

}  // namespace hubcache
