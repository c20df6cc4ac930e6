#pragma once
// The recent past, for the dashboard's chart: cumulative counters sampled at a
// fixed interval into a bounded ring (oldest dropped first). The sampler owns
// one thread, which takes a sample at start and every interval after, and is
// stopped and joined by the destructor. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hubcache {

// Cumulative totals at one moment; the chart draws the differences between
// consecutive samples.
struct HistorySample {
  int64_t t_ms = 0;     // unix ms
  uint64_t hits = 0;    // manifest + blob requests served from cache (hit or stale)
  uint64_t misses = 0;  // manifest + blob requests that went upstream
  uint64_t served_bytes = 0;
  uint64_t served_from_cache_bytes = 0;
  uint64_t fetched_bytes = 0;
};

struct SamplerOptions {
  std::chrono::milliseconds interval{5'000};
  size_t capacity = 720;  // samples kept: 1 h at 5 s
};

class StatsSampler {
 public:
  // `take` reads the counters; it runs on the sampler's thread and must not block.
  StatsSampler(std::function<HistorySample()> take, SamplerOptions options);
  ~StatsSampler();
  StatsSampler(const StatsSampler&) = delete;
  StatsSampler& operator=(const StatsSampler&) = delete;

  // Oldest first.
  std::vector<HistorySample> Samples() const;
  std::chrono::milliseconds interval() const { return options_.interval; }

 private:
  void Run();

  const std::function<HistorySample()> take_;
  const SamplerOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<HistorySample> samples_;  // guarded by mutex_
  bool stopping_ = false;              // guarded by mutex_
  std::thread thread_;                 // last: starts after the members it uses
};

}  // namespace hubcache
