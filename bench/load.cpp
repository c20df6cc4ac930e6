// hubcache-load: an HTTP/1.1 keep-alive load generator for the benchmarks
// (bench/rates.sh), with microsecond latency resolution and HEAD support.
//
//   hubcache-load [-c CONNECTIONS] [-t THREADS] [-d SECONDS] [-m GET|HEAD]
//                 [-H 'Name: value']... [-T TIMEOUT_SECONDS] [-p PREFIX]
//                 http://127.0.0.1:PORT/path
//
// Each thread owns its share of the connections and one epoll loop; a connection
// has one request in flight at a time (no pipelining). A response is read as a
// strict client would: the head up to CRLFCRLF, the status and Content-Length,
// then no body for HEAD (and 1xx/204/304), exactly Content-Length body bytes for
// GET. A GET answer without a Content-Length (chunked, or delimited by the close)
// is an error, as are bytes after a complete response; either reopens the
// connection. `Connection: close` (or an HTTP/1.0 answer without keep-alive)
// reopens it without an error.
//
// Latency is from the first byte of the request written to the last byte of the
// response read, on steady_clock, in a histogram of 1 us buckets below 100 ms and
// 1 ms buckets above (bounded memory: ~1.8 MB per thread). The run is bounded by
// -d: what is in flight at the deadline is dropped, uncounted; a request that
// takes longer than -T counts as a timeout and reopens its connection. Nothing
// blocks: sockets are non-blocking and every epoll_wait has a timeout.
//
// Output (stdout), one figure per line, `name value unit` as the test bed's
// bench.sh writes them, names prefixed by `PREFIX_` with -p: requests (2xx
// responses read whole), rps, MBps (their body bytes, 10^6 B/s), p50 / p90 / p99 /
// max latency of those in ms (3 decimals), errors (non-2xx + parse errors +
// timeouts + resets and failed connects), and `#` comment lines with the
// settings and the errors by kind. Exit 0 when at least one request completed,
// 1 when none did, 2 on a usage error (one line on stderr). Only loopback
// (127.0.0.1) targets are accepted.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hubcache::load {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  // Open connections, spread over the threads.
  int connections = 10;
  // Threads, each with its own epoll loop (never more than connections).
  int threads = 1;
  // Length of the run in seconds.
  double seconds = 5.0;
  // A request not answered whole within this many seconds is a timeout.
  double timeout_seconds = 10.0;
  // "GET" or "HEAD".
  std::string method = "GET";
  // Extra request header lines, "Name: value", sent as given.
  std::vector<std::string> headers;
  // Prefix of the figure names ("" = none).
  std::string prefix;
  // Target: 127.0.0.1:port and the request target (path and query).
  uint16_t port = 0;
  std::string path;
};

// Counts of latencies in microseconds: 1 us buckets below kFineLimitUs, 1 ms
// buckets up to kCoarseLimitUs, everything longer in the last bucket.
class LatencyHistogram {
 public:
  LatencyHistogram() : buckets_(kBuckets, 0) {}

  void Add(int64_t ns) {
    ++buckets_[BucketOf(ns / 1000)];
    ++count_;
    max_ns_ = std::max(max_ns_, ns);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
  }

  uint64_t count() const { return count_; }
  int64_t max_ns() const { return max_ns_; }

  // The lower bound (us) of the bucket holding the sample of rank ceil(q * count):
  // exact to the microsecond below 100 ms. 0 when empty.
  int64_t PercentileUs(double q) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<uint64_t>(q * static_cast<double>(count_) + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= rank) return LowerBoundUs(i);
    }
    return LowerBoundUs(buckets_.size() - 1);
  }

 private:
  static constexpr int64_t kFineLimitUs = 100'000;
  static constexpr int64_t kCoarseStepUs = 1'000;
  static constexpr int64_t kCoarseLimitUs = 120'000'000;
  static constexpr size_t kBuckets =
      kFineLimitUs + (kCoarseLimitUs - kFineLimitUs) / kCoarseStepUs + 1;

  static size_t BucketOf(int64_t us) {
    if (us < 0) us = 0;
    if (us < kFineLimitUs) return static_cast<size_t>(us);
    if (us >= kCoarseLimitUs) return kBuckets - 1;
    return static_cast<size_t>(kFineLimitUs + (us - kFineLimitUs) / kCoarseStepUs);
  }
  static int64_t LowerBoundUs(size_t bucket) {
    auto b = static_cast<int64_t>(bucket);
    if (b < kFineLimitUs) return b;
    return kFineLimitUs + (b - kFineLimitUs) * kCoarseStepUs;
  }

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  int64_t max_ns_ = 0;
};

