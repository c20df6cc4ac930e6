#pragma once
// The bucket behind the local cache (L2; issue 14). With REGISTRY_STORAGE=s3
// the local disk is a bounded L1 (cap, LRU) in front of an S3 bucket: a miss in
// L1 looks here before the upstream, and what the upstream sends goes to both,
// here only once verified. Key layout under the bucket's root directory:
//
//   cache/blobs/sha256/<hh>/<64 hex>        verified blobs
//   cache/manifests/sha256/<hh>/<64 hex>    verified manifests, exact upstream
//                                           bytes, their media type as Content-Type
//   cache/tags/<repo>/_tags/<tag>/<accept>  tag records (JSON: digest, media
//                                           type, when the upstream confirmed it)
//
// Everything under cache/ can be lost (a lifecycle rule may expire it): it is
// fetched again. Blobs are copied into the bucket by worker threads while their
// fill still runs (cache/blob_fill.h): the copy reads the fill's temp file as
// it grows, and the fill withholds its last byte until the digest verified, so
// an object appears under a blob's key only whole and verified.
//
// A failing bucket does not fail requests: every operation that fails marks
// the bucket unavailable for `retry_after` (operations then fail at once, the
// callers go to L1 and the upstream) and counts it; /readyz reports it.
//
// Thread-safe. Borrows the S3 client and the stats (both outlive it); owns its
// copy workers, joined by the destructor (queued copies are dropped: the blob
// stays in L1 and is fetched again by a node that needs it), and the writer
// of manifests and tag records, which the destructor lets finish for up to
// kDrainLimit.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "stats/histogram.h"
#include "upstream/s3_client.h"

