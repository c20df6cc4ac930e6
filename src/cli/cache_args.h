#pragma once
// Argument handling shared by the offline cache commands (gc, ls, rm): the
// cache root (--root, else REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, else the
// configuration file REGISTRY_CONFIGURATION_PATH names, else ./data), boolean
// switches, and positional arguments.

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"
#include "index/index_db.h"
#include "store/blob_store.h"

namespace hubcache {

struct CacheArgs {
  std::string root;
  std::set<std::string> switches;  // e.g. "--json", "--dry-run"
  std::vector<std::string> positional;
};

// `allowed` lists the switches the command takes.
[[nodiscard]] Result<CacheArgs> ParseCacheArgs(const std::vector<std::string>& args,
                                               const std::set<std::string>& allowed);

struct OfflineCache {
  std::unique_ptr<BlobStore> store;
  std::unique_ptr<IndexDb> index;
  bool server_running = false;  // a server holds the cache lock right now
};

// Opens an existing cache (never creates one).
[[nodiscard]] Result<OfflineCache> OpenExistingCache(const std::string& root);

}  // namespace hubcache
