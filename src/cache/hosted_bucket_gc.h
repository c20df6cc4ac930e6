#pragma once
// Mark and sweep of hosted content in the S3 bucket (`hubcache gc` with
// REGISTRY_STORAGE=s3; the bucket's layout: cache/hosted_bucket.h). Marks every
// blob a manifest revision of any repository references, then removes each
// blob under hosted/blobs/ that none does, with the repositories' links to it
// (links first, so a reader never finds a link to nothing it could not have
// found before). A blob, or a link to it, younger than the grace period stays:
// it may be an upload whose manifest is still to come. The bucket has no
// transactions: a manifest pushed during the sweep that names a blob already
// judged unreferenced and older than the grace period can lose it, as with the
// CNCF registry's garbage-collect; run it when pushes are quiet, or keep the
// grace period above the longest push.
// A function, not a class: no state. Borrows the client.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/result.h"
#include "upstream/s3_client.h"

namespace hubcache {

struct BucketGcOptions {
  bool dry_run = false;
  std::chrono::milliseconds grace{3'600'000};
};

struct BucketGcReport {
  uint64_t manifests = 0;  // revisions read (the marks)
  uint64_t blobs = 0;      // blobs listed
  uint64_t blobs_removed = 0;
  uint64_t links_removed = 0;
  uint64_t bytes_freed = 0;
};

// `line` receives one line per blob removed (or, dry run, that would be).
[[nodiscard]] Result<BucketGcReport> CollectBucketGarbage(
    S3Client& s3, const BucketGcOptions& options,
    const std::function<void(const std::string&)>& line);

}  // namespace hubcache
