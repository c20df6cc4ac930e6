// hubcache gc [--root DIR] [--verify] [--dry-run] [--delete-untagged]
// [--grace DURATION]: reconciles the index with the files, optionally
// re-hashing every object; sweeps hosted blobs no manifest references
// (cache/hosted_gc.h), and with s3 storage configured (REGISTRY_STORAGE=s3, or
// in the file REGISTRY_CONFIGURATION_PATH names) those of the bucket
// (cache/hosted_bucket_gc.h); and reports what it freed.

#include <cstdio>

#include "cache/hosted_bucket_gc.h"
#include "cache/hosted_gc.h"
#include "cache/image_listing.h"
#include "cache/reconcile.h"
#include "cli/cache_args.h"
#include "cli/command.h"
#include "common/units.h"
#include "config/config.h"
#include "upstream/s3_client.h"

namespace hubcache {

namespace {

// With REGISTRY_STORAGE=s3 (the server's environment), the hosted content in
// the bucket too: the durable copy every node reads.
int CollectInBucket(const HostedGcOptions& hosted_options) {
  auto env = ProcessEnvironment();
  auto it = env.find("REGISTRY_STORAGE");
  bool maybe_s3 = (it != env.end() && it->second == "s3") || env.count(kConfigPathEnv) != 0;
  if (!maybe_s3) return kExitOk;
  auto config = LoadConfig(env, {});
  if (!config) {
    std::fprintf(stderr, "hubcache gc: %s\n", config.error().message.c_str());
    return kExitUsage;
  }
  if (config->storage != "s3") return kExitOk;
  auto s3 = S3Client::Create(S3OptionsFrom(*config));
  if (!s3) {
    std::fprintf(stderr, "hubcache gc: %s\n", s3.error().message.c_str());
    return kExitUsage;
  }
  if (auto s = (*s3)->Check(); !s) {
    std::fprintf(stderr, "hubcache gc: %s\n", s.error().message.c_str());
    return kExitFailure;
  }
  BucketGcOptions options;
  options.dry_run = hosted_options.dry_run;
  options.grace = hosted_options.grace;
  auto report = CollectBucketGarbage(
      **s3, options, [](const std::string& line) { std::printf("%s\n", line.c_str()); });
  if (!report) {
    std::fprintf(stderr, "hubcache gc: S3 bucket: %s\n", report.error().message.c_str());
    return kExitFailure;
  }
  std::printf("bucket %s: %s%s %s (%llu blobs, %llu links); %llu manifests, %llu blobs seen\n",
              (*s3)->options().bucket.c_str(), options.dry_run ? "dry run: " : "",
              options.dry_run ? "would free" : "freed", HumanBytes(report->bytes_freed).c_str(),
              static_cast<unsigned long long>(report->blobs_removed),
              static_cast<unsigned long long>(report->links_removed),
              static_cast<unsigned long long>(report->manifests),
              static_cast<unsigned long long>(report->blobs));
  return kExitOk;
}

}  // namespace

int RunGc(const std::vector<std::string>& raw_args) {
  // --grace takes a value; the other options are switches.
  HostedGcOptions hosted_options;
  std::vector<std::string> args;
  for (size_t i = 0; i < raw_args.size(); ++i) {
    const std::string& a = raw_args[i];
    if (a == "--grace" || a.rfind("--grace=", 0) == 0) {
      std::string value;
      if (a == "--grace") {
        if (i + 1 >= raw_args.size()) {
          std::fprintf(stderr, "hubcache gc: option --grace needs a value\n");
          return kExitUsage;
        }
        value = raw_args[++i];
      } else {
        value = a.substr(8);
      }
      auto grace = ParseDuration(value);
      if (!grace) {
        std::fprintf(stderr, "hubcache gc: --grace: %s\n", grace.error().message.c_str());
        return kExitUsage;
      }
      hosted_options.grace = *grace;
    } else {
      args.push_back(a);
    }
  }
  auto parsed = ParseCacheArgs(args, {"--verify", "--dry-run", "--delete-untagged"});
  if (!parsed || !parsed->positional.empty()) {
    std::fprintf(stderr, "hubcache gc: %s\n",
                 parsed ? "takes no arguments (usage: hubcache gc [--root DIR] [--verify] "
                          "[--dry-run] [--delete-untagged] [--grace DURATION])"
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
  hosted_options.dry_run = options.dry_run;
  hosted_options.delete_untagged = parsed->switches.count("--delete-untagged") > 0;
  auto hosted_store = BlobStore::Open(cache->store->root() / "hosted");
  if (!hosted_store) {
    std::fprintf(stderr, "hubcache gc: %s\n", hosted_store.error().message.c_str());
    return kExitFailure;
  }
  auto hosted =
      CollectHostedGarbage(**hosted_store, *cache->index, hosted_options,
                           [](const std::string& line) { std::printf("%s\n", line.c_str()); });
  if (!hosted) {
    std::fprintf(stderr, "hubcache gc: %s\n", hosted.error().message.c_str());
    return kExitFailure;
  }
  auto totals = cache->index->GetHostedTotals();
  std::printf(
      "hosted: %s%s %s (%llu blobs, %llu untagged manifests); %llu repositories, %llu "
      "blobs, %s kept\n",
      options.dry_run ? "dry run: " : "", verb, HumanBytes(hosted->bytes_freed).c_str(),
      static_cast<unsigned long long>(hosted->blobs_removed),
      static_cast<unsigned long long>(hosted->manifests_removed),
      static_cast<unsigned long long>(totals ? totals->repositories : 0),
      static_cast<unsigned long long>(totals ? totals->blobs : 0),
      HumanBytes(totals ? totals->bytes : 0).c_str());
  if (int status = CollectInBucket(hosted_options); status != kExitOk) return status;
  std::printf(
      "cache: %llu entries, %s%s\n", static_cast<unsigned long long>(report->entries),
      HumanBytes(report->bytes).c_str(),
      cache->server_running ? " (a server is running on this cache; temp files left alone)" : "");
  return kExitOk;
}

}  // namespace hubcache
