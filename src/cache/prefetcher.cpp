#include "cache/prefetcher.h"

#include <algorithm>

#include "common/log.h"
#include "registry/manifest_walk.h"
#include "registry/media_types.h"

namespace hubcache {

struct Prefetcher::State {
  State(FillManager& f, PrefetchOptions o) : fills(f), options(o) {}

  FillManager& fills;
  const PrefetchOptions options;

  mutable std::mutex mutex;
  bool stopped = false;          // guarded by mutex
  bool pumping = false;          // a Pump runs; guarded by mutex
  bool again = false;            // it should look once more; guarded by mutex
  std::deque<Item> queue;        // guarded by mutex
  size_t active = 0;             // guarded by mutex
  uint64_t bytes_in_flight = 0;  // guarded by mutex
  PrefetchFigures counts;        // the counters; guarded by mutex
};

Prefetcher::Prefetcher(FillManager& fills, PrefetchOptions options)
    : state_(std::make_shared<State>(fills, options)) {}

Prefetcher::~Prefetcher() {
  std::lock_guard lock(state_->mutex);
  state_->stopped = true;
  state_->queue.clear();
}

bool Prefetcher::ShouldPrefetch(const ManifestResult& result) const {
  if (!state_->options.enabled) return false;
  if (result.source != ManifestSource::kUpstream && result.source != ManifestSource::kBucket) {
    return false;
  }
  return IsImageManifestMediaType(result.manifest.media_type);
}

void Prefetcher::Enqueue(const RepoName& repo, const Manifest& manifest) {
  auto parsed = ParseManifest(manifest.media_type, *manifest.bytes);
  if (!parsed || parsed->is_index || parsed->blobs.empty()) return;
  {
    std::lock_guard lock(state_->mutex);
    if (state_->stopped) return;
    ++state_->counts.manifests;
    const uint64_t limit = state_->options.max_manifest_bytes;
    uint64_t queued_bytes = 0;
    for (const Descriptor& d : parsed->blobs) {
      if (state_->queue.size() >= kMaxQueued || (limit > 0 && queued_bytes + d.size > limit)) {
        ++state_->counts.dropped;
        continue;
      }
      queued_bytes += d.size;
      state_->queue.push_back(Item{repo, d.digest, d.size});
    }
  }
  Pump(state_);
}

void Prefetcher::Pump(const std::shared_ptr<State>& state) {
  std::unique_lock lock(state->mutex);
  // One Pump at a time: a completion that arrives meanwhile (on a fill thread,
  // or inline for a fill that finished at once) asks the running one to look
  // again instead of recursing.
  if (state->pumping) {
    state->again = true;
    return;
  }
  state->pumping = true;
  do {
    state->again = false;
    while (!state->stopped && !state->queue.empty() && state->active < state->options.max_fills) {
      const Item& next = state->queue.front();
      if (state->active > 0 && state->bytes_in_flight + next.size > state->options.max_bytes) {
        break;
      }
      Item item = std::move(state->queue.front());
      state->queue.pop_front();
      // The fill manager's lock is taken under ours; fills call back into us
      // from their own threads with neither held.
      auto fill = state->fills.StartPrefetch(item.repo, item.digest);
      if (!fill) {
        // The cache cannot take a file now (disk full, shutting down): the
        // clients' own requests decide what to do; this batch is dropped.
        Logger("cache")->debug("prefetch not started blob={}@{} error=\"{}\"", item.repo.str(),
                               item.digest.str(), fill.error().message);
        ++state->counts.failed;
        state->counts.dropped += state->queue.size();
        state->queue.clear();
        break;
      }
      if (!*fill) {
        ++state->counts.skipped;
        continue;
      }
      ++state->active;
      state->bytes_in_flight += item.size;
      ++state->counts.started;
      state->counts.peak_active = std::max<uint64_t>(state->counts.peak_active, state->active);
      state->counts.peak_bytes = std::max(state->counts.peak_bytes, state->bytes_in_flight);
      const uint64_t size = item.size;
      lock.unlock();
      (*fill)->OnFinish([state, size](bool verified) {
        {
          std::lock_guard done_lock(state->mutex);
          --state->active;
          state->bytes_in_flight -= size;
          if (!verified) ++state->counts.failed;
        }
        Pump(state);
      });
      lock.lock();
    }
  } while (state->again && !state->stopped);
  state->pumping = false;
}

PrefetchFigures Prefetcher::Figures() const {
  std::lock_guard lock(state_->mutex);
  PrefetchFigures f = state_->counts;
  f.enabled = state_->options.enabled;
  f.max_fills = state_->options.max_fills;
  f.max_bytes = state_->options.max_bytes;
  f.active = state_->active;
  f.bytes_in_flight = state_->bytes_in_flight;
  f.queued = state_->queue.size();
  return f;
}

}  // namespace hubcache
