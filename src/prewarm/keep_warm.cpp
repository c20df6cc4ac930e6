#include "prewarm/keep_warm.h"

#include "common/clock.h"
#include "common/log.h"
#include "prewarm/image_list.h"
#include "prewarm/report.h"

namespace hubcache {
namespace {

constexpr size_t kMaxFailuresKept = 20;

}  // namespace

Result<std::unique_ptr<KeepWarm>> KeepWarm::Create(KeepWarmOptions options) {
  if (options.list_path == "-") {
    return Fail(ErrorKind::kConfigInvalid,
                "--prewarm-file/HUBCACHE_PREWARM_FILE: must be a file, not standard input");
  }
  if (auto content = ReadListFile(options.list_path); !content) {
    return Fail(ErrorKind::kConfigInvalid,
                "--prewarm-file/HUBCACHE_PREWARM_FILE: " + content.error().message);
  }
  return std::make_unique<KeepWarm>(std::move(options));
}

Result<KeepWarmOptions> KeepWarm::OptionsFor(const Config& config, int port,
                                             const std::string& user, const std::string& password) {
  auto session = SelfSession(config, port, user, password);
  if (!session) {
    return Fail(ErrorKind::kConfigInvalid,
                "--prewarm-file/HUBCACHE_PREWARM_FILE: " + session.error().message);
  }
  KeepWarmOptions options;
  options.list_path = config.prewarm_file;
  options.interval = config.prewarm_interval;
  options.prewarm.session = *session;
  return options;
}

KeepWarm::~KeepWarm() { Stop(); }

void KeepWarm::Start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable() || stopping_) return;
  next_run_ms_ = UnixNowMs() + options_.first_delay.count();
  thread_ = std::thread([this] { Loop(); });
}

void KeepWarm::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    if (current_) current_->Cancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void KeepWarm::Loop() {
  std::unique_lock lock(mutex_);
  while (true) {
    auto delay = std::chrono::milliseconds(std::max<int64_t>(0, next_run_ms_ - UnixNowMs()));
    if (wake_.wait_for(lock, delay, [&] { return stopping_; })) return;
    lock.unlock();
    KeepWarmSummary summary = RunOnce();
    lock.lock();
    if (stopping_) return;  // a canceled run is no result
    last_ = summary;
    ++runs_;
    next_run_ms_ = UnixNowMs() + options_.interval.count();
  }
}

KeepWarmSummary KeepWarm::RunOnce() {
  auto log = Logger("prewarm");
  KeepWarmSummary summary;
  summary.started_ms = UnixNowMs();
  auto content = ReadListFile(options_.list_path);
  if (!content) {
    summary.error = content.error().message;
    summary.finished_ms = UnixNowMs();
    log->warn("keep-warm run skipped error=\"{}\"", summary.error);
    return summary;
  }
  ImageList list = ParseImageList(*content);
  for (const auto& e : list.errors) {
    log->warn("keep-warm list entry skipped list={} {}", options_.list_path, ListErrorLine(e));
  }
  summary.malformed_entries = static_cast<int>(list.errors.size());
  std::vector<ImageRef> refs;
  for (const auto& image : list.images) refs.push_back(image.ref);

  auto run = std::make_shared<PrewarmRun>(std::move(refs), options_.prewarm);
  run->SetObserver([log](const ImageProgress& image) {
    if (image.state == ImageState::kFailed) {
      log->warn("keep-warm {}", ImageLogLine(image));
    } else if (image.state == ImageState::kDone) {
      log->debug("keep-warm {}", ImageLogLine(image));
    }
  });
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return summary;
    current_ = run;
  }
  log->info("keep-warm run start list={} images={}", options_.list_path, list.images.size());
  RunSnapshot result = run->Run();
  {
    std::lock_guard lock(mutex_);
    current_.reset();
  }
  summary.finished_ms = UnixNowMs();
  summary.images_ok = result.images_ok();
  summary.images_failed = result.images_failed();
  summary.bytes_fetched = result.bytes_fetched;
  summary.bytes_cached = result.bytes_cached;
  for (const auto& i : result.images) {
    if (i.state == ImageState::kFailed && summary.failures.size() < kMaxFailuresKept) {
      summary.failures.push_back(i.image + ": " + FailureReasonName(i.reason) + ": " + i.error);
    }
  }
  log->info(
      "keep-warm run finished images_ok={} images_failed={} malformed={} bytes_fetched={} "
      "bytes_cached={} elapsed_ms={}",
      summary.images_ok, summary.images_failed, summary.malformed_entries, summary.bytes_fetched,
      summary.bytes_cached, summary.finished_ms - summary.started_ms);
  return summary;
}

std::optional<KeepWarmSummary> KeepWarm::LastRun() const {
  std::lock_guard lock(mutex_);
  return last_;
}

nlohmann::json KeepWarm::StatusJson() const {
  std::lock_guard lock(mutex_);
  return nlohmann::json{
      {"list", options_.list_path},
      {"interval_s", options_.interval.count() / 1000},
      {"runs", runs_},
      {"running", current_ != nullptr},
      {"next_run_ms", next_run_ms_},
      {"last_run", last_ ? KeepWarmSummaryJson(*last_) : nlohmann::json(nullptr)},
  };
}

nlohmann::json KeepWarmSummaryJson(const KeepWarmSummary& s) {
  nlohmann::json j = {
      {"started_ms", s.started_ms},
      {"finished_ms", s.finished_ms},
      {"images_ok", s.images_ok},
      {"images_failed", s.images_failed},
      {"malformed_entries", s.malformed_entries},
      {"bytes_fetched", s.bytes_fetched},
      {"bytes_cached", s.bytes_cached},
      {"failures", s.failures},
  };
  if (!s.error.empty()) j["error"] = s.error;
  return j;
}

Result<SessionOptions> SelfSession(const Config& config, int port, const std::string& user,
                                   const std::string& password) {
  if (!config.tls_client_cas.empty()) {
    return Fail(ErrorKind::kConfigInvalid,
                "the server's own pre-warm cannot present the client certificate that "
                "REGISTRY_HTTP_TLS_CLIENTCAS asks for");
  }
  SessionOptions session;
  session.base_url = SelfUrl(config.http_addr, port);
  if (!config.tls_certificate.empty()) {
    session.base_url.replace(0, 4, "https");
    session.ca_file = config.tls_certificate;  // curl takes any certificate here as an anchor
    session.verify_host = false;               // 127.0.0.1 need not be among its names
  }
  session.username = user;
  session.password = password;
  return session;
}

}  // namespace hubcache
