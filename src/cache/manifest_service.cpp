#include "cache/manifest_service.h"

#include "cache/upstream_errors.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

// The upstream's manifest `digest` (its bytes moved out of `response`), its
// media type checked by its content (and its Content-Type): anything else (an
// HTML error page, a JSON error) is an upstream failure, counted, never served
// or kept.
Result<Manifest> CheckedManifest(const Digest& digest, UpstreamResponse& response,
                                 const std::string& what, CacheStats& stats) {
  auto type = CheckManifest(response.body, response.Header("content-type"));
  if (!type) {
    ++stats.upstream_errors;
    Logger("cache")->warn("upstream manifest refused manifest={} reason=\"{}\"", what,
                          type.error().message);
    return Fail(ErrorKind::kUpstreamInvalid,
                what + ": the upstream's answer is not a manifest (" + type.error().message + ")");
  }
  return Manifest{digest, std::move(*type),
                  std::make_shared<const std::string>(std::move(response.body))};
}

std::string TagKey(const RepoName& repo, const Tag& tag, const AcceptSet& accept) {
  std::string key = repo.str();
  key += ':';
  key += tag.str();
  key += '|';
  key += accept.Key();
  return key;
}

}  // namespace

Result<ManifestResult> ManifestService::Get(const RepoName& repo, const Reference& reference,
                                            const AcceptSet& accept) {
  if (const auto* digest = std::get_if<Digest>(&reference)) return GetByDigest(repo, *digest);
  return GetByTag(repo, std::get<Tag>(reference), accept);
}

void ManifestService::Forget(const Digest& digest) {
  std::lock_guard lock(memory_mutex_);
  auto it = by_digest_.find(digest.hex());
  if (it == by_digest_.end()) return;
  memory_bytes_ -= it->second->bytes->size();
  lru_.erase(it->second);
  by_digest_.erase(it);
}

void ManifestService::ForgetTag(const RepoName& repo, const Tag& tag) {
  const std::string prefix = repo.str() + ":" + tag.str() + "|";
  std::lock_guard lock(tags_mutex_);
  for (auto it = tags_.begin(); it != tags_.end();) {
    it = it->first.compare(0, prefix.size(), prefix) == 0 ? tags_.erase(it) : std::next(it);
  }
}

void ManifestService::RememberTag(std::string key, const TagRow& row) {
  std::lock_guard lock(tags_mutex_);
  auto it = tags_.find(key);
  if (it != tags_.end()) {
    it->second = row;
    return;
  }
  // Full: drop any one entry; a dropped tag costs one index read when asked again.
  if (tags_.size() >= options_.max_tags_in_memory && !tags_.empty()) tags_.erase(tags_.begin());
  tags_.emplace(std::move(key), row);
}

std::optional<TagRow> ManifestService::LookupTag(const RepoName& repo, const Tag& tag,
                                                 const AcceptSet& accept, bool ask_l2) {
  std::string key = TagKey(repo, tag, accept);
  {
    std::lock_guard lock(tags_mutex_);
    if (auto it = tags_.find(key); it != tags_.end()) return it->second;
  }
  auto row = index_.GetTag(repo.str(), tag.str(), accept.Key());
  if (row && *row) {
    RememberTag(std::move(key), **row);
    return **row;
  }
  if (!l2_ || !ask_l2) return std::nullopt;
  // Another node (or this one before its L1 was lost) may have it.
  auto shared = l2_->GetTag(repo, tag.str(), accept.Key());
  if (!shared || !*shared) return std::nullopt;
  RememberTag(std::move(key), **shared);
  if (auto s = index_.PutTag(repo.str(), tag.str(), accept.Key(), **shared); !s) {
    Logger("cache")->warn("tag not written to the index tag={}:{} error=\"{}\"", repo.str(),
                          tag.str(), s.error().message);
  }
  return **shared;
}

void ManifestService::StoreTag(const RepoName& repo, const Tag& tag, const AcceptSet& accept,
                               const TagRow& row) {
  RememberTag(TagKey(repo, tag, accept), row);
  if (auto s = index_.PutTag(repo.str(), tag.str(), accept.Key(), row); !s) {
    Logger("cache")->warn("tag not written to the index tag={}:{} error=\"{}\"", repo.str(),
                          tag.str(), s.error().message);
  }
  if (l2_) l2_->QueueTag(repo, tag.str(), accept.Key(), row);  // after the manifest
}

std::optional<Manifest> ManifestService::LoadCached(const RepoName& repo, const Digest& digest,
                                                    bool* from_bucket) {
  if (auto local = LoadLocal(digest)) return local;
  if (!l2_) return std::nullopt;
  auto shared = l2_->GetManifest(digest);
  if (!shared || !*shared) return std::nullopt;
  Manifest manifest{digest, (*shared)->media_type,
                    std::make_shared<const std::string>(std::move((*shared)->bytes))};
  if (auto s = Store(repo, manifest, /*to_l2=*/false); !s) {
    Logger("cache")->warn("manifest not cached manifest={}@{} error=\"{}\"", repo.str(),
                          digest.str(), s.error().message);
  }
  tracker_.Touch(EntryKind::kManifest, digest.str());
  if (from_bucket) *from_bucket = true;
  return manifest;
}

