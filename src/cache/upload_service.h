#pragma once
// Blob uploads into hosted repositories (OCI distribution spec, "pushing
// blobs"): started, appended chunk by chunk, finished with a digest that must
// match, cancelled, or mounted from another repository. Bytes go to
// <hosted>/uploads/<id> while they are hashed (memory stays flat whatever the
// size); the blob appears under <hosted>/blobs only by rename once its digest
// matched, inside the index transaction that records it, so a half-written
// blob is never visible and `kill -9` leaves at worst an upload to resume.
// An upload's state (repository, offset) is in the index and survives a
// restart; its running hash is kept in memory and rebuilt from the file when
// lost. Abandoned uploads are purged by PurgeStale.
//
// Thread-safe. Concurrent requests on one upload are refused (416), not
// interleaved. Borrows the stores and index (owned by the Mirror, which
// outlives it).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/hosted_bucket.h"
#include "cache/stats.h"
#include "common/byte_source.h"
#include "common/result.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "store/blob_store.h"

namespace hubcache {

struct UploadStatus {
  std::string id;
  uint64_t offset = 0;  // bytes received: the next chunk starts here
};

struct StoredBlob {
  Digest digest;
  uint64_t size = 0;
};

class UploadService {
 public:
  // `hosted`: the hosted repositories' store; `cache`: the mirror's, whose
  // verified blobs a mount may adopt.
  // `bucket`, when not null (REGISTRY_STORAGE=s3), gets every committed blob
  // and link before the index records it: a push is answered only once it is
  // durable there (cache/hosted_bucket.h).
  UploadService(BlobStore& hosted, BlobStore& cache, IndexDb& index, CacheStats& stats,
                HostedBucket* bucket = nullptr);

  // Clears what a crash left: upload files without a row and rows without a
  // file. Call once before serving.
  [[nodiscard]] Status Recover();

  [[nodiscard]] Result<UploadStatus> Start(const RepoName& repo);
  [[nodiscard]] Result<UploadStatus> Query(const RepoName& repo, const std::string& id);
  // Appends the body. `start`, from Content-Range, must equal the offset
  // (else kUploadOutOfOrder); `length`, when the client declared one, must be
  // what arrives. Bytes that did arrive stay, so the client may resume.
  [[nodiscard]] Result<UploadStatus> Append(const RepoName& repo, const std::string& id,
                                            std::optional<uint64_t> start, ByteSource& body);
  // Appends the body (may be empty) and finishes: the digest must match, else
  // kDigestInvalid and the upload is gone.
  [[nodiscard]] Result<StoredBlob> Finish(const RepoName& repo, const std::string& id,
                                          const Digest& digest, ByteSource& body);
  [[nodiscard]] Status Cancel(const RepoName& repo, const std::string& id);
  // A whole blob in one request (POST ?digest=).
  [[nodiscard]] Result<StoredBlob> PutWhole(const RepoName& repo, const Digest& digest,
                                            ByteSource& body);
  // Links a blob `from` holds (a hosted repository, or the mirror's cache when
  // `from_mirror`) into `repo` without a transfer. Nullopt when it is not there.
  [[nodiscard]] Result<std::optional<StoredBlob>> Mount(const RepoName& repo, const Digest& digest,
                                                        const std::optional<RepoName>& from,
                                                        bool from_mirror);

  // Removes uploads untouched for `age` (only logs them when `dry_run`).
  // Returns how many.
  size_t PurgeStale(std::chrono::milliseconds age, bool dry_run);

 private:
  struct Live;  // an upload's lock and running hash
  std::shared_ptr<Live> LiveOf(const std::string& id);
  void Forget(const std::string& id);
  std::filesystem::path PathOf(const std::string& id) const;
  Result<UploadRow> Lookup(const RepoName& repo, const std::string& id);
  // An upload taken for writing by this request: its lock held, its row read
  // again under it (a request that held it may have moved the offset).
  struct Writing;
  Result<Writing> TakeForWriting(const RepoName& repo, const std::string& id);
  // Appends the body to the open upload; updates `live` and the index.
  Result<uint64_t> Receive(Live& live, const UploadRow& row, ByteSource& body);
  Result<StoredBlob> Complete(Live& live, const UploadRow& row, const Digest& digest);
  Status Discard(const std::string& id);

  BlobStore& hosted_;
  BlobStore& cache_;
  IndexDb& index_;
  CacheStats& stats_;
  HostedBucket* const bucket_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Live>> live_;  // guarded by mutex_
};

}  // namespace hubcache
