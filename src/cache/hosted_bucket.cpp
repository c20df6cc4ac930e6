#include "cache/hosted_bucket.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/sha256.h"
#include "registry/pushed_manifest.h"

namespace hubcache {
namespace {

constexpr size_t kMaxListPages = 1000;  // a million keys: bound on one listing

std::string RepoPrefix(const RepoName& repo) { return "hosted/repositories/" + repo.str() + "/"; }

std::optional<uint64_t> ParseSize(const std::string& text) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

}  // namespace

std::string HostedBucket::BlobKey(const Digest& digest) {
  return "hosted/blobs/sha256/" + digest.sharded();
}

std::string HostedBucket::ManifestKey(const Digest& digest) {
  return "hosted/manifests/sha256/" + digest.sharded();
}

std::string HostedBucket::LayerKey(const RepoName& repo, const Digest& digest) {
  return RepoPrefix(repo) + "_layers/sha256/" + digest.hex();
}

std::string HostedBucket::RevisionKey(const RepoName& repo, const Digest& digest) {
  return RepoPrefix(repo) + "_manifests/revisions/sha256/" + digest.hex();
}

std::string HostedBucket::TagKey(const RepoName& repo, const std::string& tag) {
  return RepoPrefix(repo) + "_manifests/tags/" + tag;
}

std::string HostedBucket::CatalogKey(const RepoName& repo) {
  return "hosted/catalog/" + repo.str();
}

Status HostedBucket::PutBlob(const RepoName& repo, const Digest& digest, int fd, uint64_t size) {
  auto there = s3_.Head(BlobKey(digest));
  if (!there) return tl::unexpected(there.error());
  if (!*there || **there != size) {
    S3Client::Reader read = [&](uint64_t offset, char* out, size_t max) -> Result<size_t> {
      ssize_t n;
      do {
        n = ::pread(fd, out, max, static_cast<off_t>(offset));
      } while (n < 0 && errno == EINTR);
      if (n < 0) return Fail(ErrorKind::kIo, std::string("read of a blob: ") + strerror(errno));
      return static_cast<size_t>(n);
    };
    if (auto s = s3_.PutStream(BlobKey(digest), size, read, "application/octet-stream"); !s) {
      return s;
    }
  }
  return s3_.PutSmall(LayerKey(repo, digest), std::to_string(size), "text/plain");
}

Result<bool> HostedBucket::LinkExisting(const RepoName& repo, const Digest& digest) {
  auto there = s3_.Head(BlobKey(digest));
  if (!there) return tl::unexpected(there.error());
  if (!*there) return false;
  if (auto s = s3_.PutSmall(LayerKey(repo, digest), std::to_string(**there), "text/plain"); !s) {
    return tl::unexpected(s.error());
  }
  return true;
}

Result<std::optional<uint64_t>> HostedBucket::LinkedBlobSize(const RepoName& repo,
                                                             const Digest& digest) {
  auto link = s3_.GetSmall(LayerKey(repo, digest), 64);
  if (!link) return tl::unexpected(link.error());
  if (!*link) return std::optional<uint64_t>();
  if (auto size = ParseSize(**link)) return size;
  // A link without its size (written by hand?): the blob itself tells.
  return s3_.Head(BlobKey(digest));
}

Status HostedBucket::UnlinkBlob(const RepoName& repo, const Digest& digest) {
  return s3_.Delete(LayerKey(repo, digest));
}

Status HostedBucket::PutManifest(const RepoName& repo, const Digest& digest,
                                 const std::string& bytes, const std::string& media_type,
                                 const std::string& tag, const std::optional<Digest>& subject,
                                 const std::string& descriptor) {
  if (auto s = s3_.PutSmall(ManifestKey(digest), bytes, media_type); !s) return s;
  if (auto s = s3_.PutSmall(RevisionKey(repo, digest), digest.str(), "text/plain"); !s) return s;
  if (subject) {
    if (auto s = s3_.PutSmall(ReferrerKey(repo, *subject, digest), descriptor, "application/json");
        !s) {
      return s;
    }
  }
  if (!tag.empty()) {
    if (auto s = s3_.PutSmall(TagKey(repo, tag), digest.str(), "text/plain"); !s) return s;
  }
  return s3_.PutSmall(CatalogKey(repo), "", "text/plain");
}

Result<bool> HostedBucket::HasRevision(const RepoName& repo, const Digest& digest) {
  auto there = s3_.Head(RevisionKey(repo, digest));
  if (!there) return tl::unexpected(there.error());
  return there->has_value();
}

Result<std::optional<HostedBucket::StoredManifest>> HostedBucket::GetManifest(
    const RepoName& repo, const Digest& digest) {
  auto held = HasRevision(repo, digest);
  if (!held) return tl::unexpected(held.error());
  if (!*held) return std::optional<StoredManifest>();
  std::string media_type;
  auto bytes = s3_.GetSmall(ManifestKey(digest), kMaxManifestBytes, &media_type);
  if (!bytes) return tl::unexpected(bytes.error());
  if (!*bytes) return std::optional<StoredManifest>();
  if (Sha256::HexOf(**bytes) != digest.hex() || media_type.empty()) {
    return Fail(ErrorKind::kIo,
                "the bucket's copy of manifest " + digest.str() + " does not match its digest");
  }
  return std::optional<StoredManifest>(StoredManifest{std::move(**bytes), media_type});
}

Result<std::optional<Digest>> HostedBucket::TagDigest(const RepoName& repo,
                                                      const std::string& tag) {
  auto body = s3_.GetSmall(TagKey(repo, tag), 256);
  if (!body) return tl::unexpected(body.error());
  if (!*body) return std::optional<Digest>();
  auto digest = Digest::Parse(**body);
  if (!digest) {
    return Fail(ErrorKind::kIo, "the bucket's tag " + repo.str() + ":" + tag + " is unreadable");
  }
  return std::optional<Digest>(*digest);
}

Result<std::vector<std::string>> HostedBucket::ListAll(const std::string& prefix) {
  std::vector<std::string> keys;
  std::string continuation;
  for (size_t page = 0; page < kMaxListPages; ++page) {
    auto listed = s3_.List(prefix, S3Client::kMaxListPage, &continuation);
    if (!listed) return tl::unexpected(listed.error());
    for (auto& object : *listed) keys.push_back(object.key.substr(prefix.size()));
    if (continuation.empty()) return keys;
  }
  return Fail(ErrorKind::kIo, "more than a million keys under " + prefix);
}

Result<std::vector<std::string>> HostedBucket::Tags(const RepoName& repo) {
  auto tags = ListAll(RepoPrefix(repo) + "_manifests/tags/");
  if (!tags) return tl::unexpected(tags.error());
  std::sort(tags->begin(), tags->end());
  return tags;
}

Result<std::vector<std::string>> HostedBucket::Repositories() {
  auto repos = ListAll("hosted/catalog/");
  if (!repos) return tl::unexpected(repos.error());
  std::sort(repos->begin(), repos->end());
  return repos;
}

Result<bool> HostedBucket::DeleteTag(const RepoName& repo, const std::string& tag) {
  auto there = s3_.Head(TagKey(repo, tag));
  if (!there) return tl::unexpected(there.error());
  if (!*there) return false;
  if (auto s = s3_.Delete(TagKey(repo, tag)); !s) return tl::unexpected(s.error());
  return true;
}

std::string HostedBucket::ReferrerKey(const RepoName& repo, const Digest& subject,
                                      const Digest& digest) {
  return RepoPrefix(repo) + "_manifests/referrers/sha256/" + subject.hex() + "/sha256/" +
         digest.hex();
}

Result<std::vector<std::string>> HostedBucket::Referrers(const RepoName& repo,
                                                         const Digest& subject) {
  const std::string prefix =
      RepoPrefix(repo) + "_manifests/referrers/sha256/" + subject.hex() + "/";
  auto keys = ListAll(prefix);
  if (!keys) return tl::unexpected(keys.error());
  std::vector<std::string> out;
  for (const auto& key : *keys) {
    auto body = s3_.GetSmall(prefix + key, 64 * 1024);
    if (!body) return tl::unexpected(body.error());
    if (*body) out.push_back(std::move(**body));
  }
  return out;
}

Result<bool> HostedBucket::DeleteManifest(const RepoName& repo, const Digest& digest) {
  auto held = HasRevision(repo, digest);
  if (!held) return tl::unexpected(held.error());
  // Its referrer entry first (the subject is in the manifest's bytes).
  if (*held) {
    std::string media_type;
    auto bytes = s3_.GetSmall(ManifestKey(digest), kMaxManifestBytes, &media_type);
    if (!bytes) return tl::unexpected(bytes.error());
    if (*bytes) {
      auto described = DescribePushedManifest(**bytes, media_type);
      if (described && !described->subject.empty()) {
        if (auto subject = Digest::Parse(described->subject)) {
          if (auto s = s3_.Delete(ReferrerKey(repo, *subject, digest)); !s) {
            return tl::unexpected(s.error());
          }
        }
      }
    }
  }
  // Tags first: a tag never names a revision that is gone.
  auto tags = Tags(repo);
  if (!tags) return tl::unexpected(tags.error());
  for (const auto& tag : *tags) {
    auto named = TagDigest(repo, tag);
    if (!named) return tl::unexpected(named.error());
    if (*named && **named == digest) {
      if (auto s = s3_.Delete(TagKey(repo, tag)); !s) return tl::unexpected(s.error());
    }
  }
  if (!*held) return false;
  if (auto s = s3_.Delete(RevisionKey(repo, digest)); !s) return tl::unexpected(s.error());
  return true;
}

}  // namespace hubcache
