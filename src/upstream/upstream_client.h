#pragma once
// The libcurl client for the upstream registry.
//
// It speaks the registry auth protocol the way Docker Hub needs it: a request
// that answers 401 with a WWW-Authenticate challenge gets a token from the
// challenge's realm (anonymously or with the configured credentials), cached per
// scope, and is retried once. The challenge is learned lazily, so the mirror
// starts with the upstream unreachable. Redirects (Docker Hub's 307 to its CDN)
// are followed here, not by curl, so that Authorization is sent only to the
// upstream's own origin. Every connection is vetted before it is opened
// (upstream/connect_guard.h): a redirect or token realm that points into the
// mirror's own network, or at hubcache itself, is refused. Easy handles are
// pooled so connections are reused.
//
// Thread-safe: any number of threads may call Fetch/Stream concurrently.

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "registry/reference.h"
#include "upstream/connect_guard.h"
#include "upstream/token_cache.h"
#include "upstream/www_authenticate.h"

namespace hubcache {

class CurlHandlePool;  // upstream/curl_easy.h

struct UpstreamOptions {
  std::string base_url;  // "https://registry-1.docker.io", no trailing slash
  std::string username;  // empty = anonymous
  std::string password;
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds stall_timeout{30'000};
  std::string ca_file;    // PEM bundle for the upstream's TLS; empty = system CAs
  bool insecure = false;  // skip TLS verification (lab use only)
  // Bound on a whole small request (manifest, token, tag list).
  std::chrono::milliseconds request_timeout{60'000};
};

struct UpstreamResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names; repeats joined by ", "
  std::string body;                            // error bodies and small responses only

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Receives a streamed 2xx body. Either callback returns false to abort.
struct StreamSink {
  std::function<bool(const UpstreamResponse& head)> on_headers;
  std::function<bool(const char* data, size_t size)> on_data;
};

// What the client has done, for stats.
struct UpstreamCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> token_fetches{0};
  std::atomic<uint64_t> transport_errors{0};
  std::atomic<uint64_t> bytes_received{0};
  // Connections not opened because the upstream pointed at an address refused
  // by the connect guard (an internal address, or hubcache itself).
  std::atomic<uint64_t> connections_refused{0};
  // Registry requests by method (0: GET, 1: HEAD) and status (0: no response).
  std::array<std::array<std::atomic<uint64_t>, 600>, 2> by_method_status{};
  // The last RateLimit-Limit / RateLimit-Remaining the upstream sent (Docker
  // Hub: "100;w=21600"), -1 before any; when, in unix ms.
  std::atomic<int64_t> ratelimit_limit{-1};
  std::atomic<int64_t> ratelimit_remaining{-1};
  std::atomic<int64_t> ratelimit_seen_ms{0};
};

class UpstreamClient {
 public:
  [[nodiscard]] static Result<std::unique_ptr<UpstreamClient>> Create(UpstreamOptions options);
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // GET or HEAD `path` (starting with /v2/) on behalf of `repo` (its pull scope
  // is what a token is asked for; nullptr for /v2/ itself). The body is kept up
  // to max_body_bytes; a longer one fails with kUpstreamInvalid. Only transport
  // failures are errors: HTTP statuses come back in the response.
  [[nodiscard]] Result<UpstreamResponse> Fetch(const std::string& method, const RepoName* repo,
                                               const std::string& path,
                                               const std::vector<std::string>& headers,
                                               size_t max_body_bytes);

  // GET `path` with a 2xx body streamed to `sink`; other statuses come back with
  // their (small) body. total_timeout bounds the whole transfer.
  [[nodiscard]] Result<UpstreamResponse> Stream(const RepoName& repo, const std::string& path,
                                                const std::vector<std::string>& headers,
                                                StreamSink& sink,
                                                std::chrono::milliseconds total_timeout);

  const UpstreamCounters& counters() const { return counters_; }

  // Whether the upstream answers HTTP at all: a GET of /v2/ without
  // credentials within `timeout`, with the same TLS trust as the registry
  // traffic but outside it (a fresh connection, not counted, no token, no
  // retries). Any status below 500 counts (an anonymous /v2/ answers 401).
  struct Reachability {
    bool reachable = false;
    int status = 0;      // 0: no HTTP answer
    std::string detail;  // why not, when not
  };
  [[nodiscard]] Reachability ProbeReachable(std::chrono::milliseconds timeout) const;

  // Where hubcache itself listens ("host" as in --addr, "" = all interfaces):
  // the client never connects there, whatever the upstream redirects to.
  void SetOwnListener(const std::string& host, uint16_t port);

 private:
  struct Request;

  explicit UpstreamClient(UpstreamOptions options);

  // Before the first request for a repository, asks GET /v2/ for the auth
  // challenge (as registry clients do), so that the first blob or manifest
  // request already carries a token instead of drawing a 401 and a retry.
  void LearnChallengeOnce();
  Result<UpstreamResponse> Execute(Request& request);
  Result<UpstreamResponse> FollowRedirects(Request& request, const std::string& authorization);
  Result<UpstreamResponse> PerformOnce(Request& request, const std::string& url,
                                       const std::string& authorization);
  // The Authorization header value for a scope ("" = none), fetching a token if
  // the upstream uses bearer auth and none is cached.
  Result<std::string> AuthorizationFor(const std::string& scope);
  Result<std::string> FetchToken(const AuthChallenge& challenge, const std::string& scope);
  bool SameOriginAsUpstream(const std::string& url) const;
  // Counts and logs a connection the guard refused; the error for the caller.
  Error RefusedConnection(const std::string& url, const std::string& reason);
  // The upstream's TLS trust (REGISTRY_PROXY_CA, HUBCACHE_UPSTREAM_INSECURE) on
  // a curl easy handle (a CURL*): the one home of these settings.
  void ApplyTlsOptions(void* handle) const;

  const UpstreamOptions options_;
  std::unique_ptr<CurlHandlePool> handles_;
  TokenCache tokens_;
  UpstreamCounters counters_;
  ConnectGuard guard_;

  std::mutex probe_mutex_;  // held while LearnChallengeOnce asks the upstream
  std::mutex mutex_;
  bool probed_ = false;                                             // guarded by mutex_
  std::optional<AuthChallenge> challenge_;                          // guarded by mutex_
  std::map<std::string, std::shared_ptr<std::mutex>> token_locks_;  // guarded by mutex_
};

}  // namespace hubcache
