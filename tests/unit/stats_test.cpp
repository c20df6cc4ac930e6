#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "joining_thread.h"
#include "stats/histogram.h"
#include "stats/http_metrics.h"
#include "stats/prometheus.h"
#include "stats/repo_counters.h"
#include "stats/snapshot.h"
#include "stats/stats_json.h"
#include "stats/stats_table.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::CountOccurrences;

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST_CASE("LatencyHistogram puts observations in the bucket whose bound is inclusive") {
  LatencyHistogram h;
  h.Observe(microseconds(1'000));           // le 0.001
  h.Observe(microseconds(1'001));           // le 0.0025
  h.Observe(milliseconds(30));              // le 0.05
  h.Observe(std::chrono::hours(1));         // +Inf
  h.Observe(std::chrono::nanoseconds(-5));  // clamped to 0: le 0.001
  HistogramSnapshot s = h.Snapshot();
  REQUIRE(s.counts.size() == kLatencyBucketBoundsUs.size() + 1);
  CHECK(s.count == 5);
  CHECK(s.counts[0] == 2);
  CHECK(s.counts[1] == 1);
  CHECK(s.counts[5] == 1);
  CHECK(s.counts.back() == 1);
  CHECK(s.sum_s == doctest::Approx(3600.0 + 0.032001).epsilon(1e-9));
  CHECK(s.bounds_s.front() == doctest::Approx(0.001));
  CHECK(s.bounds_s.back() == doctest::Approx(60.0));
}

TEST_CASE("HistogramSnapshot::Quantile interpolates inside the bucket") {
  HistogramSnapshot s;
  s.bounds_s = {0.1, 0.2, 0.4};
  s.counts = {0, 10, 0, 0};
  s.count = 10;
  CHECK(s.Quantile(0.5) == doctest::Approx(0.15));
  CHECK(s.Quantile(1.0) == doctest::Approx(0.2));
  s.counts = {0, 0, 0, 3};  // everything above the last bound
  CHECK(s.Quantile(0.5) == doctest::Approx(0.4));
  HistogramSnapshot empty;
  CHECK(empty.Quantile(0.99) == 0);
}

TEST_CASE("HttpMetrics counts by route, cache result and status class") {
  HttpMetrics m;
  m.Record({RouteClass::kBlob, CacheResult::kHit, 200, 100, milliseconds(1)});
  m.Record({RouteClass::kBlob, CacheResult::kHit, 206, 10, milliseconds(1)});
  m.Record({RouteClass::kBlob, CacheResult::kMiss, 200, 1000, milliseconds(200)});
  m.Record({RouteClass::kBlob, CacheResult::kNone, 404, 80, milliseconds(2)});
  m.Record({RouteClass::kManifest, CacheResult::kStale, 200, 5, milliseconds(2)});
  m.Record({RouteClass::kOther, CacheResult::kNone, 0, 0, milliseconds(0)});
  RouteSnapshot blob = m.Snapshot(RouteClass::kBlob);
  CHECK(blob.Requests() == 4);
  CHECK(blob.Requests(CacheResult::kHit) == 2);
  CHECK(blob.Requests(CacheResult::kMiss) == 1);
  CHECK(blob.Requests(CacheResult::kNone) == 1);
  CHECK(blob.RequestsWithStatusClass(2) == 3);
  CHECK(blob.RequestsWithStatusClass(4) == 1);
  CHECK(blob.body_bytes[static_cast<size_t>(CacheResult::kHit)] == 110);
  CHECK(blob.BodyBytes() == 1190);
  CHECK(blob.latency.count == 4);
  CHECK(m.Snapshot(RouteClass::kManifest).Requests(CacheResult::kStale) == 1);
  CHECK(m.Snapshot(RouteClass::kOther).RequestsWithStatusClass(0) == 1);
  CHECK(m.Snapshot(RouteClass::kPing).Requests() == 0);
  CHECK(ParseCacheResult("stale") == CacheResult::kStale);
  CHECK(ParseCacheResult("hosted") == CacheResult::kHosted);
  CHECK(std::string(CacheResultName(CacheResult::kHosted)) == "hosted");
  CHECK(ParseCacheResult("") == CacheResult::kNone);
  CHECK(ParseCacheResult("HIT") == CacheResult::kNone);
  CHECK(StatusClassOf(599) == 5);
  CHECK(StatusClassOf(600) == 0);
  CHECK(StatusClassOf(-1) == 0);
}

TEST_CASE("RepoCounters counts exactly under concurrent first use and overflows by name") {
  RepoCounters counters(4);
  constexpr int kThreads = 8;
  constexpr int kRounds = 2000;
  std::vector<JoiningThread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counters] {
      for (int i = 0; i < kRounds; ++i) {
        counters.Add("library/a", 1);
        counters.Add("library/b", 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  counters.Add("library/c", 5);
  counters.Add("library/d", 5);
  counters.Add("library/e", 7);  // fifth name: over capacity
  counters.Add("library/f", 1);
  counters.Add("library/a", 1);  // known names still count as themselves

  auto all = counters.All();
  REQUIRE(all.size() == 5);
  CHECK(all[0].repository == "library/b");
  CHECK(all[0].bytes == 2u * kThreads * kRounds);
  CHECK(all[0].requests == 1u * kThreads * kRounds);
  CHECK(all[1].repository == "library/a");
  CHECK(all[1].bytes == 1u * kThreads * kRounds + 1);
  CHECK(all[2].repository == RepoCounters::kOverflowName);
  CHECK(all[2].bytes == 8);
  CHECK(all[2].requests == 2);
  CHECK(all[3].repository == "library/c");  // ties by name
  CHECK(all[4].repository == "library/d");
}

StatsSnapshot SampleSnapshot() {
  StatsSnapshot s;
  s.version = "9.9.9";
  s.now_ms = 2'000'000;
  s.started_ms = 1'000'000;
  s.uptime_s = 1000;
  HttpMetrics m;
  m.Record({RouteClass::kBlob, CacheResult::kHit, 200, 300, milliseconds(3)});
  m.Record({RouteClass::kBlob, CacheResult::kMiss, 200, 100, milliseconds(300)});
  m.Record({RouteClass::kManifest, CacheResult::kHit, 200, 50, milliseconds(1)});
  m.Record({RouteClass::kManifest, CacheResult::kNone, 404, 20, milliseconds(1)});
  m.Record({RouteClass::kManifest, CacheResult::kHosted, 200, 70, milliseconds(1)});
  for (size_t r = 0; r < kRouteClasses; ++r) s.routes.push_back(m.Snapshot(RouteClass(r)));
  s.manifest = {1, 0, 0, 1};
  s.blob = {1, 1, 0, 0};
  s.tag_revalidation = {2, 1, 1, 0};
  s.served_from_cache_bytes = 350;
  s.served_from_upstream_bytes = 100;
  s.fetched_blob_bytes = 100;
  s.fetched_manifest_bytes = 50;
  s.fills_started = 1;
  s.cache_size_bytes = 1000;
  s.cache_blobs = 3;
  s.cache_manifests = 2;
  s.upstream_requests = {
      {"docker.io", "GET", 200, 4}, {"docker.io", "HEAD", 0, 1}, {"ghcr.io", "GET", 200, 2}};
  s.upstreams = {{"docker.io", "https://registry-1.docker.io", 3, 1, 0, 700},
                 {"ghcr.io", "https://ghcr.io", 1, 0, 0, 70}};
  s.ratelimit_limit = 100;
  s.ratelimit_remaining = 76;
  s.ratelimit_seen_ms = 1'500'000;
  s.repositories_served = {{"library/alpine", 400, 2}, {"my \"odd\"\\repo\n", 1, 1}};
  s.cached_known = true;
  s.cached = {{"library/alpine", 1000, 1'900'000, {{"3.20", "sha256:abc", 1000, 1'900'000}}}};
  HostedFigures& h = s.hosted;
  h.patterns = {"team/*"};
  h.repositories = 1;
  h.manifests = 2;
  h.tags = 3;
  h.blobs = 4;
  h.bytes = 5000;
  h.uploads_in_progress = 1;
  h.manifest_requests = 1;
  h.served_bytes = 70;
  h.uploads_started = 5;
  h.push_blobs = 4;
  h.push_bytes = 5100;
  h.push_manifests = 2;
  h.push_refused = 1;
  h.repository_list = {{"team/app", 5000, 2, {"1", "2", "latest"}, 1'800'000}};
  h.repository_list_known = true;
  return s;
}

TEST_CASE("StatsSnapshot derives saved bytes and hit ratios") {
  StatsSnapshot s = SampleSnapshot();
  CHECK(s.served_bytes() == 450);
  CHECK(s.fetched_bytes() == 150);
  CHECK(s.saved_bytes() == 300);
  CHECK(*s.hit_ratio_requests() == doctest::Approx(2.0 / 3.0));
  CHECK(*s.hit_ratio_bytes() == doctest::Approx(350.0 / 450.0));
  StatsSnapshot empty;
  CHECK_FALSE(empty.hit_ratio_requests());
  CHECK_FALSE(empty.hit_ratio_bytes());
  empty.fetched_blob_bytes = 10;  // fetched, nothing served: nothing saved
  CHECK(empty.saved_bytes() == 0);
}

TEST_CASE("StatsJson has the documented shape") {
  nlohmann::json j = nlohmann::json::parse(StatsJson(SampleSnapshot()).dump());
  CHECK(j["version"] == "9.9.9");
  CHECK(j["requests"]["manifest"]["requests"] == 2);
  CHECK(j["requests"]["manifest"]["errors"] == 1);
  CHECK(j["requests"]["tag_revalidation"]["requests"] == 4);
  CHECK(j["http"]["requests"] == 5);
  CHECK(j["http"]["routes"]["blob"]["status"]["2xx"] == 2);
  CHECK(j["http"]["routes"]["blob"]["cache"]["miss"] == 1);
  CHECK(j["http"]["routes"]["blob"]["bytes"] == 400);
  CHECK(j["bytes"]["saved"] == 300);
  CHECK(j["bytes"]["fetched_upstream"] == 150);
  CHECK(j["cache"]["entries"] == 5);
  CHECK(j["upstream"]["requests_total"] == 7);
  CHECK(j["upstream"]["requests"][1]["status"] == 0);
  CHECK(j["upstream"]["requests"][2]["registry"] == "ghcr.io");
  REQUIRE(j["upstream"]["registries"].size() == 2);
  CHECK(j["upstream"]["registries"][1]["registry"] == "ghcr.io");
  CHECK(j["upstream"]["registries"][1]["requests_total"] == 2);
  CHECK(j["upstream"]["registries"][0]["requests_total"] == 5);
  CHECK(j["upstream"]["registries"][0]["bytes_received"] == 700);
  CHECK(j["upstream"]["ratelimit"]["remaining"] == 76);
  CHECK(j["top_repositories"][0]["repository"] == "library/alpine");
  CHECK(j["repositories"][0]["tags"][0]["tag"] == "3.20");
  CHECK(j["admin"]["enabled"] == false);
  // Hosted requests are no hits, misses or errors of the mirror.
  CHECK(j["http"]["routes"]["manifest"]["cache"]["hosted"] == 1);
  CHECK(j["hosted"]["patterns"][0] == "team/*");
  CHECK(j["hosted"]["bytes"] == 5000);
  CHECK(j["hosted"]["uploads_in_progress"] == 1);
  CHECK(j["hosted"]["requests"]["total"] == 1);
  CHECK(j["hosted"]["bytes_served"] == 70);
  CHECK(j["hosted"]["push_bytes"] == 5100);
  CHECK(j["hosted"]["repository_list"][0]["name"] == "team/app");
  CHECK(j["hosted"]["repository_list"][0]["size_bytes"] == 5000);
  CHECK(j["hosted"]["repository_list"][0]["tags"][2] == "latest");

  StatsSnapshot empty;
  nlohmann::json e = nlohmann::json::parse(StatsJson(empty).dump());
  CHECK(e["hit_ratio"]["requests"].is_null());
  CHECK(e["cache"]["size_bytes"].is_null());
  CHECK(e["repositories"].is_null());
  CHECK(e["upstream"]["ratelimit"]["seen_at_ms"].is_null());
  CHECK(e["hosted"]["bytes"].is_null());
  CHECK(e["hosted"]["repository_list"].is_null());
  CHECK(e["hosted"]["patterns"].is_array());
}

TEST_CASE("PrometheusText is valid exposition with the hubcache_ prefix") {
  std::string text = PrometheusText(SampleSnapshot());
  // Every family has HELP and TYPE, every sample line belongs to one.
  CHECK(CountOccurrences(text, "# HELP hubcache_") == CountOccurrences(text, "# TYPE hubcache_"));
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    REQUIRE(end != std::string::npos);  // every line ends with a newline
    std::string line = text.substr(pos, end - pos);
    CHECK_MESSAGE((line.rfind("# ", 0) == 0 || line.rfind("hubcache_", 0) == 0), line);
    pos = end + 1;
  }
  CHECK(text.find("# TYPE hubcache_requests_total counter\n") != std::string::npos);
  CHECK(text.find("hubcache_requests_total{kind=\"blob\",result=\"miss\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("hubcache_requests_total{kind=\"tag_revalidation\",result=\"stale\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("hubcache_http_requests_total{route=\"manifest\",cache=\"none\",code=\"4xx\"} "
                  "1\n") != std::string::npos);
  CHECK(text.find("# TYPE hubcache_http_request_duration_seconds histogram\n") !=
        std::string::npos);
  CHECK(
      text.find("hubcache_http_request_duration_seconds_bucket{route=\"blob\",le=\"+Inf\"} 2\n") !=
      std::string::npos);
  CHECK(
      text.find("hubcache_http_request_duration_seconds_bucket{route=\"blob\",le=\"0.005\"} 1\n") !=
      std::string::npos);
  CHECK(text.find("hubcache_http_request_duration_seconds_count{route=\"blob\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("hubcache_served_bytes_total{source=\"cache\"} 350\n") != std::string::npos);
  CHECK(text.find("hubcache_bandwidth_saved_bytes 300\n") != std::string::npos);
  CHECK(text.find("hubcache_cache_size_bytes 1000\n") != std::string::npos);
  CHECK(text.find("hubcache_upstream_received_bytes_total{registry=\"ghcr.io\"} 70\n") !=
        std::string::npos);
  CHECK(text.find("hubcache_upstream_token_fetches_total{registry=\"docker.io\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("hubcache_upstream_requests_total{registry=\"docker.io\",method=\"HEAD\","
                  "code=\"none\"} 1\n") != std::string::npos);
  CHECK(text.find("hubcache_upstream_ratelimit_remaining 76\n") != std::string::npos);
  CHECK(text.find("hubcache_hosted_bytes 5000\n") != std::string::npos);
  CHECK(text.find("hubcache_hosted_blobs 4\n") != std::string::npos);
  CHECK(text.find("hubcache_hosted_repositories 1\n") != std::string::npos);
  CHECK(text.find("hubcache_hosted_uploads_in_progress 1\n") != std::string::npos);
  CHECK(text.find("# TYPE hubcache_push_bytes_total counter\n") != std::string::npos);
  CHECK(text.find("hubcache_push_bytes_total 5100\n") != std::string::npos);
  CHECK(text.find("hubcache_push_manifests_total 2\n") != std::string::npos);
  CHECK(text.find("hubcache_push_refused_total 1\n") != std::string::npos);
  CHECK(text.find("hubcache_push_digest_mismatches_total 0\n") != std::string::npos);
  CHECK(text.find("hubcache_served_bytes_total{source=\"hosted\"} 70\n") != std::string::npos);
  CHECK(text.find("hubcache_http_requests_total{route=\"manifest\",cache=\"hosted\",code=\"2xx\"} "
                  "1\n") != std::string::npos);
  // Unknown figures have no sample (as the cache's).
  std::string empty = PrometheusText(StatsSnapshot{});
  CHECK(empty.find("hubcache_hosted_bytes") == std::string::npos);
  CHECK(empty.find("hubcache_push_bytes_total 0\n") != std::string::npos);
  CHECK(text.find("repository=\"my \\\"odd\\\"\\\\repo\\n\"") != std::string::npos);
  // Routes that saw nothing have no histogram.
  CHECK(text.find("route=\"catalog\"") == std::string::npos);
}

TEST_CASE("StatsTable tolerates a document from another version") {
  nlohmann::json j = nlohmann::json::parse(StatsJson(SampleSnapshot()).dump());
  std::string table = StatsTable(j, "http://mirror:5000");
  CHECK(table.find("hubcache 9.9.9 at http://mirror:5000") != std::string::npos);
  CHECK(table.find("66.7% of requests") != std::string::npos);
  CHECK(table.find("76 of 100 pulls left") != std::string::npos);
  CHECK(table.find("library/alpine") != std::string::npos);
  CHECK(table.find("Hosted              4.9 KiB in 4 blobs, 1 repositories, 2 manifests pushed, 1 "
                   "uploads in progress, 70 B served") != std::string::npos);
  std::string sparse = StatsTable(nlohmann::json::object({{"version", "0.0.1"}}), "x");
  CHECK(sparse.find("hubcache 0.0.1") != std::string::npos);
  CHECK(sparse.find("not reported") != std::string::npos);
  CHECK(sparse.find("Hosted") == std::string::npos);  // no hosted repositories: no line
  CHECK(FormatBytes(512) == "512 B");
  CHECK(FormatBytes(1536) == "1.5 KiB");
  CHECK(FormatBytes(3.0 * 1024 * 1024 * 1024) == "3.0 GiB");
}

}  // namespace
}  // namespace hubcache
