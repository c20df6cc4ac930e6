#include "config/config.h"

#include <curl/curl.h>
#include <algorithm>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <set>

#include "common/log.h"
#include "common/strings.h"
#include "registry/repo_sources.h"

extern char** environ;

namespace hubcache {
namespace {

using Setter = std::function<Status(Config&, const std::string&)>;

// A setting's value shown back (check-config, the reference): its text in the
// form the flag takes, and whether it is a secret to mask.
struct Shown {
  std::string text;
  bool secret = false;
};
using Getter = std::function<Shown(const Config&)>;

// Every setting has both: the getter is not optional (a row without one fails
// to compile under -Werror), so check-config can never miss a setting.
struct Setting {
  SettingInfo info;
  Setter set;
  Getter get;  // Field(&Config::member), or SecretField for passwords and tokens
};

// The text of a value, as its setting's parser takes it back.
std::string ShowValue(const std::string& v) { return v; }
std::string ShowValue(bool v) { return v ? "true" : "false"; }
std::string ShowValue(int v) { return std::to_string(v); }
std::string ShowValue(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}
std::string ShowValue(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}
// Bytes in the largest unit that divides them exactly: binary first, as caps are meant.
std::string ShowValue(uint64_t bytes) {
  static const std::pair<uint64_t, const char*> kUnits[] = {
      {1ULL << 40, "TiB"},          {1ULL << 30, "GiB"},
      {1ULL << 20, "MiB"},          {1ULL << 10, "KiB"},
      {1'000'000'000'000ULL, "TB"}, {1'000'000'000ULL, "GB"},
      {1'000'000ULL, "MB"},         {1000ULL, "KB"}};
  if (bytes == 0) return "0";
  for (const auto& [size, unit] : kUnits) {
    if (bytes % size == 0) return std::to_string(bytes / size) + unit;
  }
  return std::to_string(bytes);
}
// A share as a percentage: 0.9 -> "90%".
std::string ShowValue(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g%%", fraction * 100.0);
  return buf;
}

template <typename T>
Getter Field(T Config::*member) {
  return [member](const Config& c) { return Shown{ShowValue(c.*member), false}; };
}
Getter SecretField(std::string Config::*member) {
  return [member](const Config& c) { return Shown{ShowValue(c.*member), true}; };
}

Status SetDuration(std::chrono::milliseconds& field, const std::string& name,
                   const std::string& value, bool allow_zero) {
  auto d = ParseDuration(value);
  if (!d) return Fail(ErrorKind::kConfigInvalid, name + ": " + d.error().message);
  if (!allow_zero && d->count() == 0) {
    return Fail(ErrorKind::kConfigInvalid, name + ": must be greater than zero");
  }
  field = *d;
  return {};
}

// A whole number from `min` to `max`.
Status SetBool(bool& field, const std::string& name, const std::string& value) {
  if (value != "true" && value != "false") {
    return Fail(ErrorKind::kConfigInvalid, name + ": expected true or false, got '" + value + "'");
  }
  field = value == "true";
  return {};
}

Status SetCount(int& field, const std::string& name, const std::string& value, int min, int max) {
  int n = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || n < min ||
      n > max) {
    return Fail(ErrorKind::kConfigInvalid, name + ": expected a number from " +
                                               std::to_string(min) + " to " + std::to_string(max) +
                                               ", got '" + value + "'");
  }
  field = n;
  return {};
}

// The lower-cased host[:port] (the port only when written) of an
// http(s)://host[:port][/path] URL with a non-empty host; nullopt for anything
// else. Parsed by libcurl's URL API, the same parser that later uses it.
std::optional<std::string> HttpUrlAuthority(const std::string& url) {
  // curl forgives "https:///x" (taking x as the host); an operator meant something else.
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) return std::nullopt;
  if (url.compare(url.find("://") + 3, 1, "/") == 0) return std::nullopt;
  CURLU* u = curl_url();
  std::optional<std::string> authority;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      std::string s = scheme;
      if ((s == "http" || s == "https") && host[0] != '\0') {
        authority = ToLower(host);
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK)
          *authority += ":" + std::string(port);
      }
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return authority;
}

bool IsHttpUrlWithHost(const std::string& url) { return HttpUrlAuthority(url).has_value(); }

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item =
        text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

Status CheckAddr(const std::string& name, const std::string& value) {
  size_t colon = value.rfind(':');
  if (colon == std::string::npos) {
    return Fail(ErrorKind::kConfigInvalid,
                name + ": expected host:port or :port, got '" + value + "'");
  }
  std::string port = value.substr(colon + 1);
  int p = -1;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p < 0 || p > 65535) {
    return Fail(ErrorKind::kConfigInvalid, name + ": invalid port in '" + value + "'");
  }
  return {};
}

