#include "cache/hosted_gc.h"

#include <filesystem>

#include "common/clock.h"
#include "common/units.h"
#include "registry/reference.h"

namespace hubcache {

Result<HostedGcReport> CollectHostedGarbage(BlobStore& hosted, IndexDb& index,
                                            const HostedGcOptions& options,
                                            const std::function<void(const std::string&)>& line) {
  HostedGcReport report;
  const int64_t cutoff = UnixNowMs() - options.grace.count();
  const char* verb = options.dry_run ? "would remove" : "removed";
  if (options.delete_untagged) {
    // Removing an index frees its children: a few passes, bounded.
    for (int pass = 0; pass < 16; ++pass) {
      auto rows = index.UntaggedHostedManifests(cutoff);
      if (!rows) return tl::unexpected(rows.error());
      if (rows->empty()) break;
      for (const auto& row : *rows) {
        line(std::string(verb) + " untagged manifest " + row.repo + "@" + row.digest);
        ++report.manifests_removed;
        if (options.dry_run) continue;
        auto deleted = index.DeleteHostedManifest(row.repo, row.digest);
        if (!deleted) return tl::unexpected(deleted.error());
      }
      if (options.dry_run) break;
    }
  }
  auto blobs = index.UnreferencedHostedBlobs(cutoff);
  if (!blobs) return tl::unexpected(blobs.error());
  for (const auto& blob : *blobs) {
    auto digest = Digest::Parse(blob.digest);
    if (!digest) continue;  // never written by hubcache: leave it to the operator
    if (!options.dry_run) {
      auto swept = index.SweepHostedBlob(blob.digest, cutoff,
                                         [&] { return hosted.Remove(ObjectKind::kBlob, *digest); });
      if (!swept) return tl::unexpected(swept.error());
      if (!*swept) continue;  // referenced again meanwhile
    }
    line(std::string(verb) + " " + blob.digest + " (" + HumanBytes(blob.size) + ")");
    ++report.blobs_removed;
    report.bytes_freed += blob.size;
  }
  // Files no row records: left by a crash between a rename and its commit, or
  // by manifests deleted since. Only those older than the grace period.
  for (bool manifest : {false, true}) {
    const char* dir = manifest ? "manifests" : "blobs";
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::recursive_directory_iterator(hosted.root() / dir / "sha256", ec)) {
      if (!entry.is_regular_file(ec)) continue;
      auto digest = Digest::Parse("sha256:" + entry.path().filename().string());
      if (!digest) continue;  // not ours: left for the operator
      auto mtime = std::chrono::file_clock::to_sys(entry.last_write_time(ec));
      if (ec) continue;
      auto age_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(mtime.time_since_epoch()).count();
      if (age_ms >= cutoff) continue;
      uint64_t size = entry.file_size(ec);
      if (options.dry_run) {
        // Listed only for blobs, whose rows are one lookup away.
        auto recorded = index.AnyHostedBlobSize(digest->str());
        if (manifest || !recorded || *recorded) continue;
      } else {
        auto swept = index.SweepUnrecordedHostedFile(manifest, digest->str(), [&] {
          return hosted.Remove(manifest ? ObjectKind::kManifest : ObjectKind::kBlob, *digest);
        });
        if (!swept) return tl::unexpected(swept.error());
        if (!*swept) continue;
      }
      if (!manifest) {
        line(std::string(verb) + " unrecorded " + digest->str() + " (" + HumanBytes(size) + ")");
        ++report.blobs_removed;
      }
      report.bytes_freed += size;
    }
  }
  if (!options.dry_run) {
    auto orphans = index.OrphanHostedManifestDigests();
    if (!orphans) return tl::unexpected(orphans.error());
    for (const auto& text : *orphans) {
      auto digest = Digest::Parse(text);
      if (!digest) continue;
      auto size = hosted.SizeOf(ObjectKind::kManifest, *digest);
      auto swept = index.SweepHostedManifestFile(
          text, [&] { return hosted.Remove(ObjectKind::kManifest, *digest); });
      if (!swept) return tl::unexpected(swept.error());
      if (*swept && size) report.bytes_freed += *size;
    }
  }
  return report;
}

}  // namespace hubcache
