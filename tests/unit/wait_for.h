#pragma once
// Polling for a condition another thread makes true, with a bound.

#include <chrono>
#include <thread>

namespace hubcache {

// Polls `done` until it holds or `limit` passes; true when it held.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace hubcache
