#pragma once
// What a manifest pushed by a client holds, as a hosted repository keeps it:
// its media type (checked as registry/media_types.h does), the blobs and child
// manifests that must exist beside it, and what the referrers API reports
// (subject, artifact type, annotations). Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hubcache {

struct PushedManifest {
  std::string media_type;
  std::vector<std::string> blobs;      // config and layers (foreign layers with urls excluded)
  std::vector<uint64_t> blob_sizes;    // their descriptors' sizes, in the same order
  std::vector<std::string> manifests;  // an index's children
  std::string subject;                 // "" when none
  std::string artifact_type;           // artifactType, else the config's media type
  std::string annotations;             // JSON object text, "" when none
};

// kManifestInvalid when the bytes are no manifest (or a descriptor is
// malformed), kDigestInvalid when a descriptor's digest is not sha256.
[[nodiscard]] Result<PushedManifest> DescribePushedManifest(std::string_view body,
                                                            std::string_view content_type);

}  // namespace hubcache
