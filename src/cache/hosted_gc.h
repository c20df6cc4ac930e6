#pragma once
// Mark and sweep of hosted repositories (`hubcache gc`): blobs that no hosted
// manifest references any more (after deletes and re-tagged pushes) are
// removed, and with delete_untagged also manifests no tag, index or subject
// keeps. Safe beside a running server: every removal re-checks, inside the
// index's write transaction (which a manifest PUT also takes), that nothing
// references the object, and objects younger than the grace period are left
// alone (a blob pushed just before its manifest). Uploads in progress are
// files of their own and never swept here.
// A function, not a class: no state. Borrows the store and index.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "index/index_db.h"
#include "store/blob_store.h"

namespace hubcache {

struct HostedGcOptions {
  bool dry_run = false;
  bool delete_untagged = false;
  std::chrono::milliseconds grace{3'600'000};
};

struct HostedGcReport {
  uint64_t manifests_removed = 0;
  uint64_t blobs_removed = 0;
  uint64_t bytes_freed = 0;
};

// `line` receives one line per object removed (or, dry run, that would be).
[[nodiscard]] Result<HostedGcReport> CollectHostedGarbage(
    BlobStore& hosted, IndexDb& index, const HostedGcOptions& options,
    const std::function<void(const std::string&)>& line);

}  // namespace hubcache
