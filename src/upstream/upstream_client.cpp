#include "upstream/upstream_client.h"

#include <curl/curl.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/log.h"
#include "common/strings.h"
#include "upstream/curl_easy.h"

namespace hubcache {
namespace {

constexpr int kMaxRedirects = 5;
constexpr size_t kMaxTokenBodyBytes = 256 * 1024;

// scheme://host:port of a URL (lower-cased, default ports made explicit), or "".
std::string Origin(const std::string& url) {
  CURLU* u = curl_url();
  std::string origin;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      origin = ToLower(scheme) + "://" + ToLower(host) + ":" + port;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return origin;
}

// The host (brackets and IPv6 zone removed) and port of a URL; port 0 when unparsable.
std::pair<std::string, uint16_t> HostAndPort(const std::string& url) {
  CURLU* u = curl_url();
  std::pair<std::string, uint16_t> out{"", 0};
  char* host = nullptr;
  char* port = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    std::string h = host;
    if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
    out.first = h.substr(0, h.find('%'));
    int p = 0;
    std::from_chars(port, port + std::strlen(port), p);
    out.second = static_cast<uint16_t>(p);
  }
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return out;
}

// host + path of a URL for logs: never the query (CDN URLs carry signatures).
std::string Loggable(const std::string& url) {
  size_t q = url.find('?');
  return q == std::string::npos ? url : url.substr(0, q) + "?...";
}

// What the open-socket callback needs to vet a connection before it exists.
struct ConnectContext {
  ConnectGuard* guard = nullptr;
  ConnectGuard::Target target = ConnectGuard::Target::kOther;
  std::string refused;  // why a connection was refused; empty = none was
};

// The port of an AF_INET/AF_INET6 address (sin_port and sin6_port share their offset).
uint16_t PortOf(const sockaddr* address) {
  sockaddr_in in;
  std::memcpy(&in, address, sizeof in);
  return ntohs(in.sin_port);
}

// libcurl's CURLOPT_OPENSOCKETFUNCTION: called with each resolved address
// before connecting to it. A refused address gets no socket, so no packet.
curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* c = static_cast<ConnectContext*>(user);
  if (purpose != CURLSOCKTYPE_IPCXN) {
    c->refused = "unexpected socket purpose";
    return CURL_SOCKET_BAD;
  }
  auto ip = IpAddress::FromSockaddr(&address->addr, address->addrlen);
  if (!ip) {
    c->refused = "not an IP address";
    return CURL_SOCKET_BAD;
  }
  auto verdict = c->guard->Check(*ip, PortOf(&address->addr), c->target);
  if (!verdict.allowed) {
    c->refused = verdict.reason;
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

void ApplyConnectGuard(CURL* h, ConnectContext& context) {
  curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
  curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &context);
}

// State of one transfer, shared with the curl callbacks.
struct TransferContext {
  CURL* handle = nullptr;
  ConnectContext connect;
  StreamSink* sink = nullptr;  // streamed GETs only
  size_t max_body_bytes = 0;
  UpstreamCounters* counters = nullptr;
  UpstreamResponse response;
  bool head_delivered = false;
  bool aborted = false;
  bool too_large = false;
};

size_t OnHeaderLine(char* data, size_t size, size_t n, void* user) {
  AddResponseHeaderLine(std::string_view(data, size * n),
                        static_cast<TransferContext*>(user)->response.headers);
  return size * n;
}

// A 2xx body goes to the sink when streaming; anything else is kept, bounded.
size_t OnBodyData(char* data, size_t size, size_t n, void* user) {
  auto* c = static_cast<TransferContext*>(user);
  size_t bytes = size * n;
  c->counters->bytes_received += bytes;
  const long status = ResponseStatus(c->handle);
  if (c->sink != nullptr && status >= 200 && status < 300) {
    if (!c->head_delivered) {
      c->head_delivered = true;
      c->response.status = static_cast<int>(status);
      if (!c->sink->on_headers(c->response)) {
        c->aborted = true;
        return 0;
      }
    }
    if (!c->sink->on_data(data, bytes)) {
      c->aborted = true;
      return 0;
    }
    return bytes;
  }
  if (c->response.body.size() + bytes > c->max_body_bytes) {
    c->too_large = true;
    return 0;
  }
  c->response.body.append(data, bytes);
  return bytes;
}

size_t AppendBounded(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() + size * n > kMaxTokenBodyBytes) return 0;
  out->append(data, size * n);
  return size * n;
}

