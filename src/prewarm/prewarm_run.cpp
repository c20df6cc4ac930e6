#include "prewarm/prewarm_run.h"

#include <set>
#include <system_error>
#include <thread>

#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"

namespace hubcache {
namespace {

// Nested indexes are followed this deep (an index of indexes is legal but rare).
constexpr int kMaxIndexDepth = 2;

// The error a mirror reply stands for. 404s keep the kind the registry code
// names, so that the caller can tell an unknown tag from an unknown blob.
Error ReplyError(const MirrorReply& reply, const std::string& what, ErrorKind not_found) {
  std::string status = "HTTP " + std::to_string(reply.status) +
                       (reply.ErrorCode().empty() ? std::string() : " " + reply.ErrorCode());
  // hubcache's messages name the object already; other registries' may not.
  std::string detail = reply.ErrorMessage();
  std::string message = detail.empty() ? what + ": the mirror answered " + status
                        : detail.find(what) != std::string::npos
                            ? detail + " (" + status + ")"
                            : what + ": " + detail + " (" + status + ")";
  switch (reply.status) {
    case 404:
      return Error{not_found, message};
    case 401:
      return Error{ErrorKind::kUnauthorized, message};
    case 403:
      return Error{ErrorKind::kDenied, message};
    case 429:
      return Error{ErrorKind::kTooManyRequests, message};
    default:
      break;
  }
  if (reply.status >= 500) return Error{ErrorKind::kUpstreamUnavailable, message};
  return Error{ErrorKind::kUpstreamInvalid, message};
}

bool Retryable(const Error& error) { return error.kind == ErrorKind::kUpstreamUnavailable; }

std::string PlatformList(const ParsedManifest& index) {
  std::string out;
  for (const auto& child : index.children) {
    if (!child.platform) continue;
    if (!out.empty()) out += ", ";
    out += child.platform->str();
  }
  return out.empty() ? std::string("none") : out;
}

}  // namespace

const char* ImageStateName(ImageState state) {
  switch (state) {
    case ImageState::kQueued:
      return "queued";
    case ImageState::kResolving:
      return "resolving";
    case ImageState::kFetching:
      return "fetching";
    case ImageState::kDone:
      return "done";
    case ImageState::kFailed:
      return "failed";
  }
  return "queued";
}

const char* FailureReasonName(FailureReason reason) {
  switch (reason) {
    case FailureReason::kNone:
      return "";
    case FailureReason::kUnknownTag:
      return "unknown tag";
    case FailureReason::kUnknownManifest:
      return "unknown manifest";
    case FailureReason::kUnknownBlob:
      return "unknown blob";
    case FailureReason::kUnauthorized:
      return "unauthorized";
    case FailureReason::kRateLimited:
      return "rate-limited";
    case FailureReason::kNetwork:
      return "network";
    case FailureReason::kInvalid:
      return "invalid";
    case FailureReason::kNoPlatform:
      return "no matching platform";
    case FailureReason::kCanceled:
      return "canceled";
  }
  return "";
}

int RunSnapshot::images_ok() const {
  int n = 0;
  for (const auto& i : images) n += i.state == ImageState::kDone ? 1 : 0;
  return n;
}

int RunSnapshot::images_failed() const {
  int n = 0;
  for (const auto& i : images) n += i.state == ImageState::kFailed ? 1 : 0;
  return n;
}

PrewarmRun::PrewarmRun(std::vector<ImageRef> images, PrewarmOptions options)
    : options_(std::move(options)) {
  images_.reserve(images.size());
  for (auto& ref : images) {
    ImageJob job{std::move(ref), {}, 0};
    job.progress.image = job.ref.str();
    images_.push_back(std::move(job));
  }
}

PrewarmRun::~PrewarmRun() = default;

void PrewarmRun::Cancel() {
  {
    std::lock_guard lock(mutex_);
    cancel_ = true;
  }
  cancel_cv_.notify_all();
}

RunSnapshot PrewarmRun::Run() {
  {
    std::lock_guard lock(mutex_);
    started_ms_ = UnixNowMs();
    for (size_t i = 0; i < images_.size(); ++i) resolve_queue_.push_back(i);
    outstanding_ = images_.size();
  }
  std::vector<std::thread> helpers;
  const int helper_count = std::max(1, options_.concurrency) - 1;
  for (int i = 0; i < helper_count; ++i) {
    try {
      helpers.emplace_back([this] { Work(); });
    } catch (const std::system_error& e) {
      // Fewer threads only means less parallelism: carry on with those we have.
      Logger("prewarm")->warn("cannot start a worker thread error=\"{}\"", e.what());
      break;
    }
  }
  Work();
  for (auto& t : helpers) t.join();
  {
    std::lock_guard lock(mutex_);
    finished_ms_ = UnixNowMs();
  }
  return Snapshot();
}

void PrewarmRun::Work() {
  MirrorSession session(options_.session, cancel_);
  std::unique_lock lock(mutex_);
  while (true) {
    work_cv_.wait(
        lock, [&] { return !blob_queue_.empty() || !resolve_queue_.empty() || outstanding_ == 0; });
    // Blobs first: an image already resolved finishes before the next starts.
    if (!blob_queue_.empty()) {
      size_t blob = blob_queue_.front();
      blob_queue_.pop_front();
      lock.unlock();
      FetchBlob(session, blob);
      lock.lock();
    } else if (!resolve_queue_.empty()) {
      size_t image = resolve_queue_.front();
      resolve_queue_.pop_front();
      lock.unlock();
      Resolve(session, image);
      lock.lock();
    } else {
      return;  // nothing queued, nothing running
    }
    if (--outstanding_ == 0) work_cv_.notify_all();
  }
}

FailureReason PrewarmRun::ReasonFor(const Error& error, FailureReason unknown) const {
  if (cancel_.load()) return FailureReason::kCanceled;
  switch (error.kind) {
    case ErrorKind::kManifestUnknown:
    case ErrorKind::kBlobUnknown:
    case ErrorKind::kNameUnknown:
      return unknown;
    case ErrorKind::kUnauthorized:
    case ErrorKind::kDenied:
      return FailureReason::kUnauthorized;
    case ErrorKind::kTooManyRequests:
      return FailureReason::kRateLimited;
    case ErrorKind::kUpstreamUnavailable:
      return FailureReason::kNetwork;
    default:
      return FailureReason::kInvalid;
  }
}

bool PrewarmRun::WaitBeforeRetry() {
  std::unique_lock lock(mutex_);
  return !cancel_cv_.wait_for(lock, options_.retry_delay, [&] { return cancel_.load(); });
}

Result<MirrorReply> PrewarmRun::FetchManifest(MirrorSession& session, const RepoName& repo,
                                              const std::string& reference,
                                              const Digest* expected) {
  const std::string what = repo.str() + (expected ? "@" : ":") + reference;
  for (int attempt = 1;; ++attempt) {
    auto reply = session.GetManifest(repo, reference);
    Result<MirrorReply> outcome = reply;
    if (reply && reply->status != 200) {
      outcome = tl::unexpected(ReplyError(
          *reply, what, expected ? ErrorKind::kManifestUnknown : ErrorKind::kNameUnknown));
    }
    if (!outcome) {
      if (Retryable(outcome.error()) && attempt < options_.attempts && !cancel_.load() &&
          WaitBeforeRetry()) {
        continue;
      }
      return outcome;
    }
    std::string actual = "sha256:" + Sha256::HexOf(outcome->body);
    if (expected != nullptr && actual != expected->str()) {
      return Fail(ErrorKind::kUpstreamInvalid, what + ": manifest bytes do not match the digest");
    }
    if (expected == nullptr && !outcome->digest.empty() && outcome->digest != actual) {
      return Fail(ErrorKind::kUpstreamInvalid,
                  what + ": Docker-Content-Digest does not match the manifest bytes");
    }
    outcome->digest = actual;
    return outcome;
  }
}

void PrewarmRun::Resolve(MirrorSession& session, size_t image) {
  const ImageRef& ref = images_[image].ref;  // immutable after construction
  const std::string what = ref.str();
  const FailureReason unknown_top =
      ref.digest ? FailureReason::kUnknownManifest : FailureReason::kUnknownTag;
  Events events;
  auto fail = [&](FailureReason reason, const std::string& error) {
    {
      std::lock_guard lock(mutex_);
      FailImageLocked(image, reason, error);
      FinishImageLocked(image, events);
    }
    Notify(events);
  };
  {
    std::lock_guard lock(mutex_);
    images_[image].progress.state = ImageState::kResolving;
  }
  if (cancel_.load()) return fail(FailureReason::kCanceled, "canceled");

  auto top = FetchManifest(session, ref.repo, ReferenceString(ref.reference()),
                           ref.digest ? &*ref.digest : nullptr);
  if (!top) return fail(ReasonFor(top.error(), unknown_top), top.error().message);
  {
    std::lock_guard lock(mutex_);
    images_[image].progress.digest = top->digest;
  }

  // Breadth-first over the manifests: indexes give children, images give blobs.
  struct Pending {
    std::string media_type;
    std::string body;
    std::string what;
    int depth;
  };
  std::vector<Pending> todo{{top->content_type, std::move(top->body), what, 0}};
  std::vector<Descriptor> blobs;
  std::set<std::string> seen_blobs;
  int platforms = 0;
  while (!todo.empty()) {
    Pending m = std::move(todo.back());
    todo.pop_back();
    auto parsed = ParseManifest(m.media_type, m.body);
    if (!parsed) return fail(FailureReason::kInvalid, m.what + ": " + parsed.error().message);
    if (!parsed->is_index) {
      ++platforms;
      for (auto& b : parsed->blobs) {
        if (seen_blobs.insert(b.digest.hex()).second) blobs.push_back(std::move(b));
      }
      continue;
    }
    if (m.depth >= kMaxIndexDepth) {
      return fail(FailureReason::kInvalid, m.what + ": indexes nested too deep");
    }
    auto children = SelectChildren(*parsed, options_.platforms);
    if (children.empty()) {
      return fail(FailureReason::kNoPlatform,
                  m.what + ": no entry of the index matches the requested platforms (it has " +
                      PlatformList(*parsed) + ")");
    }
    for (const auto& child : children) {
      const std::string child_what = ref.repo.str() + "@" + child.digest.str();
      auto reply = FetchManifest(session, ref.repo, child.digest.str(), &child.digest);
      if (!reply) {
        return fail(ReasonFor(reply.error(), FailureReason::kUnknownManifest),
                    reply.error().message);
      }
      todo.push_back({reply->content_type, std::move(reply->body), child_what, m.depth + 1});
    }
  }

  {
    std::lock_guard lock(mutex_);
    auto& job = images_[image];
    job.progress.platforms = platforms;
    job.progress.blobs_total = static_cast<int>(blobs.size());
    job.progress.state = ImageState::kFetching;
    for (auto& d : blobs) {
      job.progress.bytes_total += d.size;
      auto [it, inserted] = blob_by_digest_.emplace(d.digest.hex(), blobs_.size());
      if (inserted) {
        bytes_total_ += d.size;
        BlobJob job_for_blob{
            d, ref.repo, {image}, BlobState::kQueued, false, 0, FailureReason::kNone, {}};
        blobs_.push_back(std::move(job_for_blob));
        blob_queue_.push_back(it->second);
        ++outstanding_;
        ++job.pending_blobs;
        continue;
      }
      BlobJob& shared = blobs_[it->second];
      if (shared.state == BlobState::kDone || shared.state == BlobState::kFailed) {
        SettleBlobLocked(shared, image, /*owner=*/false);
      } else {
        shared.images.push_back(image);
        ++job.pending_blobs;
      }
    }
    events.push_back(job.progress);  // resolved
    if (job.pending_blobs == 0) FinishImageLocked(image, events);
  }
  work_cv_.notify_all();
  Notify(events);
}

void PrewarmRun::FetchBlob(MirrorSession& session, size_t index) {
  std::optional<Descriptor> descriptor;
  std::optional<RepoName> repo;
  {
    std::lock_guard lock(mutex_);
    BlobJob& blob = blobs_[index];
    blob.state = BlobState::kRunning;
    descriptor = blob.descriptor;
    repo = blob.repo;
  }
  const std::string what = repo->str() + "@" + descriptor->digest.str();
  std::optional<Error> failure;
  bool miss = false;
  for (int attempt = 1;; ++attempt) {
    Sha256 hasher;
    uint64_t received = 0;
    auto on_head = [&](const MirrorReply& head) {
      // A registry that is no hubcache says nothing: count its bytes as fetched.
      miss = head.cache != "hit";
      std::lock_guard lock(mutex_);
      blobs_[index].miss = miss;
      blobs_[index].received = 0;
    };
    auto on_data = [&](const char* data, size_t size) {
      hasher.Update(data, size);
      received += size;
      std::lock_guard lock(mutex_);
      blobs_[index].received = received;
    };
    auto reply = session.GetBlob(*repo, descriptor->digest, on_head, on_data);
    failure.reset();
    if (!reply) {
      failure = reply.error();
    } else if (reply->status != 200) {
      failure = ReplyError(*reply, what, ErrorKind::kBlobUnknown);
    } else if (hasher.FinishHex() != descriptor->digest.hex()) {
      failure = Error{ErrorKind::kUpstreamInvalid, what + ": blob bytes do not match the digest"};
    } else if (descriptor->size != 0 && received != descriptor->size) {
      failure = Error{ErrorKind::kUpstreamInvalid, what + ": blob is " + std::to_string(received) +
                                                       " bytes, the manifest says " +
                                                       std::to_string(descriptor->size)};
    }
    if (!failure) break;
    if (Retryable(*failure) && attempt < options_.attempts && !cancel_.load() &&
        WaitBeforeRetry()) {
      continue;
    }
    break;
  }

  Events events;
  {
    std::lock_guard lock(mutex_);
    BlobJob& blob = blobs_[index];
    blob.received = 0;
    if (failure) {
      blob.state = BlobState::kFailed;
      blob.reason = ReasonFor(*failure, FailureReason::kUnknownBlob);
      blob.error = failure->message;
    } else {
      blob.state = BlobState::kDone;
      blob.miss = miss;
      (miss ? bytes_fetched_ : bytes_cached_) += blob.descriptor.size;
    }
    for (size_t i = 0; i < blob.images.size(); ++i) {
      size_t image = blob.images[i];
      SettleBlobLocked(blob, image, i == 0);
      if (--images_[image].pending_blobs == 0) FinishImageLocked(image, events);
    }
  }
  Notify(events);
}

void PrewarmRun::SettleBlobLocked(BlobJob& blob, size_t image, bool owner) {
  auto& progress = images_[image].progress;
  ++progress.blobs_done;
  if (blob.state == BlobState::kFailed) {
    FailImageLocked(image, blob.reason, blob.error);
    return;
  }
  (owner && blob.miss ? progress.bytes_fetched : progress.bytes_cached) += blob.descriptor.size;
}

void PrewarmRun::FailImageLocked(size_t image, FailureReason reason, const std::string& error) {
  auto& progress = images_[image].progress;
  if (progress.reason != FailureReason::kNone) return;  // the first failure is the reason
  progress.reason = reason;
  progress.error = error;
}

void PrewarmRun::FinishImageLocked(size_t image, Events& events) {
  auto& progress = images_[image].progress;
  progress.state =
      progress.reason == FailureReason::kNone ? ImageState::kDone : ImageState::kFailed;
  events.push_back(progress);
}

void PrewarmRun::Notify(const Events& events) {
  if (!observer_) return;
  for (const auto& e : events) observer_(e);
}

RunSnapshot PrewarmRun::Snapshot() const {
  std::lock_guard lock(mutex_);
  RunSnapshot snap;
  snap.started_ms = started_ms_;
  snap.finished_ms = finished_ms_;
  snap.canceled = cancel_.load();
  snap.bytes_total = bytes_total_;
  snap.bytes_fetched = bytes_fetched_;
  snap.bytes_cached = bytes_cached_;
  snap.images.reserve(images_.size());
  for (const auto& job : images_) snap.images.push_back(job.progress);
  // Transfers in flight count toward their owner, so progress moves smoothly.
  for (const auto& blob : blobs_) {
    if (blob.state != BlobState::kRunning || blob.received == 0) continue;
    auto& owner = snap.images[blob.images.front()];
    (blob.miss ? owner.bytes_fetched : owner.bytes_cached) += blob.received;
    (blob.miss ? snap.bytes_fetched : snap.bytes_cached) += blob.received;
  }
  return snap;
}

}  // namespace hubcache
