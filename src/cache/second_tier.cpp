#include "cache/second_tier.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "cache/blob_fill.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"

namespace hubcache {

SecondTier::SecondTier(S3Client& s3, SecondTierOptions options) : s3_(s3), options_(options) {
  for (size_t i = 0; i < std::max<size_t>(options_.copy_workers, 1); ++i) {
    workers_.emplace_back([this] { CopyLoop(); });
  }
  writer_ = std::thread([this] { WriteLoop(); });
}

SecondTier::~SecondTier() {
  {
    // Queued manifests and tag records are small: they may finish first.
    std::unique_lock lock(mutex_);
    writes_changed_.wait_for(lock, kDrainLimit, [this] { return writes_.empty() && !writing_; });
    stop_writes_ = true;
    stats_.writes_dropped.fetch_add(writes_.size(), std::memory_order_relaxed);
    writes_.clear();
  }
  writes_changed_.notify_all();
  writer_.join();
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    stats_.copies_dropped.fetch_add(queue_.size(), std::memory_order_relaxed);
    queue_.clear();
  }
  stop_copies_ = true;
  wake_.notify_all();
  for (auto& worker : workers_) worker.join();
}

std::string SecondTier::BlobKey(const Digest& digest) {
  return "cache/blobs/sha256/" + digest.sharded();
}

std::string SecondTier::ManifestKey(const Digest& digest) {
  return "cache/manifests/sha256/" + digest.sharded();
}

std::string SecondTier::TagPrefix(const RepoName& repo, const std::string& tag) {
  // Repository components never start with '_', so "_tags" cannot be part of
  // a name.
  return "cache/tags/" + repo.str() + "/_tags/" + tag + "/";
}

std::string SecondTier::TagKey(const RepoName& repo, const std::string& tag,
                               const std::string& accept_key) {
  // The accept key is a comma list of short words.
  return TagPrefix(repo, tag) + (accept_key.empty() ? std::string("any") : accept_key);
}

SecondTier::Health SecondTier::health() const {
  Health h;
  std::lock_guard lock(mutex_);
  h.last_error = last_error_;
  h.failed_at_ms = failed_at_ms_;
  // Down while marked, and until a request succeeds after the last failure.
  h.available = Available() && failed_at_ms_ <= ok_at_ms_.load(std::memory_order_relaxed);
  return h;
}

void SecondTier::Probe() {
  if (!Available()) return;
  {
    std::lock_guard lock(mutex_);
    if (failed_at_ms_ <= ok_at_ms_.load(std::memory_order_relaxed)) return;
  }
  if (auto s = Timed([&] { return s3_.Check(); }); !s) (void)Failed(s.error());
}

bool SecondTier::Available() const {
  return UnixNowMs() >= down_until_ms_.load(std::memory_order_relaxed);
}

Status SecondTier::Gate() {
  if (Available()) return {};
  stats_.skipped_unavailable.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  return Fail(ErrorKind::kUpstreamUnavailable, "the S3 bucket is unavailable: " + last_error_);
}

Error SecondTier::Failed(const Error& error) {
  const int64_t now = UnixNowMs();
  const bool was_available = Available();
  down_until_ms_.store(now + options_.retry_after.count(), std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    last_error_ = error.message;
    failed_at_ms_ = now;
  }
  if (was_available) {
    Logger("cache")->warn(
        "S3 bucket unavailable, serving from L1 and the upstream for {} ms "
        "error=\"{}\"",
        options_.retry_after.count(), error.message);
  }
  return Error{ErrorKind::kUpstreamUnavailable, "S3: " + error.message};
}

Result<std::optional<uint64_t>> SecondTier::BlobSize(const Digest& digest) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  auto size = Timed([&] { return s3_.Head(BlobKey(digest)); });
  if (!size) return tl::unexpected(Failed(size.error()));
  return size;
}

Result<bool> SecondTier::StreamObject(const std::string& key, S3Sink& sink) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  // A sink that stops (the local disk failed) is not the bucket's failure.
  bool sink_stopped = false;
  S3Sink wrapped;
  wrapped.on_size = [&](uint64_t size) { return (sink_stopped = !sink.on_size(size)) == false; };
  wrapped.on_data = [&](const char* data, size_t size) {
    return (sink_stopped = !sink.on_data(data, size)) == false;
  };
  auto found = Timed([&] { return s3_.Get(key, 0, std::nullopt, wrapped); });
  if (!found) {
    if (sink_stopped) return tl::unexpected(found.error());
    return tl::unexpected(Failed(found.error()));
  }
  (*found ? stats_.blob_hits : stats_.blob_misses).fetch_add(1, std::memory_order_relaxed);
  return found;
}

void SecondTier::ReportCorrupt(const std::string& key) {
  stats_.corrupt_objects.fetch_add(1, std::memory_order_relaxed);
  Logger("cache")->warn("S3 object does not match its digest, removing it key={}", key);
  if (auto s = Timed([&] { return s3_.Delete(key); }); !s) (void)Failed(s.error());
}