struct Stats {
  uint64_t ok = 0;          // 2xx responses read whole before the deadline
  uint64_t body_bytes = 0;  // their body bytes
  uint64_t non_2xx = 0;
  uint64_t parse = 0;    // malformed head, no usable length, bytes after a response
  uint64_t timeout = 0;  // connect or request slower than -T
  uint64_t reset = 0;    // closed or reset mid-request, send failed
  uint64_t connect = 0;  // connect refused or failed
  LatencyHistogram latency;

  uint64_t errors() const { return non_2xx + parse + timeout + reset + connect; }
  void Merge(const Stats& o) {
    ok += o.ok;
    body_bytes += o.body_bytes;
    non_2xx += o.non_2xx;
    parse += o.parse;
    timeout += o.timeout;
    reset += o.reset;
    connect += o.connect;
    latency.Merge(o.latency);
  }
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated list `value` holds `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (EqualsIgnoreCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// What a response head says about the response.
struct ResponseHead {
  int status = 0;
  bool has_length = false;
  uint64_t content_length = 0;
  bool chunked = false;      // any Transfer-Encoding
  bool close_after = false;  // the server closes after this response
};

// Parses a response head (status line and fields, without the final CRLFCRLF).
// False when it is malformed: a bad status line, a bad or conflicting
// Content-Length, a field line without a colon.
bool ParseHead(std::string_view head, ResponseHead& out) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  bool http10;
  if (line.starts_with("HTTP/1.1 ")) {
    http10 = false;
  } else if (line.starts_with("HTTP/1.0 ")) {
    http10 = true;
  } else {
    return false;
  }
  if (line.size() < 12 || (line.size() > 12 && line[12] != ' ')) return false;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return false;
    status = status * 10 + (line[i] - '0');
  }
  out = ResponseHead{};
  out.status = status;
  bool keep_alive = false;
  std::string_view rest = eol == std::string_view::npos ? "" : head.substr(eol + 2);
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? "" : rest.substr(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    std::string_view name = line.substr(0, colon);
    std::string_view value = Trim(line.substr(colon + 1));
    if (EqualsIgnoreCase(name, "content-length")) {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() || value.empty()) return false;
      if (out.has_length && out.content_length != n) return false;
      out.has_length = true;
      out.content_length = n;
    } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
      out.chunked = true;
    } else if (EqualsIgnoreCase(name, "connection")) {
      if (HasToken(value, "close")) out.close_after = true;
      if (HasToken(value, "keep-alive")) keep_alive = true;
    }
  }
  if (http10 && !keep_alive) out.close_after = true;
  return true;
}

enum class Phase { kBackoff, kConnecting, kWriting, kReadingHead, kReadingBody };
enum class Failure { kParse, kTimeout, kReset, kConnect };

struct Connection {
  int fd = -1;
  // Bumped whenever fd changes, so that an event of a closed socket still
  // queued in the same epoll_wait batch is recognised and dropped.
  uint32_t generation = 0;
  Phase phase = Phase::kBackoff;
  // Request: start of its write (or of the connect, or the end of a backoff).
  Clock::time_point started;
  size_t written = 0;
  std::string head;  // the response head received so far
  ResponseHead response;
  uint64_t body_left = 0;
  uint64_t body_read = 0;
};

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kReadBufferBytes = 1 << 20;
// Reads per readiness event: bounded, so that one fast connection cannot keep
// its thread from the deadline and the other connections.
constexpr int kReadsPerEvent = 16;
constexpr auto kConnectBackoff = std::chrono::milliseconds(10);

// One thread's share of the run: its connections, its epoll loop, its figures.
class Worker {
 public:
  Worker(const Options& options, const std::string& request, int connections,
         Clock::time_point deadline)
      : options_(options),
        request_(request),
        connections_(static_cast<size_t>(connections)),
        deadline_(deadline),
        timeout_(std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(options.timeout_seconds))),
        head_(options.method == "HEAD"),
        buffer_(kReadBufferBytes) {}
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker() {
    for (Connection& c : connections_) CloseFd(c);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  // Runs until the deadline. False (with a line on stderr) when epoll cannot be set up.
  bool Run() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      std::fprintf(stderr, "hubcache-load: epoll_create1: %s\n", std::strerror(errno));
      return false;
    }
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i < connections_.size(); ++i) Open(i, now);
    std::vector<epoll_event> events(connections_.size() + 1);
    while ((now = Clock::now()) < deadline_) {
      bool backoff = CheckTimers(now);
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - now).count();
      int wait_ms = static_cast<int>(std::clamp<int64_t>(left + 1, 1, backoff ? 10 : 100));
      int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), wait_ms);
      if (n < 0 && errno != EINTR) {
        std::fprintf(stderr, "hubcache-load: epoll_wait: %s\n", std::strerror(errno));
        return false;
      }
      for (int i = 0; i < n; ++i) {
        size_t index = static_cast<size_t>(events[i].data.u64 >> 32);
        auto generation = static_cast<uint32_t>(events[i].data.u64 & 0xffffffffu);
        if (index >= connections_.size() || connections_[index].generation != generation) {
          continue;
        }
        OnEvent(index, events[i].events);
      }
    }
    return true;
  }

  const Stats& stats() const { return stats_; }

 private:
  void CloseFd(Connection& c) {
    if (c.fd >= 0) ::close(c.fd);
    c.fd = -1;
    ++c.generation;
  }

  bool Watch(size_t index, int op, uint32_t events) {
    Connection& c = connections_[index];
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = (static_cast<uint64_t>(index) << 32) | c.generation;
    return ::epoll_ctl(epoll_fd_, op, c.fd, &ev) == 0;
  }

  void Open(size_t index, Clock::time_point now) {
    Connection& c = connections_[index];
    CloseFd(c);
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      Fail(index, Failure::kConnect, now);
      return;
    }
    int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(options_.port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c.started = now;
    int rc = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    if (rc == 0) {
      if (!Watch(index, EPOLL_CTL_ADD, EPOLLIN)) return Fail(index, Failure::kConnect, now);
      StartRequest(index, now);
    } else if (errno == EINPROGRESS) {
      c.phase = Phase::kConnecting;
      if (!Watch(index, EPOLL_CTL_ADD, EPOLLOUT)) Fail(index, Failure::kConnect, now);
    } else {
      Fail(index, Failure::kConnect, now);
    }
  }

  // Counts the failure (when before the deadline) and has the connection
  // reopened: at once, or after a short pause when the connect itself failed.
  void Fail(size_t index, Failure failure, Clock::time_point now) {
    Connection& c = connections_[index];
    if (now < deadline_) {
      switch (failure) {
        case Failure::kParse:
          ++stats_.parse;
          break;
        case Failure::kTimeout:
          ++stats_.timeout;
          break;
        case Failure::kReset:
          ++stats_.reset;
          break;
        case Failure::kConnect:
          ++stats_.connect;
          break;
      }
    }
    // Reopened from the loop (CheckTimers), not from here: a server that resets
    // every connection at once must not recurse Open -> Fail -> Open.
    CloseFd(c);
    c.phase = Phase::kBackoff;
    c.started = failure == Failure::kConnect ? now + kConnectBackoff : now;
  }

  // Reopens failed connections whose pause is over, fails those past the
  // timeout. True when a connection is still pausing (the caller then waits less).
  bool CheckTimers(Clock::time_point now) {
    bool backoff = false;
    for (size_t i = 0; i < connections_.size(); ++i) {
      Connection& c = connections_[i];
      if (c.phase == Phase::kBackoff) {
        if (now >= c.started) {
          Open(i, now);
        } else {
          backoff = true;
        }
      } else if (now - c.started > timeout_) {
        Fail(i, Failure::kTimeout, now);
      }
    }
    return backoff;
  }

  void StartRequest(size_t index, Clock::time_point now) {
    Connection& c = connections_[index];
    c.phase = Phase::kWriting;
    c.started = now;
    c.written = 0;
    c.head.clear();
    c.body_read = 0;
    WriteRequest(index, now, /*watching_out=*/false);
  }

  void WriteRequest(size_t index, Clock::time_point now, bool watching_out) {
    Connection& c = connections_[index];
    while (c.written < request_.size()) {
      ssize_t n =
          ::send(c.fd, request_.data() + c.written, request_.size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!watching_out && !Watch(index, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT)) {
          return Fail(index, Failure::kReset, now);
        }
        return;
      } else {
        return Fail(index, Failure::kReset, now);
      }
    }
    if (watching_out && !Watch(index, EPOLL_CTL_MOD, EPOLLIN)) {
      return Fail(index, Failure::kReset, now);
    }
    c.phase = Phase::kReadingHead;
  }

  void OnEvent(size_t index, uint32_t events) {
    Connection& c = connections_[index];
    Clock::time_point now = Clock::now();
    switch (c.phase) {
      case Phase::kBackoff:
        return;
      case Phase::kConnecting: {
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
          return Fail(index, Failure::kConnect, now);
        }
        if (!Watch(index, EPOLL_CTL_MOD, EPOLLIN)) return Fail(index, Failure::kConnect, now);
        return StartRequest(index, now);
      }
      case Phase::kWriting:
        if (events & (EPOLLERR | EPOLLHUP)) return Fail(index, Failure::kReset, now);
        if (events & EPOLLOUT) WriteRequest(index, now, /*watching_out=*/true);
        return;
      case Phase::kReadingHead:
      case Phase::kReadingBody:
        return Read(index);
    }
  }

  void Read(size_t index) {
    for (int i = 0; i < kReadsPerEvent; ++i) {
      Connection& c = connections_[index];
      ssize_t n = ::recv(c.fd, buffer_.data(), buffer_.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      Clock::time_point now = Clock::now();
      // A close or reset before the response was whole: no request is ever
      // idle here (the next one is sent as soon as a response is complete).
      if (n <= 0) return Fail(index, Failure::kReset, now);
      uint32_t generation = c.generation;
      Consume(index, std::string_view(buffer_.data(), static_cast<size_t>(n)), now);
      // The connection was reopened (an error, or Connection: close): the rest of
      // this socket's data is gone with it.
      if (connections_[index].generation != generation) return;
    }
  }

  void Consume(size_t index, std::string_view data, Clock::time_point now) {
    Connection& c = connections_[index];
    if (c.phase == Phase::kWriting) {
      // An answer before the request was written whole (say, an early error).
      return Fail(index, Failure::kParse, now);
    }
    if (c.phase == Phase::kReadingHead) {
      size_t search_from = c.head.size() >= 3 ? c.head.size() - 3 : 0;
      c.head.append(data);
      size_t end = c.head.find("\r\n\r\n", search_from);
      if (end == std::string::npos) {
        if (c.head.size() > kMaxHeadBytes) Fail(index, Failure::kParse, now);
        return;
      }
      size_t body_start = end + 4;
      size_t extra = c.head.size() - body_start;
      data = data.substr(data.size() - extra);
      c.head.resize(end);
      if (!ParseHead(c.head, c.response)) return Fail(index, Failure::kParse, now);
      int status = c.response.status;
      bool no_body = head_ || (status >= 100 && status < 200) || status == 204 || status == 304;
      if (no_body) {
        c.body_left = 0;
      } else if (c.response.chunked || !c.response.has_length) {
        return Fail(index, Failure::kParse, now);
      } else {
        c.body_left = c.response.content_length;
      }
      c.phase = Phase::kReadingBody;
    }
    uint64_t take = std::min<uint64_t>(c.body_left, data.size());
    c.body_left -= take;
    c.body_read += take;
    data.remove_prefix(static_cast<size_t>(take));
    if (c.body_left > 0) return;
    Complete(index, now);
    // Bytes past a whole response: nothing was asked for them (a body sent to a
    // HEAD, a wrong Content-Length). The connection cannot be trusted.
    if (!data.empty()) Fail(index, Failure::kParse, now);
  }

  void Complete(size_t index, Clock::time_point now) {
    Connection& c = connections_[index];
    if (now < deadline_) {
      int status = c.response.status;
      if (status >= 200 && status < 300) {
        ++stats_.ok;
        stats_.body_bytes += c.body_read;
        stats_.latency.Add(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - c.started).count());
      } else {
        ++stats_.non_2xx;
      }
    }
    if (c.response.close_after) return Open(index, now);
    StartRequest(index, now);
  }

  const Options& options_;
  const std::string& request_;
  std::vector<Connection> connections_;
  const Clock::time_point deadline_;
  const Clock::duration timeout_;
  const bool head_;           // HEAD requests: no response has a body
  std::vector<char> buffer_;  // one read buffer for all of the thread's connections
  int epoll_fd_ = -1;
  Stats stats_;
};

constexpr const char* kUsage =
    "usage: hubcache-load [-c CONNECTIONS] [-t THREADS] [-d SECONDS] [-m GET|HEAD] "
    "[-H 'Name: value']... [-T TIMEOUT_SECONDS] [-p PREFIX] http://127.0.0.1:PORT/path";

int UsageError(const std::string& what) {
  std::fprintf(stderr, "hubcache-load: %s\n", what.c_str());
  return 2;
}

bool ParseInt(std::string_view s, int min, int max, int& out) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) return false;
  out = v;
  return true;
}

bool ParseSeconds(const std::string& s, double max, double& out) {
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || errno != 0 || *end != '\0' || !(v > 0) || v > max) return false;
  out = v;
  return true;
}

// Accepts exactly http://127.0.0.1:PORT[/path]: the benchmarks never leave loopback.
bool ParseUrl(std::string_view url, Options& options) {
  constexpr std::string_view kScheme = "http://127.0.0.1:";
  if (!url.starts_with(kScheme)) return false;
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view port = url.substr(0, slash);
  int p = 0;
  if (!ParseInt(port, 1, 65535, p)) return false;
  options.port = static_cast<uint16_t>(p);
  options.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  for (char ch : options.path) {
    if (ch <= ' ' || ch == 0x7f || ch == '#') return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  Options options;
  std::vector<std::string_view> positional;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() != 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    if (i + 1 >= argc) return UsageError(std::string(arg) + " needs a value; " + kUsage);
    std::string value = argv[++i];
    switch (arg[1]) {
      case 'c':
        if (!ParseInt(value, 1, 100000, options.connections)) {
          return UsageError("-c wants 1..100000 connections, not '" + value + "'");
        }
        break;
      case 't':
        if (!ParseInt(value, 1, 1024, options.threads)) {
          return UsageError("-t wants 1..1024 threads, not '" + value + "'");
        }
        break;
      case 'd':
        if (!ParseSeconds(value, 86400, options.seconds)) {
          return UsageError("-d wants seconds > 0, not '" + value + "'");
        }
        break;
      case 'T':
        if (!ParseSeconds(value, 3600, options.timeout_seconds)) {
          return UsageError("-T wants seconds > 0, not '" + value + "'");
        }
        break;
      case 'm':
        if (value != "GET" && value != "HEAD") {
          return UsageError("-m wants GET or HEAD, not '" + value + "'");
        }
        options.method = value;
        break;
      case 'H': {
        size_t colon = value.find(':');
        bool bad_char = value.find_first_of("\r\n") != std::string::npos;
        if (colon == std::string::npos || colon == 0 || bad_char) {
          return UsageError("-H wants 'Name: value' on one line, not '" + value + "'");
        }
        options.headers.push_back(value);
        break;
      }
      case 'p':
        options.prefix = value;
        break;
      default:
        return UsageError("unknown option " + std::string(arg) + "; " + kUsage);
    }
  }
  if (positional.size() != 1) return UsageError(kUsage);
  if (!ParseUrl(positional[0], options)) {
    return UsageError("only http://127.0.0.1:PORT/path is accepted, not '" +
                      std::string(positional[0]) + "'");
  }
  options.threads = std::min(options.threads, options.connections);

  std::string request = options.method + " " + options.path + " HTTP/1.1\r\n";
  bool have_host = false, have_agent = false;
  for (const std::string& h : options.headers) {
    std::string_view name = Trim(std::string_view(h).substr(0, h.find(':')));
    have_host = have_host || EqualsIgnoreCase(name, "host");
    have_agent = have_agent || EqualsIgnoreCase(name, "user-agent");
  }
  if (!have_host) request += "Host: 127.0.0.1:" + std::to_string(options.port) + "\r\n";
  if (!have_agent) request += "User-Agent: hubcache-load/1\r\n";
  for (const std::string& h : options.headers) request += h + "\r\n";
  request += "\r\n";

  Clock::time_point start = Clock::now();
  Clock::time_point deadline = start + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(options.seconds));
  std::vector<std::unique_ptr<Worker>> workers;
  for (int t = 0; t < options.threads; ++t) {
    int share = options.connections / options.threads + (t < options.connections % options.threads);
    workers.push_back(std::make_unique<Worker>(options, request, share, deadline));
  }
  std::vector<char> ran(workers.size(), 0);
  {
    std::vector<std::jthread> threads;
    for (size_t t = 0; t < workers.size(); ++t) {
      threads.emplace_back([&workers, &ran, t] { ran[t] = workers[t]->Run() ? 1 : 0; });
    }
  }
  Stats total;
  for (const auto& w : workers) total.Merge(w->stats());
  bool all_ran = std::all_of(ran.begin(), ran.end(), [](char r) { return r != 0; });

  const double seconds = options.seconds;
  auto ms = [](int64_t us) { return static_cast<double>(us) / 1000.0; };
  auto emit = [&options](const char* name, const std::string& value, const char* unit) {
    std::string full = options.prefix.empty() ? name : options.prefix + "_" + name;
    std::printf("%-34s %s %s\n", full.c_str(), value.c_str(), unit);
  };
  auto fixed = [](double v, int decimals) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, v);
    return std::string(text);
  };
  std::printf("# hubcache-load %s http://127.0.0.1:%u%s connections=%d threads=%d seconds=%.3f\n",
              options.method.c_str(), static_cast<unsigned>(options.port), options.path.c_str(),
              options.connections, options.threads, seconds);
  std::printf(
      "# errors by kind: non_2xx=%llu parse=%llu timeout=%llu reset=%llu connect=%llu\n",
      static_cast<unsigned long long>(total.non_2xx), static_cast<unsigned long long>(total.parse),
      static_cast<unsigned long long>(total.timeout), static_cast<unsigned long long>(total.reset),
      static_cast<unsigned long long>(total.connect));
  emit("requests", std::to_string(total.ok), "n");
  emit("rps", fixed(static_cast<double>(total.ok) / seconds, 2), "req/s");
  emit("MBps", fixed(static_cast<double>(total.body_bytes) / seconds / 1e6, 2), "MB/s");
  // No latency without a request: NA, as bench.sh marks a figure not taken.
  auto latency = [&](double q) {
    return total.ok == 0 ? std::string("NA") : fixed(ms(total.latency.PercentileUs(q)), 3);
  };
  emit("p50", latency(0.50), "ms");
  emit("p90", latency(0.90), "ms");
  emit("p99", latency(0.99), "ms");
  emit("max", total.ok == 0 ? "NA" : fixed(static_cast<double>(total.latency.max_ns()) / 1e6, 3),
       "ms");
  emit("errors", std::to_string(total.errors()), "n");
  std::fflush(stdout);
  if (!all_ran) return 1;
  return total.ok > 0 ? 0 : 1;
}

}  // namespace
}  // namespace hubcache::load

int main(int argc, char** argv) { return hubcache::load::Main(argc, argv); }
