#pragma once
// The CNCF registry's config.yml, read the way that registry reads it, into
// the same settings the environment gives (config/config.h applies them: file
// first, then REGISTRY_*/HUBCACHE_* variables, then flags).
//
// A key's path names its setting: REGISTRY_ + the path in capitals joined by
// '_' (http.addr is REGISTRY_HTTP_ADDR, storage.s3.bucket is
// REGISTRY_STORAGE_S3_BUCKET), exactly as the registry maps its variables onto
// its file. The storage driver and the auth type are the names of their
// sections (storage.s3 sets REGISTRY_STORAGE=s3, auth.htpasswd sets
// REGISTRY_AUTH=htpasswd); http.headers.<Name> is REGISTRY_HTTP_HEADERS_<Name>.
// hubcache's own settings live in a `hubcache:` section: hubcache.<key> is
// HUBCACHE_<KEY>, and hubcache.upstreams lists the other registries mirrored.
//
// Keys hubcache has no counterpart for are returned as ignored (check-config
// lists them, serve logs them), never an error. What is refused, in one line
// with file, line and key: YAML that does not parse, a duplicate key, a list or
// map where a setting takes one value, a storage driver or auth type hubcache
// cannot honour (ignoring those would store elsewhere or serve without auth).
// Pure functions; no state, safe from any thread.

#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace hubcache {

// One setting the file gives, as its environment variable would.
struct FileValue {
  std::string env;    // "REGISTRY_HTTP_ADDR"
  std::string value;  // the text, lists joined with ','
  std::string key;    // "http.addr", for messages
  int line = 0;       // 1-based
};

// A key (with everything under it) that hubcache does not use.
struct IgnoredKey {
  std::string key;
  int line = 0;
};

// One entry of hubcache.upstreams, as written; config/config.cpp validates it.
struct FileUpstream {
  int line = 0;
  std::vector<FileValue> fields;  // env is the field name: "name", "url", "allow", ...
};

struct ConfigFile {
  std::string path;
  std::vector<FileValue> values;
  std::vector<IgnoredKey> ignored;
  std::vector<FileUpstream> upstreams;
};

// The environment names of the settings there are, and of those that take a
// comma-separated list (a YAML sequence in the file).
struct SettingNames {
  std::set<std::string> all;
  std::set<std::string> lists;
};

// Reads and parses the file (at most kMaxConfigFileBytes).
[[nodiscard]] Result<ConfigFile> ReadConfigFile(const std::string& path, const SettingNames& names);

// The same over text already read; `path` is only for messages.
[[nodiscard]] Result<ConfigFile> ParseConfigText(const std::string& text, const std::string& path,
                                                 const SettingNames& names);

inline constexpr size_t kMaxConfigFileBytes = 1 << 20;

}  // namespace hubcache
