#pragma once
// Prefetch on manifest: when a client GETs an image manifest the local cache
// did not hold (fetched from the upstream, or read from the bucket), the blobs
// it references (config, then layers, in the manifest's order) are fetched at
// once through the same single-flight fills (cache/blob_fill.h) that the
// client's own blob requests then join. Clients ask for a few layers at a time
// (containerd and dockerd 3); the mirror has all of them under way before it
// is asked. Nothing is prefetched for a HEAD, a cache hit, a tag that was only
// revalidated, or an index: the caller decides that (ShouldPrefetch).
//
// Bounded: at most max_fills prefetch fills at once and at most max_bytes of
// their announced sizes in flight (one fill always may run, whatever its
// size); at most kMaxQueued blobs wait, and one manifest queues at most
// max_manifest_bytes; the rest are left to the client (and counted dropped).
// Blobs already in the store or being fetched are skipped, never fetched twice.
//
// Thread-safe: Enqueue runs on request threads, completions on fill threads.
// Borrows the FillManager (it outlives it; it checks the store itself). Its state is shared
// with the completions of fills it started, so a fill that finishes after the
// Prefetcher is gone finds it stopped and does nothing.

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

#include "cache/blob_fill.h"
#include "cache/manifest_service.h"
#include "registry/reference.h"
#include "stats/snapshot.h"

namespace hubcache {

struct PrefetchOptions {
  bool enabled = true;
  size_t max_fills = 6;               // prefetch fills at once
  uint64_t max_bytes = 512ULL << 20;  // their announced sizes in flight
  // The most one manifest queues (0 = no limit): half the cache's cap, so a
  // prefetch never evicts the layers it fetched before the client reads them.
  uint64_t max_manifest_bytes = 0;
};

class Prefetcher {
 public:
  static constexpr size_t kMaxQueued = 4096;

  Prefetcher(FillManager& fills, PrefetchOptions options);
  ~Prefetcher();  // stops starting fills; those running go on
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // Whether a GET that answered `result` should prefetch: an image manifest
  // the local cache did not hold. False when prefetch is off.
  bool ShouldPrefetch(const ManifestResult& result) const;

  // Queues the config and layers of `manifest` (an image manifest; anything
  // else queues nothing) and starts what the caps allow.
  void Enqueue(const RepoName& repo, const Manifest& manifest);

  // Its settings, state and counters (`joined` is the caller's to fill).
  PrefetchFigures Figures() const;

 private:
  struct Item {
    RepoName repo;
    Digest digest;
    uint64_t size = 0;
  };
  struct State;

  // Starts queued items while the caps allow. Called with nothing locked.
  static void Pump(const std::shared_ptr<State>& state);

  std::shared_ptr<State> state_;
};

}  // namespace hubcache