// The leading number of a RateLimit-* header ("100;w=21600"), or -1.
int64_t RateLimitValue(const std::string& header) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(header.data(), header.data() + header.size(), v);
  return ec == std::errc() && ptr != header.data() ? v : -1;
}

}  // namespace

struct UpstreamClient::Request {
  std::string method;  // GET or HEAD
  const RepoName* repo = nullptr;
  std::string path;
  std::vector<std::string> headers;
  size_t max_body_bytes = kMaxErrorBodyBytes;
  StreamSink* sink = nullptr;  // set for streamed GETs
  std::chrono::milliseconds total_timeout{0};
};

Result<std::unique_ptr<UpstreamClient>> UpstreamClient::Create(UpstreamOptions options) {
  if (Origin(options.base_url).empty()) {
    return Fail(ErrorKind::kConfigInvalid, "upstream URL is not a valid URL: " + options.base_url);
  }
  return std::unique_ptr<UpstreamClient>(new UpstreamClient(std::move(options)));
}

UpstreamClient::UpstreamClient(UpstreamOptions options)
    : options_(std::move(options)), handles_(std::make_unique<CurlHandlePool>()) {}

UpstreamClient::~UpstreamClient() = default;

Result<UpstreamResponse> UpstreamClient::Fetch(const std::string& method, const RepoName* repo,
                                               const std::string& path,
                                               const std::vector<std::string>& headers,
                                               size_t max_body_bytes) {
  Request request{method, repo, path, headers, max_body_bytes, nullptr, options_.request_timeout};
  return Execute(request);
}

Result<UpstreamResponse> UpstreamClient::Stream(const RepoName& repo, const std::string& path,
                                                const std::vector<std::string>& headers,
                                                StreamSink& sink,
                                                std::chrono::milliseconds total_timeout) {
  Request request{"GET", &repo, path, headers, kMaxErrorBodyBytes, &sink, total_timeout};
  return Execute(request);
}

void UpstreamClient::LearnChallengeOnce() {
  {
    std::lock_guard lock(mutex_);
    if (probed_) return;
  }
  std::lock_guard probe_lock(probe_mutex_);  // concurrent first requests wait for one probe
  {
    std::lock_guard lock(mutex_);
    if (probed_) return;
  }
  Request ping{"GET", nullptr, "/v2/", {}, kMaxErrorBodyBytes, nullptr, options_.request_timeout};
  auto response = FollowRedirects(ping, "");
  std::lock_guard lock(mutex_);
  // Once only, whatever came back: an unreachable upstream is learnt from lazily.
  probed_ = true;
  if (response && response->status == 401) {
    if (auto challenge = PickChallenge(response->Header("www-authenticate")))
      challenge_ = *challenge;
  }
}

Result<UpstreamResponse> UpstreamClient::Execute(Request& request) {
  std::string scope = request.repo ? "repository:" + request.repo->str() + ":pull" : "";
  if (request.repo != nullptr) LearnChallengeOnce();
  bool retried = false;
  while (true) {
    auto authorization = AuthorizationFor(scope);
    if (!authorization) return tl::unexpected(authorization.error());
    auto response = FollowRedirects(request, *authorization);
    if (!response) return response;
    if (response->status != 401 || retried) return response;
    auto challenge = PickChallenge(response->Header("www-authenticate"));
    if (!challenge) return response;
    {
      std::lock_guard lock(mutex_);
      challenge_ = *challenge;
    }
    // Either we had no token yet, or it was refused: learn and retry once.
    tokens_.Invalidate(scope);
    retried = true;
  }
}

