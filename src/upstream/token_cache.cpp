#include "upstream/token_cache.h"

#include <algorithm>

namespace hubcache {

std::optional<std::string> TokenCache::Get(const std::string& scope, Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(scope);
  if (it == entries_.end() || now >= it->second.valid_until) return std::nullopt;
  return it->second.token;
}

void TokenCache::Put(const std::string& scope, std::string token, int64_t expires_in_s,
                     Clock::time_point now) {
  if (expires_in_s <= 0) expires_in_s = 60;
  int64_t margin_s = std::min<int64_t>(30, expires_in_s / 10);
  std::lock_guard lock(mutex_);
  entries_[scope] = Entry{std::move(token), now + std::chrono::seconds(expires_in_s - margin_s)};
}

void TokenCache::Invalidate(const std::string& scope) {
  std::lock_guard lock(mutex_);
  entries_.erase(scope);
}

}  // namespace hubcache
