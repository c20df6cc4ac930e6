#pragma once
// The one home of what every libcurl transfer in hubcache shares:
// curl_global_init, run exactly once before the first handle; easy handles,
// owned (CurlEasy) or lent from a pool with their live connections
// (CurlHandlePool); and the parsing of response header lines.
//
// Thread-safety: NewCurlEasy and CurlHandlePool are safe from any thread; one
// easy handle is used by one thread at a time (libcurl's rule). A CurlEasy owns
// its handle; a pool owns its idle handles, and a handle Acquire()d belongs to
// the caller until it is Release()d.

#include <curl/curl.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace hubcache {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

// A new easy handle, libcurl initialised first; null when libcurl cannot make one.
CurlEasy NewCurlEasy();

class CurlHandlePool {
 public:
  CurlHandlePool() = default;
  ~CurlHandlePool();
  CurlHandlePool(const CurlHandlePool&) = delete;
  CurlHandlePool& operator=(const CurlHandlePool&) = delete;

  // An idle handle (usually with a live connection), else a new one; null when
  // libcurl cannot make one.
  CURL* Acquire();
  // Resets the handle's options (its connections stay) and keeps it.
  void Release(CURL* handle);

 private:
  std::mutex mutex_;
  std::vector<CURL*> idle_;  // guarded by mutex_
};

// One header line of a response (as CURLOPT_HEADERFUNCTION receives it) into
// `headers`: names lower-cased, values trimmed, a repeated name's values joined
// by ", ". A status line ("HTTP/...") begins a new response (after 100
// Continue, or a redirect curl follows) and clears what came before.
void AddResponseHeaderLine(std::string_view line, std::map<std::string, std::string>& headers);

// What every transfer sets the same way, in one call: the URL; only http and
// https; no signals (a worker thread must not take SIGALRM); redirects never followed by curl (a
// caller that follows one checks it first); the User-Agent; the error buffer
// (CURL_ERROR_SIZE bytes, the caller's); the connect timeout; and the stall
// rule: less than a byte a second for `stall` ends the transfer.
struct TransferBasics {
  const char* user_agent = "hubcache/" HUBCACHE_VERSION;
  char* error_buffer = nullptr;
  std::chrono::milliseconds connect_timeout{0};  // 0: curl's own
  std::chrono::milliseconds stall{0};            // 0: no stall rule
};
void SetTransferBasics(CURL* handle, const std::string& url, const TransferBasics& basics);

// The HTTP status of the transfer on `handle` so far: 0 before a status line
// (or when none came), else the last response's.
long ResponseStatus(CURL* handle);

// How much of an error body (or another small body) a transfer keeps: enough for
// any registry or S3 error document, never a stream's worth.
inline constexpr size_t kMaxErrorBodyBytes = 64 * 1024;

}  // namespace hubcache
