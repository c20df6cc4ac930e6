#pragma once
// Pre-warm jobs started over the admin API: POST /admin/prewarm starts one
// (each on its own thread, owned here), GET /admin/prewarm/<id> reports its
// progress. At most `max_running_jobs` run at once; the most recent
// `max_kept_jobs` finished ones stay queryable, older ones are forgotten.
//
// Thread-safe. Shutdown() (and the destructor) cancels running jobs, joins
// their threads and refuses new ones. HandlePost/HandleGet are the HTTP glue:
// request body in, status and JSON body out, so the admin handlers stay a few
// lines. Errors have the registry's shape, {"errors": [{"code", "message",
// "detail"}]}, with the codes INVALID_REQUEST (400), NOT_FOUND (404),
// TOOMANYREQUESTS (429) and UNAVAILABLE (503).

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "prewarm/prewarm_run.h"

namespace hubcache {

struct PrewarmJobOptions {
  PrewarmOptions prewarm;       // for every job; Start() sets its session
  size_t max_running_jobs = 2;  // more are refused (429) until one ends
  size_t max_kept_jobs = 32;    // finished jobs kept for GET
  size_t max_images_per_job = 1000;
};

struct ApiReply {
  int status = 200;
  std::string body;  // JSON
};

class PrewarmJobs {
 public:
  explicit PrewarmJobs(PrewarmJobOptions options) : options_(std::move(options)) {}
  ~PrewarmJobs();
  PrewarmJobs(const PrewarmJobs&) = delete;
  PrewarmJobs& operator=(const PrewarmJobs&) = delete;

  // Starts a job warming `images` through `target` (the server itself, see
  // SelfSession); returns its id. Fails with kTooManyRequests when
  // max_running_jobs are running, kUpstreamUnavailable after Shutdown().
  [[nodiscard]] Result<std::string> Start(std::vector<ImageRef> images,
                                          std::vector<Platform> platforms,
                                          const SessionOptions& target);

  void Shutdown();

  // The job's progress as JSON, if it is known.
  std::optional<nlohmann::json> Describe(const std::string& id) const;

  // POST body: ["alpine:3.19", ...] or {"images": [...], "platforms": ["linux/amd64"]}.
  // 202 {"id", "status_url", "images"}; 400 with every invalid entry; 429 when busy.
  ApiReply HandlePost(std::string_view body, const SessionOptions& target);
  // 200 with the job's progress; 404 for an unknown (or forgotten) id.
  ApiReply HandleGet(const std::string& id) const;

  size_t running() const;

 private:
  struct Job {
    std::string id;
    int64_t created_ms = 0;
    std::vector<std::string> platforms;
    std::shared_ptr<PrewarmRun> run;
    std::thread thread;
    bool finished = false;
  };

  void ReapLocked();  // joins finished jobs' threads, forgets the oldest beyond the bound

  const PrewarmJobOptions options_;
  mutable std::mutex mutex_;
  bool stopping_ = false;                             // guarded by mutex_
  std::map<std::string, std::unique_ptr<Job>> jobs_;  // guarded by mutex_
  std::deque<std::string> order_;                     // ids, oldest first; guarded by mutex_
};

}  // namespace hubcache
