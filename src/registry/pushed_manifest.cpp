#include "registry/pushed_manifest.h"

#include <nlohmann/json.hpp>

#include "registry/media_types.h"
#include "registry/reference.h"

namespace hubcache {
namespace {

Result<std::string> DescriptorDigest(const nlohmann::json& descriptor, const char* where,
                                     uint64_t* size_out = nullptr) {
  if (!descriptor.is_object()) {
    return Fail(ErrorKind::kManifestInvalid, std::string(where) + " is not a descriptor object");
  }
  auto digest = descriptor.find("digest");
  auto size = descriptor.find("size");
  if (digest == descriptor.end() || !digest->is_string()) {
    return Fail(ErrorKind::kManifestInvalid, std::string(where) + " has no digest");
  }
  if (size == descriptor.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Fail(ErrorKind::kManifestInvalid, std::string(where) + " has no valid size");
  }
  if (size_out != nullptr) *size_out = size->get<uint64_t>();
  auto parsed = Digest::Parse(digest->get<std::string>());
  if (!parsed) {
    return Fail(ErrorKind::kDigestInvalid,
                std::string(where) + " digest: " + parsed.error().message);
  }
  return parsed->str();
}

}  // namespace

Result<PushedManifest> DescribePushedManifest(std::string_view body,
                                              std::string_view content_type) {
  auto type = CheckManifest(body, content_type);
  if (!type) return tl::unexpected(type.error());
  PushedManifest out;
  out.media_type = *type;
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (auto it = doc.find("config"); it != doc.end()) {
    uint64_t size = 0;
    auto digest = DescriptorDigest(*it, "config", &size);
    if (!digest) return tl::unexpected(digest.error());
    out.blobs.push_back(*digest);
    out.blob_sizes.push_back(size);
    if (auto mt = it->find("mediaType"); mt != it->end() && mt->is_string()) {
      out.artifact_type = mt->get<std::string>();
    }
  }
  if (auto it = doc.find("layers"); it != doc.end()) {
    for (const auto& layer : *it) {
      uint64_t size = 0;
      auto digest = DescriptorDigest(layer, "layer", &size);
      if (!digest) return tl::unexpected(digest.error());
      // A foreign (non-distributable) layer lives at its urls, not here.
      if (layer.contains("urls")) continue;
      out.blobs.push_back(*digest);
      out.blob_sizes.push_back(size);
    }
  }
  if (auto it = doc.find("manifests"); it != doc.end()) {
    for (const auto& child : *it) {
      auto digest = DescriptorDigest(child, "manifests entry");
      if (!digest) return tl::unexpected(digest.error());
      out.manifests.push_back(*digest);
    }
  }
  if (auto it = doc.find("subject"); it != doc.end()) {
    auto digest = DescriptorDigest(*it, "subject");
    if (!digest) return tl::unexpected(digest.error());
    out.subject = *digest;
  }
  if (auto it = doc.find("artifactType"); it != doc.end()) {
    if (!it->is_string()) return Fail(ErrorKind::kManifestInvalid, "artifactType is not a string");
    out.artifact_type = it->get<std::string>();
  }
  if (auto it = doc.find("annotations"); it != doc.end()) {
    if (!it->is_object()) return Fail(ErrorKind::kManifestInvalid, "annotations is not an object");
    out.annotations = it->dump();
  }
  return out;
}

}  // namespace hubcache
