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
  auto missing = index_.PutHostedManifest(row, described->blobs, described->manifests, tag, [&] {
    if (store_.SizeOf(ObjectKind::kManifest, digest) == bytes.size()) return Status{};
    auto s = store_.CommitPath(temp->fd(), temp->path(), ObjectKind::kManifest, digest,
                               /*synced=*/true);
    if (s) temp->MarkCommitted();
    return s;
  });
  if (!missing) return tl::unexpected(missing.error());
  if (*missing) {
    return Fail(ErrorKind::kManifestBlobUnknown,
                "the manifest references " + **missing + ", which is not in " + repo.str());
  }
  stats_.push_manifests.fetch_add(1, std::memory_order_relaxed);
  return PushedManifestResult{digest, described->subject};
}

Result<Manifest> HostedRegistry::GetManifest(const RepoName& repo, const Reference& reference) {
  std::string digest_text;
  if (const auto* digest = std::get_if<Digest>(&reference)) {
    digest_text = digest->str();
  } else {
    auto tagged = index_.HostedTag(repo.str(), std::get<Tag>(reference).str());
    if (!tagged) return tl::unexpected(tagged.error());
    if (!*tagged) return tl::unexpected(ManifestUnknown(repo, std::get<Tag>(reference).str()));
    digest_text = **tagged;
  }
  auto row = index_.GetHostedManifest(repo.str(), digest_text);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return tl::unexpected(ManifestUnknown(repo, digest_text));
  auto digest = Digest::Parse(digest_text);
  if (!digest) return tl::unexpected(digest.error());
  auto bytes = store_.ReadObject(ObjectKind::kManifest, *digest, max_manifest_bytes_);
  if (!bytes) return tl::unexpected(bytes.error());
  stats_.hosted_manifest_hits.fetch_add(1, std::memory_order_relaxed);
  return Manifest{*digest, (*row)->media_type,
                  std::make_shared<const std::string>(std::move(*bytes))};
}

Status HostedRegistry::DeleteManifest(const RepoName& repo, const Reference& reference) {
  if (const auto* tag = std::get_if<Tag>(&reference)) {
    auto deleted = index_.DeleteHostedTag(repo.str(), tag->str());
    if (!deleted) return tl::unexpected(deleted.error());
    if (!*deleted) return tl::unexpected(ManifestUnknown(repo, tag->str()));
  } else {
    const auto& digest = std::get<Digest>(reference);
    auto deleted = index_.DeleteHostedManifest(repo.str(), digest.str());
    if (!deleted) return tl::unexpected(deleted.error());
    if (!*deleted) return tl::unexpected(ManifestUnknown(repo, digest.str()));
  }
  stats_.hosted_deletes.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Result<std::vector<std::string>> HostedRegistry::Tags(const RepoName& repo) {
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
  auto rows = index_.HostedReferrers(repo.str(), subject.str());
  if (!rows) return tl::unexpected(rows.error());
  nlohmann::json manifests = nlohmann::json::array();
  for (const auto& row : *rows) {
    if (!artifact_type.empty() && row.artifact_type != artifact_type) continue;
    nlohmann::json descriptor = {
        {"mediaType", row.media_type}, {"digest", row.digest}, {"size", row.size}};
    if (!row.artifact_type.empty()) descriptor["artifactType"] = row.artifact_type;
    if (!row.annotations.empty()) {
      descriptor["annotations"] = nlohmann::json::parse(row.annotations, nullptr, false);
    }
    manifests.push_back(std::move(descriptor));
  }
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", std::string(kOciIndex)},
                          {"manifests", std::move(manifests)}};
  return index.dump();
}

Result<HostedRegistry::OpenBlob> HostedRegistry::Blob(const RepoName& repo, const Digest& digest,
                                                      bool open) {
  auto size = index_.HostedBlobSize(repo.str(), digest.str());
  if (!size) return tl::unexpected(size.error());
  if (!*size) {
    return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
  }
  OpenBlob out;
  out.size = **size;
  if (open) {
    auto fd = store_.OpenForRead(ObjectKind::kBlob, digest);
    if (!fd) return tl::unexpected(fd.error());
    out.file = std::move(*fd);
  }
  stats_.hosted_blob_hits.fetch_add(1, std::memory_order_relaxed);
  return out;
}

Status HostedRegistry::DeleteBlob(const RepoName& repo, const Digest& digest) {
  auto unlinked = index_.UnlinkHostedBlob(repo.str(), digest.str());
  if (!unlinked) return tl::unexpected(unlinked.error());
  if (!*unlinked) {
    return Fail(ErrorKind::kBlobUnknown, "blob " + digest.str() + " is not in " + repo.str());
  }
  stats_.hosted_deletes.fetch_add(1, std::memory_order_relaxed);
  return {};
}

}  // namespace hubcache
