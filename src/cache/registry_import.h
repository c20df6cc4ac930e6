#pragma once
// Adopting a CNCF distribution (`registry:2`) filesystem store as hosted
// repositories (`hubcache import`), so that pushed images survive a switch.
// The source layout, under the store's root DIR:
//
//   docker/registry/v2/blobs/sha256/<hh>/<hex>/data        every blob and manifest
//   docker/registry/v2/repositories/<name...>/             one per repository (nested
//       _layers/sha256/<hex>/link                          names nest; a repository is
//       _manifests/revisions/sha256/<hex>/link             a directory with _manifests)
//       _manifests/tags/<tag>/current/link
//       _uploads/                                          ignored
//
// A link file holds "sha256:<hex>", the digest its directory is named by; a
// directory without one was deleted and is ignored. Nothing in the source is
// ever written.
//
// A blob is hard-linked (else copied) into the hosted store's tmp/ and hashed
// as it is read: only bytes that hash to their name are recorded, by rename
// into place inside the index transaction (as an upload is). A manifest
// (small, and read whole to be checked) is hashed as it is read and written
// as a copy. Per
// repository, its linked blobs go first, then its image manifests, then its
// indexes (each checked by DescribePushedManifest and recorded only when all
// it references is in the repository), then its tags. Whatever cannot be
// imported is skipped and reported with its reason; what is there already is
// left as is, so a second run imports nothing new. A tag that already points
// at another manifest here is kept (it may be a newer push).
//
// Not thread-safe. The caller holds the cache lock (no server runs).

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "store/blob_store.h"

namespace hubcache {

// One repository as the source store holds it.
struct SourceRepository {
  std::string path;                                  // as stored, e.g. "team/app", "myapp"
  std::vector<Digest> layers;                        // sorted
  std::vector<Digest> revisions;                     // sorted
  std::vector<std::pair<std::string, Digest>> tags;  // sorted by tag
};

struct SourceStore {
  std::filesystem::path v2;                    // DIR/docker/registry/v2
  std::vector<SourceRepository> repositories;  // sorted by path
  // Entries that cannot be read (a link that names another digest, a
  // repository name outside the grammar's characters...), one line each.
  std::vector<std::string> problems;
};

// "sha256:<hex>" with optional trailing white space, as registry:2 writes it.
[[nodiscard]] Result<Digest> ParseLinkFile(std::string_view content);

// Reads the layout (not the content). kConfigInvalid when `dir` is not a
// registry:2 store.
[[nodiscard]] Result<SourceStore> ScanRegistryStore(const std::filesystem::path& dir);

struct ImportReport {
  uint64_t repositories = 0;  // that gained a blob link, manifest or tag
  uint64_t tags = 0;
  uint64_t manifests = 0;
  uint64_t blobs = 0;  // new hosted blobs (not new links of blobs already here)
  uint64_t bytes = 0;  // of those blobs
  uint64_t skipped = 0;
  // Normalised names of the source's repositories that hold at least one
  // manifest here after the run (imported now or before), sorted.
  std::vector<std::string> present;
};

struct ImportOptions {
  size_t max_manifest_bytes = 4 * 1024 * 1024;  // larger manifests are skipped
};

// Called once per skipped item with a line saying what and why.
using SkipNotice = std::function<void(const std::string& line)>;

// Imports every repository of `source` into `hosted` (the store at
// ROOT/hosted) and `index`. Fails only on errors of this side (disk full,
// database); problems of the source are skipped and reported.
[[nodiscard]] Result<ImportReport> ImportRegistryStore(const SourceStore& source, BlobStore& hosted,
                                                       IndexDb& index, const ImportOptions& options,
                                                       const SkipNotice& skipped);

}  // namespace hubcache
