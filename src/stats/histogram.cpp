#include "stats/histogram.h"

namespace hubcache {

double HistogramSnapshot::Quantile(double q) const {
  if (count == 0 || bounds_s.empty()) return 0;
  const double rank = q * static_cast<double>(count);
  uint64_t below = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0 || static_cast<double>(below + counts[i]) < rank) {
      below += counts[i];
      continue;
    }
    if (i == bounds_s.size()) return bounds_s.back();  // +Inf bucket
    const double lower = i == 0 ? 0.0 : bounds_s[i - 1];
    const double upper = bounds_s[i];
    const double within = (rank - static_cast<double>(below)) / static_cast<double>(counts[i]);
    return lower + (upper - lower) * within;
  }
  return bounds_s.back();
}

void LatencyHistogram::Observe(std::chrono::nanoseconds duration) {
  const int64_t ns = duration.count() < 0 ? 0 : duration.count();
  const uint64_t us = static_cast<uint64_t>(ns) / 1000;
  size_t bucket = 0;
  while (bucket < kLatencyBucketBoundsUs.size() && us > kLatencyBucketBoundsUs[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

HistogramSnapshot LatencyHistogram::Snapshot() const {
  HistogramSnapshot snap;
  snap.bounds_s.reserve(kLatencyBucketBoundsUs.size());
  for (uint64_t bound : kLatencyBucketBoundsUs) snap.bounds_s.push_back(bound / 1e6);
  snap.counts.reserve(buckets_.size());
  for (const auto& b : buckets_) {
    snap.counts.push_back(b.load(std::memory_order_relaxed));
    snap.count += snap.counts.back();
  }
  snap.sum_s = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return snap;
}

}  // namespace hubcache