std::optional<Manifest> ManifestService::LoadLocal(const Digest& digest) {
  {
    std::lock_guard lock(memory_mutex_);
    if (auto it = by_digest_.find(digest.hex()); it != by_digest_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      // Recency for the evictor, batched: no index write on a hit.
      tracker_.Touch(EntryKind::kManifest, digest.str());
      return *it->second;
    }
  }
  auto media_type = index_.ManifestMediaType(digest.str());
  if (!media_type || !*media_type) return std::nullopt;
  auto bytes = store_.ReadObject(ObjectKind::kManifest, digest, options_.max_manifest_bytes);
  if (!bytes) return std::nullopt;
  Manifest manifest{digest, **media_type, std::make_shared<const std::string>(std::move(*bytes))};
  Remember(manifest);
  tracker_.Touch(EntryKind::kManifest, digest.str());
  return manifest;
}

void ManifestService::Remember(const Manifest& manifest) {
  std::lock_guard lock(memory_mutex_);
  if (by_digest_.count(manifest.digest.hex())) return;
  lru_.push_front(manifest);
  by_digest_[manifest.digest.hex()] = lru_.begin();
  memory_bytes_ += manifest.bytes->size();
  while (memory_bytes_ > options_.memory_budget_bytes && lru_.size() > 1) {
    memory_bytes_ -= lru_.back().bytes->size();
    by_digest_.erase(lru_.back().digest.hex());
    lru_.pop_back();
  }
}

Status ManifestService::Store(const RepoName& repo, const Manifest& manifest, bool to_l2) {
  Remember(manifest);
  // Queued before the tag record: the bucket's writer keeps the order, so a
  // tag record there names a manifest every node can read.
  if (l2_ && to_l2) {
    l2_->QueueManifest(manifest.digest, *manifest.bytes, manifest.media_type);
  }
  bool fresh = !store_.SizeOf(ObjectKind::kManifest, manifest.digest);
  if (fresh) {
    if (auto s = store_.WriteObject(ObjectKind::kManifest, manifest.digest, *manifest.bytes); !s) {
      ++stats_.cache_write_errors;
      usage_.WriteFailed();
      return s;
    }
  }
  if (auto s = index_.PutManifestRefs(manifest.digest.str(), ReferencedDigests(*manifest.bytes));
      !s) {
    return s;
  }
  auto status = index_.PutManifest(manifest.digest.str(), manifest.media_type,
                                   manifest.bytes->size(), repo.str(), UnixNowMs());
  if (status && fresh) usage_.Added(manifest.bytes->size());
  return status;
}

Result<ManifestResult> ManifestService::GetByDigest(const RepoName& repo, const Digest& digest) {
  if (auto local = LoadLocal(digest)) {
    ++stats_.manifest_hits;
    return ManifestResult{*local, ManifestSource::kCache};
  }
  return flights_.Do("d|" + digest.hex(), [&]() -> Result<ManifestResult> {
    bool from_bucket = false;
    if (auto cached = LoadCached(repo, digest, &from_bucket)) {
      ++stats_.manifest_hits;
      return ManifestResult{*cached,
                            from_bucket ? ManifestSource::kBucket : ManifestSource::kCache};
    }
    ++stats_.manifest_misses;
    const std::string what = repo.str() + "@" + digest.str();
    auto response = ExpectOk(upstream_.Fetch("GET", &repo, ManifestPath(repo, digest.str()),
                                             {"Accept: " + AcceptSet::All().UpstreamHeader()},
                                             options_.max_manifest_bytes),
                             ErrorKind::kManifestUnknown, what, stats_);
    if (!response) return tl::unexpected(response.error());
    stats_.manifest_bytes_from_upstream += response->body.size();
    if (Sha256::HexOf(response->body) != digest.hex()) {
      ++stats_.upstream_errors;
      Logger("cache")->warn("manifest digest mismatch manifest={}", what);
      return Fail(ErrorKind::kUpstreamInvalid, what + ": upstream bytes do not match the digest");
    }
    auto manifest = CheckedManifest(digest, *response, what, stats_);
    if (!manifest) return tl::unexpected(manifest.error());
    if (auto s = Store(repo, *manifest); !s) {
      Logger("cache")->warn("manifest not cached manifest={} error=\"{}\"", what,
                            s.error().message);
    }
    return ManifestResult{std::move(*manifest), ManifestSource::kUpstream};
  });
}

