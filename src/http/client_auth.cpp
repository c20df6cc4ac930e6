#include "http/client_auth.h"

#include <algorithm>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/strings.h"
#include "http/basic_credentials.h"
#include "http/responses.h"

namespace hubcache {
namespace {

constexpr int kMaxFailuresPerWindow = 10;
constexpr auto kFailureWindow = std::chrono::seconds(60);
constexpr auto kBlockTime = std::chrono::seconds(60);

bool IsHealthProbe(const std::string& path) { return path == "/healthz" || path == "/readyz"; }

}  // namespace

Result<std::unique_ptr<ClientAuth>> ClientAuth::Create(const Config& config, CacheStats& stats) {
  std::unique_ptr<ClientAuth> auth(new ClientAuth(config, stats));
  if (config.auth == "htpasswd") {
    auto file = HtpasswdFile::Load(config.htpasswd_path);
    if (!file) return tl::unexpected(file.error());
    auth->htpasswd_ = std::move(*file);
  }
  unsigned char secret[32];
  if (RAND_bytes(secret, sizeof(secret)) != 1) {
    return Fail(ErrorKind::kInternal, "no randomness for the internal pre-warm credential");
  }
  static const char kHex[] = "0123456789abcdef";
  for (unsigned char b : secret) {
    auth->internal_password_ += kHex[b >> 4];
    auth->internal_password_ += kHex[b & 15];
  }
  return auth;
}

bool ClientAuth::Protects(const std::string& path) const {
  if (!enabled() || IsHealthProbe(path)) return false;
  if (path == "/v2" || StartsWith(path, "/v2/")) return true;
  if (StartsWith(path, "/admin/")) return false;  // the admin API checks its own credentials
  return config_.stats_access != "open";
}

bool ClientAuth::MayWrite(const httplib::Request& req, const std::string& user, HttpResponse& res) {
  if (!enabled() || req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS") {
    return true;
  }
  if (!StartsWith(req.path, "/v2/")) return true;
  const auto& allowed = config_.push_users;
  if (user != kInternalUser &&
      (allowed.empty() || std::find(allowed.begin(), allowed.end(), user) != allowed.end())) {
    return true;
  }
  stats_.push_refused.fetch_add(1, std::memory_order_relaxed);
  WriteError(res, Error{ErrorKind::kDenied,
                        "user " + user + " may not push or delete here (HUBCACHE_PUSH_USERS)"});
  return false;
}

bool ClientAuth::RepeatedAuthorization(const httplib::Request& req) {
  return req.get_header_value_count("Authorization") > 1;
}

void ClientAuth::RefuseRepeatedAuthorization(HttpResponse& res) {
  WriteError(res, Error{ErrorKind::kCredentialsMalformed, "more than one Authorization header"});
}

bool ClientAuth::Verify(const httplib::Request& req, std::string* user) {
  if (RepeatedAuthorization(req)) return false;
  auto credentials = ParseBasicAuthorization(req.get_header_value("Authorization"));
  if (!credentials) return false;
  *user = credentials->user;
  const std::string& password = credentials->password;
  if (*user == kInternalUser) {
    return password.size() == internal_password_.size() &&
           CRYPTO_memcmp(password.data(), internal_password_.data(), password.size()) == 0;
  }
  return htpasswd_->Verify(*user, password);
}

bool ClientAuth::Blocked(const std::string& client) {
  std::lock_guard lock(mutex_);
  auto it = failures_.find(client);
  return it != failures_.end() && std::chrono::steady_clock::now() < it->second.blocked_until;
}

void ClientAuth::RecordFailure(const std::string& client) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (failures_.size() > 100'000) failures_.clear();  // bounded memory under a spray of addresses
  auto& f = failures_[client];
  if (now - f.window_start > kFailureWindow) {
    f.window_start = now;
    f.count = 0;
  }
  if (++f.count >= kMaxFailuresPerWindow) f.blocked_until = now + kBlockTime;
}

bool ClientAuth::Authenticate(const httplib::Request& req, HttpResponse& res, std::string* user) {
  if (Blocked(req.remote_addr)) {
    ++stats_.auth_rate_limited;
    res.set_header("Retry-After", std::to_string(kBlockTime.count()));
    WriteError(res, Error{ErrorKind::kTooManyRequests, "too many failed authentication attempts"});
    return false;
  }
  bool has_credentials = req.has_header("Authorization");
  if (has_credentials && Verify(req, user)) return true;
  if (has_credentials) {
    ++stats_.auth_failures;
    RecordFailure(req.remote_addr);
    Logger("auth")->warn("authentication failed client={} user={}", req.remote_addr, *user);
  }
  if (RepeatedAuthorization(req)) {
    RefuseRepeatedAuthorization(res);
    return false;
  }
  res.set_header("WWW-Authenticate", "Basic realm=\"" + config_.htpasswd_realm + "\"");
  WriteError(res, Error{ErrorKind::kUnauthorized, "authentication required"});
  return false;
}

bool ClientAuth::IsAdmin(const httplib::Request& req) {
  if (!enabled() || config_.admin_users.empty() || Blocked(req.remote_addr)) return false;
  std::string user;
  if (!Verify(req, &user)) {
    if (req.has_header("Authorization")) RecordFailure(req.remote_addr);
    return false;
  }
  if (user == kInternalUser) return false;
  for (const auto& admin : config_.admin_users) {
    if (admin == user) return true;
  }
  return false;
}

bool ClientAuth::Enter(const std::string& client, HttpResponse& res) {
  {
    std::lock_guard lock(mutex_);
    int& n = in_flight_[client];
    if (n < config_.max_requests_per_client) {
      ++n;
      return true;
    }
  }
  ++stats_.client_limit_rejections;
  res.set_header("Retry-After", "1");
  res.set_header("Connection", "close");
  WriteError(res,
             Error{ErrorKind::kTooManyRequests, "too many concurrent requests from this address"});
  return false;
}

void ClientAuth::Leave(const std::string& client) {
  std::lock_guard lock(mutex_);
  auto it = in_flight_.find(client);
  if (it != in_flight_.end() && --it->second <= 0) in_flight_.erase(it);
}

}  // namespace hubcache
