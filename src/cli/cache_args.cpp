#include "cli/cache_args.h"

#include "cache/cache_lock.h"
#include "config/config.h"

namespace hubcache {

Result<CacheArgs> ParseCacheArgs(const std::vector<std::string>& args,
                                 const std::set<std::string>& allowed) {
  CacheArgs out;
  auto env = ProcessEnvironment();
  if (env.count(kConfigPathEnv) != 0) {
    // The server's configuration file names the root (the environment still wins).
    auto config = LoadConfig(env, {});
    if (!config) return tl::unexpected(config.error());
    out.root = config->root_dir;
  } else {
    auto it = env.find("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY");
    out.root = it != env.end() && !it->second.empty() ? it->second : "./data";
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--root" || a.rfind("--root=", 0) == 0) {
      if (a == "--root") {
        if (i + 1 >= args.size())
          return Fail(ErrorKind::kConfigInvalid, "option --root needs a value");
        out.root = args[++i];
      } else {
        out.root = a.substr(7);
      }
      if (out.root.empty()) return Fail(ErrorKind::kConfigInvalid, "--root must not be empty");
    } else if (a.rfind("--", 0) == 0) {
      if (!allowed.count(a)) return Fail(ErrorKind::kConfigInvalid, "unknown option '" + a + "'");
      out.switches.insert(a);
    } else {
      out.positional.push_back(a);
    }
  }
  return out;
}

Result<OfflineCache> OpenExistingCache(const std::string& root) {
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::path(root) / "index.db", ec)) {
    return Fail(ErrorKind::kConfigInvalid, "no cache at " + root + " (no index.db there)");
  }
  OfflineCache cache;
  auto store = BlobStore::Open(root);
  if (!store) return tl::unexpected(store.error());
  cache.store = std::move(*store);
  auto index = IndexDb::Open(cache.store->root() / "index.db");
  if (!index) return tl::unexpected(index.error());
  cache.index = std::move(*index);
  cache.server_running = CacheLock::IsHeld(cache.store->root());
  return cache;
}

}  // namespace hubcache