const std::vector<Setting>& AllSettings() {
  static const std::vector<Setting> settings = {
      {{"--addr", "REGISTRY_HTTP_ADDR", "listen address, host:port or :port (default :5000)"},
       [](Config& c, const std::string& v) -> Status {
         if (auto s = CheckAddr("--addr/REGISTRY_HTTP_ADDR", v); !s) return s;
         c.http_addr = v;
         return {};
       },
       Field(&Config::http_addr)},
      {{"--upstream", "REGISTRY_PROXY_REMOTEURL",
        "registry to mirror (default https://registry-1.docker.io)"},
       [](Config& c, const std::string& v) -> Status {
         if (!IsHttpUrlWithHost(v)) {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--upstream/REGISTRY_PROXY_REMOTEURL: expected an http:// or https:// URL, got '" +
                   v + "'");
         }
         c.upstream_url = v;
         while (c.upstream_url.size() > 8 && c.upstream_url.back() == '/')
           c.upstream_url.pop_back();
         return {};
       },
       Field(&Config::upstream_url)},
      {{"--upstream-username", "REGISTRY_PROXY_USERNAME", "upstream user (default: anonymous)"},
       [](Config& c, const std::string& v) -> Status {
         c.upstream_username = v;
         return {};
       },
       Field(&Config::upstream_username)},
      {{"--upstream-password", "REGISTRY_PROXY_PASSWORD", "upstream password or access token"},
       [](Config& c, const std::string& v) -> Status {
         c.upstream_password = v;
         return {};
       },
       SecretField(&Config::upstream_password)},
      {{"--proxy-ttl", "REGISTRY_PROXY_TTL",
        "remove cached content not used for this long, e.g. 168h; 0 = never (default 0s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.proxy_ttl, "--proxy-ttl/REGISTRY_PROXY_TTL", v, true);
       },
       Field(&Config::proxy_ttl)},
      {{"--root", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "cache directory (default ./data)"},
       [](Config& c, const std::string& v) -> Status {
         if (v.empty()) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--root/REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: must not be empty");
         }
         c.root_dir = v;
         return {};
       },
       Field(&Config::root_dir)},
      {{"--log-level", "REGISTRY_LOG_LEVEL", "error, warn, info or debug (default info)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "error" && v != "warn" && v != "warning" && v != "info" && v != "debug") {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--log-level/REGISTRY_LOG_LEVEL: expected error, warn, info or debug, got '" + v +
                   "'");
         }
         c.log_level = v;
         return {};
       },
       Field(&Config::log_level)},
      {{"--tag-freshness", "HUBCACHE_TAG_FRESHNESS",
        "serve a cached tag without asking upstream for this long (default 60s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.tag_freshness, "--tag-freshness/HUBCACHE_TAG_FRESHNESS", v, true);
       },
       Field(&Config::tag_freshness)},
      {{"--upstream-connect-timeout", "HUBCACHE_UPSTREAM_CONNECT_TIMEOUT",
        "upstream connection timeout (default 10s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.upstream_connect_timeout,
                            "--upstream-connect-timeout/HUBCACHE_UPSTREAM_CONNECT_TIMEOUT", v,
                            false);
       },
       Field(&Config::upstream_connect_timeout)},
      {{"--upstream-stall-timeout", "HUBCACHE_UPSTREAM_STALL_TIMEOUT",
        "abandon an upstream transfer idle this long (default 30s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.upstream_stall_timeout,
                            "--upstream-stall-timeout/HUBCACHE_UPSTREAM_STALL_TIMEOUT", v, false);
       },
       Field(&Config::upstream_stall_timeout)},
      {{"--fill-timeout", "HUBCACHE_FILL_TIMEOUT", "upper bound on one blob download (default 1h)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.fill_timeout, "--fill-timeout/HUBCACHE_FILL_TIMEOUT", v, false);
       },
       Field(&Config::fill_timeout)},
      {{"--max-connections", "HUBCACHE_MAX_CONNECTIONS",
        "open client connections (idle keep-alive ones included); more get 503 (default 1000)"},
       [](Config& c, const std::string& v) {
         return SetCount(c.max_connections, "--max-connections/HUBCACHE_MAX_CONNECTIONS", v, 4,
                         65536);
       },
       Field(&Config::max_connections)},
      {{"--max-connections-per-client", "HUBCACHE_MAX_CONNECTIONS_PER_CLIENT",
        "open connections from one client address; more get 429 (default 128)"},
       [](Config& c, const std::string& v) {
         return SetCount(c.max_connections_per_client,
                         "--max-connections-per-client/HUBCACHE_MAX_CONNECTIONS_PER_CLIENT", v, 1,
                         65536);
       },
       Field(&Config::max_connections_per_client)},
      {{"--header-timeout", "HUBCACHE_HEADER_TIMEOUT",
        "a request's line and headers must arrive within this long, else 408 (default 20s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.header_timeout, "--header-timeout/HUBCACHE_HEADER_TIMEOUT", v, false);
       },
       Field(&Config::header_timeout)},
      {{"--keepalive-timeout", "HUBCACHE_KEEPALIVE_TIMEOUT",
        "close idle client connections after this long (default 10s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.keepalive_timeout, "--keepalive-timeout/HUBCACHE_KEEPALIVE_TIMEOUT",
                            v, false);
       },
       Field(&Config::keepalive_timeout)},
      {{"--cache-max-size", "HUBCACHE_CACHE_MAX_SIZE",
        "cap on the cache size, e.g. 50GiB or 500MB; 0 = unlimited (default 0)"},
       [](Config& c, const std::string& v) -> Status {
         auto size = ParseByteSize(v);
         if (!size) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--cache-max-size/HUBCACHE_CACHE_MAX_SIZE: " + size.error().message);
         }
         c.cache_max_size_bytes = *size;
         return {};
       },
       Field(&Config::cache_max_size_bytes)},
      {{"--cache-low-watermark", "HUBCACHE_CACHE_LOW_WATERMARK",
        "eviction goes down to this share of the cap (default 90%)"},
       [](Config& c, const std::string& v) -> Status {
         auto f = ParseFraction(v);
         if (!f || *f <= 0) {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--cache-low-watermark/HUBCACHE_CACHE_LOW_WATERMARK: expected a share above 0 "
               "like 90% or 0.9, got '" +
                   v + "'");
         }
         c.cache_low_watermark = *f;
         return {};
       },
       Field(&Config::cache_low_watermark)},
      {{"--min-free", "HUBCACHE_MIN_FREE",
        "evict when the disk has less free space than this share (default 5%)"},
       [](Config& c, const std::string& v) -> Status {
         auto f = ParseFraction(v);
         if (!f || *f >= 1) {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--min-free/HUBCACHE_MIN_FREE: expected a share below 100% like 5% or 0.05, got '" +
                   v + "'");
         }
         c.min_free_fraction = *f;
         return {};
       },
       Field(&Config::min_free_fraction)},
      {{"--access-flush-interval", "HUBCACHE_ACCESS_FLUSH_INTERVAL",
        "write batched last-use times to the index this often (default 5s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.access_flush_interval,
                            "--access-flush-interval/HUBCACHE_ACCESS_FLUSH_INTERVAL", v, false);
       },
       Field(&Config::access_flush_interval)},
      {{"--shutdown-grace", "HUBCACHE_SHUTDOWN_GRACE",
        "on SIGTERM, let transfers in flight finish for this long (default 30s)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.shutdown_grace, "--shutdown-grace/HUBCACHE_SHUTDOWN_GRACE", v, true);
       },
       Field(&Config::shutdown_grace)},
      {{"--admin-token", "HUBCACHE_ADMIN_TOKEN",
        "bearer token that enables the admin API under /admin/ (default: off)"},
       [](Config& c, const std::string& v) -> Status {
         if (!v.empty() && v.size() < 16) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--admin-token/HUBCACHE_ADMIN_TOKEN: must be at least 16 characters");
         }
         c.admin_token = v;
         return {};
       },
       SecretField(&Config::admin_token)},
      {{"--admin-users", "HUBCACHE_ADMIN_USERS",
        "comma-separated htpasswd users allowed to use the admin API (default: none)"},
       [](Config& c, const std::string& v) -> Status {
         c.admin_users = SplitList(v);
         return {};
       },
       Field(&Config::admin_users)},
      {{"--tls-certificate", "REGISTRY_HTTP_TLS_CERTIFICATE",
        "PEM certificate (chain allowed) to serve HTTPS (default: plain HTTP)"},
       [](Config& c, const std::string& v) -> Status {
         c.tls_certificate = v;
         return {};
       },
       Field(&Config::tls_certificate)},
      {{"--tls-key", "REGISTRY_HTTP_TLS_KEY", "PEM private key of the TLS certificate"},
       [](Config& c, const std::string& v) -> Status {
         c.tls_key = v;
         return {};
       },
       Field(&Config::tls_key)},
      {{"--tls-client-cas", "REGISTRY_HTTP_TLS_CLIENTCAS",
        "comma-separated PEM CA files: require client certificates they signed"},
       [](Config& c, const std::string& v) -> Status {
         c.tls_client_cas = SplitList(v);
         return {};
       },
       Field(&Config::tls_client_cas)},
      {{"--auth", "REGISTRY_AUTH", "client authentication: htpasswd (default: none)"},
       [](Config& c, const std::string& v) -> Status {
         if (!v.empty() && v != "htpasswd" && v != "none") {
           return Fail(ErrorKind::kConfigInvalid,
                       "--auth/REGISTRY_AUTH: only htpasswd is supported, got '" + v + "'");
         }
         c.auth = v == "none" ? "" : v;
         return {};
       },
       Field(&Config::auth)},
      {{"--htpasswd-path", "REGISTRY_AUTH_HTPASSWD_PATH", "htpasswd file (bcrypt entries)"},
       [](Config& c, const std::string& v) -> Status {
         c.htpasswd_path = v;
         return {};
       },
       Field(&Config::htpasswd_path)},
      {{"--htpasswd-realm", "REGISTRY_AUTH_HTPASSWD_REALM",
        "realm in the Basic challenge (default hubcache)"},
       [](Config& c, const std::string& v) -> Status {
         if (v.empty() || v.find_first_of("\"\r\n") != std::string::npos) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--htpasswd-realm/REGISTRY_AUTH_HTPASSWD_REALM: must be non-empty text "
                       "without quotes or line breaks");
         }
         c.htpasswd_realm = v;
         return {};
       },
       Field(&Config::htpasswd_realm)},
      {{"--max-requests-per-client", "HUBCACHE_MAX_REQUESTS_PER_CLIENT",
        "requests one client address may have in flight (default 64)"},
       [](Config& c, const std::string& v) {
         return SetCount(c.max_requests_per_client,
                         "--max-requests-per-client/HUBCACHE_MAX_REQUESTS_PER_CLIENT", v, 1, 65536);
       },
       Field(&Config::max_requests_per_client)},
      {{"--upstream-ca", "REGISTRY_PROXY_CA", "PEM CA bundle to verify the upstream's TLS"},
       [](Config& c, const std::string& v) -> Status {
         if (!v.empty() && !std::ifstream(v).good()) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--upstream-ca/REGISTRY_PROXY_CA: cannot read '" + v + "'");
         }
         c.upstream_ca = v;
         return {};
       },
       Field(&Config::upstream_ca)},
      {{"--upstream-insecure", "HUBCACHE_UPSTREAM_INSECURE",
        "true: do not verify the upstream's TLS (lab use only)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "true" && v != "false") {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--upstream-insecure/HUBCACHE_UPSTREAM_INSECURE: expected true or false, got '" + v +
                   "'");
         }
         c.upstream_insecure = v == "true";
         return {};
       },
       Field(&Config::upstream_insecure)},
      {{"--access-log", "HUBCACHE_ACCESS_LOG",
        "one line per request to stdout, stderr, a file path, or off (default stdout)"},
       [](Config& c, const std::string& v) -> Status {
         if (v.empty()) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--access-log/HUBCACHE_ACCESS_LOG: expected stdout, stderr, off or a path");
         }
         c.access_log = v;
         return {};
       },
       Field(&Config::access_log)},
      {{"--access-log-format", "HUBCACHE_ACCESS_LOG_FORMAT",
        "access log lines as text (key=value) or json (default text)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "text" && v != "json") {
           return Fail(ErrorKind::kConfigInvalid,
                       "--access-log-format/HUBCACHE_ACCESS_LOG_FORMAT: expected text or json, "
                       "got '" +
                           v + "'");
         }
         c.access_log_format = v;
         return {};
       },
       Field(&Config::access_log_format)},
      {{"--stats-access", "HUBCACHE_STATS_ACCESS",
        "who may read /, /stats, /metrics: open or auth (default: auth if client auth is on)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "open" && v != "auth") {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--stats-access/HUBCACHE_STATS_ACCESS: expected open or auth, got '" + v + "'");
         }
         c.stats_access = v;
         return {};
       },
       Field(&Config::stats_access)},
      {{"--prewarm-file", "HUBCACHE_PREWARM_FILE",
        "keep the images listed in this file warm (default: none)"},
       [](Config& c, const std::string& v) -> Status {
         c.prewarm_file = v;
         return {};
       },
       Field(&Config::prewarm_file)},
      {{"--prewarm-interval", "HUBCACHE_PREWARM_INTERVAL",
        "re-run the --prewarm-file list this often (default 6h)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.prewarm_interval, "--prewarm-interval/HUBCACHE_PREWARM_INTERVAL", v,
                            false);
       },
       Field(&Config::prewarm_interval)},
      {{"--hosted", "HUBCACHE_HOSTED",
        "comma-separated repository patterns hosted here (chatsuite/*, team/app, *): pushed to, "
        "never fetched upstream (default: none, a pure mirror)"},
       [](Config& c, const std::string& v) -> Status {
         std::vector<std::string> patterns = SplitList(v);
         for (const auto& p : patterns) {
           if (auto s = CheckRepoPattern(p); !s) {
             return Fail(ErrorKind::kConfigInvalid,
                         "--hosted/HUBCACHE_HOSTED: " + s.error().message);
           }
         }
         c.hosted = std::move(patterns);
         return {};
       },
       Field(&Config::hosted)},
      {{"--delete-enabled", "REGISTRY_STORAGE_DELETE_ENABLED",
        "true: DELETE of hosted manifests, tags and blobs (default false)"},
       [](Config& c, const std::string& v) {
         return SetBool(c.delete_enabled, "--delete-enabled/REGISTRY_STORAGE_DELETE_ENABLED", v);
       },
       Field(&Config::delete_enabled)},
      {{"--push-users", "HUBCACHE_PUSH_USERS",
        "comma-separated htpasswd users allowed to push and delete (default: every user)"},
       [](Config& c, const std::string& v) -> Status {
         c.push_users = SplitList(v);
         return {};
       },
       Field(&Config::push_users)},
      {{"--upload-purging", "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED",
        "true: remove abandoned uploads (default true)"},
       [](Config& c, const std::string& v) {
         return SetBool(c.upload_purge_enabled,
                        "--upload-purging/REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_ENABLED", v);
       },
       Field(&Config::upload_purge_enabled)},
      {{"--upload-purging-age", "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
        "an upload untouched this long is abandoned (default 168h)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.upload_purge_age,
                            "--upload-purging-age/REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE",
                            v, false);
       },
       Field(&Config::upload_purge_age)},
      {{"--upload-purging-interval", "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL",
        "look for abandoned uploads this often (default 24h)"},
       [](Config& c, const std::string& v) {
         return SetDuration(
             c.upload_purge_interval,
             "--upload-purging-interval/REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_INTERVAL", v,
             false);
       },
       Field(&Config::upload_purge_interval)},
      {{"--upload-purging-dry-run", "REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN",
        "true: only log the abandoned uploads (default false)"},
       [](Config& c, const std::string& v) {
         return SetBool(
             c.upload_purge_dry_run,
             "--upload-purging-dry-run/REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_DRYRUN", v);
       },
       Field(&Config::upload_purge_dry_run)},
      {{"--storage", "REGISTRY_STORAGE",
        "where blobs are kept: filesystem, or s3 (an S3-compatible object store; default "
        "filesystem)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "filesystem" && v != "s3") {
           return Fail(ErrorKind::kConfigInvalid,
                       "--storage/REGISTRY_STORAGE: expected filesystem or s3, got '" + v + "'");
         }
         c.storage = v;
         return {};
       },
       Field(&Config::storage)},
      {{"--s3-bucket", "REGISTRY_STORAGE_S3_BUCKET", "S3 bucket (needed with storage s3)"},
       [](Config& c, const std::string& v) -> Status {
         if (!std::all_of(v.begin(), v.end(), [](char ch) {
               return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
             })) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--s3-bucket/REGISTRY_STORAGE_S3_BUCKET: not a bucket name: '" + v + "'");
         }
         c.s3_bucket = v;
         return {};
       },
       Field(&Config::s3_bucket)},
      {{"--s3-region", "REGISTRY_STORAGE_S3_REGION",
        "S3 region (default AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)"},
       [](Config& c, const std::string& v) -> Status {
         if (v.empty() || v.find_first_of(": \t\r\n/") != std::string::npos) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--s3-region/REGISTRY_STORAGE_S3_REGION: not a region: '" + v + "'");
         }
         c.s3_region = v;
         return {};
       },
       Field(&Config::s3_region)},
      {{"--s3-region-endpoint", "REGISTRY_STORAGE_S3_REGIONENDPOINT",
        "URL of an S3-compatible store, e.g. http://minio:9000 (default: AWS)"},
       [](Config& c, const std::string& v) -> Status {
         std::string url = v.find("://") == std::string::npos ? "http://" + v : v;
         if (!v.empty() && !IsHttpUrlWithHost(url)) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--s3-region-endpoint/REGISTRY_STORAGE_S3_REGIONENDPOINT: expected an "
                       "http:// or https:// URL, got '" +
                           v + "'");
         }
         c.s3_region_endpoint = v;
         return {};
       },
       Field(&Config::s3_region_endpoint)},
      {{"--s3-access-key", "REGISTRY_STORAGE_S3_ACCESSKEY",
        "S3 access key id (default AWS_ACCESS_KEY_ID)"},
       [](Config& c, const std::string& v) -> Status {
         c.s3_access_key = v;
         return {};
       },
       Field(&Config::s3_access_key)},
      {{"--s3-secret-key", "REGISTRY_STORAGE_S3_SECRETKEY",
        "S3 secret access key (default AWS_SECRET_ACCESS_KEY)"},
       [](Config& c, const std::string& v) -> Status {
         c.s3_secret_key = v;
         return {};
       },
       SecretField(&Config::s3_secret_key)},
      {{"--s3-session-token", "REGISTRY_STORAGE_S3_SESSIONTOKEN",
        "S3 session token of temporary credentials (default AWS_SESSION_TOKEN)"},
       [](Config& c, const std::string& v) -> Status {
         c.s3_session_token = v;
         return {};
       },
       SecretField(&Config::s3_session_token)},
      {{"--s3-root-directory", "REGISTRY_STORAGE_S3_ROOTDIRECTORY",
        "key prefix in the bucket (default: the bucket's root)"},
       [](Config& c, const std::string& v) -> Status {
         c.s3_root_directory = v;
         return {};
       },
       Field(&Config::s3_root_directory)},
      {{"--s3-secure", "REGISTRY_STORAGE_S3_SECURE",
        "true: https to the store when the endpoint names no scheme, and to AWS (default true)"},
       [](Config& c, const std::string& v) {
         return SetBool(c.s3_secure, "--s3-secure/REGISTRY_STORAGE_S3_SECURE", v);
       },
       Field(&Config::s3_secure)},
      {{"--s3-chunk-size", "REGISTRY_STORAGE_S3_CHUNKSIZE",
        "S3 multipart part size, at least 5MiB (default 10MiB)"},
       [](Config& c, const std::string& v) -> Status {
         auto size = ParseByteSize(v);
         if (!size) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--s3-chunk-size/REGISTRY_STORAGE_S3_CHUNKSIZE: " + size.error().message);
         }
         if (*size < 5ULL * 1024 * 1024 || *size > 5ULL * 1024 * 1024 * 1024) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--s3-chunk-size/REGISTRY_STORAGE_S3_CHUNKSIZE: must be from 5MiB to 5GiB "
                       "(S3's part sizes), got '" +
                           v + "'");
         }
         c.s3_chunk_size_bytes = *size;
         return {};
       },
       Field(&Config::s3_chunk_size_bytes)},
      {{"--s3-force-path-style", "REGISTRY_STORAGE_S3_FORCEPATHSTYLE",
        "true: path-style URLs (endpoint/bucket/key) (default false)"},
       [](Config& c, const std::string& v) {
         return SetBool(c.s3_force_path_style,
                        "--s3-force-path-style/REGISTRY_STORAGE_S3_FORCEPATHSTYLE", v);
       },
       Field(&Config::s3_force_path_style)},
      {{"--storage-redirect-disable", "REGISTRY_STORAGE_REDIRECT_DISABLE",
        "true: serve blobs held in S3 through hubcache; false: redirect clients to the store "
        "(default true; the CNCF registry's is false)"},
       [](Config& c, const std::string& v) {
         return SetBool(c.storage_redirect_disable,
                        "--storage-redirect-disable/REGISTRY_STORAGE_REDIRECT_DISABLE", v);
       },
       Field(&Config::storage_redirect_disable)},
      {{"--l2-max-size", "HUBCACHE_L2_MAX_SIZE",
        "cap on the mirror's objects in the S3 bucket (hosted content never counts); 0 = none, "
        "left to the bucket's lifecycle rules (default 0)"},
       [](Config& c, const std::string& v) -> Status {
         auto size = ParseByteSize(v);
         if (!size) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--l2-max-size/HUBCACHE_L2_MAX_SIZE: " + size.error().message);
         }
         c.l2_max_size_bytes = *size;
         return {};
       },
       Field(&Config::l2_max_size_bytes)},
      {{"--l2-trim-interval", "HUBCACHE_L2_TRIM_INTERVAL",
        "how often the S3 bucket's size is checked against --l2-max-size (default 10m)"},
       [](Config& c, const std::string& v) {
         return SetDuration(c.l2_trim_interval, "--l2-trim-interval/HUBCACHE_L2_TRIM_INTERVAL", v,
                            false);
       },
       Field(&Config::l2_trim_interval)},
      {{"--prefetch", "HUBCACHE_PREFETCH",
        "true: a GET of an image manifest the cache lacks starts fetching its layers at once; "
        "auto: true with filesystem storage, false with s3 (a cluster) (default auto)"},
       [](Config& c, const std::string& v) -> Status {
         if (v != "auto" && v != "true" && v != "false") {
           return Fail(
               ErrorKind::kConfigInvalid,
               "--prefetch/HUBCACHE_PREFETCH: expected auto, true or false, got '" + v + "'");
         }
         c.prefetch = v;
         return {};
       },
       Field(&Config::prefetch)},
      {{"--prefetch-max-fills", "HUBCACHE_PREFETCH_MAX_FILLS",
        "blobs prefetched at once (default 6)"},
       [](Config& c, const std::string& v) {
         return SetCount(c.prefetch_max_fills, "--prefetch-max-fills/HUBCACHE_PREFETCH_MAX_FILLS",
                         v, 1, 64);
       },
       Field(&Config::prefetch_max_fills)},
      {{"--prefetch-max-bytes", "HUBCACHE_PREFETCH_MAX_BYTES",
        "announced bytes of prefetched blobs in flight (default 512MiB)"},
       [](Config& c, const std::string& v) -> Status {
         auto size = ParseByteSize(v);
         if (!size || *size == 0) {
           return Fail(ErrorKind::kConfigInvalid,
                       "--prefetch-max-bytes/HUBCACHE_PREFETCH_MAX_BYTES: " +
                           (size ? std::string("must be above 0") : size.error().message));
         }
         c.prefetch_max_bytes = *size;
         return {};
       },
       Field(&Config::prefetch_max_bytes)},
  };
  return settings;
}

}  // namespace

