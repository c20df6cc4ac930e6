#pragma once
// Wall-clock time as stored in the index: unix milliseconds.

#include <chrono>
#include <cstdint>

namespace hubcache {

inline int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace hubcache
