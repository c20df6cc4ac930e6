#pragma once
// One client connection as httplib reads and writes it: a non-blocking socket,
// plain or TLS, with every wait bounded, and the limits on a request's head
// enforced as its bytes arrive, before httplib parses them:
//   - the request line and headers must arrive within header_timeout of the
//     request's first byte (slowloris): 408;
//   - a request line over max_request_line bytes: 414;
//   - a header section over max_header_bytes, or over max_header_fields: 431;
//   - a header field line without a colon, or folded: 400.
// A limit answers with a registry error (JSON, Connection: close), counts it in
// CacheStats, and fails every later read and write, so httplib gives up on the
// request and the connection is closed.
// Small writes are gathered (a response's head and a manifest body go out in
// one segment) and flushed before any wait for the client, before a large
// write or sendfile, and by Flush(). Not thread-safe: one worker uses it.

#include <openssl/ssl.h>
#include <sys/types.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "cache/stats.h"
#include "common/mapped_buffer.h"

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

class ConnectionStream final : public httplib::Stream {
 public:
  // `ssl` (may be null: plain HTTP) is set up for `fd` and accepts; both stay
  // owned by the caller. `fd` must be non-blocking.
  ConnectionStream(int fd, SSL* ssl, std::string peer_ip, int peer_port,
                   const ConnectionLimits& limits, CacheStats& stats);

  // The TLS handshake, within header_timeout.
  bool Handshake();
  // Waits up to `idle` for the next request's first byte (or the client's
  // close, which the request then reads). kIdle: nothing came; kGone: the
  // socket failed, a flush failed, or `draining` was set meanwhile.
  enum class Next { kRequest, kIdle, kGone };
  Next WaitForRequest(std::chrono::milliseconds idle, const std::atomic<bool>& draining);
  // Frees the buffers while the connection waits parked (they are empty:
  // call after WaitForRequest answered kIdle).
  void ReleaseBuffers();
  // Starts the head of a request: its clock and its byte and field counts.
  void BeginRequest();
  // A limit was hit and answered: the connection must be closed.
  bool rejected() const { return rejected_; }
  // Sends what small writes gathered; false if the client is gone.
  bool Flush();

  // Answers the request with `status` and a registry error (Connection:
  // close), counts it, and fails all later reads and writes.
  void Reject(int status, const char* message, std::atomic<uint64_t>& counter);
  // The request reached the handlers (httplib parsed it). One that did not
  // is refused and the connection closed, never read on as a new request.
  void MarkDispatched() { dispatched_ = true; }
  bool dispatched() const { return dispatched_; }
  // The request's body is not read (a GET that declares one): what follows
  // on the connection cannot be trusted as the next request.
  void CloseAfterResponse() { close_after_response_ = true; }
  bool close_after_response() const { return close_after_response_; }

  // Sends `length` bytes of `file_fd` from `offset` with sendfile(2), bypassing
  // user space; plain connections only (false otherwise, or on failure). The
  // bytes then count as already written: the next write() of exactly `length`
  // bytes sends nothing and reports them written, so httplib's own accounting
  // of the response stays right.
  bool SendFile(int file_fd, off_t offset, size_t length);
  bool can_send_file() const { return ssl_ == nullptr; }

  // httplib::Stream
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  int socket() const override { return fd_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class Io { kReady, kTimeout, kError };

  Io Wait(short events, Clock::time_point deadline) const;
  // More bytes into the buffer; false on EOF, error, timeout or a limit.
  bool Fill();
  // Head-phase accounting of the next `n` bytes handed to httplib: returns how
  // many belong to the head (all of them, or up to its blank line) or 0 after
  // rejecting the request.
  size_t ScanHead(const char* p, size_t n);
  bool WriteAll(const char* p, size_t n, std::chrono::milliseconds timeout);

  const int fd_;
  SSL* const ssl_;
  const std::string peer_ip_;
  const int peer_port_;
  // The socket's own address, looked up on first use (httplib asks per request).
  mutable std::string local_ip_;
  mutable int local_port_ = -1;
  const ConnectionLimits& limits_;
  CacheStats& stats_;

  // Allocated on first use and freed while parked: an idle connection costs
  // only this object.
  static constexpr size_t kInSize = 8192;
  static constexpr size_t kOutSize = 16384;
  std::unique_ptr<MappedBuffer> buffer_;  // unread bytes are [begin_, end_)
  size_t begin_ = 0;
  size_t end_ = 0;
  std::unique_ptr<MappedBuffer> out_;  // gathered small writes, [0, out_length_)
  size_t out_length_ = 0;

  bool in_head_ = false;  // between BeginRequest and the head's blank line
  Clock::time_point head_deadline_{};
  size_t head_bytes_ = 0;
  size_t head_fields_ = 0;
  size_t line_length_ = 0;  // of the current line, CRs not counted
  bool line_has_colon_ = false;
  bool line_folded_ = false;  // starts with a space or tab
  bool first_line_ = true;
  bool dispatched_ = false;
  bool close_after_response_ = false;

  bool rejected_ = false;
  size_t already_sent_ = 0;  // by SendFile, for the next write()
};

}  // namespace hubcache
