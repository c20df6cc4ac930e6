#include "server/connection_stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/http_date.h"
#include "common/log.h"
#include "registry/errors.h"
#include "server/response_writer.h"

namespace hubcache {
std::string ErrorResponse(int status, const char* code, const std::string& message) {
  std::string body = ErrorJson(code, message);
  return "HTTP/1.1 " + std::to_string(status) + " " + StatusReason(status) +
         "\r\nDate: " + HttpDateNow() +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\n" + body;
}

void SocketAddress(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  ip = "unknown";
  port = 0;
  auto* a = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(fd, a, &len) : ::getsockname(fd, a, &len)) != 0) return;
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (::getnameinfo(a, len, host, sizeof(host), service, sizeof(service),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    ip = host;
    port = std::atoi(service);
  }
}

ConnectionStream::ConnectionStream(int fd, SSL* ssl, std::string peer_ip, int peer_port,
                                   const ConnectionLimits& limits, ConnectionCounters& counters)
    : fd_(fd),
      ssl_(ssl),
      peer_ip_(std::move(peer_ip)),
      peer_port_(peer_port),
      limits_(limits),
      counters_(counters) {}

ConnectionStream::Io ConnectionStream::Wait(short events, Clock::time_point deadline) const {
  for (;;) {
    // Rounded up: a deadline less than a millisecond away is not reached yet.
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Io::kTimeout;
    pollfd p{fd_, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1'000'000)));
    if (n > 0) return (p.revents & (events | POLLHUP | POLLERR)) ? Io::kReady : Io::kError;
    if (n == 0) continue;  // re-check the clock: poll may wake early
    if (errno != EINTR) return Io::kError;
  }
}

bool ConnectionStream::Handshake() {
  auto deadline = Clock::now() + limits_.header_timeout;
  for (;;) {
    ERR_clear_error();
    int r = SSL_accept(ssl_);
    if (r == 1) return true;
    int error = SSL_get_error(ssl_, r);
    Io io;
    if (error == SSL_ERROR_WANT_READ) {
      io = Wait(POLLIN, deadline);
    } else if (error == SSL_ERROR_WANT_WRITE) {
      io = Wait(POLLOUT, deadline);
    } else {
      Logger("http")->debug("{}: TLS handshake failed", peer_ip_);
      return false;
    }
    if (io == Io::kTimeout) ++counters_.rejected_header_timeout;
    if (io != Io::kReady) return false;
  }
}

ConnectionStream::Next ConnectionStream::AfterResponse(const std::atomic<bool>& draining) {
  if (!Flush()) return Next::kGone;
  if (begin_ < end_ || (ssl_ && SSL_pending(ssl_) > 0)) return Next::kRequest;
  return draining.load(std::memory_order_relaxed) ? Next::kGone : Next::kIdle;
}

void ConnectionStream::ReleaseBuffers() {
  if (begin_ == end_) {
    buffer_.reset();
    begin_ = end_ = 0;
  }
  if (out_length_ == 0) out_.reset();
}

void ConnectionStream::BeginRequest() {
  in_head_ = true;
  head_deadline_ = Clock::now() + limits_.header_timeout;
  close_after_response_ = false;
}

bool ConnectionStream::Fill() {
  if (!Flush()) return false;  // the client may be waiting for it before it sends more
  begin_ = end_ = 0;
  if (!buffer_) buffer_ = std::make_unique<MappedBuffer>(kInSize);
  if (buffer_->size() == 0) return false;  // out of memory
  for (;;) {
    ssize_t n;
    short want = POLLIN;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_read(ssl_, buffer_->data(), static_cast<int>(kInSize));
      if (r > 0) {
        n = r;
      } else {
        int error = SSL_get_error(ssl_, r);
        if (error == SSL_ERROR_WANT_WRITE) {
          want = POLLOUT;
        } else if (error != SSL_ERROR_WANT_READ) {
          return false;  // closed (ZERO_RETURN) or broken
        }
        n = -1;
        errno = EAGAIN;
      }
    } else {
      n = ::recv(fd_, buffer_->data(), kInSize, 0);
    }
    if (n > 0) {
      end_ = static_cast<size_t>(n);
      return true;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    auto deadline = Clock::now() + limits_.read_timeout;
    if (in_head_) deadline = std::min(deadline, head_deadline_);
    Io io = Wait(want, deadline);
    if (io == Io::kReady) continue;
    if (io == Io::kTimeout && in_head_ && Clock::now() >= head_deadline_) {
      Reject(408, "the request's headers did not arrive in time",
             counters_.rejected_header_timeout);
    }
    return false;
  }
}