void SecondTier::CopyFill(std::shared_ptr<BlobFill> fill) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= options_.max_queued_copies || !Available()) {
      stats_.copies_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    queue_.push_back(std::move(fill));
  }
  wake_.notify_one();
}

void SecondTier::CopyLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto fill = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    Copy(fill);
    lock.lock();
  }
}

void SecondTier::Copy(const std::shared_ptr<BlobFill>& fill) {
  const std::string key = BlobKey(fill->digest());
  auto log = Logger("cache");
  // With the size announced the copy follows the fill as it grows; without,
  // it waits for the verified end.
  auto total = fill->WaitForHeaders(options_.fill_stall);
  if (!total) return;  // the fill failed: nothing to copy (it counted and logged)
  auto size = *total ? Result<uint64_t>(**total) : fill->WaitVerifiedSize(options_.fill_stall);
  if (!size) return;
  if (!Available()) {
    stats_.copies_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // Another node (or an earlier fill) may have put it there already.
  if (auto there = Timed([&] { return s3_.Head(key); }); there && *there == *size) return;
  S3Client::Reader read = [&](uint64_t offset, char* out, size_t max) -> Result<size_t> {
    if (stop_copies_) return Fail(ErrorKind::kUpstreamUnavailable, "shutting down");
    return fill->ReadAt(offset, out, max, options_.fill_stall);
  };
  if (auto s = s3_.PutStream(key, *size, read, "application/octet-stream"); !s) {
    stats_.copy_failures.fetch_add(1, std::memory_order_relaxed);
    if (!stop_copies_) {
      log->warn("blob not copied to S3 blob={} error=\"{}\"", fill->digest().str(),
                s.error().message);
      (void)Failed(s.error());
    }
    return;
  }
  stats_.copies.fetch_add(1, std::memory_order_relaxed);
  stats_.copy_bytes.fetch_add(*size, std::memory_order_relaxed);
  log->debug("copied blob to S3 blob={} bytes={}", fill->digest().str(), *size);
}

Result<std::optional<SecondTier::StoredManifest>> SecondTier::GetManifest(const Digest& digest) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  const std::string key = ManifestKey(digest);
  std::string content_type;
  auto bytes = Timed([&] { return s3_.GetSmall(key, options_.max_manifest_bytes, &content_type); });
  if (!bytes) return tl::unexpected(Failed(bytes.error()));
  if (!*bytes) return std::optional<StoredManifest>();
  if (Sha256::HexOf(**bytes) != digest.hex() || content_type.empty()) {
    ReportCorrupt(key);
    return std::optional<StoredManifest>();
  }
  stats_.manifest_hits.fetch_add(1, std::memory_order_relaxed);
  return std::optional<StoredManifest>(StoredManifest{std::move(**bytes), content_type});
}

void SecondTier::QueueManifest(const Digest& digest, const std::string& bytes,
                               const std::string& media_type) {
  Queue(Write{ManifestKey(digest), bytes, media_type});
}

void SecondTier::Queue(Write write) {
  {
    std::lock_guard lock(mutex_);
    if (stop_writes_ || writes_.size() >= kMaxQueuedWrites || !Available()) {
      stats_.writes_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    writes_.push_back(std::move(write));
  }
  writes_changed_.notify_all();
}

size_t SecondTier::pending_writes() const {
  std::lock_guard lock(mutex_);
  return writes_.size() + (writing_ ? 1 : 0);
}

void SecondTier::WriteLoop() {
  std::unique_lock lock(mutex_);
  while (true) {
    writes_changed_.wait(lock, [this] { return stop_writes_ || !writes_.empty(); });
    if (stop_writes_) return;
    Write write = std::move(writes_.front());
    writes_.pop_front();
    writing_ = true;
    lock.unlock();
    if (auto gate = Gate(); !gate) {
      stats_.writes_dropped.fetch_add(1, std::memory_order_relaxed);
    } else if (auto s =
                   Timed([&] { return s3_.PutSmall(write.key, write.body, write.content_type); });
               !s) {
      (void)Failed(s.error());
      stats_.writes_dropped.fetch_add(1, std::memory_order_relaxed);
    } else {
      stats_.writes.fetch_add(1, std::memory_order_relaxed);
    }
    lock.lock();
    writing_ = false;
    writes_changed_.notify_all();
  }
}

Result<std::optional<TagRow>> SecondTier::GetTag(const RepoName& repo, const std::string& tag,
                                                 const std::string& accept_key) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  auto body = Timed([&] { return s3_.GetSmall(TagKey(repo, tag, accept_key), 64 * 1024); });
  if (!body) return tl::unexpected(Failed(body.error()));
  if (!*body) return std::optional<TagRow>();
  auto json = nlohmann::json::parse(**body, nullptr, false);
  TagRow row;
  if (!json.is_object() || !json.value("digest", nlohmann::json()).is_string() ||
      !json.value("media_type", nlohmann::json()).is_string() ||
      !json.value("checked_at_ms", nlohmann::json()).is_number_integer() ||
      !Digest::Parse(json["digest"].get<std::string>())) {
    Logger("cache")->warn("S3 tag record unreadable, ignoring it tag={}:{}", repo.str(), tag);
    return std::optional<TagRow>();
  }
  row.digest = json["digest"].get<std::string>();
  row.media_type = json["media_type"].get<std::string>();
  row.checked_at_ms = json["checked_at_ms"].get<int64_t>();
  stats_.tag_hits.fetch_add(1, std::memory_order_relaxed);
  return std::optional<TagRow>(std::move(row));
}

