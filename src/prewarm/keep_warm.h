#pragma once
// Keeps a list of images warm: re-runs a pre-warm of the list file against the
// server itself every `interval`, so that tags that move (latest) are
// refreshed before clients ask for them. The file is re-read on every run, so
// an operator edits it without a restart.
//
// Owns one thread, started by Start() and stopped and joined by Stop() (or the
// destructor), which also cancels a run in flight. LastRun() and StatusJson()
// are thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "config/config.h"
#include "prewarm/prewarm_run.h"

namespace hubcache {

struct KeepWarmOptions {
  std::string list_path;                              // the image list file
  std::chrono::milliseconds interval{6 * 3'600'000};  // from the end of a run to the next
  std::chrono::milliseconds first_delay{0};           // from Start() to the first run
  PrewarmOptions prewarm;                             // session.base_url: the server itself
};

struct KeepWarmSummary {
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int images_ok = 0;
  int images_failed = 0;
  int malformed_entries = 0;
  uint64_t bytes_fetched = 0;
  uint64_t bytes_cached = 0;
  std::string error;                  // the list could not be read
  std::vector<std::string> failures;  // "<image>: <reason>: <error>", the first few
};

class KeepWarm {
 public:
  // Fails (kConfigInvalid) when the list file cannot be read now: a typo in
  // the path should stop the start, not surface hours later.
  [[nodiscard]] static Result<std::unique_ptr<KeepWarm>> Create(KeepWarmOptions options);
  // What `serve` keeps warm: config.prewarm_file, through the server itself
  // (SelfSession below). Fails as SelfSession does.
  [[nodiscard]] static Result<KeepWarmOptions> OptionsFor(const Config& config, int port,
                                                          const std::string& user,
                                                          const std::string& password);

  explicit KeepWarm(KeepWarmOptions options) : options_(std::move(options)) {}
  ~KeepWarm();
  KeepWarm(const KeepWarm&) = delete;
  KeepWarm& operator=(const KeepWarm&) = delete;

  void Start();
  void Stop();  // idempotent

  std::optional<KeepWarmSummary> LastRun() const;
  // {"list", "interval_s", "runs", "running", "next_run_ms", "last_run": {...} | null}
  nlohmann::json StatusJson() const;

 private:
  void Loop();
  KeepWarmSummary RunOnce();

  const KeepWarmOptions options_;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;                // guarded by mutex_
  std::shared_ptr<PrewarmRun> current_;  // the run in flight; guarded by mutex_
  std::optional<KeepWarmSummary> last_;  // guarded by mutex_
  uint64_t runs_ = 0;                    // guarded by mutex_
  int64_t next_run_ms_ = 0;              // guarded by mutex_
};

nlohmann::json KeepWarmSummaryJson(const KeepWarmSummary& summary);

// How the server's own pre-warm (keep-warm, admin jobs) reaches the server
// listening on config.http_addr with the bound `port`: over loopback when it
// listens on every address; over TLS when it has a certificate, trusting
// exactly that certificate whatever name it carries; with `user`/`password`
// when client auth is on (both empty when it is off). Fails (kConfigInvalid)
// when clients must present a certificate: the pre-warm has none to show.
[[nodiscard]] Result<SessionOptions> SelfSession(const Config& config, int port,
                                                 const std::string& user,
                                                 const std::string& password);

}  // namespace hubcache
