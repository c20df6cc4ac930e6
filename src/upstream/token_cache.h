#pragma once
// Bearer tokens per scope ("repository:library/alpine:pull"), kept until shortly
// before they expire. Thread-safe. Tokens are secrets: never log them.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace hubcache {

class TokenCache {
 public:
  using Clock = std::chrono::steady_clock;

  std::optional<std::string> Get(const std::string& scope, Clock::time_point now) const;
  // expires_in_s as the token server said (default 60 s when absent). The token
  // is dropped a margin before that: 10 % of its life, at most 30 s.
  void Put(const std::string& scope, std::string token, int64_t expires_in_s,
           Clock::time_point now);
  void Invalidate(const std::string& scope);

 private:
  struct Entry {
    std::string token;
    Clock::time_point valid_until;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // guarded by mutex_
};

}  // namespace hubcache
