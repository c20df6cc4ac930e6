#include "registry/media_types.h"
#include "common/strings.h"

#include <array>

#include <nlohmann/json.hpp>

namespace hubcache {
namespace {

struct TypeBit {
  std::string_view type;
  uint8_t bit;
  std::string_view key;
};

constexpr std::array<TypeBit, 4> kTypes = {{
    {kDockerManifestList, 1, "dl"},
    {kDockerManifestV2, 2, "dm"},
    {kOciIndex, 4, "oi"},
    {kOciManifest, 8, "om"},
}};
constexpr uint8_t kAllBits = 15;

// True when the media-range has "q=0", which means "not acceptable".
bool HasZeroQuality(std::string_view params) {
  size_t pos = 0;
  while (pos < params.size()) {
    size_t semi = params.find(';', pos);
    std::string_view p =
        TrimSpaces(params.substr(pos, semi == std::string_view::npos ? semi : semi - pos));
    if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
      std::string_view v = p.substr(2);
      bool zero = !v.empty();
      for (char c : v) {
        if (c != '0' && c != '.') zero = false;
      }
      return zero;
    }
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return false;
}

}  // namespace

AcceptSet AcceptSet::All() { return AcceptSet(kAllBits); }

AcceptSet AcceptSet::FromHeader(std::string_view accept) {
  uint8_t bits = 0;
  bool wildcard = false;
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t comma = accept.find(',', pos);
    std::string_view item =
        accept.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
    size_t semi = item.find(';');
    std::string_view type = TrimSpaces(item.substr(0, semi));
    std::string_view params =
        semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
    if (!HasZeroQuality(params)) {
      if (type == "*/*" || type == "application/*") wildcard = true;
      for (const auto& t : kTypes) {
        if (type == t.type) bits |= t.bit;
      }
    }
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  // A wildcard or an Accept naming no manifest type gets everything: that is
  // how registries answer curl and old clients.
  if (wildcard || bits == 0) bits = kAllBits;
  return AcceptSet(bits);
}

bool AcceptSet::Accepts(std::string_view media_type) const {
  for (const auto& t : kTypes) {
    if (media_type == t.type) return (bits_ & t.bit) != 0;
  }
  return false;
}

bool AcceptSet::IsAll() const { return bits_ == kAllBits; }

std::string AcceptSet::Key() const {
  std::string key;
  for (const auto& t : kTypes) {
    if (bits_ & t.bit) {
      if (!key.empty()) key += ',';
      key += t.key;
    }
  }
  return key;
}

std::string AcceptSet::UpstreamHeader() const {
  std::string header;
  // Lists first, as Docker and containerd send them: a multi-arch tag should
  // resolve to its index, and the client picks the platform.
  static constexpr std::array<std::string_view, 4> kOrder = {kOciIndex, kDockerManifestList,
                                                             kOciManifest, kDockerManifestV2};
  for (auto type : kOrder) {
    if (Accepts(type)) {
      if (!header.empty()) header += ", ";
      header += type;
    }
  }
  return header;
}

std::string DetectManifestMediaType(std::string_view body) {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return "";
  if (auto it = doc.find("mediaType"); it != doc.end() && it->is_string()) {
    return it->get<std::string>();
  }
  // OCI allows omitting mediaType: tell an index from a manifest by its fields.
  if (doc.contains("manifests")) return std::string(kOciIndex);
  if (doc.contains("layers") && doc.contains("config")) return std::string(kOciManifest);
  return "";
}

Result<std::string> CheckManifest(std::string_view body, std::string_view content_type) {
  auto invalid = [](const std::string& why) { return Fail(ErrorKind::kManifestInvalid, why); };
  const std::string declared = BareMediaType(content_type);
  const bool generic = declared.empty() || declared == "application/json" ||
                       declared == "text/plain" || declared == "application/octet-stream";
  if (!generic && !IsIndexMediaType(declared) && !IsImageManifestMediaType(declared)) {
    return invalid("Content-Type " + declared + " is not a manifest type");
  }

  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return invalid("the body is not a JSON object");
  auto version = doc.find("schemaVersion");
  if (version == doc.end() || !version->is_number_integer() || version->get<int64_t>() != 2) {
    return invalid("schemaVersion is not 2");
  }
  auto field = [&doc](const char* name) {
    auto it = doc.find(name);
    return it == doc.end() ? nullptr : &*it;
  };
  const auto* manifests = field("manifests");
  const auto* config = field("config");
  const auto* layers = field("layers");
  const bool list_shape = manifests != nullptr && manifests->is_array();
  const bool image_shape =
      config != nullptr && config->is_object() && layers != nullptr && layers->is_array();

  std::string type;
  if (const auto* media_type = field("mediaType"); media_type != nullptr) {
    if (!media_type->is_string()) return invalid("mediaType is not a string");
    type = media_type->get<std::string>();
    if (!IsIndexMediaType(type) && !IsImageManifestMediaType(type))
      return invalid("mediaType " + type + " is unknown");
  } else if (list_shape && config == nullptr) {
    type = IsIndexMediaType(declared) ? declared : std::string(kOciIndex);
  } else if (image_shape && manifests == nullptr) {
    type = IsImageManifestMediaType(declared) ? declared : std::string(kOciManifest);
  } else {
    return invalid("no mediaType, and the fields are neither an index's nor a manifest's");
  }
  if (IsIndexMediaType(type) && !list_shape) return invalid(type + " without a manifests array");
  if (IsImageManifestMediaType(type) && !image_shape)
    return invalid(type + " without a config and layers");
  if (!generic && declared != type) {
    return invalid("Content-Type " + declared + " but the body is a " + type);
  }
  return type;
}

std::vector<std::string> ReferencedDigests(std::string_view body) {
  std::vector<std::string> out;
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return out;
  auto add = [&out](const nlohmann::json& descriptor) {
    if (descriptor.is_object() && descriptor.contains("digest") &&
        descriptor["digest"].is_string()) {
      out.push_back(descriptor["digest"].get<std::string>());
    }
  };
  if (doc.contains("config")) add(doc["config"]);
  for (const char* list : {"layers", "manifests"}) {
    if (doc.contains(list) && doc[list].is_array()) {
      for (const auto& d : doc[list]) add(d);
    }
  }
  return out;
}

std::string BareMediaType(std::string_view content_type) {
  size_t semi = content_type.find(';');
  return std::string(TrimSpaces(content_type.substr(0, semi)));
}

}  // namespace hubcache