void ConnectionStream::Reject(int status, const char* message, std::atomic<uint64_t>& counter) {
  if (rejected_) return;  // answered already
  ++counter;
  rejected_ = true;
  Logger("http")->debug("{}: {} ({})", peer_ip_, message, status);
  // No registry error code stands for these; the message says what happened.
  std::string response = ErrorResponse(status, "UNKNOWN", message);
  // A client this slow or hostile gets a short while to take the answer.
  WriteAll(response.data(), response.size(), std::chrono::milliseconds(2'000));
}

bool ConnectionStream::WriteAll(const char* p, size_t n, std::chrono::milliseconds timeout) {
  size_t done = 0;
  while (done < n) {
    ssize_t w;
    short want = POLLOUT;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_write(ssl_, p + done, static_cast<int>(std::min<size_t>(n - done, 1 << 30)));
      if (r > 0) {
        w = r;
      } else {
        int error = SSL_get_error(ssl_, r);
        if (error == SSL_ERROR_WANT_READ) {
          want = POLLIN;
        } else if (error != SSL_ERROR_WANT_WRITE) {
          return false;
        }
        w = -1;
        errno = EAGAIN;
      }
    } else {
      w = ::send(fd_, p + done, n - done, MSG_NOSIGNAL);
    }
    if (w > 0) {
      done += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (Wait(want, Clock::now() + timeout) != Io::kReady) return false;
  }
  return true;
}

bool ConnectionStream::Flush() {
  if (out_length_ == 0) return true;
  bool ok = WriteAll(out_->data(), out_length_, limits_.write_timeout);
  out_length_ = 0;
  return ok;
}

ConnectionStream::Cork::Cork(const ConnectionStream& stream, bool on)
    : fd_(on && stream.ssl_ == nullptr ? stream.fd_ : -1) {
  const int value = 1;
  if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &value, sizeof(value));
}

ConnectionStream::Cork::~Cork() {
  const int value = 0;
  if (fd_ >= 0) ::setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &value, sizeof(value));
}

bool ConnectionStream::SendFile(int file_fd, off_t offset, size_t length) {
  if (ssl_ || rejected_ || !Flush()) return false;
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::sendfile(fd_, file_fd, &offset, length - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return false;  // the file is shorter than it should be
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (Wait(POLLOUT, Clock::now() + limits_.write_timeout) != Io::kReady) return false;
  }
  return true;
}

std::string_view ConnectionStream::Peek() {
  if (rejected_) return {};
  if (begin_ == end_ && !Fill()) return {};
  return {buffer_->data() + begin_, end_ - begin_};
}

ssize_t ConnectionStream::write(const char* ptr, size_t size) {
  if (rejected_) return -1;
  if (out_length_ + size > kOutSize && !Flush()) return -1;
  if (size <= kOutSize - out_length_) {
    if (!out_) out_ = std::make_unique<MappedBuffer>(kOutSize);
    if (out_->size() == 0) return -1;  // out of memory
    std::memcpy(out_->data() + out_length_, ptr, size);
    out_length_ += size;
    return static_cast<ssize_t>(size);
  }
  return WriteAll(ptr, size, limits_.write_timeout) ? static_cast<ssize_t>(size) : -1;
}

void ConnectionStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = peer_ip_;
  port = peer_port_;
}

void ConnectionStream::get_local_ip_and_port(std::string& ip, int& port) const {
  if (local_port_ < 0) SocketAddress(fd_, false, local_ip_, local_port_);
  ip = local_ip_;
  port = local_port_;
}

}  // namespace hubcache
