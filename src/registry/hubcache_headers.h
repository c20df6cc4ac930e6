#pragma once
// hubcache's own HTTP headers, one home for their names (the server sets or
// reads them; pre-warm, which talks to a server, too).

namespace hubcache {

// On manifest and blob responses: where the body came from ("hit", "miss",
// "stale", "pass-through", "hosted").
inline constexpr const char* kCacheHeader = "X-Hubcache-Cache";
// On a manifest GET: "off" asks the server not to prefetch the image's blobs
// (pre-warm fetches them itself, and counts what it fetched).
inline constexpr const char* kPrefetchHeader = "X-Hubcache-Prefetch";

}  // namespace hubcache
