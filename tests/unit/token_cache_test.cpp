#include "upstream/token_cache.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "joining_thread.h"

namespace hubcache {
namespace {

using Clock = TokenCache::Clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::string kScope = "repository:library/alpine:pull";

// A fixed, arbitrary point: the cache must not care about the real clock.
const Clock::time_point kT0 = Clock::time_point() + std::chrono::hours(1000);

TEST_CASE("TokenCache: expiry with a margin of 10% of the lifetime, at most 30 s") {
  struct Case {
    int64_t expires_in_s;
    Clock::duration valid_for;  // Get succeeds strictly before kT0 + valid_for
  };
  const std::vector<Case> cases = {
      {300, seconds(270)},                           // Docker Hub's usual 300 s: 30 s margin
      {60, seconds(54)},                             // 6 s margin
      {100, seconds(90)},                            // 10 s margin
      {3600, seconds(3570)},                         // margin capped at 30 s
      {86400, seconds(86370)}, {301, seconds(271)},  // 10% is 30 (integer division): 30 s margin
      {19, seconds(18)},                             // 1 s margin
      {9, seconds(9)},                               // 10% rounds down to 0
      {1, seconds(1)},         {0, seconds(54)},     // absent: the default of 60 s
      {-5, seconds(54)},                             // nonsense: the default of 60 s
  };
  for (const auto& c : cases) {
    CAPTURE(c.expires_in_s);
    TokenCache cache;
    cache.Put(kScope, "tok", c.expires_in_s, kT0);
    CHECK(cache.Get(kScope, kT0) == "tok");
    CHECK(cache.Get(kScope, kT0 + c.valid_for - milliseconds(1)) == "tok");
    CHECK_FALSE(cache.Get(kScope, kT0 + c.valid_for).has_value());
    CHECK_FALSE(cache.Get(kScope, kT0 + c.valid_for + seconds(1)).has_value());
    CHECK_FALSE(cache.Get(kScope, kT0 + std::chrono::hours(10000)).has_value());
  }
}

TEST_CASE("TokenCache: unknown scope") {
  TokenCache cache;
  CHECK_FALSE(cache.Get(kScope, kT0).has_value());
  cache.Put(kScope, "tok", 300, kT0);
  CHECK_FALSE(cache.Get("repository:library/redis:pull", kT0).has_value());
  CHECK_FALSE(cache.Get("", kT0).has_value());
}

TEST_CASE("TokenCache: scopes are independent") {
  TokenCache cache;
  cache.Put("repository:a:pull", "token-a", 300, kT0);
  cache.Put("repository:b:pull", "token-b", 60, kT0);
  CHECK(cache.Get("repository:a:pull", kT0) == "token-a");
  CHECK(cache.Get("repository:b:pull", kT0) == "token-b");
  // b expires first.
  CHECK(cache.Get("repository:a:pull", kT0 + seconds(100)) == "token-a");
  CHECK_FALSE(cache.Get("repository:b:pull", kT0 + seconds(100)).has_value());
  cache.Invalidate("repository:a:pull");
  CHECK_FALSE(cache.Get("repository:a:pull", kT0).has_value());
  CHECK(cache.Get("repository:b:pull", kT0) == "token-b");
}

TEST_CASE("TokenCache: Put replaces the token and its lifetime") {
  TokenCache cache;
  cache.Put(kScope, "old", 3600, kT0);
  cache.Put(kScope, "new", 60, kT0 + seconds(10));
  CHECK(cache.Get(kScope, kT0 + seconds(10)) == "new");
  CHECK(cache.Get(kScope, kT0 + seconds(63)) == "new");
  CHECK_FALSE(cache.Get(kScope, kT0 + seconds(64)).has_value());
  // A fresh token after expiry is served again.
  cache.Put(kScope, "newer", 300, kT0 + seconds(100));
  CHECK(cache.Get(kScope, kT0 + seconds(100)) == "newer");
}

TEST_CASE("TokenCache: Invalidate") {
  TokenCache cache;
  cache.Invalidate(kScope);  // absent: no effect
  cache.Put(kScope, "tok", 300, kT0);
  cache.Invalidate(kScope);
  CHECK_FALSE(cache.Get(kScope, kT0).has_value());
  cache.Invalidate(kScope);
  cache.Put(kScope, "again", 300, kT0);
  CHECK(cache.Get(kScope, kT0) == "again");
}

TEST_CASE("TokenCache: the token is kept byte for byte") {
  TokenCache cache;
  const std::string jwt =
      "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3MiOltdfQ.c2lnbmF0dXJlX19fXw==";
  cache.Put(kScope, jwt, 300, kT0);
  CHECK(cache.Get(kScope, kT0) == jwt);
  cache.Put("empty", "", 300, kT0);
  auto empty = cache.Get("empty", kT0);
  REQUIRE(empty.has_value());
  CHECK(empty->empty());
}

TEST_CASE("TokenCache: concurrent Put, Get and Invalidate") {
  // Threads share three scopes and each writes its own values into them, so a
  // Get can see another thread's token: it must always be one written whole,
  // for that scope (a value built from the scope, the writer and a padding of
  // the writer's letter; a torn or crossed value breaks that shape).
  TokenCache cache;
  constexpr int kThreads = 8;
  constexpr int kIterations = 2000;
  auto value = [](const std::string& scope, int t, int i) {
    return scope + "#" + std::to_string(t) + "#" + std::to_string(i) + "#" +
           std::string(64, static_cast<char>('a' + t));
  };
  auto well_formed = [&](const std::string& scope, const std::string& token) {
    if (token.rfind(scope + "#", 0) != 0) return false;
    size_t a = scope.size() + 1;
    size_t b = token.find('#', a);
    if (b == std::string::npos) return false;
    size_t c = token.find('#', b + 1);
    if (c == std::string::npos) return false;
    int t = std::stoi(token.substr(a, b - a));
    int i = std::stoi(token.substr(b + 1, c - b - 1));
    return t >= 0 && t < kThreads && i >= 0 && i < kIterations && token == value(scope, t, i);
  };
  std::atomic<int> bad{0};
  std::atomic<int> foreign{0};  // tokens another thread wrote: the sharing happened
  std::vector<JoiningThread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string scope = "repository:r" + std::to_string(t % 3) + ":pull";
      for (int i = 0; i < kIterations; ++i) {
        if (i % 2 == 0) cache.Put(scope, value(scope, t, i), 300, kT0);
        auto got = cache.Get(scope, kT0);
        if (got && !well_formed(scope, *got)) ++bad;
        if (got && *got != value(scope, t, i)) ++foreign;
        if (i % 7 == 0) cache.Invalidate(scope);
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad.load() == 0);
  // Every scope ends with a token one of its writers put last, or none.
  for (int s = 0; s < 3; ++s) {
    const std::string scope = "repository:r" + std::to_string(s) + ":pull";
    auto got = cache.Get(scope, kT0);
    if (got) CHECK(well_formed(scope, *got));
  }
  MESSAGE("tokens read that another thread wrote: " << foreign.load());
}

}  // namespace
}  // namespace hubcache