Result<UpstreamResponse> UpstreamClient::FollowRedirects(Request& request,
                                                         const std::string& authorization) {
  std::string url = options_.base_url + request.path;
  for (int hop = 0;; ++hop) {
    // Credentials go only to the upstream itself, never to a CDN it redirects to.
    const bool to_upstream = SameOriginAsUpstream(url);
    const std::string& auth = to_upstream ? authorization : std::string();
    if (!to_upstream) {
      // The open-socket callback sees the address actually connected to, but
      // through an HTTP proxy that is the proxy's: a literal is checked here too.
      auto [host, port] = HostAndPort(url);
      if (auto literal = IpAddress::Parse(host)) {
        auto verdict = guard_.Check(*literal, port, ConnectGuard::Target::kOther);
        if (!verdict.allowed) return tl::unexpected(RefusedConnection(url, verdict.reason));
      }
    }
    auto response = PerformOnce(request, url, auth);
    if (!response) return response;
    int s = response->status;
    bool redirect = s == 301 || s == 302 || s == 303 || s == 307 || s == 308;
    std::string location = response->Header("x-hubcache-redirect-url");
    if (!redirect || location.empty()) return response;
    if (hop >= kMaxRedirects) {
      return Fail(ErrorKind::kUpstreamInvalid, "upstream redirected more than 5 times");
    }
    Logger("upstream")->debug("redirect status={} to={}", s, Loggable(location));
    url = location;
  }
}

