#include "cache/hosted_bucket_gc.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "cache/hosted_bucket.h"
#include "common/clock.h"
#include "common/units.h"
#include "registry/media_types.h"
#include "registry/reference.h"

namespace hubcache {
namespace {

constexpr size_t kMaxObjects = 2'000'000;  // bound on one listing

Result<std::vector<S3Client::ListedObject>> ListAll(S3Client& s3, const std::string& prefix) {
  std::vector<S3Client::ListedObject> out;
  std::string continuation;
  do {
    auto page = s3.List(prefix, S3Client::kMaxListPage, &continuation);
    if (!page) return tl::unexpected(page.error());
    for (auto& object : *page) out.push_back(std::move(object));
    if (out.size() > kMaxObjects) {
      return Fail(ErrorKind::kIo, "more than " + std::to_string(kMaxObjects) + " objects under " +
                                      prefix + ": not collected");
    }
  } while (!continuation.empty());
  return out;
}

// The 64 hex characters after `marker` in `key`, or "" when it has none there.
std::string HexAfter(const std::string& key, const std::string& marker) {
  auto at = key.find(marker);
  if (at == std::string::npos) return {};
  std::string hex = key.substr(at + marker.size());
  if (!Digest::Parse("sha256:" + hex)) return {};
  return hex;
}

}  // namespace

Result<BucketGcReport> CollectBucketGarbage(S3Client& s3, const BucketGcOptions& options,
                                            const std::function<void(const std::string&)>& line) {
  BucketGcReport report;
  // Mark: the repositories' revisions and links.
  auto repository_objects = ListAll(s3, "hosted/repositories/");
  if (!repository_objects) return tl::unexpected(repository_objects.error());
  std::set<std::string> revisions;  // manifest hex
  struct Link {
    std::string key;
    int64_t modified_ms;
  };
  std::map<std::string, std::vector<Link>> links;  // blob hex -> the links to it
  for (const auto& object : *repository_objects) {
    if (auto hex = HexAfter(object.key, "/_manifests/revisions/sha256/"); !hex.empty()) {
      revisions.insert(hex);
    } else if (auto blob = HexAfter(object.key, "/_layers/sha256/"); !blob.empty()) {
      links[blob].push_back(Link{object.key, object.modified_unix_ms});
    }
  }
  std::set<std::string> referenced;
  for (const auto& hex : revisions) {
    auto body = s3.GetSmall(HostedBucket::ManifestKey(Digest::FromHex(hex)),
                            HostedBucket::kMaxManifestBytes);
    if (!body) return tl::unexpected(body.error());
    if (!*body) continue;  // a revision whose bytes are gone references nothing
    ++report.manifests;
    for (auto& digest : ReferencedDigests(**body)) {
      if (auto parsed = Digest::Parse(digest)) referenced.insert(parsed->hex());
    }
  }

  // Sweep: blobs nothing references, older than the grace period, links and all.
  auto blobs = ListAll(s3, "hosted/blobs/");
  if (!blobs) return tl::unexpected(blobs.error());
  report.blobs = blobs->size();
  const int64_t cutoff = UnixNowMs() - options.grace.count();
  for (const auto& object : *blobs) {
    // hosted/blobs/sha256/<hh>/<hex>
    const auto slash = object.key.rfind('/');
    if (slash == std::string::npos) continue;
    const std::string blob_hex = object.key.substr(slash + 1);
    if (!Digest::Parse("sha256:" + blob_hex) || referenced.count(blob_hex)) continue;
    int64_t youngest = object.modified_unix_ms;
    const auto& to_blob = links[blob_hex];
    for (const auto& link : to_blob) youngest = std::max(youngest, link.modified_ms);
    if (youngest > cutoff) continue;  // maybe an upload whose manifest is still to come
    line(std::string(options.dry_run ? "would remove" : "removed") +
         " bucket blob sha256:" + blob_hex + " (" + HumanBytes(object.size) + ", " +
         std::to_string(to_blob.size()) + " links)");
    if (!options.dry_run) {
      for (const auto& link : to_blob) {
        if (auto s = s3.Delete(link.key); !s) return tl::unexpected(s.error());
      }
      if (auto s = s3.Delete(object.key); !s) return tl::unexpected(s.error());
    }
    report.links_removed += to_blob.size();
    ++report.blobs_removed;
    report.bytes_freed += object.size;
  }
  return report;
}

}  // namespace hubcache
