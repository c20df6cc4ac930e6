#pragma once
// What a manifest references (for pre-warm and prefetch): the children of an index
// (with their platforms) and the blobs of an image manifest (config, then
// layers). Pure functions over the manifest bytes; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "registry/reference.h"

namespace hubcache {

// os/architecture[/variant], e.g. linux/arm64/v8.
struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;  // may be empty

  std::string str() const;
  bool operator==(const Platform& other) const = default;
};

// "linux/amd64", "linux/arm64/v8". Lower-case letters, digits, '.', '_', '-'.
[[nodiscard]] Result<Platform> ParsePlatform(std::string_view text);

// Whether an index entry's platform satisfies a requested one: os and
// architecture equal; the variant too when the request names one.
bool PlatformMatches(const Platform& wanted, const Platform& entry);

struct Descriptor {
  Digest digest;
  uint64_t size = 0;
  std::string media_type;
  std::optional<Platform> platform;  // index entries only, when given
};

struct ParsedManifest {
  bool is_index = false;
  std::vector<Descriptor> children;  // index: the entries, in order
  std::vector<Descriptor> blobs;     // image: the config, then the layers the registry holds
};

// Parses a manifest of `media_type` (its Content-Type; when empty or generic,
// the body's mediaType or structure decides). Image manifests list the config
// and layers; layers the registry does not hold (Windows foreign layers, which
// carry "urls") are left out. Fails with kManifestInvalid on anything else
// (schema 1, not JSON, a descriptor without a sha256 digest).
[[nodiscard]] Result<ParsedManifest> ParseManifest(std::string_view media_type,
                                                   std::string_view body);

// The index entries to warm: all of them when `wanted` is empty, else those
// whose platform matches one of `wanted`.
std::vector<Descriptor> SelectChildren(const ParsedManifest& index,
                                       const std::vector<Platform>& wanted);

}  // namespace hubcache
