#include "cache/mirror.h"

namespace hubcache {

Result<std::unique_ptr<Mirror>> Mirror::Open(const Config& config) {
  std::unique_ptr<Mirror> mirror(new Mirror(config));
  auto store = BlobStore::Open(config.root_dir);
  if (!store) return tl::unexpected(store.error());
  mirror->store_ = std::move(*store);

  auto index = IndexDb::Open(mirror->store_->root() / "index.db");
  if (!index) return tl::unexpected(index.error());
  mirror->index_ = std::move(*index);

  UpstreamOptions upstream_options;
  upstream_options.base_url = config.upstream_url;
  upstream_options.username = config.upstream_username;
  upstream_options.password = config.upstream_password;
  upstream_options.connect_timeout = config.upstream_connect_timeout;
  upstream_options.stall_timeout = config.upstream_stall_timeout;
  upstream_options.request_timeout =
      config.upstream_connect_timeout + 2 * config.upstream_stall_timeout;
  auto upstream = UpstreamClient::Create(upstream_options);
  if (!upstream) return tl::unexpected(upstream.error());
  mirror->upstream_ = std::move(*upstream);

  mirror->fills_ =
      std::make_unique<FillManager>(*mirror->upstream_, *mirror->store_, *mirror->index_,
                                    mirror->stats_, FillOptions{config.fill_timeout});
  ManifestOptions manifest_options;
  manifest_options.tag_freshness = config.tag_freshness;
  mirror->manifests_ = std::make_unique<ManifestService>(
      *mirror->upstream_, *mirror->store_, *mirror->index_, mirror->stats_, manifest_options);
  mirror->tag_lists_ =
      std::make_unique<TagListService>(*mirror->upstream_, *mirror->index_, mirror->stats_);
  return mirror;
}

}  // namespace hubcache
