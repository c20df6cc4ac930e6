#pragma once
// Hosted (pushed) content in the S3 bucket (REGISTRY_STORAGE=s3; issue 14):
// the durable copy every node reads, so that an image pushed through one node
// is pulled through any other. Key layout under the bucket's root directory,
// after the CNCF registry's own:
//
//   hosted/blobs/sha256/<hh>/<64 hex>                      blob bytes
//   hosted/manifests/sha256/<hh>/<64 hex>                  manifest bytes, media type
//                                                          as Content-Type
//   hosted/repositories/<repo>/_layers/sha256/<hex>        the repository links the
//                                                          blob (body: its size)
//   hosted/repositories/<repo>/_manifests/revisions/sha256/<hex>
//                                                          ... holds the manifest
//   hosted/repositories/<repo>/_manifests/tags/<tag>       the tag (body: the digest)
//   hosted/repositories/<repo>/_manifests/referrers/sha256/<subject hex>/sha256/<hex>
//                                                          a manifest whose subject is
//                                                          that one (body: its descriptor
//                                                          for the referrers API, JSON)
//   hosted/catalog/<repo>                                  the repository exists
//
// Writes order bytes before the links that name them, so a reader that finds
// a link finds what it names. Nothing here is under cache/, so a lifecycle
// rule for the cache never expires hosted content. Unlike the mirror's tier
// (cache/second_tier.h), failures are not masked: pushed content that cannot
// reach the bucket is refused, since it would be on one node only.
//
// Thread-safe; stateless besides the borrowed client (which outlives it).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "registry/reference.h"
#include "upstream/s3_client.h"

namespace hubcache {

class HostedBucket {
 public:
  // Manifests larger than this are neither stored nor read back.
  static constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;

  explicit HostedBucket(S3Client& s3) : s3_(s3) {}

  static std::string BlobKey(const Digest& digest);
  static std::string ManifestKey(const Digest& digest);
  static std::string LayerKey(const RepoName& repo, const Digest& digest);
  static std::string RevisionKey(const RepoName& repo, const Digest& digest);
  static std::string TagKey(const RepoName& repo, const std::string& tag);
  static std::string CatalogKey(const RepoName& repo);
  static std::string ReferrerKey(const RepoName& repo, const Digest& subject, const Digest& digest);

  // The blob's bytes from `fd` (a verified, synced file of `size` bytes),
  // unless the bucket already has them; then the repository's link.
  [[nodiscard]] Status PutBlob(const RepoName& repo, const Digest& digest, int fd, uint64_t size);
  // Links a blob the bucket already has into `repo`; false when it has not.
  [[nodiscard]] Result<bool> LinkExisting(const RepoName& repo, const Digest& digest);
  // The size of a blob `repo` links; nullopt when it does not.
  [[nodiscard]] Result<std::optional<uint64_t>> LinkedBlobSize(const RepoName& repo,
                                                               const Digest& digest);
  [[nodiscard]] Status UnlinkBlob(const RepoName& repo, const Digest& digest);

  // A pushed manifest: bytes, the repository's revision, with a subject its
  // referrer entry (`descriptor`, JSON), the tag ("" = none), the catalog entry.
  [[nodiscard]] Status PutManifest(const RepoName& repo, const Digest& digest,
                                   const std::string& bytes, const std::string& media_type,
                                   const std::string& tag,
                                   const std::optional<Digest>& subject = {},
                                   const std::string& descriptor = {});
  // The descriptors (JSON) of the manifests of `repo` whose subject is `subject`.
  [[nodiscard]] Result<std::vector<std::string>> Referrers(const RepoName& repo,
                                                           const Digest& subject);
  struct StoredManifest {
    std::string bytes;
    std::string media_type;
  };
  // A manifest `repo` holds, verified against its digest; nullopt when not.
  [[nodiscard]] Result<std::optional<StoredManifest>> GetManifest(const RepoName& repo,
                                                                  const Digest& digest);
  [[nodiscard]] Result<bool> HasRevision(const RepoName& repo, const Digest& digest);
  // The digest a tag names; nullopt when no such tag.
  [[nodiscard]] Result<std::optional<Digest>> TagDigest(const RepoName& repo,
                                                        const std::string& tag);
  [[nodiscard]] Result<std::vector<std::string>> Tags(const RepoName& repo);
  [[nodiscard]] Result<std::vector<std::string>> Repositories();
  // false when there was no such tag.
  [[nodiscard]] Result<bool> DeleteTag(const RepoName& repo, const std::string& tag);
  // The revision and every tag naming it; false when there was no revision.
  [[nodiscard]] Result<bool> DeleteManifest(const RepoName& repo, const Digest& digest);

 private:
  // Every key under `prefix` (all pages), relative to it.
  Result<std::vector<std::string>> ListAll(const std::string& prefix);

  S3Client& s3_;
};

}  // namespace hubcache
