#include "prewarm/job_manager.h"

#include <random>
#include <system_error>

#include "common/clock.h"
#include "common/log.h"
#include "prewarm/report.h"
#include "registry/errors.h"

namespace hubcache {
namespace {

std::string NewJobId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 16; ++i) id += kHex[rng() % 16];
  return id;
}

ApiReply JsonError(int status, const std::string& message, nlohmann::json detail = nullptr) {
  const char* code = status == 404   ? "NOT_FOUND"
                     : status == 429 ? "TOOMANYREQUESTS"
                     : status == 503 ? "UNAVAILABLE"
                                     : "INVALID_REQUEST";
  return ApiReply{status, ErrorJson(code, message, detail)};
}

}  // namespace

PrewarmJobs::~PrewarmJobs() { Shutdown(); }

void PrewarmJobs::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) {
      job->run->Cancel();
      if (job->thread.joinable()) threads.push_back(std::move(job->thread));
    }
  }
  for (auto& t : threads) t.join();
}

size_t PrewarmJobs::running() const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [id, job] : jobs_) n += job->finished ? 0 : 1;
  return n;
}

void PrewarmJobs::ReapLocked() {
  for (auto& [id, job] : jobs_) {
    // A finished job's thread has only to return: the join is immediate.
    if (job->finished && job->thread.joinable()) job->thread.join();
  }
  size_t finished = 0;
  for (const auto& [id, job] : jobs_) finished += job->finished ? 1 : 0;
  for (auto it = order_.begin(); it != order_.end() && finished > options_.max_kept_jobs;) {
    auto job = jobs_.find(*it);
    if (job != jobs_.end() && job->second->finished) {
      jobs_.erase(job);
      it = order_.erase(it);
      --finished;
    } else {
      ++it;
    }
  }
}

Result<std::string> PrewarmJobs::Start(std::vector<ImageRef> images,
                                       std::vector<Platform> platforms,
                                       const SessionOptions& target) {
  std::lock_guard lock(mutex_);
  if (stopping_) return Fail(ErrorKind::kUpstreamUnavailable, "the server is shutting down");
  ReapLocked();
  size_t running = 0;
  for (const auto& [id, job] : jobs_) running += job->finished ? 0 : 1;
  if (running >= options_.max_running_jobs) {
    return Fail(ErrorKind::kTooManyRequests,
                std::to_string(running) + " pre-warm jobs are running; try again when one ends");
  }
  auto job = std::make_unique<Job>();
  do {
    job->id = NewJobId();
  } while (jobs_.count(job->id));
  job->created_ms = UnixNowMs();
  for (const auto& p : platforms) job->platforms.push_back(p.str());
  PrewarmOptions options = options_.prewarm;
  options.session = target;
  options.platforms = std::move(platforms);
  job->run = std::make_shared<PrewarmRun>(std::move(images), options);
  const std::string id = job->id;
  Job* raw = job.get();
  try {
    raw->thread = std::thread([this, raw] {
      RunSnapshot result = raw->run->Run();
      Logger("prewarm")->info("job finished id={} images_ok={} images_failed={} bytes_fetched={}",
                              raw->id, result.images_ok(), result.images_failed(),
                              result.bytes_fetched);
      std::lock_guard lock(mutex_);
      raw->finished = true;
    });
  } catch (const std::system_error& e) {
    return Fail(ErrorKind::kInternal, std::string("cannot start a job thread: ") + e.what());
  }
  jobs_.emplace(id, std::move(job));
  order_.push_back(id);
  Logger("prewarm")->info("job started id={}", id);
  return id;
}

std::optional<nlohmann::json> PrewarmJobs::Describe(const std::string& id) const {
  std::shared_ptr<PrewarmRun> run;
  nlohmann::json j;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return std::nullopt;
    run = it->second->run;
    j["id"] = id;
    j["created_ms"] = it->second->created_ms;
    j["platforms"] = it->second->platforms.empty() ? nlohmann::json("all")
                                                   : nlohmann::json(it->second->platforms);
  }
  j.update(RunSnapshotJson(run->Snapshot()));
  return j;
}

ApiReply PrewarmJobs::HandlePost(std::string_view body, const SessionOptions& target) {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json* images = nullptr;
  const nlohmann::json* platforms = nullptr;
  if (doc.is_array()) {
    images = &doc;
  } else if (doc.is_object()) {
    if (auto it = doc.find("images"); it != doc.end()) images = &*it;
    if (auto it = doc.find("platforms"); it != doc.end()) platforms = &*it;
  }
  if (images == nullptr || !images->is_array()) {
    return JsonError(
        400, "expected a JSON list of images, or {\"images\": [...], \"platforms\": [...]}");
  }
  if (images->empty()) return JsonError(400, "the list of images is empty");
  if (images->size() > options_.max_images_per_job) {
    return JsonError(
        400, "more than " + std::to_string(options_.max_images_per_job) + " images in one job");
  }
  std::vector<ImageRef> refs;
  nlohmann::json invalid = nlohmann::json::array();
  for (size_t i = 0; i < images->size(); ++i) {
    const auto& item = (*images)[i];
    if (!item.is_string()) {
      invalid.push_back({{"index", i}, {"error", "not a string"}});
      continue;
    }
    auto ref = ParseImageRef(item.get<std::string>());
    if (!ref) {
      invalid.push_back({{"index", i}, {"image", item}, {"error", ref.error().message}});
      continue;
    }
    refs.push_back(*ref);
  }
  std::vector<Platform> wanted;
  if (platforms != nullptr && !platforms->is_null()) {
    if (!platforms->is_array()) return JsonError(400, "platforms must be a list");
    for (const auto& p : *platforms) {
      auto parsed = p.is_string() ? ParsePlatform(p.get<std::string>())
                                  : Fail(ErrorKind::kConfigInvalid, "a platform is a string");
      if (!parsed) {
        invalid.push_back({{"platform", p}, {"error", parsed.error().message}});
        continue;
      }
      wanted.push_back(*parsed);
    }
  }
  if (!invalid.empty()) return JsonError(400, "invalid entries; no job started", invalid);

  nlohmann::json canonical = nlohmann::json::array();
  for (const auto& r : refs) canonical.push_back(r.str());
  auto id = Start(std::move(refs), std::move(wanted), target);
  if (!id) {
    return JsonError(id.error().kind == ErrorKind::kTooManyRequests ? 429 : 503,
                     id.error().message);
  }
  return ApiReply{
      202,
      nlohmann::json{{"id", *id}, {"status_url", "/admin/prewarm/" + *id}, {"images", canonical}}
          .dump()};
}

ApiReply PrewarmJobs::HandleGet(const std::string& id) const {
  auto j = Describe(id);
  if (!j) return JsonError(404, "no pre-warm job " + id);
  return ApiReply{200, j->dump()};
}

}  // namespace hubcache
