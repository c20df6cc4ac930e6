#pragma once
// A thread that a test joins on every path out of its scope.
//
// A doctest REQUIRE that fails throws; a std::thread still joinable when the
// exception unwinds its scope calls std::terminate, which ends the whole unit
// run ("terminate called without an active exception") instead of failing one
// test case. JoiningThread joins in its destructor. A thread that waits for
// something the test would have done next (a release, a cancel, a peer) needs
// `unblock`: it runs before that join, only when join() was not called, so the
// thread can finish. Move-only; not thread-safe (one owner).

#include <functional>
#include <thread>
#include <type_traits>
#include <utility>

namespace hubcache {

class JoiningThread {
 public:
  template <typename F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, JoiningThread>) explicit JoiningThread(
      F&& body, std::function<void()> unblock = {})
      : unblock_(std::move(unblock)), thread_(std::forward<F>(body)) {}
  ~JoiningThread() {
    if (!thread_.joinable()) return;
    if (unblock_) unblock_();
    thread_.join();
  }
  JoiningThread(JoiningThread&&) = default;
  JoiningThread& operator=(JoiningThread&&) = delete;
  JoiningThread(const JoiningThread&) = delete;
  JoiningThread& operator=(const JoiningThread&) = delete;

  // Joins now (the path where the test went as planned); `unblock` is not run.
  void join() { thread_.join(); }

 private:
  std::function<void()> unblock_;
  std::thread thread_;
};

}  // namespace hubcache
