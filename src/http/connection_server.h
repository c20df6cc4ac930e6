#pragma once
// Serves accepted client connections in place of cpp-httplib's own loop (which
// offers no limit on connections and only a per-read timeout): admission
// against the total and per-client connection limits, the TLS handshake, and
// the keep-alive loop over a ConnectionStream, whose head limits stop slow or
// oversized requests. Each request is handed to httplib's request processing.
// A connection over a limit is answered (plain HTTP; a TLS one is closed) and
// counted. Thread-safe: every worker thread serves one connection at a time.

#include <openssl/ssl.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "cache/stats.h"
#include "http/connection_stream.h"

namespace hubcache {

class ConnectionServer {
 public:
  // httplib's process_request for one request on `stream`.
  using ProcessRequest = std::function<bool(httplib::Stream& stream, bool close_connection,
                                            bool& connection_closed, SSL* ssl)>;

  ConnectionServer(ConnectionLimits limits, CacheStats& stats) : limits_(limits), stats_(stats) {}

  // Serves `fd` (accepted, owned from here on) until it closes; `tls` null
  // means plain HTTP.
  bool Serve(int fd, SSL_CTX* tls, const ProcessRequest& process);

  // Graceful stop: idle connections close, responses say Connection: close.
  void Drain() { draining_ = true; }

  const ConnectionLimits& limits() const { return limits_; }

 private:
  enum class Admission { kAdmitted, kOverTotal, kOverClient };
  Admission Admit(const std::string& ip);
  void Release(const std::string& ip);

  const ConnectionLimits limits_;
  CacheStats& stats_;
  std::atomic<bool> draining_{false};
  std::mutex mutex_;
  int open_ = 0;                       // guarded by mutex_
  std::map<std::string, int> per_ip_;  // open connections by address; guarded
};

// The connection the calling worker thread serves (null outside one): lets a
// response body go out with sendfile(2).
ConnectionStream* CurrentConnection();

}  // namespace hubcache
