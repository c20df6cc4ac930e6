#pragma once
// Who may pull: client authentication (htpasswd, Basic) with failed attempts
// rate-limited per client address, and the per-client limit on requests in
// flight. Thread-safe; owns the htpasswd file's entries, borrows the stats
// (which must outlive it). Never logs passwords or Authorization headers.

#include <httplib.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cache/stats.h"
#include "common/result.h"
#include "config/config.h"
#include "http/htpasswd.h"
#include "server/http_response.h"

namespace hubcache {

class ClientAuth {
 public:
  // Loads the htpasswd file when REGISTRY_AUTH=htpasswd; fails clearly if it
  // is missing, unreadable or empty.
  [[nodiscard]] static Result<std::unique_ptr<ClientAuth>> Create(const Config& config,
                                                                  CacheStats& stats);

  bool enabled() const { return htpasswd_ != nullptr; }

  // Whether `path` needs credentials: /v2/... when auth is on, the stats pages
  // per HUBCACHE_STATS_ACCESS (default: when auth is on); health probes never.
  bool Protects(const std::string& path) const;

  // True when the request carries valid credentials (sets *user). Otherwise
  // writes the answer: 401 with the Basic challenge, 400 when the request has
  // more than one Authorization field (RepeatedAuthorization), or 429 when the
  // client address failed too often lately.
  bool Authenticate(const httplib::Request& req, HttpResponse& res, std::string* user);

  // Whether the authenticated `user` may make this request when it writes
  // (POST, PUT, PATCH, DELETE under /v2/): with client auth on, only users in
  // HUBCACHE_PUSH_USERS when set, never the internal pre-warm user. Otherwise
  // writes 403 DENIED. Reads, and everything without client auth, pass.
  bool MayWrite(const httplib::Request& req, const std::string& user, HttpResponse& res);

  // Basic credentials of an htpasswd user listed in HUBCACHE_ADMIN_USERS.
  bool IsAdmin(const httplib::Request& req);

  // Authorization is a singleton field (RFC 9110 sections 5.3 and 11.6.2): a
  // request with two is malformed and is refused with 400 (as RFC 9112 does
  // for two Host fields) rather than letting one of them win, as the CNCF
  // registry does (Go's Header.Get takes the first).
  static bool RepeatedAuthorization(const httplib::Request& req);
  static void RefuseRepeatedAuthorization(HttpResponse& res);

  // The server's own pre-warm (keep-warm, admin jobs) pulls as this user with
  // a random password made at start and kept in memory only. No htpasswd
  // entry can stand for the user, and it is never an admin.
  static constexpr const char* kInternalUser = "hubcache-internal";
  const std::string& internal_password() const { return internal_password_; }

  // Per-client requests in flight: Enter fails (429 written) over the limit.
  bool Enter(const std::string& client, HttpResponse& res);
  void Leave(const std::string& client);

 private:
  ClientAuth(const Config& config, CacheStats& stats) : config_(config), stats_(stats) {}
  bool Verify(const httplib::Request& req, std::string* user);
  bool Blocked(const std::string& client);
  void RecordFailure(const std::string& client);

  struct Failures {
    int count = 0;
    std::chrono::steady_clock::time_point window_start;
    std::chrono::steady_clock::time_point blocked_until;
  };

  const Config config_;
  CacheStats& stats_;
  std::unique_ptr<HtpasswdFile> htpasswd_;
  std::string internal_password_;  // hex of 32 random bytes; set by Create
  std::mutex mutex_;
  std::map<std::string, Failures> failures_;  // by client address; guarded by mutex_
  std::map<std::string, int> in_flight_;      // by client address; guarded by mutex_
};

}  // namespace hubcache
