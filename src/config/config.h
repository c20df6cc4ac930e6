#pragma once
// The mirror's configuration: every setting with its default, loaded from the
// CNCF registry's config.yml when one is given (config/config_file.h), then
// from the environment (the registry's REGISTRY_* names, plus HUBCACHE_* for
// what the registry has no name for), then from command-line flags: each wins
// over the one before, as in the CNCF registry.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/units.h"
#include "config/config_file.h"
#include "config/http_headers.h"

namespace hubcache {

// A registry mirrored besides Docker Hub (hubcache.upstreams in the file).
struct UpstreamConfig {
  // What clients call it: containerd's ?ns= value and the path prefix
  // /v2/<name>/<repository>/... ("ghcr.io", "registry.k8s.io", "host:5000").
  std::string name;
  std::string url;  // "https://ghcr.io"
  // Its host[:port], lower-cased, as an image reference on a node names it
  // (what containerd sends in ?ns=): "ghcr.io", "127.0.0.1:5001".
  std::string authority;
  std::string username;
  std::string password;
  std::string ca;  // PEM bundle to verify its TLS with; empty = the system's
  bool insecure = false;
  std::chrono::milliseconds tag_freshness{60'000};
  // Repository patterns (registry/repo_sources.h syntax, no library/ rule):
  // empty allow = every repository; deny wins over allow.
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

struct Config {
  // Where clients connect: "host:port", ":port" means all interfaces.
  std::string http_addr = ":5000";
  // The registry this mirror caches.
  std::string upstream_url = "https://registry-1.docker.io";
  // Credentials for the upstream (Docker Hub user + access token); empty = anonymous.
  std::string upstream_username;
  std::string upstream_password;
  // Root of the on-disk cache: blobs, manifests, tmp files and index.db.
  std::string root_dir = "./data";
  // error | warn | info | debug
  std::string log_level = "info";
  // Cached (mirrored) content not used for this long is removed, whatever the
  // size (the CNCF registry's proxy.ttl, REGISTRY_PROXY_TTL); 0 = never.
  std::chrono::milliseconds proxy_ttl{0};
  // A cached tag is served without asking the upstream for this long.
  std::chrono::milliseconds tag_freshness{60'000};
  // Bound on TCP+TLS connection setup to the upstream.
  std::chrono::milliseconds upstream_connect_timeout{10'000};
  // An upstream transfer that sends nothing for this long is abandoned.
  std::chrono::milliseconds upstream_stall_timeout{30'000};
  // Upper bound on one blob fill, however slow but steady the upstream.
  std::chrono::milliseconds fill_timeout{3'600'000};
  // Open client connections, idle keep-alive ones included (parked without a
  // thread, server/idle_connections.h). More are answered 503.
  int max_connections = 1000;
  // Open connections from one client address; more are answered 429.
  int max_connections_per_client = 128;
  // A request's line and headers must all arrive within this long of its first
  // byte (slowloris), else 408.
  std::chrono::milliseconds header_timeout{20'000};
  // Idle keep-alive connections are closed after this long.
  std::chrono::milliseconds keepalive_timeout{10'000};
  // Byte cap of the cache (blobs + manifests); 0 = unlimited.
  uint64_t cache_max_size_bytes = 0;
  // Once over the cap, eviction goes down to this fraction of it.
  double cache_low_watermark = 0.90;
  // Evict also when the cache's filesystem has less than this fraction free.
  double min_free_fraction = 0.05;
  // Batched last-use times are written to the index this often.
  std::chrono::milliseconds access_flush_interval{5'000};
  // On SIGTERM/SIGINT, transfers in flight get this long to finish.
  std::chrono::milliseconds shutdown_grace{30'000};
  // Bearer token for the admin API (/admin/...); empty = admin API off.
  std::string admin_token;
  // htpasswd users who may use the admin API (with their password). Pull
  // users not listed here are refused there.
  std::vector<std::string> admin_users;
  // TLS for clients: PEM certificate (chain allowed) and key; both or neither.
  std::string tls_certificate;
  std::string tls_key;
  // PEM CA bundles whose client certificates are required (empty = none asked).
  std::vector<std::string> tls_client_cas;
  // Client authentication: "" (none) or "htpasswd".
  std::string auth;
  std::string htpasswd_path;
  std::string htpasswd_realm = "hubcache";
  // Requests one client address may have in flight at once.
  int max_requests_per_client = 64;
  // A PEM bundle to verify the upstream's TLS with (private CA).
  std::string upstream_ca;
  // Skip upstream TLS verification (lab use only; warned about at start).
  bool upstream_insecure = false;
  // One line per request to "stdout", "stderr" or a file path; "off" = none.
  std::string access_log = "stdout";
  // "text" (key=value) or "json" (JSON lines).
  std::string access_log_format = "text";
  // Who may read /, /stats and /metrics: "open" (anyone) or "auth" (the
  // credentials pulls need). Empty: "auth" when client auth is on, else "open".
  std::string stats_access;
  // An image list (as for `hubcache prewarm -f`) kept warm in the background;
  // empty = none. Re-read on every run.
  std::string prewarm_file;
  // From the end of one keep-warm run to the start of the next.
  std::chrono::milliseconds prewarm_interval{6 * 3'600'000};
  // Fields added to every response (REGISTRY_HTTP_HEADERS_<Name>, environment
  // only, as in the CNCF registry; config/http_headers.h). Not in Settings():
  // their names are the operator's.
  std::vector<ConfiguredHeader> http_headers;
  // Repository name patterns hosted here (pushed to, never fetched upstream);
  // registry/repo_sources.h says how they match. Empty: a pure mirror.
  std::vector<std::string> hosted;
  // DELETE of hosted manifests, tags and blobs (REGISTRY_STORAGE_DELETE_ENABLED).
  bool delete_enabled = false;
  // htpasswd users who may push and delete; empty = every htpasswd user.
  std::vector<std::string> push_users;
  // Abandoned uploads (REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_*): removed
  // once older than upload_purge_age, checked every upload_purge_interval.
  bool upload_purge_enabled = true;
  std::chrono::milliseconds upload_purge_age{168 * 3'600'000LL};
  std::chrono::milliseconds upload_purge_interval{24 * 3'600'000LL};
  bool upload_purge_dry_run = false;
  // Where blobs are kept (REGISTRY_STORAGE): "filesystem" (under root_dir
  // only) or "s3" (an S3-compatible object store, the s3_* settings below).
  std::string storage = "filesystem";
  // The S3 bucket and how to reach it (REGISTRY_STORAGE_S3_*, the CNCF
  // registry's names). Keys left unset come from AWS_ACCESS_KEY_ID,
  // AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the region from AWS_REGION or
  // AWS_DEFAULT_REGION.
  std::string s3_bucket;
  std::string s3_region = "us-east-1";
  // "http://host:port" of an S3-compatible store; empty = AWS.
  std::string s3_region_endpoint;
  std::string s3_access_key;
  std::string s3_secret_key;
  std::string s3_session_token;
  // Key prefix in the bucket; empty = the bucket's root.
  std::string s3_root_directory;
  // https to the store when the endpoint has no scheme, and for AWS.
  bool s3_secure = true;
  // Multipart part size, at least 5 MiB.
  uint64_t s3_chunk_size_bytes = 10 * 1024 * 1024;
  // Path-style URLs (endpoint/bucket/key) instead of bucket.endpoint/key.
  bool s3_force_path_style = false;
  // true: blobs held in the object store are served by hubcache itself;
  // false: clients are redirected to a presigned URL of the store. (The CNCF
  // registry's default is false: it redirects.)
  bool storage_redirect_disable = true;
  // The cap on what the mirror keeps in the bucket (cache/ only, never hosted
  // content): 0 = none, left to the bucket's lifecycle rules. Checked every
  // l2_trim_interval; trimmed oldest-written first to cache_low_watermark.
  uint64_t l2_max_size_bytes = 0;
  std::chrono::milliseconds l2_trim_interval{600'000};
  // Prefetch on manifest (cache/prefetcher.h): a GET of an image manifest the
  // cache did not hold starts fetching its config and layers at once, at most
  // prefetch_max_fills at a time and prefetch_max_bytes of them in flight.
  // "auto": on with filesystem storage, off with s3 (nodes behind a balancer
  // that sends each blob to its home node: a prefetch on the manifest's node
  // would fetch blobs the balancer sends elsewhere); "true", "false".
  std::string prefetch = "auto";
  int prefetch_max_fills = 6;
  uint64_t prefetch_max_bytes = 512ULL * 1024 * 1024;

  // The other registries mirrored (only from the file's hubcache.upstreams).
  std::vector<UpstreamConfig> upstreams;
  // The configuration file read (empty: none), what it set and what in it
  // hubcache does not use; for check-config and the log at start.
  std::string config_file;
  std::vector<FileValue> file_values;
  std::vector<IgnoredKey> file_ignored;

  bool PrefetchEnabled() const {
    return prefetch == "true" || (prefetch == "auto" && storage != "s3");
  }
};

// One configurable setting, for --help and the configuration reference.
struct SettingInfo {
  const char* flag;  // "--addr"
  const char* env;   // "REGISTRY_HTTP_ADDR"
  const char* help;
};
const std::vector<SettingInfo>& Settings();

// What a setting holds in one Config, for `hubcache check-config` and the
// configuration reference. Values are written the way the setting's flag takes
// them ("60s", "50GiB", "90%", "a,b"), so every one can be given back as is.
struct SettingValue {
  SettingInfo info;
  std::string value;          // effective; kMaskedValue for a secret that is set
  std::string default_value;  // what an empty environment and no flags give
  bool secret = false;        // a password or token: never shown
};
inline constexpr const char* kMaskedValue = "********";

// Every setting of `config`, in the order of Settings(); safe to print.
std::vector<SettingValue> Describe(const Config& config);

// The environment variable naming the configuration file when the command
// line gives none (as the CNCF registry's).
inline constexpr const char* kConfigPathEnv = "REGISTRY_CONFIGURATION_PATH";

// Builds the Config for `serve` from an environment map and the arguments after
// the subcommand: flags, and at most one configuration file path (else the one
// kConfigPathEnv names). Errors name the offending setting in one line; from
// the file, with its path, line and key.
[[nodiscard]] Result<Config> LoadConfig(const std::map<std::string, std::string>& env,
                                        const std::vector<std::string>& args);

// The process environment as a map (for LoadConfig).
std::map<std::string, std::string> ProcessEnvironment();

}  // namespace hubcache
