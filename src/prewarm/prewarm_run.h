#pragma once
// One pre-warm run over a list of images, against a running mirror over HTTP.
//
// For each image: GET its manifest by tag (or digest) with the full Accept set,
// walk an index to the wanted platform manifests, then GET every config and
// layer blob through the mirror and discard the bytes (verifying their digest).
// A blob GET is the mirror's own single-flight fill path, so a run beside live
// pulls, or beside another run, never makes the upstream send a blob twice; on
// a warm cache every blob is a local hit and a tag costs the upstream at most a
// revalidating HEAD. Whether a blob was already cached comes from the mirror's
// X-Hubcache-Cache response header.
//
// A blob shared by several images of the run is fetched once: it counts as
// fetched or cached for the first image that lists it and as cached for the
// others. The run totals count every distinct blob once.
//
// Threads: Run() blocks its caller, which works alongside `concurrency - 1`
// threads that Run() starts and joins before it returns. Snapshot() and
// Cancel() may be called from any thread at any time. The observer is called
// from the working threads, without the run's lock held.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "prewarm/mirror_session.h"
#include "registry/image_ref.h"
#include "registry/manifest_walk.h"

namespace hubcache {

struct PrewarmOptions {
  SessionOptions session;           // the mirror's URL and transfer timeouts
  std::vector<Platform> platforms;  // empty: every entry of an index
  int concurrency = 4;              // requests to the mirror in parallel
  int attempts = 2;                 // tries per request on network errors and 5xx
  std::chrono::milliseconds retry_delay{1'000};
};

enum class ImageState { kQueued, kResolving, kFetching, kDone, kFailed };

enum class FailureReason {
  kNone,
  kUnknownTag,       // the tag does not exist (404)
  kUnknownManifest,  // a manifest named by digest does not exist
  kUnknownBlob,      // a blob the manifest names does not exist
  kUnauthorized,     // 401/403 (Docker Hub also says 401 for a missing repository)
  kRateLimited,      // 429
  kNetwork,          // the mirror or its upstream unreachable, timing out, 5xx
  kInvalid,          // unusable manifest or a body that does not match its digest
  kNoPlatform,       // no index entry matches the requested platforms
  kCanceled,         // the run was canceled
};

const char* ImageStateName(ImageState state);         // "queued", "resolving", ... "done", "failed"
const char* FailureReasonName(FailureReason reason);  // "unknown tag", "rate-limited", ...

struct ImageProgress {
  std::string image;  // canonical reference
  ImageState state = ImageState::kQueued;
  std::string digest;  // what the reference resolved to, once known
  int platforms = 0;   // platform manifests warmed
  int blobs_total = 0;
  int blobs_done = 0;
  uint64_t bytes_total = 0;    // sum of the blob sizes, known once resolved
  uint64_t bytes_fetched = 0;  // bytes the mirror did not hold (X-Hubcache-Cache: miss)
  uint64_t bytes_cached = 0;   // bytes the mirror already held
  FailureReason reason = FailureReason::kNone;
  std::string error;  // why it failed, in a sentence

  bool finished() const { return state == ImageState::kDone || state == ImageState::kFailed; }
};

struct RunSnapshot {
  int64_t started_ms = 0;   // unix ms; 0 before Run()
  int64_t finished_ms = 0;  // 0 while running
  std::vector<ImageProgress> images;
  // Over distinct blobs: a layer shared by two images counts once.
  uint64_t bytes_total = 0;
  uint64_t bytes_fetched = 0;
  uint64_t bytes_cached = 0;
  bool canceled = false;

  bool finished() const { return finished_ms != 0; }
  int images_ok() const;
  int images_failed() const;
};

class PrewarmRun {
 public:
  using Observer = std::function<void(const ImageProgress& image)>;

  PrewarmRun(std::vector<ImageRef> images, PrewarmOptions options);
  ~PrewarmRun();
  PrewarmRun(const PrewarmRun&) = delete;
  PrewarmRun& operator=(const PrewarmRun&) = delete;

  // Called when an image is resolved and when it finishes. Set before Run().
  void SetObserver(Observer observer) { observer_ = std::move(observer); }

  // Warms every image; returns the final snapshot. Call once.
  RunSnapshot Run();

  // Aborts the transfers in flight and fails what is left as canceled.
  void Cancel();

  RunSnapshot Snapshot() const;

 private:
  enum class BlobState { kQueued, kRunning, kDone, kFailed };
  struct BlobJob {
    Descriptor descriptor;
    RepoName repo;               // of the first image that listed it
    std::vector<size_t> images;  // images waiting on it; the first one "owns" it
    BlobState state = BlobState::kQueued;
    bool miss = false;      // the mirror did not hold it
    uint64_t received = 0;  // bytes of the attempt in flight
    FailureReason reason = FailureReason::kNone;
    std::string error;
  };
  struct ImageJob {
    ImageRef ref;
    ImageProgress progress;
    int pending_blobs = 0;
  };
  using Events = std::vector<ImageProgress>;

  void Work();
  void Resolve(MirrorSession& session, size_t image);
  void FetchBlob(MirrorSession& session, size_t blob);
  // GET a manifest with retries; checks the bytes against `expected` (if set)
  // or the Docker-Content-Digest header.
  Result<MirrorReply> FetchManifest(MirrorSession& session, const RepoName& repo,
                                    const std::string& reference, const Digest* expected);
  bool WaitBeforeRetry();
  FailureReason ReasonFor(const Error& error, FailureReason unknown) const;

  void FailImageLocked(size_t image, FailureReason reason, const std::string& error);
  void SettleBlobLocked(BlobJob& blob, size_t image, bool owner);
  void FinishImageLocked(size_t image, Events& events);
  void Notify(const Events& events);

  const PrewarmOptions options_;
  Observer observer_;
  std::atomic<bool> cancel_{false};

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;               // queues or outstanding_ changed
  std::condition_variable cancel_cv_;             // cancel_ set
  std::vector<ImageJob> images_;                  // fixed size; progress guarded by mutex_
  std::deque<BlobJob> blobs_;                     // guarded by mutex_ (deque: stable references)
  std::map<std::string, size_t> blob_by_digest_;  // hex -> index in blobs_; guarded
  std::deque<size_t> resolve_queue_;              // guarded by mutex_
  std::deque<size_t> blob_queue_;                 // guarded by mutex_
  size_t outstanding_ = 0;                        // queued + running tasks; guarded by mutex_
  int64_t started_ms_ = 0;                        // guarded by mutex_
  int64_t finished_ms_ = 0;                       // guarded by mutex_
  uint64_t bytes_total_ = 0;                      // guarded by mutex_
  uint64_t bytes_fetched_ = 0;                    // settled blobs; guarded by mutex_
  uint64_t bytes_cached_ = 0;                     // settled blobs; guarded by mutex_
};

}  // namespace hubcache