namespace hubcache {

class BlobFill;

struct SecondTierOptions {
  // After a failed operation the bucket is skipped for this long.
  std::chrono::milliseconds retry_after{5'000};
  // Concurrent blob copies into the bucket; more wait in a queue.
  size_t copy_workers = 3;
  // Copies waiting beyond this are dropped (counted): the blob stays in L1.
  size_t max_queued_copies = 1024;
  // A copy following a fill gives up when the fill sends nothing for this long.
  std::chrono::milliseconds fill_stall{60'000};
  // Manifests larger than this are not read back from the bucket.
  size_t max_manifest_bytes = 4 * 1024 * 1024;
};

// What the tier did, for /stats and /metrics (the S3 client counts requests,
// bytes, errors and latency itself).
struct SecondTierStats {
  std::atomic<uint64_t> blob_hits{0};      // L1 misses answered from the bucket
  std::atomic<uint64_t> blob_misses{0};    // L1 misses the bucket did not have
  std::atomic<uint64_t> manifest_hits{0};  // by digest
  std::atomic<uint64_t> tag_hits{0};       // tag records found
  std::atomic<uint64_t> copies{0};         // blobs copied into the bucket
  std::atomic<uint64_t> copy_bytes{0};
  std::atomic<uint64_t> copy_failures{0};
  std::atomic<uint64_t> copies_dropped{0};       // queue full, bucket unavailable, shutdown
  std::atomic<uint64_t> corrupt_objects{0};      // bytes that did not match their digest
  std::atomic<uint64_t> skipped_unavailable{0};  // operations skipped while marked down
  std::atomic<uint64_t> redirects{0};            // clients sent to a presigned URL
  std::atomic<uint64_t> stale_aborted{0};        // abandoned multipart copies aborted
  std::atomic<uint64_t> writes{0};               // manifests and tag records written
  std::atomic<uint64_t> writes_dropped{0};       // not written (queue full, down, shutdown)
  // The cap on cache/ (Trim): what the last look found, and what was removed.
  std::atomic<uint64_t> cache_bytes{0};  // blobs and manifests under cache/, last measured
  std::atomic<uint64_t> cache_objects{0};
  std::atomic<int64_t> measured_at_ms{0};  // 0 = never
  std::atomic<uint64_t> trimmed_objects{0};
  std::atomic<uint64_t> trimmed_bytes{0};
  // Duration of each request to the bucket (a copy's multipart upload is one).
  LatencyHistogram latency;
};

class SecondTier {
 public:
  SecondTier(S3Client& s3, SecondTierOptions options);
  ~SecondTier();
  SecondTier(const SecondTier&) = delete;
  SecondTier& operator=(const SecondTier&) = delete;

  static std::string BlobKey(const Digest& digest);
  static std::string ManifestKey(const Digest& digest);
  static std::string TagKey(const RepoName& repo, const std::string& tag,
                            const std::string& accept_key);
  // What every record of the tag's key starts with (its Accept's follows).
  static std::string TagPrefix(const RepoName& repo, const std::string& tag);

  struct Health {
    bool available = true;
    std::string last_error;    // the last failure, "" when none
    int64_t failed_at_ms = 0;  // unix ms of the last failure, 0 = never
  };
  Health health() const;
  // Whether operations go to the bucket now (false within retry_after of a
  // failure).
  bool Available() const;
  // For /readyz: when the last request failed and the retry window passed,
  // asks the bucket (Check) whether it is back. Cheap otherwise.
  void Probe();

  // Size of a blob in the bucket, nullopt when absent.
  [[nodiscard]] Result<std::optional<uint64_t>> BlobSize(const Digest& digest);
  // Streams a blob from the bucket to `sink` (on_size first); false when the
  // bucket does not have it. The caller verifies the bytes and calls
  // ReportCorrupt when they do not match.
  [[nodiscard]] Result<bool> StreamBlob(const Digest& digest, S3Sink& sink) {
    return StreamObject(BlobKey(digest), sink);
  }
  // The same for any key (hosted blobs live under hosted/: cache/hosted_bucket.h).
  [[nodiscard]] Result<bool> StreamObject(const std::string& key, S3Sink& sink);
  void CountRedirect() { stats_.redirects.fetch_add(1, std::memory_order_relaxed); }
  // Removes an object whose bytes did not match its digest.
  void ReportCorrupt(const std::string& key);

  // Queues a copy of the blob `fill` is fetching into the bucket. It runs on a
  // copy worker, reading the fill as it grows; the object appears only when
  // the fill verified.
  void CopyFill(std::shared_ptr<BlobFill> fill);

  struct StoredManifest {
    std::string bytes;
    std::string media_type;
  };
  // A manifest by digest, verified against it; nullopt when absent.
  [[nodiscard]] Result<std::optional<StoredManifest>> GetManifest(const Digest& digest);
  // Queues a verified manifest's write into the bucket: it runs behind the
  // answer to the client, on one writer thread that keeps the order of the
  // queue (a manifest before the tag record naming it). Dropped (counted) while
  // the bucket is marked down or kMaxQueuedWrites wait.
  void QueueManifest(const Digest& digest, const std::string& bytes, const std::string& media_type);
  [[nodiscard]] Result<std::optional<TagRow>> GetTag(const RepoName& repo, const std::string& tag,
                                                     const std::string& accept_key);
  // Queues a tag record's write, after everything queued before it.
  void QueueTag(const RepoName& repo, const std::string& tag, const std::string& accept_key,
                const TagRow& row);
  // Writes queued and not yet done (or being done).
  size_t pending_writes() const;
  static constexpr size_t kMaxQueuedWrites = 4096;
  // How long the destructor lets queued writes finish before dropping them.
  static constexpr std::chrono::milliseconds kDrainLimit{5'000};
  // Aborts multipart uploads of blob copies started more than `age` ago (what
  // a crash or a kill left in the bucket, invisible but billed); returns how
  // many were aborted.
  [[nodiscard]] Result<uint64_t> AbortStaleCopies(std::chrono::milliseconds age);
  // Holds the cached blobs and manifests under `max_bytes` (HUBCACHE_L2_MAX_SIZE):
  // lists cache/blobs/ and cache/manifests/ and, when they hold more, removes
  // the oldest written first until they hold at most low_watermark of it. S3
  // keeps no access time: age is the write time (hot blobs also sit in the
  // nodes' L1s; one trimmed here is fetched again once). Tag records stay (one
  // pointing at a trimmed manifest is a miss). Never touches hosted/: pushed
  // content is the only copy. Lists at most kMaxTrimListing objects a pass.
  struct TrimReport {
    uint64_t objects = 0;  // listed
    uint64_t bytes = 0;
    uint64_t removed = 0;
    uint64_t removed_bytes = 0;
  };
  static constexpr size_t kMaxTrimListing = 2'000'000;
  [[nodiscard]] Result<TrimReport> Trim(uint64_t max_bytes, double low_watermark);

  // Removes a blob or a manifest (an operator's `rm`); absent is fine.
  [[nodiscard]] Status DeleteBlob(const Digest& digest);
  [[nodiscard]] Status DeleteManifest(const Digest& digest);
  // Removes a tag's records (every Accept's); none is fine.
  [[nodiscard]] Status DeleteTag(const RepoName& repo, const std::string& tag);

  const SecondTierStats& stats() const { return stats_; }
  S3Client& client() { return s3_; }

 private:
  // Fails at once while the bucket is marked down.
  Status Gate();
  // Records a failure (marks the bucket down) and passes the error on.
  Error Failed(const Error& error);
  // Runs one request to the bucket, timing it.
  template <typename F>
  auto Timed(F&& request) {
    const auto started = std::chrono::steady_clock::now();
    auto result = request();
    stats_.latency.Observe(std::chrono::steady_clock::now() - started);
    if (result) ok_at_ms_.store(UnixNowMs(), std::memory_order_relaxed);
    return result;
  }
  void CopyLoop();
  void Copy(const std::shared_ptr<BlobFill>& fill);
  struct Write {
    std::string key;
    std::string body;
    std::string content_type;
  };
  void Queue(Write write);
  void WriteLoop();

  S3Client& s3_;
  const SecondTierOptions options_;
  SecondTierStats stats_;
  std::atomic<int64_t> down_until_ms_{0};
  std::atomic<int64_t> ok_at_ms_{0};  // last request that succeeded
  mutable std::mutex mutex_;
  std::string last_error_;                       // guarded by mutex_
  int64_t failed_at_ms_ = 0;                     // guarded by mutex_
  std::deque<std::shared_ptr<BlobFill>> queue_;  // guarded by mutex_
  bool stopping_ = false;                        // guarded by mutex_
  std::atomic<bool> stop_copies_{false};
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::deque<Write> writes_;  // guarded by mutex_
  bool writing_ = false;      // the writer holds one; guarded by mutex_
  bool stop_writes_ = false;  // guarded by mutex_
  std::condition_variable writes_changed_;
  std::thread writer_;
};

}  // namespace hubcache
