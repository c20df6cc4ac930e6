#pragma once
// Single-flight blob fills: one upstream GET per blob however many clients ask.
//
// A fill runs on its own thread. It streams the upstream body into a temp file
// in the cache's tmp/ while hashing it; clients (the one that started it and any
// that join later) read from that growing file, each at its own pace, so a slow
// client never slows the fill and a client that leaves does not cancel it.
// Readers never receive the final byte before the whole body hashed to the
// digest: on a mismatch or truncation every reader fails instead, so no client
// ever sees a complete-looking wrong body. Only a verified file is renamed into
// the store and indexed.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cache/stats.h"
#include "cache/usage.h"
#include "common/result.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "store/blob_store.h"
#include "upstream/upstream_set.h"

namespace hubcache {

class SecondTier;

class BlobFill {
 public:
  BlobFill(Digest digest, UniqueFd read_fd)
      : digest_(std::move(digest)), read_fd_(std::move(read_fd)) {}

  // Waits until the upstream answered. Returns the blob's size when the upstream
  // sent a Content-Length (nullopt: unknown, stream it chunked), or the error.
  [[nodiscard]] Result<std::optional<uint64_t>> WaitForHeaders(std::chrono::milliseconds limit);

  // Copies up to `max` bytes at `offset` into `out`, waiting for them to arrive.
  // Returns 0 only at the verified end of the blob. Fails when the fill failed.
  [[nodiscard]] Result<size_t> ReadAt(uint64_t offset, char* out, size_t max,
                                      std::chrono::milliseconds limit);
  // Waits as ReadAt does, and returns where the bytes a reader may see from
  // `offset` end: past `offset`, or `offset` itself at the verified end. The
  // bytes before it can be read from read_fd() (with pread or sendfile).
  [[nodiscard]] Result<uint64_t> WaitReadable(uint64_t offset, std::chrono::milliseconds limit);
  // The temp file, open for reading; valid as long as this fill is.
  int read_fd() const { return read_fd_.get(); }

  const Digest& digest() const { return digest_; }
  // Whether the bytes come from the S3 bucket behind the cache (then it is a
  // hit of the cache's second tier), once WaitForHeaders returned.
  bool FromBucket();

  // Waits until the fill verified and returns its size, or the error it failed
  // with (also when nothing changed for `stall`).
  [[nodiscard]] Result<uint64_t> WaitVerifiedSize(std::chrono::milliseconds stall);

  // True once the fill failed because the cache could not be written: the
  // upstream was fine, so readers continue from the upstream directly.
  bool FailedOnWrite();
  uint64_t BytesWritten();
  // Feeds bytes [0, n) of the temp file to `hasher` (n <= bytes written).
  [[nodiscard]] Status HashPrefix(uint64_t n, Sha256& hasher);

  // Whether the prefetcher started this fill (cache/prefetcher.h).
  bool prefetched() const { return prefetched_; }
  // Runs `done` once the fill verified or failed (at once if it has), on the
  // thread that finished it, with nothing locked.
  void OnFinish(std::function<void(bool verified)> done);

 private:
  friend class FillManager;
  enum class State { kStarting, kStreaming, kVerified, kFailed };

  void SetHeaders(std::optional<uint64_t> total, bool from_bucket);
  void AddBytes(uint64_t n);
  void Finish(State state, Error error = {}, bool write_failed = false);

  const Digest digest_;
  const UniqueFd read_fd_;  // stays valid after the temp file is renamed or removed

  std::mutex mutex_;
  std::condition_variable changed_;
  State state_ = State::kStarting;                    // guarded by mutex_
  std::optional<uint64_t> total_;                     // guarded by mutex_
  uint64_t written_ = 0;                              // guarded by mutex_
  Error error_;                                       // guarded by mutex_
  bool write_failed_ = false;                         // guarded by mutex_
  bool from_bucket_ = false;                          // guarded by mutex_
  std::vector<std::function<void(bool)>> on_finish_;  // guarded by mutex_
  bool prefetched_ = false;                           // set before the fill is shared
};

struct FillOptions {
  std::chrono::milliseconds fill_timeout{3'600'000};
};

class FillManager {
 public:
  // `l2`, when not null, is the bucket behind the cache (cache/second_tier.h):
  // a fill reads the blob from there when it has it, else from the upstream
  // while a copy into the bucket follows. Borrowed; it outlives the manager.
  FillManager(UpstreamSet& upstream, BlobStore& store, IndexDb& index, CacheStats& stats,
              CacheUsage& usage, FillOptions options, SecondTier* l2 = nullptr)
      : upstream_(upstream),
        store_(store),
        index_(index),
        stats_(stats),
        usage_(usage),
        options_(options),
        l2_(l2) {}
  ~FillManager();  // aborts fills in flight and joins their threads
  FillManager(const FillManager&) = delete;
  FillManager& operator=(const FillManager&) = delete;

  // The fill in flight for `digest`, started now if none runs. nullptr with no
  // error means the blob is already in the store (read it from there).
  // `bucket_key`: read the blob from that key of the bucket only, never from
  // the upstream (a hosted blob this node has no copy of).
  [[nodiscard]] Result<std::shared_ptr<BlobFill>> StartOrJoin(const RepoName& repo,
                                                              const Digest& digest,
                                                              const std::string& bucket_key = {});

  // For the prefetcher: a new fill of `digest`, marked prefetched; nullptr
  // with no error when the blob is in the store or a fill of it runs already.
  [[nodiscard]] Result<std::shared_ptr<BlobFill>> StartPrefetch(const RepoName& repo,
                                                                const Digest& digest);

  // The fill in flight for `digest`, if any.
  std::shared_ptr<BlobFill> Find(const Digest& digest);

  size_t active();

 private:
  void Run(uint64_t id, RepoName repo, std::shared_ptr<BlobFill> fill, TempFile temp,
           std::string bucket_key);
  void ReapFinishedLocked();
  // Starts a fill; mutex_ held, nothing in flight for the digest.
  Result<std::shared_ptr<BlobFill>> StartLocked(const RepoName& repo, const Digest& digest,
                                                const std::string& bucket_key, bool prefetch);

  UpstreamSet& upstream_;
  BlobStore& store_;
  IndexDb& index_;
  CacheStats& stats_;
  CacheUsage& usage_;
  const FillOptions options_;
  SecondTier* const l2_;
  std::atomic<bool> stopping_{false};

  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<BlobFill>> active_;  // by digest hex; guarded by mutex_
  std::map<uint64_t, std::thread> threads_;                  // guarded by mutex_
  std::vector<uint64_t> finished_;                           // guarded by mutex_
  uint64_t next_id_ = 0;                                     // guarded by mutex_
};

}  // namespace hubcache
