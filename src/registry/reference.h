#pragma once
// Strong types for what a client names: repository, tag, digest. Each is built
// only by its Parse function, which enforces the distribution grammar; past that
// edge no raw strings travel. The digest grammar is also the path-traversal
// defence: only [a-f0-9]{64} ever reaches the filesystem.
// Immutable values: copy them freely, share them between threads.

#include <string>
#include <string_view>
#include <variant>

#include "common/result.h"

namespace hubcache {

// A repository name, normalised the Docker Hub way: a one-component name means
// library/<name>, so "alpine" and "library/alpine" are the same repository.
class RepoName {
 public:
  [[nodiscard]] static Result<RepoName> Parse(std::string_view raw);
  // The same grammar without the library/ rule: a name as a registry other
  // than Docker Hub knows it ("pause" on registry.k8s.io is "pause").
  [[nodiscard]] static Result<RepoName> ParseRemote(std::string_view raw);
  const std::string& str() const { return value_; }
  bool operator==(const RepoName& other) const = default;
  auto operator<=>(const RepoName& other) const = default;

 private:
  explicit RepoName(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

class Tag {
 public:
  [[nodiscard]] static Result<Tag> Parse(std::string_view raw);
  const std::string& str() const { return value_; }
  bool operator==(const Tag& other) const = default;

 private:
  explicit Tag(std::string v) : value_(std::move(v)) {}
  std::string value_;
};

// A sha256 content digest ("sha256:<64 lower-case hex>"), the only algorithm the
// store accepts (it is the only one Docker Hub and OCI clients use).
class Digest {
 public:
  [[nodiscard]] static Result<Digest> Parse(std::string_view raw);
  static Digest FromHex(std::string hex) { return Digest(std::move(hex)); }  // hex from Sha256
  std::string str() const { return "sha256:" + hex_; }
  const std::string& hex() const { return hex_; }
  // "<first 2 hex>/<64 hex>": how stores shard objects by digest.
  std::string sharded() const { return hex_.substr(0, 2) + "/" + hex_; }
  bool operator==(const Digest& other) const = default;
  auto operator<=>(const Digest& other) const = default;

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

// The <reference> of /v2/<name>/manifests/<reference>: a tag or a digest.
// ParseReference fails with kDigestInvalid for a malformed digest (it has a
// ':') and kManifestUnknown for anything else that is no tag (it names no
// manifest that can exist).
using Reference = std::variant<Tag, Digest>;
[[nodiscard]] Result<Reference> ParseReference(std::string_view raw);
// The reference a PUT names: as ParseReference, but what is no tag fails with
// kTagInvalid, the client's error (the push names a manifest, it finds none).
[[nodiscard]] Result<Reference> ParseWrittenReference(std::string_view raw);
std::string ReferenceString(const Reference& ref);

}  // namespace hubcache
