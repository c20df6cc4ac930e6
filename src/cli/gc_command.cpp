// hubcache gc [--root DIR] [--verify] [--dry-run]: reconciles the index with
// the files, optionally re-hashing every object, and reports what it freed.

#include <cstdio>

#include "cache/image_listing.h"
#include "cache/reconcile.h"
#include "cli/cache_args.h"
#include "cli/command.h"

namespace hubcache {

int RunGc(const std::vector<std::string>& args) {
  auto parsed = ParseCacheArgs(args, {"--verify", "--dry-run"});
  if (!parsed || !parsed->positional.empty()) {
    std::fprintf(stderr, "hubcache gc: %s\n",
                 parsed
                     ? "takes no arguments (usage: hubcache gc [--root DIR] [--verify] [--dry-run])"
                     : parsed.error().message.c_str());
    return kExitUsage;
  }
  auto cache = OpenExistingCache(parsed->root);
  if (!cache) {
    std::fprintf(stderr, "hubcache gc: %s\n", cache.error().message.c_str());
    return kExitUsage;
  }
  ReconcileOptions options;
  options.verify = parsed->switches.count("--verify") > 0;
  options.dry_run = parsed->switches.count("--dry-run") > 0;
  // A running server may be filling right now: its temp files are not junk.
  options.clear_temp = !cache->server_running;
  auto report = Reconcile(*cache->store, *cache->index, options);
  if (!report) {
    std::fprintf(stderr, "hubcache gc: %s\n", report.error().message.c_str());
    return kExitFailure;
  }
  const char* verb = options.dry_run ? "would free" : "freed";
  std::printf(
      "%s%s %s in %llu entries (temp files %llu, orphans removed %llu, corrupt %llu, "
      "stale index rows %llu, orphans adopted %llu)\n",
      options.dry_run ? "dry run: " : "", verb, HumanBytes(report->bytes_freed).c_str(),
      static_cast<unsigned long long>(report->temp_removed + report->orphans_removed +
                                      report->corrupt_removed + report->rows_dropped),
      static_cast<unsigned long long>(report->temp_removed),
      static_cast<unsigned long long>(report->orphans_removed),
      static_cast<unsigned long long>(report->corrupt_removed),
      static_cast<unsigned long long>(report->rows_dropped),
      static_cast<unsigned long long>(report->orphans_adopted));
  std::printf(
      "cache: %llu entries, %s%s\n", static_cast<unsigned long long>(report->entries),
      HumanBytes(report->bytes).c_str(),
      cache->server_running ? " (a server is running on this cache; temp files left alone)" : "");
  return kExitOk;
}

}  // namespace hubcache
