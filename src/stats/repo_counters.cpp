#include "stats/repo_counters.h"

#include <algorithm>
#include <functional>
#include <thread>

namespace hubcache {

RepoCounters::RepoCounters(size_t capacity) : max_names_(std::max<size_t>(1, capacity)) {
  size_t table = 2;
  while (table < 2 * max_names_) table *= 2;
  slots_ = std::make_unique<Slot[]>(table);
  mask_ = table - 1;
}

RepoCounters::~RepoCounters() {
  for (size_t i = 0; i <= mask_; ++i) delete slots_[i].name.load(std::memory_order_acquire);
}

RepoCounters::Slot* RepoCounters::Find(std::string_view repository) {
  const uint64_t hash = std::hash<std::string_view>{}(repository) | 1;  // never 0 (= free)
  for (size_t probe = 0, i = hash & mask_; probe <= mask_; ++probe, i = (i + 1) & mask_) {
    Slot& slot = slots_[i];
    uint64_t seen = slot.hash.load(std::memory_order_acquire);
    if (seen == 0) {
      // Claim the slot, unless the table already holds its share of names.
      if (names_.fetch_add(1, std::memory_order_relaxed) >= max_names_) {
        names_.fetch_sub(1, std::memory_order_relaxed);
        return &overflow_;
      }
      if (slot.hash.compare_exchange_strong(seen, hash, std::memory_order_acq_rel)) {
        slot.name.store(new std::string(repository), std::memory_order_release);
        return &slot;
      }
      names_.fetch_sub(1, std::memory_order_relaxed);  // lost the race; `seen` is the winner's
    }
    if (seen != hash) continue;
    // Same hash: the name is published right after the claim; wait for it.
    const std::string* name;
    while ((name = slot.name.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
    if (*name == repository) return &slot;
  }
  return &overflow_;
}

void RepoCounters::Add(std::string_view repository, uint64_t bytes) {
  Slot* slot = Find(repository);
  slot->bytes.fetch_add(bytes, std::memory_order_relaxed);
  slot->requests.fetch_add(1, std::memory_order_relaxed);
}

std::vector<RepoUsage> RepoCounters::All() const {
  std::vector<RepoUsage> out;
  for (size_t i = 0; i <= mask_; ++i) {
    const Slot& slot = slots_[i];
    const std::string* name = slot.name.load(std::memory_order_acquire);
    if (name == nullptr) continue;
    out.push_back(RepoUsage{*name, slot.bytes.load(std::memory_order_relaxed),
                            slot.requests.load(std::memory_order_relaxed)});
  }
  if (uint64_t n = overflow_.requests.load(std::memory_order_relaxed); n > 0) {
    out.push_back(RepoUsage{kOverflowName, overflow_.bytes.load(std::memory_order_relaxed), n});
  }
  std::sort(out.begin(), out.end(), [](const RepoUsage& a, const RepoUsage& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.repository < b.repository;
  });
  return out;
}

}  // namespace hubcache
