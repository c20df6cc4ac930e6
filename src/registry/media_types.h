#pragma once
// Manifest media types and the negotiation of a client's Accept header.
//
// A tag's answer depends on what the client accepts (Docker Hub returns an OCI
// index to a client that accepts one, a schema2 manifest to one that accepts only
// that). The cache keys tags by AcceptSet, a canonical form that ignores order,
// q-values and unknown types, so a reordered Accept header is still a hit.
// AcceptSet is an immutable value (safe to share between threads); the
// functions are pure.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hubcache {

inline constexpr std::string_view kDockerManifestV2 =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";

// The set of manifest types a client accepts, as a bit set over the four types.
class AcceptSet {
 public:
  // From the raw Accept header values (comma-joined). An absent header, "*/*",
  // "application/*" or a header naming no manifest type means "all four".
  static AcceptSet FromHeader(std::string_view accept);
  static AcceptSet All();

  bool Accepts(std::string_view media_type) const;
  bool IsAll() const;
  // The canonical key used for the tag cache: e.g. "dl,dm,oi,om".
  std::string Key() const;
  // The Accept header to send upstream: exactly the accepted types.
  std::string UpstreamHeader() const;

 private:
  explicit AcceptSet(uint8_t bits) : bits_(bits) {}
  uint8_t bits_;
};

// Whether a media type is an index (OCI index, Docker manifest list), or an
// image manifest (OCI, Docker schema 2).
inline bool IsIndexMediaType(std::string_view type) {
  return type == kOciIndex || type == kDockerManifestList;
}
inline bool IsImageManifestMediaType(std::string_view type) {
  return type == kOciManifest || type == kDockerManifestV2;
}

// The media type of a manifest body: its "mediaType" field, or a guess from its
// structure for old manifests that omit it. Empty when the bytes are not JSON.
std::string DetectManifestMediaType(std::string_view body);

// Checks that `body` is a manifest by its content and returns its media type
// (one of the four above). It must be a JSON object with "schemaVersion": 2
// and the fields of its kind: an index or list has a "manifests" array, a
// manifest a "config" object and a "layers" array. Its "mediaType", when
// present, must be one of the four and name that kind; without one (OCI allows
// it) the fields tell the kind, and the OCI type is meant unless the
// Content-Type names a type of that kind. `content_type` (the upstream's,
// parameters allowed) must agree with the type, or be generic: absent,
// application/json, text/plain or application/octet-stream. Fails with
// kManifestInvalid and a message saying what is wrong.
[[nodiscard]] Result<std::string> CheckManifest(std::string_view body,
                                                std::string_view content_type);

// The digests a manifest references: its config and layers, or an index's
// child manifests. Unparseable bodies reference nothing.
std::vector<std::string> ReferencedDigests(std::string_view body);

// Strips parameters and whitespace from a Content-Type value.
std::string BareMediaType(std::string_view content_type);

}  // namespace hubcache
