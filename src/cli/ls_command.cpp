// hubcache ls [--root DIR] [--json]: the cached repositories, tags and sizes,
// then (table only) the hosted repositories, marked "hosted". --json lists the
// cached images only (as GET /admin/images).

#include <cstdio>
#include <ctime>

#include "cache/image_listing.h"
#include "cli/cache_args.h"
#include "cli/command.h"

namespace hubcache {
namespace {

std::string FormatTime(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof(out), "%Y-%m-%d %H:%M:%SZ", &tm);
  return out;
}

}  // namespace

int RunLs(const std::vector<std::string>& args) {
  auto parsed = ParseCacheArgs(args, {"--json"});
  if (!parsed || !parsed->positional.empty()) {
    std::fprintf(stderr, "hubcache ls: %s\n",
                 parsed ? "takes no arguments (usage: hubcache ls [--root DIR] [--json])"
                        : parsed.error().message.c_str());
    return kExitUsage;
  }
  auto cache = OpenExistingCache(parsed->root);
  if (!cache) {
    std::fprintf(stderr, "hubcache ls: %s\n", cache.error().message.c_str());
    return kExitUsage;
  }
  auto images = ListImages(*cache->index);
  if (!images) {
    std::fprintf(stderr, "hubcache ls: %s\n", images.error().message.c_str());
    return kExitFailure;
  }
  if (parsed->switches.count("--json")) {
    std::printf("%s\n", ToJson(*images).dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-40s %-20s %-19s %10s %6s  %s\n", "REPOSITORY", "TAG", "DIGEST", "SIZE", "BLOBS",
              "LAST USED");
  for (const auto& i : *images) {
    std::printf("%-40s %-20s %-19s %10s %6llu  %s\n", i.repo.c_str(),
                i.tag.empty() ? "<none>" : i.tag.c_str(), i.digest.substr(0, 19).c_str(),
                HumanBytes(i.size_bytes).c_str(), static_cast<unsigned long long>(i.blobs),
                FormatTime(i.last_used_ms).c_str());
  }
  // Pushed content, apart: it is no cache entry (never evicted, not in the size).
  auto hosted = cache->index->HostedRepositoryRows();
  if (!hosted) {
    std::fprintf(stderr, "hubcache ls: %s\n", hosted.error().message.c_str());
    return kExitFailure;
  }
  if (hosted->empty()) return kExitOk;
  std::printf("\n%-40s %-20s %-19s %10s %6s  %s\n", "HOSTED REPOSITORY", "TAGS", "MANIFESTS",
              "SIZE", "SOURCE", "LAST PUSH");
  for (const auto& r : *hosted) {
    std::printf("%-40s %-20llu %-19llu %10s %6s  %s\n", r.repo.c_str(),
                static_cast<unsigned long long>(r.tags),
                static_cast<unsigned long long>(r.manifests), HumanBytes(r.size_bytes).c_str(),
                "hosted", FormatTime(r.last_push_ms).c_str());
  }
  return kExitOk;
}

}  // namespace hubcache
