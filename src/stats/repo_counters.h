#pragma once
// Bytes and requests served per repository, for "top repositories".
//
// A fixed-capacity, insert-only open-addressing table: Add() is lock-free (a
// CAS claims a free slot the first time a repository is seen, then relaxed
// atomic adds), so counting costs a cache hit no lock. Names are never removed;
// once the table is full, new repositories are counted under kOverflowName, so
// memory and metric cardinality stay bounded whatever names clients send
// (callers pass only validated names of requests that succeeded).
// Thread-safe: Add and the readers from any number of threads at once. Owns
// its table (allocated once, at construction).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hubcache {

struct RepoUsage {
  std::string repository;
  uint64_t bytes = 0;
  uint64_t requests = 0;
};

class RepoCounters {
 public:
  static constexpr const char* kOverflowName = "(other)";

  // `capacity` repositories are tracked by name (rounded up to a power of two
  // for the table, which is kept at most half full).
  explicit RepoCounters(size_t capacity = 512);
  ~RepoCounters();
  RepoCounters(const RepoCounters&) = delete;
  RepoCounters& operator=(const RepoCounters&) = delete;

  void Add(std::string_view repository, uint64_t bytes);

  // Every repository seen, most bytes first (ties by name).
  std::vector<RepoUsage> All() const;

 private:
  struct Slot {
    std::atomic<uint64_t> hash{0};                  // 0 = free; claimed by CAS
    std::atomic<const std::string*> name{nullptr};  // published after the claim
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> requests{0};
  };
  Slot* Find(std::string_view repository);

  const size_t max_names_;
  std::atomic<size_t> names_{0};
  std::unique_ptr<Slot[]> slots_;
  size_t mask_;
  Slot overflow_;
};

}  // namespace hubcache
