// hubcache rm [--root DIR] IMAGE... | --blob DIGEST...: removes images
// (repo:tag or repo@digest) and the blobs nothing else uses, or single blobs.

#include <cstdio>

#include "cache/image_listing.h"
#include "cache/image_remover.h"
#include "cli/cache_args.h"
#include "cli/command.h"

namespace hubcache {

int RunRm(const std::vector<std::string>& args) {
  auto parsed = ParseCacheArgs(args, {"--blob"});
  if (!parsed || parsed->positional.empty()) {
    std::fprintf(stderr, "hubcache rm: %s\n",
                 parsed ? "usage: hubcache rm [--root DIR] IMAGE... | --blob DIGEST..."
                        : parsed.error().message.c_str());
    return kExitUsage;
  }
  auto cache = OpenExistingCache(parsed->root);
  if (!cache) {
    std::fprintf(stderr, "hubcache rm: %s\n", cache.error().message.c_str());
    return kExitUsage;
  }
  ImageRemover remover(*cache->index, *cache->store, nullptr, nullptr);
  bool blobs = parsed->switches.count("--blob") > 0;
  int status = kExitOk;
  for (const auto& arg : parsed->positional) {
    Result<RemovalReport> report;
    if (blobs) {
      auto digest = Digest::Parse(arg);
      if (!digest) {
        std::fprintf(stderr, "hubcache rm: %s: %s\n", arg.c_str(), digest.error().message.c_str());
        return kExitUsage;
      }
      report = remover.RemoveBlob(*digest);
    } else {
      auto image = ParseImageArgument(arg);
      if (!image) {
        std::fprintf(stderr, "hubcache rm: %s: %s\n", arg.c_str(), image.error().message.c_str());
        return kExitUsage;
      }
      report = remover.RemoveImage(image->first, image->second);
    }
    if (!report) {
      std::fprintf(stderr, "hubcache rm: %s: %s\n", arg.c_str(), report.error().message.c_str());
      status = kExitFailure;
      continue;
    }
    std::printf("removed %s: %llu manifests, %llu blobs, %s\n", arg.c_str(),
                static_cast<unsigned long long>(report->manifests),
                static_cast<unsigned long long>(report->blobs), HumanBytes(report->bytes).c_str());
  }
  if (cache->server_running) {
    std::printf(
        "note: a server is running on this cache; use its admin API to also drop what it "
        "holds in memory\n");
  }
  return status;
}

}  // namespace hubcache
