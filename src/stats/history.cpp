#include "stats/history.h"

namespace hubcache {

StatsSampler::StatsSampler(std::function<HistorySample()> take, SamplerOptions options)
    : take_(std::move(take)), options_(options), thread_(&StatsSampler::Run, this) {}

StatsSampler::~StatsSampler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::vector<HistorySample> StatsSampler::Samples() const {
  std::lock_guard lock(mutex_);
  return {samples_.begin(), samples_.end()};
}

void StatsSampler::Run() {
  auto next = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    HistorySample sample = take_();
    lock.lock();
    samples_.push_back(sample);
    while (samples_.size() > options_.capacity) samples_.pop_front();
    // A late wake-up skips the missed ticks rather than sampling in a burst.
    next += options_.interval;
    if (auto now = std::chrono::steady_clock::now(); next < now) next = now + options_.interval;
    wake_.wait_until(lock, next, [this] { return stopping_; });
  }
}

}  // namespace hubcache
