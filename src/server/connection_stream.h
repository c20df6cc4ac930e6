#pragma once
// One client connection's bytes: a non-blocking socket, plain or TLS, with
// every wait bounded. Reads hand out the buffered bytes (Peek/Consume) to the
// one request parser (server/request_parser.h), which the exchange
// (server/exchange.h) drives; a request's head must arrive within
// header_timeout of BeginRequest (slowloris): 408.
// A refusal (Reject) answers with a registry error (JSON, Connection: close),
// counts it in ConnectionCounters, and fails every later read and write; the
// connection is then closed.
// Small writes are gathered (a response's head and a manifest body go out in
// one segment) and flushed before any wait for the client, before a large
// write or sendfile, and by Flush(). Not thread-safe: one worker uses it.

#include <openssl/ssl.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/mapped_buffer.h"
#include "server/connection_counters.h"

namespace hubcache {

struct ConnectionLimits {
  int max_connections = 1000;
  int max_connections_per_client = 128;
  std::chrono::milliseconds header_timeout{20'000};
  std::chrono::milliseconds keepalive_timeout{10'000};  // idle between requests
  std::chrono::milliseconds read_timeout{30'000};       // a request body stalls
  std::chrono::milliseconds write_timeout{60'000};      // a client stops reading
  size_t max_request_line = 8 * 1024;
  size_t max_header_bytes = 64 * 1024;
  size_t max_header_fields = 100;
  int max_requests_per_connection = 10'000;
};

// A complete HTTP/1.1 answer with a registry error body and Connection:
// close, for refusals written straight to a socket.
std::string ErrorResponse(int status, const char* code, const std::string& message);

// The numeric address and port of a socket's peer (`peer`) or its own end;
// "unknown" and 0 when they cannot be read.
void SocketAddress(int fd, bool peer, std::string& ip, int& port);

class ConnectionStream {
 public:
  // `ssl` (may be null: plain HTTP) is set up for `fd` and accepts; both stay
  // owned by the caller. `fd` must be non-blocking.
  ConnectionStream(int fd, SSL* ssl, std::string peer_ip, int peer_port,
                   const ConnectionLimits& limits, ConnectionCounters& counters);

  // The TLS handshake, within header_timeout.
  bool Handshake();
  // After a response (or before the first request): sends what was gathered,
  // then says how the connection goes on, without waiting. kRequest: the
  // client's next request is buffered already (pipelined); kIdle: nothing is
  // (park the connection until its socket is readable); kGone: the flush
  // failed, or `draining` is set.
  enum class Next { kRequest, kIdle, kGone };
  Next AfterResponse(const std::atomic<bool>& draining);
  // Frees the buffers while the connection waits parked (they are empty:
  // call after AfterResponse answered kIdle, before the client sends again).
  void ReleaseBuffers();
  // Starts a request: the clock its head must arrive within.
  void BeginRequest();
  // The head is parsed: later reads wait up to read_timeout each.
  void EndHead() { in_head_ = false; }
  // The bytes received and not yet consumed, waiting for more when there are
  // none. Empty when the client closed, the socket failed, a read timed out or
  // the head's time ran out (answered 408). Valid until the next call.
  std::string_view Peek();
  // Drops the first `n` bytes of what Peek() returned.
  void Consume(size_t n) { begin_ += n; }
  // A limit was hit and answered: the connection must be closed.
  bool rejected() const { return rejected_; }
  // Sends what small writes gathered; false if the client is gone.
  bool Flush();

  // Answers the request with `status` and a registry error (Connection:
  // close), counts it, and fails all later reads and writes.
  void Reject(int status, const char* message, std::atomic<uint64_t>& counter);
  // Bytes the client sent may stay unread (a body not wanted): after the
  // answer the connection closes, lingering so that the client still gets it.
  void CloseAfterResponse() { close_after_response_ = true; }
  bool close_after_response() const { return close_after_response_; }

  // Sends `length` bytes of `file_fd` from `offset` with sendfile(2), bypassing
  // user space, after what write() gathered; plain connections only (false
  // otherwise, or on failure).
  bool SendFile(int file_fd, off_t offset, size_t length);
  // While a Cork lives, the socket sends only full segments (TCP_CORK, nginx's
  // tcp_nopush); what is left goes out at once when it ends. For a large body
  // sent in several SendFile calls: no short segment after each call. A small
  // body fits in one segment anyway, where corking would only cost two system
  // calls. Lives on the stream's one worker, within the stream's life.
  class Cork {
   public:
    Cork(const ConnectionStream& stream, bool on);
    ~Cork();
    Cork(const Cork&) = delete;
    Cork& operator=(const Cork&) = delete;

   private:
    const int fd_;  // -1: not corked
  };
  bool can_send_file() const { return ssl_ == nullptr; }

  // Writes (gathered when small); `size` or -1 when the client is gone.
  ssize_t write(const char* ptr, size_t size);
  void get_remote_ip_and_port(std::string& ip, int& port) const;
  void get_local_ip_and_port(std::string& ip, int& port) const;
  int socket() const { return fd_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Io { kReady, kTimeout, kError };

  Io Wait(short events, Clock::time_point deadline) const;
  // More bytes into the buffer; false on EOF, error, timeout or a limit.
  bool Fill();
  bool WriteAll(const char* p, size_t n, std::chrono::milliseconds timeout);

  const int fd_;
  SSL* const ssl_;
  const std::string peer_ip_;
  const int peer_port_;
  // The socket's own address, looked up on first use.
  mutable std::string local_ip_;
  mutable int local_port_ = -1;
  const ConnectionLimits& limits_;
  ConnectionCounters& counters_;

  // Allocated on first use and freed once parked a while (IdleConnections):
  // an idle connection costs only this object.
  static constexpr size_t kInSize = 8192;
  static constexpr size_t kOutSize = 16384;
  std::unique_ptr<MappedBuffer> buffer_;  // unread bytes are [begin_, end_)
  size_t begin_ = 0;
  size_t end_ = 0;
  std::unique_ptr<MappedBuffer> out_;  // gathered small writes, [0, out_length_)
  size_t out_length_ = 0;

  bool in_head_ = false;  // between BeginRequest and EndHead
  Clock::time_point head_deadline_{};
  bool close_after_response_ = false;

  bool rejected_ = false;
};

}  // namespace hubcache