void SecondTier::QueueTag(const RepoName& repo, const std::string& tag,
                          const std::string& accept_key, const TagRow& row) {
  nlohmann::json json = {
      {"digest", row.digest}, {"media_type", row.media_type}, {"checked_at_ms", row.checked_at_ms}};
  Queue(Write{TagKey(repo, tag, accept_key), json.dump(), "application/json"});
}

Result<uint64_t> SecondTier::AbortStaleCopies(std::chrono::milliseconds age) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  auto pending = Timed([&] { return s3_.ListUploads("cache/"); });
  if (!pending) return tl::unexpected(Failed(pending.error()));
  const int64_t cutoff = UnixNowMs() - age.count();
  uint64_t aborted = 0;
  for (const auto& upload : *pending) {
    if (upload.initiated_unix_ms > cutoff) continue;  // a copy may still be running
    if (auto s = Timed([&] { return s3_.AbortUpload(upload.key, upload.upload_id); }); !s) {
      return tl::unexpected(Failed(s.error()));
    }
    ++aborted;
  }
  stats_.stale_aborted.fetch_add(aborted, std::memory_order_relaxed);
  if (aborted > 0) Logger("cache")->info("aborted {} abandoned S3 multipart copies", aborted);
  return aborted;
}

Result<SecondTier::TrimReport> SecondTier::Trim(uint64_t max_bytes, double low_watermark) {
  if (auto gate = Gate(); !gate) return tl::unexpected(gate.error());
  std::vector<S3Client::ListedObject> objects;
  TrimReport report;
  for (const char* prefix : {"cache/blobs/", "cache/manifests/"}) {
    std::string continuation;
    do {
      auto page = Timed([&] { return s3_.List(prefix, 1000, &continuation); });
      if (!page) return tl::unexpected(Failed(page.error()));
      for (auto& object : *page) {
        report.bytes += object.size;
        objects.push_back(std::move(object));
      }
    } while (!continuation.empty() && objects.size() < kMaxTrimListing);
  }
  report.objects = objects.size();
  stats_.cache_bytes.store(report.bytes, std::memory_order_relaxed);
  stats_.cache_objects.store(report.objects, std::memory_order_relaxed);
  stats_.measured_at_ms.store(UnixNowMs(), std::memory_order_relaxed);
  if (max_bytes == 0 || report.bytes <= max_bytes) return report;

  const auto target = static_cast<uint64_t>(static_cast<double>(max_bytes) * low_watermark);
  std::sort(objects.begin(), objects.end(),
            [](const auto& a, const auto& b) { return a.modified_unix_ms < b.modified_unix_ms; });
  uint64_t held = report.bytes;
  for (const auto& object : objects) {
    if (held <= target) break;
    if (auto s = Timed([&] { return s3_.Delete(object.key); }); !s) {
      (void)Failed(s.error());
      break;
    }
    held -= object.size;
    ++report.removed;
    report.removed_bytes += object.size;
  }
  stats_.cache_bytes.store(held, std::memory_order_relaxed);
  stats_.cache_objects.store(report.objects - report.removed, std::memory_order_relaxed);
  stats_.trimmed_objects.fetch_add(report.removed, std::memory_order_relaxed);
  stats_.trimmed_bytes.fetch_add(report.removed_bytes, std::memory_order_relaxed);
  Logger("cache")->info("S3 cache trimmed objects={} bytes={} held={} cap={}", report.removed,
                        report.removed_bytes, held, max_bytes);
  return report;
}

Status SecondTier::DeleteBlob(const Digest& digest) {
  if (auto s = Timed([&] { return s3_.Delete(BlobKey(digest)); }); !s)
    return tl::unexpected(Failed(s.error()));
  return {};
}

Status SecondTier::DeleteTag(const RepoName& repo, const std::string& tag) {
  if (auto gate = Gate(); !gate) return gate;
  const std::string dir = TagPrefix(repo, tag);
  std::string continuation;
  for (int page = 0; page < 100; ++page) {
    auto listed = Timed([&] { return s3_.List(dir, 1000, &continuation); });
    if (!listed) return tl::unexpected(Failed(listed.error()));
    for (const auto& object : *listed) {
      if (auto s = Timed([&] { return s3_.Delete(object.key); }); !s) {
        return tl::unexpected(Failed(s.error()));
      }
    }
    if (continuation.empty()) return {};
  }
  return {};
}

Status SecondTier::DeleteManifest(const Digest& digest) {
  if (auto s = Timed([&] { return s3_.Delete(ManifestKey(digest)); }); !s)
    return tl::unexpected(Failed(s.error()));
  return {};
}

}  // namespace hubcache
