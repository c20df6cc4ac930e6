#include "cache/mirror.h"

#include "cache/reconcile.h"
#include "common/log.h"

namespace hubcache {

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

  UpstreamOptions upstream_options;
  upstream_options.base_url = config.upstream_url;
  upstream_options.username = config.upstream_username;
  upstream_options.password = config.upstream_password;
  upstream_options.ca_file = config.upstream_ca;
  upstream_options.insecure = config.upstream_insecure;
  upstream_options.connect_timeout = config.upstream_connect_timeout;
  upstream_options.stall_timeout = config.upstream_stall_timeout;
  upstream_options.request_timeout =
      config.upstream_connect_timeout + 2 * config.upstream_stall_timeout;
  auto upstream = UpstreamClient::Create(upstream_options);
  if (!upstream) return tl::unexpected(upstream.error());
  mirror->upstream_ = std::move(*upstream);

  auto& m = *mirror;
  m.access_ = std::make_unique<AccessTracker>(*m.index_, config.access_flush_interval);
  m.fills_ = std::make_unique<FillManager>(*m.upstream_, *m.store_, *m.index_, m.stats_, m.usage_,
                                           FillOptions{config.fill_timeout});
  m.blobs_ = std::make_unique<BlobService>(
      *m.store_, *m.fills_, *m.upstream_, m.pins_, *m.access_, m.usage_, m.stats_,
      BlobServiceOptions{config.upstream_connect_timeout + config.upstream_stall_timeout,
                         config.fill_timeout});
  ManifestOptions manifest_options;
  manifest_options.tag_freshness = config.tag_freshness;
  m.manifests_ = std::make_unique<ManifestService>(*m.upstream_, *m.store_, *m.index_, m.stats_,
                                                   m.usage_, *m.access_, manifest_options);
  m.tag_lists_ = std::make_unique<TagListService>(*m.upstream_, *m.index_, m.stats_);
  m.evictor_ = std::make_unique<Evictor>(
      *m.index_, *m.store_, m.pins_, *m.access_, m.usage_, *m.manifests_, m.stats_,
      EvictionOptions{config.cache_max_size_bytes, config.cache_low_watermark,
                      config.min_free_fraction});
  m.usage_.SetListener([evictor = m.evictor_.get()] { evictor->Wake(); });
  m.access_->Start();
  m.evictor_->Start();
  return mirror;
}

Mirror::~Mirror() { Shutdown(); }

Result<RemovalReport> Mirror::RemoveImage(const RepoName& repo, const Reference& reference) {
  return ImageRemover(*index_, *store_, manifests_.get(), &usage_).RemoveImage(repo, reference);
}

Result<RemovalReport> Mirror::RemoveBlob(const Digest& digest) {
  return ImageRemover(*index_, *store_, manifests_.get(), &usage_).RemoveBlob(digest);
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

void Mirror::Shutdown() {
  if (evictor_) evictor_->Stop();
  if (access_) access_->Stop();
}

}  // namespace hubcache
