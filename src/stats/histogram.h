#pragma once
// A latency histogram with fixed bucket bounds, for request durations.
//
// Observe() is lock-free (two relaxed atomic adds) and may be called from any
// number of threads; Snapshot() reads the buckets without stopping writers, so
// a snapshot taken during traffic may miss observations in flight but its count
// always equals the sum of its buckets.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace hubcache {

// Upper bounds of the buckets in microseconds (Prometheus `le`, inclusive);
// one more bucket, +Inf, catches the rest. From 1 ms (a cache hit on a small
// object) to 60 s (a large cold blob).
inline constexpr std::array<uint64_t, 15> kLatencyBucketBoundsUs = {
    1'000,   2'500,     5'000,     10'000,    25'000,     50'000,     100'000,   250'000,
    500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000, 30'000'000, 60'000'000};

struct HistogramSnapshot {
  std::vector<double> bounds_s;  // upper bounds in seconds, ascending; +Inf is implied
  std::vector<uint64_t> counts;  // per bucket, NOT cumulative; bounds_s.size() + 1 entries
  uint64_t count = 0;            // sum of counts
  double sum_s = 0;              // sum of all observations, seconds

  // Estimated q-quantile (0 < q < 1) in seconds by linear interpolation inside
  // the bucket, as Prometheus' histogram_quantile does; 0 when empty. A quantile
  // that falls in +Inf is reported as the largest finite bound.
  double Quantile(double q) const;
};

class LatencyHistogram {
 public:
  void Observe(std::chrono::nanoseconds duration);
  HistogramSnapshot Snapshot() const;

 private:
  std::array<std::atomic<uint64_t>, kLatencyBucketBoundsUs.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

}  // namespace hubcache
