#include "cache/hosted_registry.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>

#include "common/clock.h"
#include "common/sha256.h"
#include "registry/media_types.h"
#include "registry/pushed_manifest.h"

namespace hubcache {
namespace {

// A request to the bucket failed: the client may retry (503).
Error BucketUnavailable(const Error& e) {
  return Error{ErrorKind::kUpstreamUnavailable, "the S3 bucket: " + e.message};
}

// A manifest as the referrers API lists it.
nlohmann::json ReferrerDescriptor(const HostedManifestRow& row) {
  nlohmann::json descriptor = {
      {"mediaType", row.media_type}, {"digest", row.digest}, {"size", row.size}};
  if (!row.artifact_type.empty()) descriptor["artifactType"] = row.artifact_type;
  if (!row.annotations.empty()) {
    descriptor["annotations"] = nlohmann::json::parse(row.annotations, nullptr, false);
  }
  return descriptor;
}

Error ManifestUnknown(const RepoName& repo, const std::string& what) {
  return Error{ErrorKind::kManifestUnknown, "manifest " + what + " is not in " + repo.str()};
}

}  // namespace

Result<PushedManifestResult> HostedRegistry::PutManifest(const RepoName& repo,
                                                         const Reference& reference,
                                                         const std::string& content_type,
                                                         std::string bytes) {
  if (bytes.size() > max_manifest_bytes_) {
    return Fail(ErrorKind::kManifestTooLarge,
                "manifest larger than " + std::to_string(max_manifest_bytes_) + " bytes");
  }
  auto described = DescribePushedManifest(bytes, content_type);
  if (!described) return tl::unexpected(described.error());
  Digest digest = Digest::FromHex(Sha256::HexOf(bytes));
  std::string tag;
  if (const auto* wanted = std::get_if<Digest>(&reference)) {
    if (*wanted != digest) {
      return Fail(ErrorKind::kDigestInvalid,
                  "the manifest's digest is " + digest.str() + ", not " + wanted->str());
    }
  } else {
    tag = std::get<Tag>(reference).str();
  }
  if (bucket_) {
    // Taking over from another node (it took the blob uploads, then left the
    // cluster): what the bucket links to the repository is there, whatever
    // this node's index knows. Such blobs and child manifests are checked
    // against the bucket here and left out of the local record's check.
    if (auto s = KeepOnlyLocalReferences(repo, *described); !s) return tl::unexpected(s.error());
  }
  HostedManifestRow row{repo.str(),
                        digest.str(),
                        described->media_type,
                        bytes.size(),
                        described->artifact_type,
                        described->subject,
                        described->annotations,
                        UnixNowMs()};
  // Written and synced first; under the index's write lock only renamed.
  auto temp = store_.CreateTemp();
  if (!temp) return tl::unexpected(temp.error());
  if (auto s = temp->Append(bytes.data(), bytes.size()); !s) return tl::unexpected(s.error());
  if (::fsync(temp->fd()) != 0) {
    return Fail(WriteErrorKind(errno), "fsync of a manifest: " + std::string(strerror(errno)));
  }
  auto missing = index_.PutHostedManifest(
      row, described->blobs, described->manifests, tag,
      [&] {
        if (store_.SizeOf(ObjectKind::kManifest, digest) == bytes.size()) return Status{};
        auto s = store_.CommitPath(temp->fd(), temp->path(), ObjectKind::kManifest, digest,
                                   /*synced=*/true);
        if (s) temp->MarkCommitted();
        return s;
      },
      described->blob_sizes);
  if (!missing) return tl::unexpected(missing.error());
  if (*missing) {
    return Fail(ErrorKind::kManifestBlobUnknown,
                "the manifest references " + **missing + ", which is not in " + repo.str());
  }
  if (bucket_) {
    // Answered only once every node can read it; a failure is retried by
    // the client (the local record above is idempotent).
    std::optional<Digest> subject;
    if (auto parsed = Digest::Parse(row.subject)) subject = *parsed;
    if (auto s = bucket_->PutManifest(repo, digest, bytes, described->media_type, tag, subject,
                                      ReferrerDescriptor(row).dump());
        !s) {
      return Fail(ErrorKind::kUpstreamUnavailable,
                  "the manifest could not be stored in the S3 bucket: " + s.error().message);
    }
    std::lock_guard lock(mutex_);
    if (!tag.empty())
      bucket_tags_.insert_or_assign(Key(repo, tag), Checked<Digest>{digest, UnixNowMs()});
  }
  stats_.push_manifests.fetch_add(1, std::memory_order_relaxed);
  if (!tag.empty()) {
    std::lock_guard lock(mutex_);
    if (tags_.size() >= kMaxEntries) tags_.clear();
    tags_[Key(repo, tag)] = digest.str();
  }
  return PushedManifestResult{digest, described->subject};
}

Status HostedRegistry::KeepOnlyLocalReferences(const RepoName& repo, PushedManifest& described) {
  std::vector<std::string> blobs;
  std::vector<uint64_t> sizes;
  for (size_t i = 0; i < described.blobs.size(); ++i) {
    const std::string& blob = described.blobs[i];
    auto local = index_.HostedBlobSize(repo.str(), blob);
    if (!local) return tl::unexpected(local.error());
    auto parsed = Digest::Parse(blob);
    if (!*local && parsed) {
      auto linked = bucket_->LinkedBlobSize(repo, *parsed);
      if (!linked) return tl::unexpected(BucketUnavailable(linked.error()));
      if (*linked) {
        if (i < described.blob_sizes.size() && **linked != described.blob_sizes[i]) {
          return Fail(ErrorKind::kManifestInvalid, "the manifest gives " + blob + " a size of " +
                                                       std::to_string(described.blob_sizes[i]) +
                                                       " bytes; it has " +
                                                       std::to_string(**linked));
        }
        continue;  // in the bucket: not this node's to check
      }
    }
    blobs.push_back(blob);
    if (i < described.blob_sizes.size()) sizes.push_back(described.blob_sizes[i]);
  }
  std::vector<std::string> manifests;
  for (const std::string& child : described.manifests) {
    auto local = index_.GetHostedManifest(repo.str(), child);
    if (!local) return tl::unexpected(local.error());
    auto parsed = Digest::Parse(child);
    if (!*local && parsed) {
      auto held = bucket_->HasRevision(repo, *parsed);
      if (!held) return tl::unexpected(BucketUnavailable(held.error()));
      if (*held) continue;
    }
    manifests.push_back(child);
  }
  described.blobs = std::move(blobs);
  described.blob_sizes = std::move(sizes);
  described.manifests = std::move(manifests);
  return {};
}

Result<std::string> HostedRegistry::ResolveTag(const RepoName& repo, const Tag& tag) {
  const std::string key = Key(repo, tag.str());
  {
    std::lock_guard lock(mutex_);
    if (auto it = tags_.find(key); it != tags_.end()) return it->second;
  }
  auto tagged = index_.HostedTag(repo.str(), tag.str());
  if (!tagged) return tl::unexpected(tagged.error());
  if (!*tagged) return tl::unexpected(ManifestUnknown(repo, tag.str()));
  std::lock_guard lock(mutex_);
  if (tags_.size() >= kMaxEntries) tags_.clear();
  tags_[key] = **tagged;
  return **tagged;
}

void HostedRegistry::RememberManifest(const std::string& key, const Manifest& manifest) {
  std::lock_guard lock(mutex_);
  if (manifest.bytes->size() > kMemoryBudget / 4 || manifests_.count(key) > 0) return;
  while (manifest_bytes_ + manifest.bytes->size() > kMemoryBudget && !manifest_order_.empty()) {
    auto old = manifests_.find(manifest_order_.front());
    if (old != manifests_.end()) {
      manifest_bytes_ -= old->second.manifest.bytes->size();
      manifests_.erase(old);
    }
    manifest_order_.pop_front();
  }
  manifests_.emplace(key, RememberedManifest{manifest, UnixNowMs()});
  manifest_order_.push_back(key);
  manifest_bytes_ += manifest.bytes->size();
}

Result<Manifest> HostedRegistry::BucketManifest(const RepoName& repo, const Reference& reference) {
  const int64_t now = UnixNowMs();
  std::optional<Digest> digest;
  if (const auto* by_digest = std::get_if<Digest>(&reference)) {
    digest = *by_digest;
  } else {
    const std::string& tag = std::get<Tag>(reference).str();
    const std::string key = Key(repo, tag);
    {
      std::lock_guard lock(mutex_);
      if (auto it = bucket_tags_.find(key);
          it != bucket_tags_.end() && now - it->second.at_ms < kBucketRecheckMs) {
        digest = it->second.value;
      }
    }
    if (!digest) {
      auto named = bucket_->TagDigest(repo, tag);
      if (!named) return tl::unexpected(BucketUnavailable(named.error()));
      std::lock_guard lock(mutex_);
      if (!*named) {
        bucket_tags_.erase(key);
        return tl::unexpected(ManifestUnknown(repo, tag));
      }
      if (bucket_tags_.size() >= kMaxEntries) bucket_tags_.clear();
      bucket_tags_.insert_or_assign(key, Checked<Digest>{**named, now});
      digest = **named;
    }
  }
  const std::string key = Key(repo, digest->str());
  std::optional<Manifest> remembered;
  {
    std::lock_guard lock(mutex_);
    if (auto it = manifests_.find(key); it != manifests_.end()) {
      remembered = it->second.manifest;
      if (now - it->second.file_seen_ms < kBucketRecheckMs) {
        stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
        return *remembered;
      }
    }
  }
  if (remembered) {
    // The bytes are content-addressed; whether the repository still holds
    // them is the question.
    auto held = bucket_->HasRevision(repo, *digest);
    if (!held) return tl::unexpected(BucketUnavailable(held.error()));
    std::lock_guard lock(mutex_);
    auto it = manifests_.find(key);
    if (!*held) {
      if (it != manifests_.end()) {
        manifest_bytes_ -= it->second.manifest.bytes->size();
        manifests_.erase(it);
      }
      return tl::unexpected(ManifestUnknown(repo, digest->str()));
    }
    if (it != manifests_.end()) it->second.file_seen_ms = now;
    stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
    return *remembered;
  }
  auto stored = bucket_->GetManifest(repo, *digest);
  if (!stored) return tl::unexpected(BucketUnavailable(stored.error()));
  if (!*stored) return tl::unexpected(ManifestUnknown(repo, digest->str()));
  Manifest manifest{*digest, (*stored)->media_type,
                    std::make_shared<const std::string>(std::move((*stored)->bytes))};
  RememberManifest(key, manifest);
  stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
  return manifest;
}

Result<Manifest> HostedRegistry::GetManifest(const RepoName& repo, const Reference& reference) {
  if (bucket_) return BucketManifest(repo, reference);
  std::string digest_text;
  if (const auto* digest = std::get_if<Digest>(&reference)) {
    digest_text = digest->str();
  } else {
    auto resolved = ResolveTag(repo, std::get<Tag>(reference));
    if (!resolved) return tl::unexpected(resolved.error());
    digest_text = std::move(*resolved);
  }
  auto digest = Digest::Parse(digest_text);
  if (!digest) return tl::unexpected(digest.error());
  const std::string key = Key(repo, digest_text);
  std::optional<Manifest> remembered;
  bool seen_lately = false;
  const int64_t now = UnixNowMs();
  {
    std::lock_guard lock(mutex_);
    if (auto it = manifests_.find(key); it != manifests_.end()) {
      remembered = it->second.manifest;
      seen_lately = now - it->second.file_seen_ms < kFileRecheckMs;
    }
  }
  // A manifest `hubcache gc` removed from another process has no file left:
  // its file is looked at again at most every kFileRecheckMs.
  if (remembered && !seen_lately && store_.SizeOf(ObjectKind::kManifest, *digest)) {
    seen_lately = true;
    std::lock_guard lock(mutex_);
    if (auto it = manifests_.find(key); it != manifests_.end()) it->second.file_seen_ms = now;
  }
  if (remembered && seen_lately) {
    stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
    return *remembered;
  }
  auto row = index_.GetHostedManifest(repo.str(), digest_text);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return tl::unexpected(ManifestUnknown(repo, digest_text));
  auto bytes = store_.ReadObject(ObjectKind::kManifest, *digest, max_manifest_bytes_);
  if (!bytes) return tl::unexpected(bytes.error());
  stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
  Manifest manifest{*digest, (*row)->media_type,
                    std::make_shared<const std::string>(std::move(*bytes))};
  RememberManifest(key, manifest);
  return manifest;
}

void HostedRegistry::ForgetRepoTagsOf(const RepoName& repo, const std::string& digest) {
  const std::string prefix = repo.str() + '\n';
  for (auto it = tags_.lower_bound(prefix);
       it != tags_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    it = it->second == digest ? tags_.erase(it) : std::next(it);
  }
}

Status HostedRegistry::DeleteManifest(const RepoName& repo, const Reference& reference) {
  if (const auto* tag = std::get_if<Tag>(&reference)) {
    {
      std::lock_guard lock(mutex_);
      tags_.erase(Key(repo, tag->str()));
      bucket_tags_.erase(Key(repo, tag->str()));
    }
    // With the bucket, it is the truth: the local index follows it.
    bool in_bucket = false;
    if (bucket_) {
      auto gone = bucket_->DeleteTag(repo, tag->str());
      if (!gone) return tl::unexpected(BucketUnavailable(gone.error()));
      in_bucket = *gone;
    }
    auto deleted = index_.DeleteHostedTag(repo.str(), tag->str());
    if (!deleted) return tl::unexpected(deleted.error());
    if (!*deleted && !in_bucket) return tl::unexpected(ManifestUnknown(repo, tag->str()));
  } else {
    const auto& digest = std::get<Digest>(reference);
    {
      std::lock_guard lock(mutex_);
      ForgetRepoTagsOf(repo, digest.str());
      for (auto it = bucket_tags_.begin(); it != bucket_tags_.end();) {
        it = it->second.value == digest ? bucket_tags_.erase(it) : std::next(it);
      }
      if (auto it = manifests_.find(Key(repo, digest.str())); it != manifests_.end()) {
        manifest_bytes_ -= it->second.manifest.bytes->size();
        manifests_.erase(it);  // its key stays in manifest_order_ until it comes up
      }
    }
    bool in_bucket = false;
    if (bucket_) {
      auto gone = bucket_->DeleteManifest(repo, digest);
      if (!gone) return tl::unexpected(BucketUnavailable(gone.error()));
      in_bucket = *gone;
    }
    auto deleted = index_.DeleteHostedManifest(repo.str(), digest.str());
    if (!deleted) return tl::unexpected(deleted.error());
    if (!*deleted && !in_bucket) return tl::unexpected(ManifestUnknown(repo, digest.str()));
  }
  stats_.hosted_deletes.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Result<std::vector<std::string>> HostedRegistry::Tags(const RepoName& repo) {
  if (bucket_) {
    auto tags = bucket_->Tags(repo);
    if (!tags) return tl::unexpected(BucketUnavailable(tags.error()));
    if (tags->empty()) {
      auto repos = bucket_->Repositories();
      if (!repos) {
        return tl::unexpected(BucketUnavailable(repos.error()));
      }
      if (!std::binary_search(repos->begin(), repos->end(), repo.str())) {
        return Fail(ErrorKind::kNameUnknown, "repository " + repo.str() + " is not known");
      }
    }
    return tags;
  }
  auto tags = index_.HostedTags(repo.str());
  if (!tags) return tl::unexpected(tags.error());
  if (tags->empty()) {
    auto repos = index_.HostedRepositories();
    if (!repos) return tl::unexpected(repos.error());
    if (!std::binary_search(repos->begin(), repos->end(), repo.str())) {
      return Fail(ErrorKind::kNameUnknown, "repository " + repo.str() + " is not known");
    }
  }
  return tags;
}

Result<std::string> HostedRegistry::Referrers(const RepoName& repo, const Digest& subject,
                                              const std::string& artifact_type) {
  nlohmann::json manifests = nlohmann::json::array();
  if (bucket_) {
    // Pushed through any node: the bucket's referrer entries.
    auto found = bucket_->Referrers(repo, subject);
    if (!found) return tl::unexpected(BucketUnavailable(found.error()));
    for (const auto& text : *found) {
      auto descriptor = nlohmann::json::parse(text, nullptr, false);
      if (!descriptor.is_object()) continue;
      if (!artifact_type.empty() && descriptor.value("artifactType", "") != artifact_type) {
        continue;
      }
      manifests.push_back(std::move(descriptor));
    }
  } else {
    auto rows = index_.HostedReferrers(repo.str(), subject.str());
    if (!rows) return tl::unexpected(rows.error());
    for (const auto& row : *rows) {
      if (!artifact_type.empty() && row.artifact_type != artifact_type) continue;
      manifests.push_back(ReferrerDescriptor(row));
    }
  }
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", std::string(kOciIndex)},
                          {"manifests", std::move(manifests)}};
  return index.dump();
}

Result<HostedRegistry::OpenBlob> HostedRegistry::BucketBlob(const RepoName& repo,
                                                            const Digest& digest, bool open) {
  const std::string key = Key(repo, digest.str());
  const int64_t now = UnixNowMs();
  std::optional<uint64_t> size;
  {
    std::lock_guard lock(mutex_);
    if (auto it = bucket_blobs_.find(key);
        it != bucket_blobs_.end() && now - it->second.at_ms < kBucketRecheckMs) {
      size = it->second.value;
    }
  }
  if (!size) {
    auto linked = bucket_->LinkedBlobSize(repo, digest);
    if (!linked) {
      return tl::unexpected(BucketUnavailable(linked.error()));
    }
    std::lock_guard lock(mutex_);
    if (!*linked) {
      bucket_blobs_.erase(key);
      return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
    }
    if (bucket_blobs_.size() >= kMaxEntries) bucket_blobs_.clear();
    bucket_blobs_.insert_or_assign(key, Checked<uint64_t>{**linked, now});
    size = **linked;
  }
  OpenBlob out;
  out.size = *size;
  if (open) {
    // A local copy (this node took the push) is read from disk.
    if (auto fd = store_.OpenForRead(ObjectKind::kBlob, digest)) {
      out.file = std::move(*fd);
    } else {
      out.in_bucket = true;
    }
  }
  stats_.hosted_blob_hits.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Result<HostedRegistry::OpenBlob> HostedRegistry::Blob(const RepoName& repo, const Digest& digest,
                                                      bool open) {
  if (bucket_) return BucketBlob(repo, digest, open);
  const std::string key = Key(repo, digest.str());
  std::optional<uint64_t> size;
  {
    std::lock_guard lock(mutex_);
    if (auto it = blob_sizes_.find(key); it != blob_sizes_.end()) size = it->second;
  }
  if (!size) {
    auto linked = index_.HostedBlobSize(repo.str(), digest.str());
    if (!linked) return tl::unexpected(linked.error());
    if (!*linked) {
      return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
    }
    size = *linked;
    std::lock_guard lock(mutex_);
    if (blob_sizes_.size() >= kMaxEntries) blob_sizes_.clear();
    blob_sizes_[key] = *size;
  }
  OpenBlob out;
  out.size = *size;
  // The file is the truth: `hubcache gc` may have swept it from another process.
  if (open) {
    auto fd = store_.OpenForRead(ObjectKind::kBlob, digest);
    if (!fd) {
      std::lock_guard lock(mutex_);
      blob_sizes_.erase(key);
      return tl::unexpected(fd.error());
    }
    out.file = std::move(*fd);
  } else if (!store_.SizeOf(ObjectKind::kBlob, digest)) {
    std::lock_guard lock(mutex_);
    blob_sizes_.erase(key);
    return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
  }
  stats_.hosted_blob_hits.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Status HostedRegistry::DeleteBlob(const RepoName& repo, const Digest& digest) {
  {
    std::lock_guard lock(mutex_);
    blob_sizes_.erase(Key(repo, digest.str()));
    bucket_blobs_.erase(Key(repo, digest.str()));
  }
  bool in_bucket = false;
  if (bucket_) {
    auto linked = bucket_->LinkedBlobSize(repo, digest);
    if (linked && *linked) {
      auto s = bucket_->UnlinkBlob(repo, digest);
      if (!s) linked = tl::unexpected(s.error());
    }
    if (!linked) {
      return tl::unexpected(BucketUnavailable(linked.error()));
    }
    in_bucket = linked->has_value();
  }
  auto unlinked = index_.UnlinkHostedBlob(repo.str(), digest.str());
  if (!unlinked) return tl::unexpected(unlinked.error());
  if (!*unlinked && !in_bucket) {
    return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
  }
  stats_.hosted_deletes.fetch_add(1, std::memory_order_relaxed);
  return {};
}

}  // namespace hubcache
