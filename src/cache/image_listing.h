#pragma once
// What the cache holds, image by image, for `hubcache ls` and the admin API:
// each cached tag (or untagged manifest) of each repository with the bytes it
// occupies (manifest, index children, config and layers that are cached) and
// when it was last used.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/units.h"
#include "index/index_db.h"

namespace hubcache {

struct ImageInfo {
  std::string repo;
  std::string tag;  // empty when cached by digest only
  std::string digest;
  std::string media_type;
  uint64_t size_bytes = 0;  // cached bytes reachable from the manifest
  uint64_t blobs = 0;       // cached blobs reachable from it
  int64_t last_used_ms = 0;
};

[[nodiscard]] Result<std::vector<ImageInfo>> ListImages(IndexDb& index);

nlohmann::json ToJson(const std::vector<ImageInfo>& images);

}  // namespace hubcache