Result<UpstreamResponse> UpstreamClient::PerformOnce(Request& request, const std::string& url,
                                                     const std::string& authorization) {
  CURL* h = handles_->Acquire();
  if (h == nullptr) return Fail(ErrorKind::kInternal, "libcurl cannot start a transfer");
  TransferContext ctx;
  ctx.handle = h;
  ctx.connect.guard = &guard_;
  ctx.connect.target =
      SameOriginAsUpstream(url) ? ConnectGuard::Target::kUpstream : ConnectGuard::Target::kOther;
  ctx.sink = request.sink;
  ctx.max_body_bytes = request.max_body_bytes;
  ctx.counters = &counters_;

  curl_slist* header_list = nullptr;
  for (const auto& header : request.headers)
    header_list = curl_slist_append(header_list, header.c_str());
  if (!authorization.empty()) {
    header_list = curl_slist_append(header_list, ("Authorization: " + authorization).c_str());
  }
  char error_buffer[CURL_ERROR_SIZE] = {0};
  SetTransferBasics(h, url,
                    {.error_buffer = error_buffer,
                     .connect_timeout = options_.connect_timeout,
                     .stall = options_.stall_timeout});
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(request.total_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024L);
  ApplyTlsOptions(h);
  ApplyConnectGuard(h, ctx.connect);
  if (request.method == "HEAD") curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeaderLine);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBodyData);

  ++counters_.requests;
  CURLcode rc = curl_easy_perform(h);
  const long status = ResponseStatus(h);
  ctx.response.status = static_cast<int>(status);
  ++counters_.by_method_status[request.method == "HEAD"][status > 0 && status < 600 ? status : 0];
  if (auto limit = RateLimitValue(ctx.response.Header("ratelimit-limit")); limit >= 0) {
    counters_.ratelimit_limit = limit;
    counters_.ratelimit_remaining = RateLimitValue(ctx.response.Header("ratelimit-remaining"));
    counters_.ratelimit_seen_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::system_clock::now().time_since_epoch())
                                      .count();
  }
  char* redirect_url = nullptr;
  curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &redirect_url);
  if (redirect_url != nullptr) ctx.response.headers["x-hubcache-redirect-url"] = redirect_url;
  handles_->Release(h);
  curl_slist_free_all(header_list);

  Logger("upstream")
      ->debug("{} {} status={} rc={}", request.method, Loggable(url), status, static_cast<int>(rc));
  if (rc != CURLE_OK) {
    if (!ctx.connect.refused.empty())
      return tl::unexpected(RefusedConnection(url, ctx.connect.refused));
    if (ctx.aborted) return Fail(ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver");
    if (ctx.too_large) {
      return Fail(
          ErrorKind::kUpstreamInvalid,
          "upstream response larger than " + std::to_string(request.max_body_bytes) + " bytes");
    }
    ++counters_.transport_errors;
    std::string detail = error_buffer[0] ? error_buffer : curl_easy_strerror(rc);
    return Fail(ErrorKind::kUpstreamUnavailable, "upstream request failed: " + detail);
  }
  // A streamed 2xx with an empty body still delivers its headers.
  if (request.sink != nullptr && status >= 200 && status < 300 && !ctx.head_delivered) {
    if (!request.sink->on_headers(ctx.response)) {
      return Fail(ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver");
    }
  }
  return std::move(ctx.response);
}

Result<std::string> UpstreamClient::AuthorizationFor(const std::string& scope) {
  std::optional<AuthChallenge> challenge;
  {
    std::lock_guard lock(mutex_);
    challenge = challenge_;
  }
  if (!challenge) return std::string();
  if (challenge->scheme == "basic") {
    if (options_.username.empty()) return std::string();
    return "Basic " + Base64Encode(options_.username + ":" + options_.password);
  }
  if (auto token = tokens_.Get(scope, TokenCache::Clock::now())) return "Bearer " + *token;

  // One token request per scope at a time: concurrent misses wait for it.
  std::shared_ptr<std::mutex> scope_lock;
  {
    std::lock_guard lock(mutex_);
    auto& slot = token_locks_[scope];
    if (!slot) slot = std::make_shared<std::mutex>();
    scope_lock = slot;
  }
  std::lock_guard fetch_lock(*scope_lock);
  if (auto token = tokens_.Get(scope, TokenCache::Clock::now())) return "Bearer " + *token;
  auto token = FetchToken(*challenge, scope);
  if (!token) return tl::unexpected(token.error());
  return "Bearer " + *token;
}

Result<std::string> UpstreamClient::FetchToken(const AuthChallenge& challenge,
                                               const std::string& scope) {
  CURL* h = handles_->Acquire();
  if (h == nullptr) return Fail(ErrorKind::kInternal, "libcurl cannot start a transfer");
  std::string url = challenge.Param("realm");
  url += url.find('?') == std::string::npos ? '?' : '&';
  auto append_param = [&](const char* name, const std::string& value) {
    char* escaped = curl_easy_escape(h, value.c_str(), static_cast<int>(value.size()));
    url += std::string(name) + "=" + escaped + "&";
    curl_free(escaped);
  };
  if (!challenge.Param("service").empty()) append_param("service", challenge.Param("service"));
  if (!scope.empty()) append_param("scope", scope);
  url.pop_back();

  std::string body;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  // The realm is the upstream's choice: vetted like a redirect target.
  ConnectContext connect{
      &guard_,
      SameOriginAsUpstream(url) ? ConnectGuard::Target::kUpstream : ConnectGuard::Target::kOther,
      {}};
  curl_slist* header_list = nullptr;
  if (!options_.username.empty()) {
    header_list = curl_slist_append(
        header_list,
        ("Authorization: Basic " + Base64Encode(options_.username + ":" + options_.password))
            .c_str());
  }
  SetTransferBasics(h, url,
                    {.error_buffer = error_buffer, .connect_timeout = options_.connect_timeout});
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, header_list);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.request_timeout.count()));
  ApplyTlsOptions(h);
  ApplyConnectGuard(h, connect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendBounded);
  ++counters_.token_fetches;
  CURLcode rc = curl_easy_perform(h);
  const long status = ResponseStatus(h);
  handles_->Release(h);
  curl_slist_free_all(header_list);
  Logger("upstream")->debug("token request scope={} status={}", scope, status);

  if (rc != CURLE_OK) {
    if (!connect.refused.empty()) return tl::unexpected(RefusedConnection(url, connect.refused));
    ++counters_.transport_errors;
    return Fail(ErrorKind::kUpstreamUnavailable,
                std::string("token request failed: ") +
                    (error_buffer[0] ? error_buffer : curl_easy_strerror(rc)));
  }
  if (status == 401 || status == 403) {
    return Fail(ErrorKind::kUnauthorized,
                "the upstream's token server refused the configured credentials");
  }
  if (status == 429)
    return Fail(ErrorKind::kTooManyRequests, "the upstream's token server is rate limiting");
  if (status != 200) {
    return Fail(ErrorKind::kUpstreamUnavailable,
                "token server answered HTTP " + std::to_string(status));
  }
  auto doc = nlohmann::json::parse(body, nullptr, false);
  std::string token;
  if (doc.is_object()) {
    if (doc.contains("token") && doc["token"].is_string()) {
      token = doc["token"].get<std::string>();
    } else if (doc.contains("access_token") && doc["access_token"].is_string()) {
      token = doc["access_token"].get<std::string>();
    }
  }
  if (token.empty()) return Fail(ErrorKind::kUpstreamInvalid, "token server sent no token");
  int64_t expires_in = 60;
  if (doc.contains("expires_in") && doc["expires_in"].is_number_integer()) {
    expires_in = doc["expires_in"].get<int64_t>();
  }
  tokens_.Put(scope, token, expires_in, TokenCache::Clock::now());
  return token;
}

