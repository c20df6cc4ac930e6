#pragma once
// What the connection layer counts: connections open, and every connection or
// request it refused before a route saw it, by reason. Bumped lock-free on the
// connection threads, read by the stats endpoints (http/observability_handlers.h).
// Thread-safe (atomics); owned by whoever runs the ConnectionServer, which
// borrows it for its lifetime.

#include <atomic>
#include <cstdint>

namespace hubcache {

struct ConnectionCounters {
  std::atomic<int64_t> connections_open{0};
  std::atomic<uint64_t> rejected_connections{0};             // over the total: 503
  std::atomic<uint64_t> rejected_connections_per_client{0};  // 429
  std::atomic<uint64_t> rejected_header_timeout{0};          // slowloris: 408
  std::atomic<uint64_t> rejected_request_line_too_long{0};   // 414
  std::atomic<uint64_t> rejected_headers_too_large{0};       // 431
  std::atomic<uint64_t> rejected_too_many_headers{0};        // 431
  std::atomic<uint64_t> rejected_malformed_request{0};       // unparsable, bad framing: 400
  std::atomic<uint64_t> rejected_body_too_large{0};          // 413
  std::atomic<uint64_t> rejected_unsupported{0};  // 501 coding, 505 version, 417 expectation
};

}  // namespace hubcache
