#pragma once
// What the mirror tells about itself over HTTP, outside the registry API:
//
//   GET /, /ui        the dashboard: one self-contained page (dashboard_page.h)
//   GET /stats        every figure as JSON (stats/stats_json.h)
//   GET /stats/history  the sampled recent past, for the dashboard's chart
//   GET /metrics      the same figures in the Prometheus text format
//   GET /healthz      200 while the process serves
//   GET /readyz       200 when the cache is writable and the index answers,
//                     503 otherwise; upstream reachability is reported, never
//                     required (a warm cache serves without it)
//
// It also sees every request once its response is written (OnResponse, from
// httplib's logger hook): it counts it (stats/http_metrics.h, lock-free) and
// hands a record to the access log, which writes it on its own thread.
//
// Owns the access log, the history sampler's thread and the upstream prober's
// thread; all stop and join in the destructor. Borrows the Mirror, which must
// outlive it. Thread-safe.

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cache/mirror.h"
#include "common/result.h"
#include "http/access_log.h"
#include "server/connection_counters.h"
#include "server/exchange.h"
#include "server/http_response.h"
#include "stats/history.h"
#include "stats/http_metrics.h"
#include "stats/repo_counters.h"
#include "stats/snapshot.h"

namespace hubcache {

class ObservabilityHandlers {
 public:
  // `connections`: the connection layer's counters (borrowed, outlives this).
  ObservabilityHandlers(Mirror& mirror, const ConnectionCounters& connections);
  ~ObservabilityHandlers();
  ObservabilityHandlers(const ObservabilityHandlers&) = delete;
  ObservabilityHandlers& operator=(const ObservabilityHandlers&) = delete;

  // Opens the access log as configured (fails when its file cannot be opened).
  [[nodiscard]] Status Start();

  // Answers the paths above and returns true; false for any other path.
  bool Handle(const httplib::Request& req, HttpResponse& res);

  // Once per request, after its response was written (or the connection
  // failed): counts it and logs it. On the worker thread that served it.
  void OnResponse(const RequestContext& context, const httplib::Request& req,
                  const HttpResponse& res);

  // Every figure now. `with_repositories`: also list what the cache and the
  // hosted repositories hold (reads the index; cached for a few seconds).
  StatsSnapshot Snapshot(bool with_repositories);

  // Adds a top-level section to /stats (e.g. "prewarm"), which `provider`
  // fills on each request, on worker threads. Call before the server runs.
  void AddStatsSection(std::string key, std::function<nlohmann::json()> provider) {
    sections_.emplace_back(std::move(key), std::move(provider));
  }

 private:
  struct Inventory {
    std::vector<CachedRepository> repositories;
    uint64_t blobs = 0;
    uint64_t manifests = 0;
  };
  // What the index holds of the hosted repositories.
  struct HostedInventory {
    HostedTotals totals;
    std::vector<HostedRepository> repositories;
  };
  struct UpstreamCheck {
    std::optional<bool> reachable;  // none: never checked
    int status = 0;
    std::string detail;
    int64_t checked_ms = 0;
  };

  void ServeStats(const httplib::Request& req, HttpResponse& res);
  void ServeReady(HttpResponse& res);
  std::optional<Inventory> CurrentInventory();
  Result<Inventory> BuildInventory();
  std::optional<HostedInventory> CurrentHostedInventory();
  Result<HostedInventory> BuildHostedInventory();
  // Moves with every change to hosted content this process makes.
  uint64_t HostedGeneration() const;
  HistorySample TakeSample();
  // Every upstream's last check, Docker Hub's first (UpstreamSet order).
  std::vector<UpstreamCheck> CheckUpstreams(std::chrono::milliseconds wait);
  void ProbeLoop();

  Mirror& mirror_;
  const ConnectionCounters& connections_;
  const int64_t started_ms_;
  const std::chrono::steady_clock::time_point started_;
  HttpMetrics http_;
  RepoCounters repos_;
  std::unique_ptr<AccessLog> access_log_;  // null when off

  std::mutex inventory_mutex_;  // one index walk at a time; guards the three below
  std::optional<Inventory> inventory_;
  std::chrono::steady_clock::time_point inventory_at_;
  uint64_t inventory_usage_ = 0;  // the cache size it was built at

  std::mutex hosted_mutex_;  // one hosted listing at a time; guards the three below
  std::optional<HostedInventory> hosted_;
  std::chrono::steady_clock::time_point hosted_at_;
  uint64_t hosted_generation_ = 0;  // HostedGeneration() when it was built

  std::mutex probe_mutex_;
  std::condition_variable probe_changed_;
  std::vector<UpstreamCheck> upstreams_;  // guarded by probe_mutex_
  int64_t checked_ms_ = 0;                // when the last round ended; guarded likewise
  bool probe_wanted_ = false;             // guarded by probe_mutex_
  bool probe_stopping_ = false;           // guarded by probe_mutex_
  std::thread prober_;

  // Last: its thread samples the members above.
  std::unique_ptr<StatsSampler> sampler_;

  // Set before serving, read-only after.
  std::vector<std::pair<std::string, std::function<nlohmann::json()>>> sections_;
};

}  // namespace hubcache