const std::vector<SettingInfo>& Settings() {
  static const std::vector<SettingInfo> infos = [] {
    std::vector<SettingInfo> out;
    for (const auto& s : AllSettings()) out.push_back(s.info);
    return out;
  }();
  return infos;
}

std::vector<SettingValue> Describe(const Config& config) {
  static const Config defaults;
  std::vector<SettingValue> out;
  for (const auto& s : AllSettings()) {
    auto shown = [](const Shown& v) { return v.secret && !v.text.empty() ? kMaskedValue : v.text; };
    Shown now = s.get(config);
    out.push_back(SettingValue{s.info, shown(now), shown(s.get(defaults)), now.secret});
  }
  return out;
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

namespace {

// The settings whose value is a comma-separated list (a YAML sequence in the file).
const std::set<std::string> kListSettings = {"REGISTRY_HTTP_TLS_CLIENTCAS", "HUBCACHE_ADMIN_USERS",
                                             "HUBCACHE_HOSTED", "HUBCACHE_PUSH_USERS"};

const SettingNames& FileSettingNames() {
  static const SettingNames names = [] {
    SettingNames out;
    for (const auto& s : AllSettings()) out.all.insert(s.info.env);
    out.lists = kListSettings;
    return out;
  }();
  return names;
}

// "path:line: key: " for a value the file gave, to put before its error.
std::string FileOrigin(const std::string& path, const FileValue& v) {
  return path + ":" + std::to_string(v.line) + ": " + v.key + ": ";
}

// One hubcache.upstreams entry, checked.
Result<UpstreamConfig> LoadUpstream(const std::string& path, const FileUpstream& entry,
                                    const Config& config) {
  UpstreamConfig out;
  out.tag_freshness = config.tag_freshness;
  auto fail = [&](const FileValue& v, const std::string& message) -> Status {
    return Fail(ErrorKind::kConfigInvalid, FileOrigin(path, v) + message);
  };
  auto check_patterns = [&](const FileValue& v, std::vector<std::string>& into) -> Status {
    into = SplitList(v.value);
    for (const auto& p : into) {
      if (auto s = CheckRepoPattern(p); !s) return fail(v, s.error().message);
    }
    return {};
  };
  for (const auto& v : entry.fields) {
    Status s;
    if (v.env == "name") {
      if (!IsRegistryHostName(v.value)) {
        s = fail(v, "expected a registry name like ghcr.io or registry.example:5000, got '" +
                        v.value + "'");
      } else if (v.value == "docker.io" || v.value == "registry-1.docker.io" ||
                 v.value == "index.docker.io") {
        s = fail(v, "Docker Hub is the default upstream: set it with proxy.remoteurl");
      }
      out.name = v.value;
    } else if (v.env == "url") {
      auto authority = HttpUrlAuthority(v.value);
      if (!authority) {
        s = fail(v, "expected an http:// or https:// URL, got '" + v.value + "'");
      }
      out.authority = authority.value_or("");
      out.url = v.value;
      while (out.url.size() > 8 && out.url.back() == '/') out.url.pop_back();
    } else if (v.env == "username") {
      out.username = v.value;
    } else if (v.env == "password") {
      out.password = v.value;
    } else if (v.env == "ca") {
      if (!std::ifstream(v.value).good()) s = fail(v, "cannot read '" + v.value + "'");
      out.ca = v.value;
    } else if (v.env == "insecure") {
      s = SetBool(out.insecure, "insecure", v.value);
      if (!s) s = fail(v, s.error().message);
    } else if (v.env == "tag_freshness") {
      s = SetDuration(out.tag_freshness, "tag_freshness", v.value, true);
      if (!s) s = fail(v, s.error().message);
    } else if (v.env == "allow") {
      s = check_patterns(v, out.allow);
    } else if (v.env == "deny") {
      s = check_patterns(v, out.deny);
    }
    if (!s) return tl::unexpected(s.error());
  }
  std::string where = path + ":" + std::to_string(entry.line) + ": hubcache.upstreams: ";
  if (out.name.empty() || out.url.empty()) {
    return Fail(ErrorKind::kConfigInvalid, where + "each upstream needs a name and a url");
  }
  if (out.username.empty() != out.password.empty()) {
    return Fail(ErrorKind::kConfigInvalid,
                where + out.name + ": username and password go together");
  }
  return out;
}

}  // namespace

Result<Config> LoadConfig(const std::map<std::string, std::string>& env,
                          const std::vector<std::string>& args) {
  Config config;
  auto env_value = [&](const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  // The command line first: its flags are applied last, but it names the file.
  std::vector<std::pair<const Setting*, std::string>> flags;
  std::string file_path = env_value(kConfigPathEnv);
  bool file_from_args = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (!arg.empty() && arg[0] != '-') {
      if (file_from_args) {
        return Fail(ErrorKind::kConfigInvalid,
                    "more than one configuration file: '" + file_path + "' and '" + arg + "'");
      }
      file_path = arg;
      file_from_args = true;
      continue;
    }
    std::string value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const Setting* match = nullptr;
    for (const auto& s : AllSettings()) {
      if (arg == s.info.flag) match = &s;
    }
    if (match == nullptr) return Fail(ErrorKind::kConfigInvalid, "unknown option '" + arg + "'");
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return Fail(ErrorKind::kConfigInvalid, "option " + arg + " needs a value");
      }
      value = args[++i];
    }
    flags.emplace_back(match, value);
  }

  // The file's settings under the environment's: a variable that is set wins.
  std::map<std::string, std::string> merged = env;
  std::map<std::string, const FileValue*> from_file;
  ConfigFile file;
  if (!file_path.empty()) {
    auto read = ReadConfigFile(file_path, FileSettingNames());
    if (!read) return tl::unexpected(read.error());
    file = std::move(*read);
    for (const auto& v : file.values) {
      if (env.count(v.env) != 0) continue;
      merged[v.env] = v.value;
      from_file[v.env] = &v;
    }
  }

  // The AWS SDKs' region variables, under REGISTRY_STORAGE_S3_REGION and the flag.
  for (const char* name : {"AWS_DEFAULT_REGION", "AWS_REGION"}) {
    if (std::string region = env_value(name); !region.empty()) {
      if (region.find_first_of(": \t\r\n/") != std::string::npos) {
        return Fail(ErrorKind::kConfigInvalid,
                    std::string(name) + ": not a region: '" + region + "'");
      }
      config.s3_region = region;
    }
  }
  for (const auto& s : AllSettings()) {
    if (auto it = merged.find(s.info.env); it != merged.end()) {
      if (auto status = s.set(config, it->second); !status) {
        auto origin = from_file.find(s.info.env);
        if (origin == from_file.end()) return tl::unexpected(status.error());
        return Fail(ErrorKind::kConfigInvalid,
                    FileOrigin(file.path, *origin->second) + status.error().message);
      }
    }
  }
  auto headers = LoadConfiguredHeaders(merged);
  if (!headers) return tl::unexpected(headers.error());
  config.http_headers = std::move(*headers);
  for (const auto& [setting, value] : flags) {
    if (auto status = setting->set(config, value); !status) return tl::unexpected(status.error());
  }
  // The other upstreams, after the settings they default from (tag freshness).
  std::set<std::string> upstream_names;
  for (const auto& entry : file.upstreams) {
    auto upstream = LoadUpstream(file.path, entry, config);
    if (!upstream) return tl::unexpected(upstream.error());
    if (!upstream_names.insert(upstream->name).second) {
      return Fail(ErrorKind::kConfigInvalid, file.path + ":" + std::to_string(entry.line) +
                                                 ": hubcache.upstreams: '" + upstream->name +
                                                 "' is listed twice");
    }
    config.upstreams.push_back(std::move(*upstream));
  }
  config.config_file = file.path;
  config.file_values = file.values;
  config.file_ignored = file.ignored;
  if (config.tls_certificate.empty() != config.tls_key.empty()) {
    return Fail(ErrorKind::kConfigInvalid,
                "REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY go together: set both or "
                "neither");
  }
  if (!config.tls_client_cas.empty() && config.tls_certificate.empty()) {
    return Fail(ErrorKind::kConfigInvalid,
                "REGISTRY_HTTP_TLS_CLIENTCAS needs TLS (a certificate and key)");
  }
  if (config.auth == "htpasswd" && config.htpasswd_path.empty()) {
    return Fail(ErrorKind::kConfigInvalid,
                "REGISTRY_AUTH=htpasswd needs REGISTRY_AUTH_HTPASSWD_PATH");
  }
  if (config.stats_access == "auth" && config.auth != "htpasswd") {
    return Fail(ErrorKind::kConfigInvalid,
                "HUBCACHE_STATS_ACCESS=auth needs client authentication (REGISTRY_AUTH=htpasswd)");
  }
  if (!config.admin_users.empty() && config.auth != "htpasswd") {
    return Fail(ErrorKind::kConfigInvalid, "HUBCACHE_ADMIN_USERS needs REGISTRY_AUTH=htpasswd");
  }
  if (!config.push_users.empty() && config.auth != "htpasswd") {
    return Fail(ErrorKind::kConfigInvalid, "HUBCACHE_PUSH_USERS needs REGISTRY_AUTH=htpasswd");
  }
  // The AWS SDKs' credential variables, when neither key is set here (a pair
  // is never mixed from two places).
  if (config.s3_access_key.empty() && config.s3_secret_key.empty()) {
    config.s3_access_key = env_value("AWS_ACCESS_KEY_ID");
    config.s3_secret_key = env_value("AWS_SECRET_ACCESS_KEY");
    if (config.s3_session_token.empty()) config.s3_session_token = env_value("AWS_SESSION_TOKEN");
  }
  if (config.storage == "s3") {
    if (config.s3_bucket.empty()) {
      return Fail(ErrorKind::kConfigInvalid,
                  "REGISTRY_STORAGE=s3 needs REGISTRY_STORAGE_S3_BUCKET (--s3-bucket)");
    }
    if (config.s3_access_key.empty() || config.s3_secret_key.empty()) {
      return Fail(ErrorKind::kConfigInvalid,
                  "REGISTRY_STORAGE=s3 needs REGISTRY_STORAGE_S3_ACCESSKEY and "
                  "REGISTRY_STORAGE_S3_SECRETKEY (or AWS_ACCESS_KEY_ID and "
                  "AWS_SECRET_ACCESS_KEY)");
    }
  }
  return config;
}

}  // namespace hubcache
