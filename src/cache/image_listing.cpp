#include "cache/image_listing.h"

#include <cstdio>
#include <set>

namespace hubcache {

Result<std::vector<ImageInfo>> ListImages(IndexDb& index) {
  auto rows = index.Images();
  if (!rows) return tl::unexpected(rows.error());
  std::vector<ImageInfo> images;
  for (const auto& row : *rows) {
    ImageInfo info{row.repo, row.tag, row.digest, row.media_type, 0, 0, row.last_access_ms};
    // Walk the manifest and what it references; count each cached object once.
    std::set<std::string> seen;
    std::vector<std::string> queue = {row.digest};
    while (!queue.empty()) {
      std::string digest = queue.back();
      queue.pop_back();
      if (!seen.insert(digest).second) continue;
      auto manifest = index.FindEntry(EntryKind::kManifest, digest);
      if (!manifest) return tl::unexpected(manifest.error());
      if (*manifest) {
        info.size_bytes += (*manifest)->size;
        info.last_used_ms = std::max(info.last_used_ms, (*manifest)->last_access_ms);
        auto children = index.ManifestChildren(digest);
        if (!children) return tl::unexpected(children.error());
        queue.insert(queue.end(), children->begin(), children->end());
        continue;
      }
      auto blob = index.FindEntry(EntryKind::kBlob, digest);
      if (!blob) return tl::unexpected(blob.error());
      if (*blob) {
        info.size_bytes += (*blob)->size;
        ++info.blobs;
        info.last_used_ms = std::max(info.last_used_ms, (*blob)->last_access_ms);
      }
    }
    images.push_back(std::move(info));
  }
  return images;
}

nlohmann::json ToJson(const std::vector<ImageInfo>& images) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& i : images) {
    out.push_back({{"repository", i.repo},
                   {"tag", i.tag},
                   {"digest", i.digest},
                   {"media_type", i.media_type},
                   {"size_bytes", i.size_bytes},
                   {"blobs", i.blobs},
                   {"last_used_ms", i.last_used_ms}});
  }
  return out;
}

}  // namespace hubcache
