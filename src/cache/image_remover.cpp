#include "cache/image_remover.h"

#include "cache/second_tier.h"

#include <unistd.h>

#include <algorithm>
#include <set>
#include <vector>

#include "cache/manifest_service.h"
#include "cache/usage.h"

namespace hubcache {

Result<std::pair<RepoName, Reference>> ParseImageArgument(const std::string& text) {
  std::string name = text;
  std::string reference;
  if (size_t at = name.find('@'); at != std::string::npos) {
    reference = name.substr(at + 1);
    name = name.substr(0, at);
    if (size_t colon = name.rfind(':');
        colon != std::string::npos && name.find('/', colon) == std::string::npos) {
      name = name.substr(0, colon);  // "repo:tag@digest": the digest is what counts
    }
  } else if (size_t colon = name.rfind(':');
             colon != std::string::npos && name.find('/', colon) == std::string::npos) {
    reference = name.substr(colon + 1);
    name = name.substr(0, colon);
  } else {
    reference = "latest";
  }
  for (const char* prefix : {"docker.io/", "index.docker.io/", "registry-1.docker.io/"}) {
    if (name.rfind(prefix, 0) == 0) name = name.substr(std::string(prefix).size());
  }
  auto repo = RepoName::Parse(name);
  if (!repo) return tl::unexpected(repo.error());
  auto ref = ParseReference(reference);
  if (!ref) return tl::unexpected(ref.error());
  return std::pair<RepoName, Reference>{*repo, *ref};
}

Status ImageRemover::DeleteManifest(const std::string& digest, uint64_t size,
                                    RemovalReport& report) {
  auto parsed = Digest::Parse(digest);
  if (!parsed) return {};
  // The bucket first: should it fail, the L1 copy is still there to retry.
  if (l2_ != nullptr) {
    if (auto s = l2_->DeleteManifest(*parsed); !s) return s;
  }
  if (manifests_ != nullptr) manifests_->Forget(*parsed);
  if (auto s = index_.DeleteManifest(digest); !s) return s;
  ::unlink(store_.PathOf(ObjectKind::kManifest, *parsed).c_str());
  if (usage_ != nullptr) usage_->Removed(size);
  ++report.manifests;
  report.bytes += size;
  return {};
}

Status ImageRemover::DeleteBlob(const std::string& digest, uint64_t size, RemovalReport& report) {
  auto parsed = Digest::Parse(digest);
  if (!parsed) return {};
  if (l2_ != nullptr) {
    if (auto s = l2_->DeleteBlob(*parsed); !s) return s;
  }
  if (auto s = index_.DeleteBlob(digest); !s) return s;
  ::unlink(store_.PathOf(ObjectKind::kBlob, *parsed).c_str());
  if (usage_ != nullptr) usage_->Removed(size);
  ++report.blobs;
  report.bytes += size;
  return {};
}

Result<RemovalReport> ImageRemover::RemoveImage(const RepoName& repo, const Reference& reference) {
  RemovalReport report;
  std::vector<std::string> roots;
  const bool by_digest = std::holds_alternative<Digest>(reference);
  if (const auto* tag = std::get_if<Tag>(&reference)) {
    auto digests = index_.TagDigests(repo.str(), tag->str());
    if (!digests) return tl::unexpected(digests.error());
    if (digests->empty()) {
      return Fail(ErrorKind::kManifestUnknown, repo.str() + ":" + tag->str() + " is not cached");
    }
    roots = *digests;
    if (l2_ != nullptr) {
      if (auto s = l2_->DeleteTag(repo, tag->str()); !s) return tl::unexpected(s.error());
    }
    if (auto s = index_.DeleteTag(repo.str(), tag->str()); !s) return tl::unexpected(s.error());
    if (manifests_ != nullptr) manifests_->ForgetTag(repo, *tag);
  } else {
    const auto& digest = std::get<Digest>(reference);
    auto entry = index_.FindEntry(EntryKind::kManifest, digest.str());
    if (!entry) return tl::unexpected(entry.error());
    if (!*entry)
      return Fail(ErrorKind::kManifestUnknown, repo.str() + "@" + digest.str() + " is not cached");
    roots = {digest.str()};
  }

  // The manifests to remove: the roots and, through indexes, their children,
  // except those another remaining tag points at.
  std::vector<std::string> removed;
  std::set<std::string> blobs;
  std::vector<std::string> queue = roots;
  std::set<std::string> visited;
  while (!queue.empty()) {
    std::string digest = queue.back();
    queue.pop_back();
    if (!visited.insert(digest).second) continue;
    auto entry = index_.FindEntry(EntryKind::kManifest, digest);
    if (!entry) return tl::unexpected(entry.error());
    if (!*entry) {
      blobs.insert(digest);  // not a manifest: a blob child
      continue;
    }
    // A manifest named by digest goes with its tags; any other one stays
    // while a tag still points at it.
    bool named = by_digest && std::find(roots.begin(), roots.end(), digest) != roots.end();
    auto still_tagged = index_.CountTagsPointingAt(digest);
    if (!still_tagged) return tl::unexpected(still_tagged.error());
    if (*still_tagged > 0 && !named) continue;
    auto children = index_.ManifestChildren(digest);
    if (!children) return tl::unexpected(children.error());
    removed.push_back(digest);
    for (auto& child : *children) queue.push_back(child);
  }
  for (const auto& digest : removed) {
    auto entry = index_.FindEntry(EntryKind::kManifest, digest);
    if (!entry) return tl::unexpected(entry.error());
    if (!*entry) continue;
    if (auto s = DeleteManifest(digest, (*entry)->size, report); !s)
      return tl::unexpected(s.error());
  }
  for (const auto& digest : blobs) {
    auto referrers = index_.CountReferrers(digest, {});
    if (!referrers) return tl::unexpected(referrers.error());
    if (*referrers > 0) continue;  // another cached manifest still uses it
    auto entry = index_.FindEntry(EntryKind::kBlob, digest);
    if (!entry) return tl::unexpected(entry.error());
    if (!*entry) continue;
    if (auto s = DeleteBlob(digest, (*entry)->size, report); !s) return tl::unexpected(s.error());
  }
  return report;
}

Result<RemovalReport> ImageRemover::RemoveBlob(const Digest& digest) {
  RemovalReport report;
  auto entry = index_.FindEntry(EntryKind::kBlob, digest.str());
  if (!entry) return tl::unexpected(entry.error());
  if (!*entry && l2_ != nullptr) {
    // Not in this node's L1, but maybe in the bucket.
    auto size = l2_->BlobSize(digest);
    if (!size) return tl::unexpected(size.error());
    if (*size) {
      if (auto s = l2_->DeleteBlob(digest); !s) return tl::unexpected(s.error());
      report.blobs = 1;
      report.bytes = **size;
      return report;
    }
  }
  if (!*entry) return Fail(ErrorKind::kBlobUnknown, digest.str() + " is not cached");
  if (auto s = DeleteBlob(digest.str(), (*entry)->size, report); !s)
    return tl::unexpected(s.error());
  return report;
}

}  // namespace hubcache
