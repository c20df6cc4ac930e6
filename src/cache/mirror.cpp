#include "cache/mirror.h"

#include "cache/reconcile.h"
#include "common/log.h"

#include <algorithm>
#include <iterator>

namespace hubcache {

namespace {

// How long a presigned URL of a redirected blob GET stays valid (the CNCF
// registry's S3 driver uses 20 minutes too).
constexpr std::chrono::seconds kRedirectValidity{20 * 60};

}  // namespace

std::vector<MirroredRegistry> Mirror::MirroredRegistries(const Config& config) {
  std::vector<MirroredRegistry> out;
  for (const auto& u : config.upstreams) {
    out.push_back(MirroredRegistry{u.name, u.authority, u.allow, u.deny});
  }
  return out;
}

Result<std::unique_ptr<Mirror>> Mirror::Open(const Config& config) {
  std::unique_ptr<Mirror> mirror(new Mirror(config));
  auto store = BlobStore::Open(config.root_dir);
  if (!store) return tl::unexpected(store.error());
  mirror->store_ = std::move(*store);

  auto lock = CacheLock::TryAcquire(mirror->store_->root());
  if (!lock) return tl::unexpected(lock.error());
  mirror->lock_ = std::move(*lock);

  auto index = IndexDb::Open(mirror->store_->root() / "index.db");
  if (!index) return tl::unexpected(index.error());
  mirror->index_ = std::move(*index);

  // With the lock held no fill runs, so leftovers in tmp/ are from a crash.
  auto report = Reconcile(*mirror->store_, *mirror->index_, ReconcileOptions{});
  if (!report) return tl::unexpected(report.error());
  Logger("cache")->info("cache opened: {}", report->Summary());
  mirror->usage_.Reset(report->bytes);

  auto upstreams = UpstreamSet::Create(config, mirror->sources_);
  if (!upstreams) return tl::unexpected(upstreams.error());
  mirror->upstreams_ = std::move(*upstreams);

  auto& m = *mirror;
  if (config.storage == "s3") {
    // The bucket must answer with these credentials before anything is
    // served: a wrong key is one line at start, not errors on every pull.
    auto s3 = S3Client::Create(S3OptionsFrom(config));
    if (!s3) return tl::unexpected(s3.error());
    if (auto s = (*s3)->Check(); !s) return tl::unexpected(s.error());
    m.s3_ = std::move(*s3);
    SecondTierOptions tier_options;
    tier_options.fill_stall = config.upstream_stall_timeout * 2;
    m.l2_ = std::make_unique<SecondTier>(*m.s3_, tier_options);
    m.hosted_bucket_ = std::make_unique<HostedBucket>(*m.s3_);
    Logger("cache")->info(
        "S3 bucket {} at {} behind the local cache", m.s3_->options().bucket,
        m.s3_->options().endpoint.empty() ? std::string("AWS") : m.s3_->options().endpoint);
  }
  m.access_ = std::make_unique<AccessTracker>(*m.index_, config.access_flush_interval);
  m.fills_ = std::make_unique<FillManager>(*m.upstreams_, *m.store_, *m.index_, m.stats_, m.usage_,
                                           FillOptions{config.fill_timeout}, m.l2_.get());
  auto hosted_store = BlobStore::Open(m.store_->root() / "hosted");
  if (!hosted_store) return tl::unexpected(hosted_store.error());
  m.hosted_store_ = std::move(*hosted_store);
  m.uploads_ = std::make_unique<UploadService>(*m.hosted_store_, *m.store_, *m.index_, m.stats_,
                                               m.hosted_bucket_.get());
  if (auto s = m.uploads_->Recover(); !s) return tl::unexpected(s.error());
  m.hosted_ = std::make_unique<HostedRegistry>(*m.hosted_store_, *m.index_, m.stats_,
                                               ManifestOptions{}.max_manifest_bytes,
                                               m.hosted_bucket_.get());
  m.blobs_ = std::make_unique<BlobService>(
      m.sources_, *m.hosted_, *m.store_, *m.fills_, *m.upstreams_, m.pins_, *m.access_, m.usage_,
      m.stats_,
      BlobServiceOptions{
          config.upstream_connect_timeout + config.upstream_stall_timeout, config.fill_timeout,
          // REGISTRY_STORAGE_REDIRECT_DISABLE=false: L2 hits are redirects.
          m.l2_ && !config.storage_redirect_disable ? kRedirectValidity : std::chrono::seconds(0)},
      m.l2_.get());
  // With redirects, blobs the bucket holds go to clients straight from it:
  // a prefetch would read them into L1 for nothing.
  const bool redirecting = m.l2_ && !config.storage_redirect_disable;
  m.prefetcher_ = std::make_unique<Prefetcher>(
      *m.fills_, PrefetchOptions{config.PrefetchEnabled() && !redirecting,
                                 static_cast<size_t>(config.prefetch_max_fills),
                                 config.prefetch_max_bytes, config.cache_max_size_bytes / 2});
  ManifestOptions manifest_options;
  m.manifests_ =
      std::make_unique<ManifestService>(*m.upstreams_, *m.store_, *m.index_, m.stats_, m.usage_,
                                        *m.access_, manifest_options, m.l2_.get());
  m.tag_lists_ = std::make_unique<TagListService>(*m.upstreams_, *m.index_, m.stats_);
  m.evictor_ = std::make_unique<Evictor>(
      *m.index_, *m.store_, m.pins_, *m.access_, m.usage_, *m.manifests_, m.stats_,
      EvictionOptions{config.cache_max_size_bytes, config.cache_low_watermark,
                      config.min_free_fraction, config.proxy_ttl});
  m.usage_.SetListener([evictor = m.evictor_.get()] { evictor->Wake(); });

  if (m.sources_.any_hosted()) {
    std::string list;
    for (const auto& p : m.sources_.patterns()) list += (list.empty() ? "" : ",") + p;
    Logger("cache")->info("hosted repositories: {}", list);
  }
  if (config.upload_purge_enabled || m.l2_) {
    m.purge_thread_ = std::thread([&m] { m.PurgeLoop(); });
  }
  m.access_->Start();
  m.evictor_->Start();
  return mirror;
}

Mirror::~Mirror() { Shutdown(); }

Result<RemovalReport> Mirror::RemoveImage(const RepoName& repo, const Reference& reference) {
  return ImageRemover(*index_, *store_, manifests_.get(), &usage_, l2_.get())
      .RemoveImage(repo, reference);
}

Result<RemovalReport> Mirror::RemoveBlob(const Digest& digest) {
  return ImageRemover(*index_, *store_, manifests_.get(), &usage_, l2_.get()).RemoveBlob(digest);
}

Mirror::StorageHealth Mirror::CheckStorage() {
  StorageHealth health;
  if (auto temp = store_->CreateTemp(); !temp) {
    health.writable_detail = temp.error().message;
  } else if (auto s = temp->Append("r", 1); !s) {
    health.writable_detail = s.error().message;
  } else {
    health.writable = true;  // the temp file is removed as it goes out of scope
  }
  if (auto probe = index_->ManifestMediaType("sha256:" + std::string(64, '0')); !probe) {
    health.index_detail = probe.error().message;
  } else {
    health.index_ok = true;
  }
  return health;
}

Result<std::vector<std::string>> Mirror::Catalog() {
  auto cached = tag_lists_->Catalog();
  if (!cached) return tl::unexpected(cached.error());
  // With the bucket, its catalog is the truth for hosted repositories (pushed
  // through any node).
  auto hosted = hosted_bucket_ ? hosted_bucket_->Repositories() : index_->HostedRepositories();
  if (!hosted) return tl::unexpected(hosted.error());
  std::vector<std::string> all;
  std::merge(cached->begin(), cached->end(), hosted->begin(), hosted->end(),
             std::back_inserter(all));
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

void Mirror::PurgeLoop() {
  using Clock = std::chrono::steady_clock;
  auto uploads_due = Clock::now();
  auto trim_due = Clock::now();
  const bool trimming = l2_ && config_.l2_max_size_bytes > 0;
  std::unique_lock lock(purge_mutex_);
  while (!stopping_) {
    lock.unlock();
    const auto now = Clock::now();
    if (now >= uploads_due) {
      if (config_.upload_purge_enabled) {
        uploads_->PurgeStale(config_.upload_purge_age, config_.upload_purge_dry_run);
      }
      // Copies into the bucket follow fills, which end within fill_timeout:
      // older multipart uploads were left by a crash.
      if (l2_) (void)l2_->AbortStaleCopies(config_.fill_timeout * 2);
      uploads_due = now + config_.upload_purge_interval;
    }
    if (trimming && now >= trim_due) {
      if (auto trimmed = l2_->Trim(config_.l2_max_size_bytes, config_.cache_low_watermark);
          !trimmed) {
        Logger("cache")->warn("S3 cache not trimmed error=\"{}\"", trimmed.error().message);
      }
      trim_due = now + config_.l2_trim_interval;
    }
    const auto next = trimming ? std::min(uploads_due, trim_due) : uploads_due;
    lock.lock();
    purge_wake_.wait_until(lock, next, [this] { return stopping_; });
  }
}

void Mirror::Shutdown() {
  {
    std::lock_guard lock(purge_mutex_);
    stopping_ = true;
  }
  purge_wake_.notify_all();
  if (purge_thread_.joinable()) purge_thread_.join();
  if (evictor_) evictor_->Stop();
  if (access_) access_->Stop();
}

}  // namespace hubcache
