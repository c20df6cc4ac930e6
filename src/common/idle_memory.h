#pragma once
// Giving back the stack a thread touched but does not need while it waits for
// long (an idle worker thread): the pages below the caller's frame. The kernel
// maps fresh zero pages when they are touched again. Linux only.

namespace hubcache {

// The calling thread's stack below the caller's frame, less a small margin for
// the calls it makes while waiting. Only for threads started with pthreads.
void ReleaseUnusedStack();

}  // namespace hubcache
