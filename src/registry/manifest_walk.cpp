#include "registry/manifest_walk.h"

#include <nlohmann/json.hpp>

#include "registry/media_types.h"

namespace hubcache {
namespace {

constexpr size_t kMaxDescriptors = 10'000;

bool IsPlatformChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool IsPlatformWord(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!IsPlatformChar(c)) return false;
  }
  return true;
}

Result<Descriptor> ParseDescriptor(const nlohmann::json& j, const char* what) {
  if (!j.is_object()) return Fail(ErrorKind::kManifestInvalid, std::string(what) + " is no object");
  auto digest_it = j.find("digest");
  if (digest_it == j.end() || !digest_it->is_string()) {
    return Fail(ErrorKind::kManifestInvalid, std::string(what) + " has no digest");
  }
  auto digest = Digest::Parse(digest_it->get<std::string>());
  if (!digest) {
    return Fail(ErrorKind::kManifestInvalid,
                std::string(what) + " digest: " + digest.error().message);
  }
  Descriptor d{*digest, 0, "", std::nullopt};
  if (auto it = j.find("size"); it != j.end() && it->is_number_unsigned()) {
    d.size = it->get<uint64_t>();
  }
  if (auto it = j.find("mediaType"); it != j.end() && it->is_string()) {
    d.media_type = it->get<std::string>();
  }
  if (auto it = j.find("platform"); it != j.end() && it->is_object()) {
    Platform p;
    if (auto os = it->find("os"); os != it->end() && os->is_string()) p.os = os->get<std::string>();
    if (auto arch = it->find("architecture"); arch != it->end() && arch->is_string()) {
      p.architecture = arch->get<std::string>();
    }
    if (auto v = it->find("variant"); v != it->end() && v->is_string()) {
      p.variant = v->get<std::string>();
    }
    d.platform = p;
  }
  return d;
}

}  // namespace

std::string Platform::str() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

Result<Platform> ParsePlatform(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    size_t slash = text.find('/', pos);
    parts.push_back(text.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) {
    return Fail(ErrorKind::kConfigInvalid, "platform '" + std::string(text) +
                                               "' must be os/architecture[/variant], e.g. "
                                               "linux/amd64 or linux/arm64/v8");
  }
  for (auto p : parts) {
    if (!IsPlatformWord(p)) {
      return Fail(ErrorKind::kConfigInvalid, "platform '" + std::string(text) +
                                                 "' must be os/architecture[/variant] in "
                                                 "lower case, e.g. linux/amd64");
    }
  }
  return Platform{std::string(parts[0]), std::string(parts[1]),
                  parts.size() == 3 ? std::string(parts[2]) : std::string()};
}

bool PlatformMatches(const Platform& wanted, const Platform& entry) {
  if (wanted.os != entry.os || wanted.architecture != entry.architecture) return false;
  return wanted.variant.empty() || wanted.variant == entry.variant;
}

Result<ParsedManifest> ParseManifest(std::string_view media_type, std::string_view body) {
  std::string type = BareMediaType(media_type);
  if (!IsIndexMediaType(type) && !IsImageManifestMediaType(type))
    type = DetectManifestMediaType(body);
  if (!IsIndexMediaType(type) && !IsImageManifestMediaType(type)) {
    return Fail(ErrorKind::kManifestInvalid,
                "unsupported manifest type '" + (type.empty() ? std::string(media_type) : type) +
                    "' (only Docker schema 2 and OCI manifests and indexes)");
  }
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return Fail(ErrorKind::kManifestInvalid, "manifest is not a JSON object");

  ParsedManifest out;
  if (IsIndexMediaType(type)) {
    out.is_index = true;
    auto it = doc.find("manifests");
    if (it == doc.end() || !it->is_array()) {
      return Fail(ErrorKind::kManifestInvalid, "index has no manifests array");
    }
    if (it->size() > kMaxDescriptors) {
      return Fail(ErrorKind::kManifestInvalid, "index has too many entries");
    }
    for (const auto& entry : *it) {
      auto d = ParseDescriptor(entry, "index entry");
      if (!d) return tl::unexpected(d.error());
      out.children.push_back(std::move(*d));
    }
    return out;
  }

  auto config = doc.find("config");
  if (config == doc.end()) return Fail(ErrorKind::kManifestInvalid, "manifest has no config");
  auto c = ParseDescriptor(*config, "config");
  if (!c) return tl::unexpected(c.error());
  out.blobs.push_back(std::move(*c));
  auto layers = doc.find("layers");
  if (layers == doc.end() || !layers->is_array()) {
    return Fail(ErrorKind::kManifestInvalid, "manifest has no layers array");
  }
  if (layers->size() > kMaxDescriptors) {
    return Fail(ErrorKind::kManifestInvalid, "manifest has too many layers");
  }
  for (const auto& layer : *layers) {
    // Foreign layers live at their "urls", not in the registry.
    if (auto urls = layer.find("urls");
        layer.is_object() && urls != layer.end() && urls->is_array() && !urls->empty()) {
      continue;
    }
    auto d = ParseDescriptor(layer, "layer");
    if (!d) return tl::unexpected(d.error());
    out.blobs.push_back(std::move(*d));
  }
  return out;
}

std::vector<Descriptor> SelectChildren(const ParsedManifest& index,
                                       const std::vector<Platform>& wanted) {
  if (wanted.empty()) return index.children;
  std::vector<Descriptor> out;
  for (const auto& child : index.children) {
    if (!child.platform) continue;
    for (const auto& w : wanted) {
      if (PlatformMatches(w, *child.platform)) {
        out.push_back(child);
        break;
      }
    }
  }
  return out;
}

}  // namespace hubcache