void UpstreamClient::ApplyTlsOptions(void* handle) const {
  CURL* h = static_cast<CURL*>(handle);
  if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (options_.insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

UpstreamClient::Reachability UpstreamClient::ProbeReachable(
    std::chrono::milliseconds timeout) const {
  Reachability out;
  CurlEasy easy = NewCurlEasy();
  CURL* h = easy.get();
  if (h == nullptr) {
    out.detail = "cannot start a transfer";
    return out;
  }
  const std::string url = options_.base_url + "/v2/";
  char error[CURL_ERROR_SIZE] = {0};
  SetTransferBasics(h, url,
                    {.user_agent = "hubcache/" HUBCACHE_VERSION " readyz", .error_buffer = error});
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION,
      +[](char*, size_t size, size_t n, void*) -> size_t { return size * n; });
  ApplyTlsOptions(h);
  CURLcode rc = curl_easy_perform(h);
  const long status = ResponseStatus(h);
  out.status = static_cast<int>(status);
  out.reachable = rc == CURLE_OK && status > 0 && status < 500;
  if (rc != CURLE_OK) {
    out.detail = error[0] ? error : curl_easy_strerror(rc);
  } else if (!out.reachable) {
    out.detail = "upstream answered HTTP " + std::to_string(status);
  }
  return out;
}

void UpstreamClient::SetOwnListener(const std::string& host, uint16_t port) {
  guard_.SetOwnListener(ConnectGuard::ListenerAddresses(host), port);
}

Error UpstreamClient::RefusedConnection(const std::string& url, const std::string& reason) {
  ++counters_.connections_refused;
  Logger("upstream")->warn("connection refused url={} reason=\"{}\"", Loggable(url), reason);
  return Error{ErrorKind::kUpstreamInvalid,
               "the upstream pointed at an address hubcache does not connect to: " + reason};
}

bool UpstreamClient::SameOriginAsUpstream(const std::string& url) const {
  return Origin(url) == Origin(options_.base_url);
}

}  // namespace hubcache
