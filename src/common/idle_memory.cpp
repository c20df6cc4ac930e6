#include "common/idle_memory.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace hubcache {
namespace {

// Room left below the caller for what it calls while it waits (a condition
// variable wait): a few hundred bytes; signals are taken by another thread.
constexpr uintptr_t kMargin = 4 * 1024;

}  // namespace

void ReleaseUnusedStack() {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  // The stack's lowest usable address, found once per thread.
  thread_local const uintptr_t stack_low = [] {
    pthread_attr_t attr;
    void* address = nullptr;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return uintptr_t{0};
    pthread_attr_getstack(&attr, &address, &size);
    pthread_attr_destroy(&attr);
    return reinterpret_cast<uintptr_t>(address) + page;  // past a guard page
  }();
  if (stack_low == 0) return;
  char here;
  uintptr_t end = (reinterpret_cast<uintptr_t>(&here) - kMargin) & ~(page - 1);
  if (end > stack_low)
    ::madvise(reinterpret_cast<void*>(stack_low), end - stack_low, MADV_DONTNEED);
}

}  // namespace hubcache
