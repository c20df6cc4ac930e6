#pragma once
// The blob path's one home: where the bytes of a blob GET or HEAD come from,
// decided here and nowhere else. A hosted repository's blob (RepoSources) is
// read from the hosted store only (kHosted), never fetched. For a mirrored one,
// in order:
//   - hit: the verified file in the store, pinned so the evictor leaves it
//     while it is read, its last use touched;
//   - miss: the single-flight fill of that digest (started or joined), read as
//     it grows; an upstream that announces an empty body for any digest but
//     the empty blob's is refused before anything is sent;
//   - pass-through: when the cache cannot take a new file (disk full,
//     read-only), the upstream directly, still verified, caching nothing; a
//     fill that fails on write mid-stream finishes from the upstream likewise.
// The HTTP layer turns a BlobRead into bytes on the wire: a hit's file (which
// it may sendfile), or Stream() for the rest. Counters (hits, misses,
// pass-through serves, write errors) are bumped here.
// Thread-safe; borrows everything it uses from the Mirror, which outlives it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "cache/access_tracker.h"
#include "cache/blob_fill.h"
#include "cache/hosted_registry.h"
#include "cache/pins.h"
#include "cache/stats.h"
#include "cache/usage.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "registry/reference.h"
#include "registry/repo_sources.h"
#include "store/blob_store.h"
#include "upstream/upstream_set.h"

namespace hubcache {

// kRedirect: the blob is in the S3 bucket behind the cache and the client is
// sent there (REGISTRY_STORAGE_REDIRECT_DISABLE=false), with a presigned URL.
// kBucket: a miss of the local cache that its S3 bucket has, streamed from a
// fill that reads the bucket (a hit of the second tier).
enum class BlobSource { kHit, kMiss, kPassThrough, kHosted, kRedirect, kBucket };

// What to send for one blob request. Move-only: it owns the open file and the
// pin of a hit, and shares the fill of a miss.
struct BlobRead {
  RepoName repo;
  Digest digest;
  BlobSource source = BlobSource::kHit;
  std::optional<uint64_t> size;      // unknown only for a fill without a length
  UniqueFd file;                     // kHit, kHosted (GET): the verified file
  std::unique_ptr<PinSet::Pin> pin;  // kHit: keeps the evictor off it
  std::shared_ptr<BlobFill> fill;    // kMiss, kBucket (and kHosted read from the bucket)
  std::string location;              // kRedirect: the presigned URL (never log it)
};

struct BlobServiceOptions {
  // Bounds each wait for an upstream's first answer or next bytes.
  std::chrono::milliseconds wait_limit{60'000};
  // Bounds a whole transfer straight from the upstream.
  std::chrono::milliseconds transfer_timeout{3'600'000};
  // A GET of a blob that is not in L1 but in the bucket answers a redirect to
  // a presigned URL valid this long (0 = serve it, filling L1).
  std::chrono::seconds redirect_validity{0};
};

class BlobService {
 public:
  // Receives the body's bytes in order; false stops the stream (client gone).
  using Writer = std::function<bool(const char* data, size_t size)>;

  BlobService(const RepoSources& sources, HostedRegistry& hosted, BlobStore& store,
              FillManager& fills, UpstreamSet& upstream, PinSet& pins, AccessTracker& access,
              CacheUsage& usage, CacheStats& stats, BlobServiceOptions options,
              SecondTier* l2 = nullptr)
      : sources_(sources),
        hosted_(hosted),
        store_(store),
        fills_(fills),
        upstream_(upstream),
        pins_(pins),
        access_(access),
        usage_(usage),
        stats_(stats),
        options_(options),
        l2_(l2) {}

  // For a GET: the source, with the blob's size once the upstream announced it.
  [[nodiscard]] Result<BlobRead> Open(const RepoName& repo, const Digest& digest);
  // For a HEAD: the size and the source, never downloading the blob (a HEAD
  // to the bucket, then the upstream, when neither the store nor a fill knows it).
  [[nodiscard]] Result<BlobRead> Stat(const RepoName& repo, const Digest& digest);

  // Streams [first, first + length) of a miss or pass-through to `write`;
  // `length` nullopt: to the verified end (a fill of unknown size). Returns
  // false when the body was cut short (the upstream failed, the digest did not
  // match, or the client left): the response must end without completing.
  bool Stream(const BlobRead& read, uint64_t first, std::optional<uint64_t> length,
              const Writer& write);

  // For a read with a fill (kMiss, kBucket, a kHosted read from the bucket):
  // waits (at most the wait limit) until its temp file, read.fill->read_fd(),
  // holds bytes at `offset` a client may get, and returns where they end;
  // nullopt when it never will (the fill failed or ended): Stream() from there
  // then finishes the body, or fails it.
  std::optional<uint64_t> FillReadableEnd(const BlobRead& read, uint64_t offset);

 private:
  Result<uint64_t> UpstreamSize(const RepoName& repo, const Digest& digest);
  bool StreamFill(const BlobRead& read, uint64_t first, std::optional<uint64_t> length,
                  const Writer& write);
  bool StreamUpstream(const BlobRead& read, uint64_t first, uint64_t length, const Writer& write);
  Result<BlobRead> OpenHosted(const RepoName& repo, const Digest& digest, bool open);

  const RepoSources& sources_;
  HostedRegistry& hosted_;
  BlobStore& store_;
  FillManager& fills_;
  UpstreamSet& upstream_;
  PinSet& pins_;
  AccessTracker& access_;
  CacheUsage& usage_;
  CacheStats& stats_;
  const BlobServiceOptions options_;
  SecondTier* const l2_;  // the bucket behind the cache, or null
};

}  // namespace hubcache