Result<ManifestResult> ManifestService::GetByTag(const RepoName& repo, const Tag& tag,
                                                 const AcceptSet& accept) {
  auto row = LookupTag(repo, tag, accept);
  if (row && UnixNowMs() - row->checked_at_ms < upstream_.TagFreshness(repo).count()) {
    if (auto digest = Digest::Parse(row->digest)) {
      bool from_bucket = false;
      if (auto cached = LoadCached(repo, *digest, &from_bucket)) {
        ++stats_.manifest_hits;
        return ManifestResult{*cached,
                              from_bucket ? ManifestSource::kBucket : ManifestSource::kCache};
      }
    }
  }
  return flights_.Do("t|" + repo.str() + ":" + tag.str() + "|" + accept.Key(),
                     [&] { return ResolveTag(repo, tag, accept); });
}

Result<ManifestResult> ManifestService::ResolveTag(const RepoName& repo, const Tag& tag,
                                                   const AcceptSet& accept) {
  auto log = Logger("cache");
  const std::string what = repo.str() + ":" + tag.str();
  // GetByTag asked the bucket just before: what it had is remembered by now.
  std::optional<TagRow> row = LookupTag(repo, tag, accept, /*ask_l2=*/false);
  std::optional<Manifest> cached;
  if (row) {
    if (auto digest = Digest::Parse(row->digest)) cached = LoadCached(repo, *digest);
  }
  if (!cached) return FetchTag(repo, tag, accept);

  // Revalidate: a HEAD tells whether the tag still points at what we hold.
  ++stats_.tag_revalidations;
  auto head = upstream_.Fetch("HEAD", &repo, ManifestPath(repo, tag.str()),
                              {"Accept: " + accept.UpstreamHeader()}, 64 * 1024);
  std::optional<Error> failure;
  if (!head) {
    failure = head.error();
  } else if (head->status == 200) {
    if (head->Header("docker-content-digest") == cached->digest.str()) {
      StoreTag(repo, tag, accept, TagRow{row->digest, row->media_type, UnixNowMs()});
      ++stats_.manifest_hits;
      ++stats_.tag_revalidations_unchanged;
      return ManifestResult{*cached, ManifestSource::kCache};
    }
    // Moved (or the upstream sends no digest on HEAD): fetch it.
    auto fetched = FetchTag(repo, tag, accept);
    if (fetched) ++stats_.tag_revalidations_changed;
    if (!fetched && !AllowsStaleServe(fetched.error())) ++stats_.tag_revalidations_failed;
    if (fetched || !AllowsStaleServe(fetched.error())) return fetched;
    failure = fetched.error();
  } else if (head->status == 404) {
    ++stats_.tag_revalidations_failed;
    return tl::unexpected(UpstreamStatusError(404, ErrorKind::kManifestUnknown, what));
  } else {
    failure = UpstreamStatusError(head->status, ErrorKind::kManifestUnknown, what);
  }
  if (!AllowsStaleServe(*failure)) {
    ++stats_.tag_revalidations_failed;
    return tl::unexpected(*failure);
  }
  ++stats_.upstream_errors;
  ++stats_.stale_serves;
  ++stats_.tag_revalidations_stale;
  log->warn("serving stale tag={} digest={} reason=\"{}\"", what, cached->digest.str(),
            failure->message);
  return ManifestResult{*cached, ManifestSource::kStale};
}

Result<ManifestResult> ManifestService::FetchTag(const RepoName& repo, const Tag& tag,
                                                 const AcceptSet& accept) {
  ++stats_.manifest_misses;
  const std::string what = repo.str() + ":" + tag.str();
  auto response =
      ExpectOk(upstream_.Fetch("GET", &repo, ManifestPath(repo, tag.str()),
                               {"Accept: " + accept.UpstreamHeader()}, options_.max_manifest_bytes),
               ErrorKind::kManifestUnknown, what, stats_);
  if (!response) return tl::unexpected(response.error());
  stats_.manifest_bytes_from_upstream += response->body.size();
  Digest digest = Digest::FromHex(Sha256::HexOf(response->body));
  std::string claimed = response->Header("docker-content-digest");
  if (!claimed.empty() && claimed != digest.str()) {
    ++stats_.upstream_errors;
    return Fail(ErrorKind::kUpstreamInvalid,
                what + ": upstream Docker-Content-Digest does not match the manifest bytes");
  }
  auto manifest = CheckedManifest(digest, *response, what, stats_);
  if (!manifest) return tl::unexpected(manifest.error());
  if (auto s = Store(repo, *manifest); !s) {
    Logger("cache")->warn("manifest not cached tag={} error=\"{}\"", what, s.error().message);
  } else {
    StoreTag(repo, tag, accept, TagRow{digest.str(), manifest->media_type, UnixNowMs()});
  }
  return ManifestResult{std::move(*manifest), ManifestSource::kUpstream};
}

}  // namespace hubcache
