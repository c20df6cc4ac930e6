#include "http/observability_handlers.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "common/strings.h"
#include "http/dashboard_page.h"
#include "http/request_repo.h"
#include "registry/hubcache_headers.h"
#include "registry/reference.h"
#include "registry/routes.h"
#include "stats/prometheus.h"
#include "stats/stats_json.h"

namespace hubcache {
namespace {

// What the index can tell of the cache is re-read when the cache's size moved
// (at most every kInventoryMinAge), and at least every kInventoryTtl (last-use
// times move without the size).
constexpr auto kInventoryTtl = std::chrono::seconds(5);
constexpr auto kInventoryMinAge = std::chrono::milliseconds(200);
// An upstream check older than this is repeated when /readyz is asked.
constexpr auto kUpstreamCheckTtl = std::chrono::seconds(30);
// How long /readyz waits for a fresh upstream check before reporting the last.
constexpr auto kReadyzProbeWait = std::chrono::milliseconds(1'000);
// Bound on one upstream check (connect + answer).
constexpr std::chrono::milliseconds kProbeTimeout{3'000};

constexpr const char* kJson = "application/json";

bool IsOwnPath(const std::string& path) {
  return path == "/" || path == "/ui" || path == "/stats" || path == "/stats/history" ||
         path == "/metrics" || path == "/healthz" || path == "/readyz";
}

RouteClass ClassifyPath(const std::string& path, Route* route) {
  if (StartsWith(path, "/v2")) {
    *route = ParseRoute(path);
    switch (route->kind) {
      case RouteKind::kManifest:
        return RouteClass::kManifest;
      case RouteKind::kBlob:
        return RouteClass::kBlob;
      case RouteKind::kTagsList:
        return RouteClass::kTagsList;
      case RouteKind::kCatalog:
        return RouteClass::kCatalog;
      case RouteKind::kPing:
        return RouteClass::kPing;
      default:
        return RouteClass::kOther;
    }
  }
  if (path == "/admin" || StartsWith(path, "/admin/")) return RouteClass::kAdmin;
  if (IsOwnPath(path)) return RouteClass::kObservability;
  return RouteClass::kOther;
}

}  // namespace

ObservabilityHandlers::ObservabilityHandlers(Mirror& mirror, const ConnectionCounters& connections)
    : mirror_(mirror),
      connections_(connections),
      started_ms_(UnixNowMs()),
      started_(std::chrono::steady_clock::now()) {
  prober_ = std::thread(&ObservabilityHandlers::ProbeLoop, this);
  sampler_ = std::make_unique<StatsSampler>([this] { return TakeSample(); }, SamplerOptions{});
}

ObservabilityHandlers::~ObservabilityHandlers() {
  sampler_.reset();
  {
    std::lock_guard lock(probe_mutex_);
    probe_stopping_ = true;
  }
  probe_changed_.notify_all();
  prober_.join();
}

Status ObservabilityHandlers::Start() {
  const Config& config = mirror_.config();
  if (config.access_log == "off") return {};
  auto log = AccessLog::Open(config.access_log, config.access_log_format == "json"
                                                    ? AccessLogFormat::kJson
                                                    : AccessLogFormat::kText);
  if (!log) return tl::unexpected(log.error());
  access_log_ = std::move(*log);
  return {};
}

bool ObservabilityHandlers::Handle(const httplib::Request& req, HttpResponse& res) {
  const std::string& path = req.path;
  if (!IsOwnPath(path)) return false;
  if (req.method != "GET" && req.method != "HEAD") {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_header("Connection", "close");  // any body stays unread
    res.set_content("method not allowed\n", "text/plain; charset=utf-8");
    return true;
  }
  res.set_header("Cache-Control", "no-store");
  if (path == "/healthz") {
    res.status = 200;
    res.set_content("ok\n", "text/plain; charset=utf-8");
    return true;
  }
  if (path == "/readyz") {
    ServeReady(res);
    return true;
  }
  res.status = 200;
  if (path == "/" || path == "/ui") {
    // Everything the page needs is inline; it may only talk back to us.
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                   "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_content(std::string(kDashboardHtml), "text/html; charset=utf-8");
  } else if (path == "/stats") {
    ServeStats(req, res);
  } else if (path == "/stats/history") {
    auto samples = sampler_->Samples();
    samples.push_back(TakeSample());  // the chart always reaches "now"
    res.set_content(HistoryJson(samples, sampler_->interval().count()).dump(), kJson);
  } else if (path == "/metrics") {
    res.set_content(PrometheusText(Snapshot(false)), kPrometheusContentType);
  }
  return true;
}

void ObservabilityHandlers::ServeStats(const httplib::Request& req, HttpResponse& res) {
  const bool with_repositories = req.get_param_value("repositories") != "0";
  nlohmann::ordered_json doc = StatsJson(Snapshot(with_repositories));
  for (const auto& [key, provider] : sections_) doc[key] = provider();
  res.set_content(doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", kJson);
}

void ObservabilityHandlers::ServeReady(HttpResponse& res) {
  Mirror::StorageHealth storage = mirror_.CheckStorage();
  const bool writable = storage.writable;
  const std::string& writable_detail = storage.writable_detail;
  const bool index_ok = storage.index_ok;
  const std::string& index_detail = storage.index_detail;
  std::vector<UpstreamCheck> checks = CheckUpstreams(kReadyzProbeWait);
  const bool ready = writable && index_ok;
  auto check_json = [](const UpstreamCheck& up) {
    return nlohmann::ordered_json{{"reachable", up.reachable ? nlohmann::ordered_json(*up.reachable)
                                                             : nlohmann::ordered_json(nullptr)},
                                  {"required", false},
                                  {"status", up.status},
                                  {"detail", up.detail},
                                  {"checked_at_ms", up.checked_ms}};
  };
  // "upstream" is Docker Hub's; "registries" every upstream's, by name.
  nlohmann::ordered_json registries = nlohmann::ordered_json::array();
  for (size_t i = 0; i < checks.size(); ++i) {
    nlohmann::ordered_json entry = {{"registry", mirror_.upstreams().name(i)}};
    entry.update(check_json(checks[i]));
    registries.push_back(std::move(entry));
  }
  nlohmann::ordered_json doc = {
      {"ready", ready},
      {"cache_writable", {{"ok", writable}, {"detail", writable_detail}}},
      {"index", {{"ok", index_ok}, {"detail", index_detail}}},
      {"upstream", check_json(checks.front())},
      {"registries", std::move(registries)},
  };
  // The bucket behind the cache: while it is down, hits come from the local
  // disk and misses from the upstream, so it does not make the mirror unready.
  if (SecondTier* l2 = mirror_.l2()) {
    l2->Probe();
    auto health = l2->health();
    doc["s3"] = {{"available", health.available},
                 {"required", false},
                 {"bucket", l2->client().options().bucket},
                 {"detail", health.available ? std::string() : health.last_error},
                 {"failed_at_ms", health.failed_at_ms}};
  }
  res.status = ready ? 200 : 503;
  res.set_content(doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", kJson);
}

void ObservabilityHandlers::OnResponse(const RequestContext& context, const httplib::Request& req,
                                       const HttpResponse& res) {
  RequestRecord record;
  record.duration = std::chrono::steady_clock::now() - context.start;
  record.status = res.status;
  record.cache = ParseCacheResult(res.get_header_value(kCacheHeader));
  record.body_bytes = context.body_bytes;

  Route route;
  record.route = ClassifyPath(req.path, &route);
  // The repository as the registry handlers keyed it (?ns= applied), and
  // where its content comes from.
  std::optional<RepoName> repo;
  std::string registry;
  if (!route.name.empty()) {
    if (auto name = RequestRepoName(req, route, mirror_.sources())) {
      if (auto parsed = RepoName::Parse(*name)) {
        registry = mirror_.sources().RegistryOf(*parsed);
        repo = std::move(*parsed);
      }
    }
  }
  if (record.route == RouteClass::kManifest || record.route == RouteClass::kBlob) {
    // Every request to a hosted repository (errors, pushes, deletes too) is
    // hosted: none of them is the mirror's hit, miss or error.
    if (repo && mirror_.sources().IsHosted(*repo)) record.cache = CacheResult::kHosted;
    const bool read = req.method == "GET" || req.method == "HEAD";
    if (repo && read && record.status >= 200 && record.status < 400)
      repos_.Add(repo->str(), record.body_bytes);
  }
  http_.Record(record);  // last: once /stats counts the request, all of it is in
  if (access_log_) {
    AccessRecord line;
    line.time_ms = UnixNowMs();
    line.client = req.remote_addr;
    line.method = req.method;
    line.target = req.target.empty() ? req.path : req.target;
    line.status = record.status;
    line.bytes = record.body_bytes;
    line.duration_ms = std::chrono::duration<double, std::milli>(record.duration).count();
    if (record.cache != CacheResult::kNone) line.cache = CacheResultName(record.cache);
    line.registry = std::move(registry);
    access_log_->Submit(std::move(line));
  }
}

StatsSnapshot ObservabilityHandlers::Snapshot(bool with_repositories) {
  const Config& config = mirror_.config();
  CacheStats& cs = mirror_.stats();
  const UpstreamCounters& up = mirror_.upstreams().docker_hub().counters();
  StatsSnapshot s;
  s.version = HUBCACHE_VERSION;
  s.now_ms = UnixNowMs();
  s.started_ms = started_ms_;
  s.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();

  for (size_t r = 0; r < kRouteClasses; ++r) s.routes.push_back(http_.Snapshot(RouteClass(r)));
  auto kind = [&](RouteClass r) {
    const RouteSnapshot& route = s.routes[static_cast<size_t>(r)];
    return KindCounts{
        route.Requests(CacheResult::kHit),
        route.Requests(CacheResult::kMiss) + route.Requests(CacheResult::kPassThrough),
        route.Requests(CacheResult::kStale), route.Requests(CacheResult::kNone)};
  };
  s.manifest = kind(RouteClass::kManifest);
  s.blob = kind(RouteClass::kBlob);
  s.tag_revalidation = KindCounts{cs.tag_revalidations_unchanged, cs.tag_revalidations_changed,
                                  cs.tag_revalidations_stale, cs.tag_revalidations_failed};
  for (RouteClass r : {RouteClass::kManifest, RouteClass::kBlob}) {
    const RouteSnapshot& route = s.routes[static_cast<size_t>(r)];
    s.served_from_cache_bytes += route.body_bytes[static_cast<size_t>(CacheResult::kHit)] +
                                 route.body_bytes[static_cast<size_t>(CacheResult::kStale)];
    s.served_from_upstream_bytes +=
        route.body_bytes[static_cast<size_t>(CacheResult::kMiss)] +
        route.body_bytes[static_cast<size_t>(CacheResult::kPassThrough)];
  }
  s.fetched_blob_bytes = cs.bytes_from_upstream;
  s.fetched_manifest_bytes = cs.manifest_bytes_from_upstream;

  s.fills_in_flight = mirror_.fills().active();
  s.fills_started = cs.fills_started;
  s.fills_coalesced = cs.fills_joined;
  s.fills_failed = cs.fills_failed;

  s.cache_size_bytes = mirror_.usage().bytes();
  s.cache_max_size_bytes = config.cache_max_size_bytes;
  s.evictions = cs.evictions;
  s.evicted_bytes = cs.evicted_bytes;
  s.cache_write_errors = cs.cache_write_errors;

  const char* methods[] = {"GET", "HEAD"};
  UpstreamSet& upstreams = mirror_.upstreams();
  for (size_t i = 0; i < upstreams.size(); ++i) {
    const UpstreamCounters& c = upstreams.client(i).counters();
    const std::string& registry = upstreams.name(i);
    for (size_t m = 0; m < c.by_method_status.size(); ++m) {
      for (size_t code = 0; code < c.by_method_status[m].size(); ++code) {
        if (uint64_t n = c.by_method_status[m][code]; n > 0) {
          s.upstream_requests.push_back(
              UpstreamStatusCount{registry, methods[m], static_cast<int>(code), n});
        }
      }
    }
    s.upstreams.push_back(StatsSnapshot::Upstream{registry, upstreams.url(i), c.token_fetches,
                                                  c.transport_errors, c.connections_refused,
                                                  c.bytes_received});
    s.upstream_token_fetches += c.token_fetches;
    s.upstream_transport_errors += c.transport_errors;
    s.upstream_connections_refused += c.connections_refused;
    s.upstream_bytes_received += c.bytes_received;
  }
  s.upstream_errors = cs.upstream_errors;
  // Docker Hub's pull limit.
  if (int64_t v = up.ratelimit_limit; v >= 0) s.ratelimit_limit = v;
  if (int64_t v = up.ratelimit_remaining; v >= 0) s.ratelimit_remaining = v;
  s.ratelimit_seen_ms = up.ratelimit_seen_ms;

  s.repositories_served = repos_.All();
  if (auto inventory = CurrentInventory()) {
    s.cache_blobs = inventory->blobs;
    s.cache_manifests = inventory->manifests;
    if (with_repositories) {
      s.cached = std::move(inventory->repositories);
      s.cached_known = true;
    }
  }

  HostedFigures& h = s.hosted;
  h.patterns = mirror_.sources().patterns();
  if (auto hosted = CurrentHostedInventory()) {
    const HostedTotals& t = hosted->totals;
    h.repositories = t.repositories;
    h.manifests = t.manifests;
    h.tags = t.tags;
    h.blobs = t.blobs;
    h.bytes = t.bytes;
    h.uploads_in_progress = t.uploads;
    if (with_repositories) {
      h.repository_list = std::move(hosted->repositories);
      h.repository_list_known = true;
    }
  }
  for (RouteClass r : {RouteClass::kManifest, RouteClass::kBlob}) {
    const RouteSnapshot& route = s.routes[static_cast<size_t>(r)];
    const uint64_t n = route.Requests(CacheResult::kHosted);
    (r == RouteClass::kManifest ? h.manifest_requests : h.blob_requests) = n;
    h.served_bytes += route.body_bytes[static_cast<size_t>(CacheResult::kHosted)];
  }
  h.uploads_started = cs.uploads_started;
  h.uploads_purged = cs.uploads_purged;
  h.push_blobs = cs.push_blobs;
  h.push_bytes = cs.push_bytes;
  h.push_manifests = cs.push_manifests;
  h.push_digest_mismatches = cs.push_digest_mismatches;
  h.push_refused = cs.push_refused;
  h.deletes = cs.hosted_deletes;

  s.prefetch = mirror_.prefetcher().Figures();
  s.prefetch.joined = cs.prefetch_joined;

  if (SecondTier* l2 = mirror_.l2()) {
    BucketFigures& b = s.bucket;
    const S3Options& o = l2->client().options();
    const S3Counters& c = l2->client().counters();
    const SecondTierStats& t = l2->stats();
    auto health = l2->health();
    b.configured = true;
    b.bucket = o.bucket;
    b.endpoint = o.endpoint;
    b.available = health.available;
    b.last_error = health.last_error;
    b.failed_at_ms = health.failed_at_ms;
    b.requests = c.requests;
    b.errors = c.errors;
    b.bytes_sent = c.bytes_sent;
    b.bytes_received = c.bytes_received;
    b.latency = t.latency.Snapshot();
    b.blob_hits = t.blob_hits;
    b.blob_misses = t.blob_misses;
    b.manifest_hits = t.manifest_hits;
    b.tag_hits = t.tag_hits;
    b.copies = t.copies;
    b.copy_bytes = t.copy_bytes;
    b.copy_failures = t.copy_failures;
    b.copies_dropped = t.copies_dropped;
    b.corrupt_objects = t.corrupt_objects;
    b.skipped_unavailable = t.skipped_unavailable;
    b.redirects = t.redirects;
    b.stale_aborted = t.stale_aborted;
    b.writes = t.writes;
    b.writes_pending = l2->pending_writes();
    b.writes_dropped = t.writes_dropped;
    b.max_bytes = mirror_.config().l2_max_size_bytes;
    b.cache_bytes = t.cache_bytes;
    b.cache_objects = t.cache_objects;
    b.measured_at_ms = t.measured_at_ms;
    b.trimmed_objects = t.trimmed_objects;
    b.trimmed_bytes = t.trimmed_bytes;
  }

  s.access_log_enabled = access_log_ != nullptr;
  s.access_log_format = config.access_log_format;
  if (access_log_) {
    s.access_log_written = access_log_->written();
    s.access_log_dropped = access_log_->dropped();
  }
  s.admin_enabled = !config.admin_token.empty() || !config.admin_users.empty();

  const ConnectionCounters& cc = connections_;
  s.connections_open = cc.connections_open;
  s.rejected = {{"connections", cc.rejected_connections},
                {"connections_per_client", cc.rejected_connections_per_client},
                {"requests_per_client", cs.client_limit_rejections},
                {"header_timeout", cc.rejected_header_timeout},
                {"request_line_too_long", cc.rejected_request_line_too_long},
                {"headers_too_large", cc.rejected_headers_too_large},
                {"too_many_headers", cc.rejected_too_many_headers},
                {"malformed_request", cc.rejected_malformed_request},
                {"body_too_large", cc.rejected_body_too_large},
                {"unsupported", cc.rejected_unsupported},
                {"auth_rate_limited", cs.auth_rate_limited}};
  s.auth_failures = cs.auth_failures;
  s.admin_auth_failures = cs.admin_auth_failures;
  return s;
}

HistorySample ObservabilityHandlers::TakeSample() {
  HistorySample h;
  h.t_ms = UnixNowMs();
  for (RouteClass r : {RouteClass::kManifest, RouteClass::kBlob}) {
    RouteSnapshot route = http_.Snapshot(r);
    h.hits += route.Requests(CacheResult::kHit) + route.Requests(CacheResult::kStale);
    h.misses += route.Requests(CacheResult::kMiss) + route.Requests(CacheResult::kPassThrough);
    const auto& bytes = route.body_bytes;
    const uint64_t from_cache = bytes[static_cast<size_t>(CacheResult::kHit)] +
                                bytes[static_cast<size_t>(CacheResult::kStale)];
    h.served_from_cache_bytes += from_cache;
    // As in the snapshot: error bodies are not "served".
    h.served_bytes += from_cache + bytes[static_cast<size_t>(CacheResult::kMiss)] +
                      bytes[static_cast<size_t>(CacheResult::kPassThrough)];
  }
  h.fetched_bytes =
      mirror_.stats().bytes_from_upstream + mirror_.stats().manifest_bytes_from_upstream;
  return h;
}

std::optional<ObservabilityHandlers::Inventory> ObservabilityHandlers::CurrentInventory() {
  std::lock_guard lock(inventory_mutex_);
  const auto now = std::chrono::steady_clock::now();
  // Read before the walk: a change during it makes the next call walk again.
  const uint64_t usage = mirror_.usage().bytes();
  const auto age = now - inventory_at_;
  if (!inventory_ || age >= kInventoryTtl ||
      (usage != inventory_usage_ && age >= kInventoryMinAge)) {
    auto fresh = BuildInventory();
    if (!fresh) {
      Logger("http")->warn("cannot list the cache for stats error=\"{}\"", fresh.error().message);
      return std::nullopt;
    }
    inventory_ = std::move(*fresh);
    inventory_at_ = now;
    inventory_usage_ = usage;
  }
  return inventory_;
}

Result<ObservabilityHandlers::Inventory> ObservabilityHandlers::BuildInventory() {
  IndexDb& index = mirror_.index();
  auto entries = index.AllEntries();
  if (!entries) return tl::unexpected(entries.error());
  auto images = index.Images();
  if (!images) return tl::unexpected(images.error());

  Inventory inv;
  std::map<std::string, uint64_t> sizes;
  std::map<std::string, int64_t> used;
  std::set<std::string> manifests;
  for (const auto& e : *entries) {
    sizes[e.digest] = e.size;
    used[e.digest] = e.last_access_ms;
    if (e.kind == EntryKind::kManifest) {
      ++inv.manifests;
      manifests.insert(e.digest);
    } else {
      ++inv.blobs;
    }
  }
  // Everything a manifest reaches (itself, its config and layers, an index's
  // children and theirs) that the cache holds.
  std::map<std::string, std::vector<std::string>> children;
  auto reach = [&](const std::string& root, std::set<std::string>& out) {
    std::vector<std::string> todo = {root};
    while (!todo.empty()) {
      std::string digest = std::move(todo.back());
      todo.pop_back();
      if (!sizes.count(digest) || !out.insert(digest).second) continue;
      if (!manifests.count(digest)) continue;
      auto it = children.find(digest);
      if (it == children.end()) {
        auto refs = index.ManifestChildren(digest);
        it = children.emplace(digest, refs ? std::move(*refs) : std::vector<std::string>{}).first;
      }
      todo.insert(todo.end(), it->second.begin(), it->second.end());
    }
  };
  auto sum = [&](const std::set<std::string>& digests) {
    uint64_t total = 0;
    for (const auto& d : digests) total += sizes[d];
    return total;
  };
  auto last_used = [&](const std::set<std::string>& digests) {
    int64_t last = 0;
    for (const auto& d : digests) last = std::max(last, used[d]);
    return last;
  };

  std::set<std::string> repo_objects;
  for (const auto& row : *images) {
    if (inv.repositories.empty() || inv.repositories.back().name != row.repo) {
      if (!inv.repositories.empty()) inv.repositories.back().size_bytes = sum(repo_objects);
      repo_objects.clear();
      inv.repositories.push_back(CachedRepository{row.repo, 0, 0, {}});
    }
    std::set<std::string> objects;
    reach(row.digest, objects);
    CachedRepository& repo = inv.repositories.back();
    // Last used: the latest use of the manifest or anything it references.
    const int64_t tag_used = std::max(row.last_access_ms, last_used(objects));
    repo.tags.push_back(CachedTag{row.tag, row.digest, sum(objects), tag_used});
    repo.last_used_ms = std::max(repo.last_used_ms, tag_used);
    repo_objects.insert(objects.begin(), objects.end());
  }
  if (!inv.repositories.empty()) inv.repositories.back().size_bytes = sum(repo_objects);
  return inv;
}

uint64_t ObservabilityHandlers::HostedGeneration() const {
  const CacheStats& cs = mirror_.stats();
  return cs.uploads_started + cs.uploads_purged + cs.push_blobs + cs.push_manifests +
         cs.push_digest_mismatches + cs.hosted_deletes;
}

// As CurrentInventory: re-read when this process changed hosted content (at
// most every kInventoryMinAge), and at least every kInventoryTtl (`hubcache
// gc` and cancelled uploads change it unseen).
std::optional<ObservabilityHandlers::HostedInventory>
ObservabilityHandlers::CurrentHostedInventory() {
  std::lock_guard lock(hosted_mutex_);
  const auto now = std::chrono::steady_clock::now();
  const uint64_t generation = HostedGeneration();  // before the read, as above
  const auto age = now - hosted_at_;
  if (!hosted_ || age >= kInventoryTtl ||
      (generation != hosted_generation_ && age >= kInventoryMinAge)) {
    auto fresh = BuildHostedInventory();
    if (!fresh) {
      Logger("http")->warn("cannot list the hosted repositories for stats error=\"{}\"",
                           fresh.error().message);
      return std::nullopt;
    }
    hosted_ = std::move(*fresh);
    hosted_at_ = now;
    hosted_generation_ = generation;
  }
  return hosted_;
}

Result<ObservabilityHandlers::HostedInventory> ObservabilityHandlers::BuildHostedInventory() {
  IndexDb& index = mirror_.index();
  auto totals = index.GetHostedTotals();
  if (!totals) return tl::unexpected(totals.error());
  auto rows = index.HostedRepositoryRows();
  if (!rows) return tl::unexpected(rows.error());
  HostedInventory inv;
  inv.totals = *totals;
  for (auto& row : *rows) {
    auto tags = index.HostedTags(row.repo);
    if (!tags) return tl::unexpected(tags.error());
    inv.repositories.push_back(HostedRepository{std::move(row.repo), row.size_bytes, row.manifests,
                                                std::move(*tags), row.last_push_ms});
  }
  return inv;
}

std::vector<ObservabilityHandlers::UpstreamCheck> ObservabilityHandlers::CheckUpstreams(
    std::chrono::milliseconds wait) {
  std::unique_lock lock(probe_mutex_);
  const int64_t age_ms = UnixNowMs() - checked_ms_;
  if (checked_ms_ == 0 ||
      age_ms >= std::chrono::duration_cast<std::chrono::milliseconds>(kUpstreamCheckTtl).count()) {
    const int64_t before = checked_ms_;
    probe_wanted_ = true;
    probe_changed_.notify_all();
    probe_changed_.wait_for(lock, wait, [&] { return checked_ms_ != before; });
  }
  std::vector<UpstreamCheck> out = upstreams_;
  out.resize(mirror_.upstreams().size());  // never checked yet: reachable unknown
  return out;
}

// Whether each upstream answers HTTP at all (UpstreamClient::ProbeReachable),
// on this thread so that a probe never holds up a /readyz past its wait.
void ObservabilityHandlers::ProbeLoop() {
  std::unique_lock lock(probe_mutex_);
  while (true) {
    probe_changed_.wait(lock, [this] { return probe_stopping_ || probe_wanted_; });
    if (probe_stopping_) return;
    probe_wanted_ = false;
    lock.unlock();

    UpstreamSet& upstreams = mirror_.upstreams();
    std::vector<UpstreamCheck> checks;
    for (size_t i = 0; i < upstreams.size(); ++i) {
      UpstreamClient::Reachability probe = upstreams.client(i).ProbeReachable(kProbeTimeout);
      UpstreamCheck check;
      check.reachable = probe.reachable;
      check.status = probe.status;
      check.detail = std::move(probe.detail);
      check.checked_ms = UnixNowMs();
      checks.push_back(std::move(check));
    }

    lock.lock();
    upstreams_ = std::move(checks);
    checked_ms_ = UnixNowMs();
    probe_changed_.notify_all();
  }
}

}  // namespace hubcache
