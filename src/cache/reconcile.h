#pragma once
// Brings the index and the files of a cache back into agreement, after a crash
// or for `hubcache gc`:
//   - temp files of interrupted fills are removed (only when no server runs);
//   - a file with no index row is hashed: adopted when it matches its name,
//     removed otherwise (the crash window between rename and index insert);
//   - a row whose file is gone is dropped;
//   - with verify, every indexed blob is re-hashed and removed if corrupt.
// Safe beside a running server: it never removes a file that hashes right.

#include <cstdint>
#include <string>

#include "common/result.h"
#include "index/index_db.h"
#include "store/blob_store.h"

namespace hubcache {

struct ReconcileOptions {
  bool clear_temp = true;  // false when a server may be filling right now
  bool verify = false;     // re-hash every blob and manifest
  bool dry_run = false;    // report only
};

struct ReconcileReport {
  uint64_t temp_removed = 0;
  uint64_t orphans_adopted = 0;
  uint64_t orphans_removed = 0;  // junk or wrong bytes without an index row
  uint64_t rows_dropped = 0;     // index rows whose file was missing
  uint64_t corrupt_removed = 0;  // indexed files whose bytes no longer match
  uint64_t bytes_freed = 0;
  uint64_t entries = 0;  // entries in the cache afterwards (dry run: would be)
  uint64_t bytes = 0;    // bytes in the cache afterwards (dry run: would be)

  std::string Summary() const;
  bool changed() const {
    return temp_removed + orphans_adopted + orphans_removed + rows_dropped + corrupt_removed > 0;
  }
};

[[nodiscard]] Result<ReconcileReport> Reconcile(BlobStore& store, IndexDb& index,
                                                const ReconcileOptions& options);

}  // namespace hubcache
