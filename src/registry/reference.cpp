#include "registry/reference.h"

namespace hubcache {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool IsValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator run: ".", "_", "__" or one or more "-".
    size_t start = i;
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (i == start || i >= c.size() || !IsLowerAlnum(c[i])) return false;
  }
  return true;
}

bool IsHexLower(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Result<RepoName> RepoName::ParseRemote(std::string_view raw) {
  auto parsed = Parse(raw);
  if (!parsed) return parsed;
  return RepoName(std::string(raw));
}

Result<RepoName> RepoName::Parse(std::string_view raw) {
  if (raw.empty()) return Fail(ErrorKind::kNameInvalid, "repository name is empty");
  if (raw.size() > kMaxNameLength) {
    return Fail(ErrorKind::kNameInvalid, "repository name longer than 255 characters");
  }
  size_t components = 0;
  size_t pos = 0;
  while (true) {
    size_t slash = raw.find('/', pos);
    std::string_view part =
        raw.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    if (!IsValidComponent(part)) {
      return Fail(ErrorKind::kNameInvalid, "invalid repository name");
    }
    ++components;
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  std::string name(raw);
  if (components == 1) name = "library/" + name;
  if (name.size() > kMaxNameLength) {
    return Fail(ErrorKind::kNameInvalid, "repository name longer than 255 characters");
  }
  return RepoName(std::move(name));
}

Result<Tag> Tag::Parse(std::string_view raw) {
  // [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
  if (raw.empty() || raw.size() > kMaxTagLength) {
    return Fail(ErrorKind::kTagInvalid, "tag must be 1 to 128 characters");
  }
  auto word = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  };
  auto invalid = [] {
    return Fail(ErrorKind::kTagInvalid,
                "invalid tag: a letter, digit or '_', then letters, digits, '_', '.' or '-'");
  };
  if (!word(raw.front())) return invalid();
  for (char c : raw.substr(1)) {
    if (!word(c) && c != '.' && c != '-') return invalid();
  }
  return Tag(std::string(raw));
}

Result<Digest> Digest::Parse(std::string_view raw) {
  size_t colon = raw.find(':');
  if (colon == std::string_view::npos) {
    return Fail(ErrorKind::kDigestInvalid, "digest must be <algorithm>:<hex>");
  }
  std::string_view algorithm = raw.substr(0, colon);
  std::string_view hex = raw.substr(colon + 1);
  if (algorithm != "sha256") {
    return Fail(ErrorKind::kDigestInvalid, "unsupported digest algorithm (only sha256)");
  }
  if (hex.size() != 64 || !IsHexLower(hex)) {
    return Fail(ErrorKind::kDigestInvalid, "sha256 digest must be 64 lower-case hex characters");
  }
  return Digest(std::string(hex));
}

Result<Reference> ParseReference(std::string_view raw) {
  if (raw.find(':') != std::string_view::npos) {
    auto digest = Digest::Parse(raw);
    if (!digest) return tl::unexpected(digest.error());
    return Reference(*digest);
  }
  // No ':' so no digest, and not a tag: no manifest can ever be found by it.
  // The OCI distribution spec answers a reference it cannot find with 404
  // MANIFEST_UNKNOWN (its conformance suite asks for ".INVALID_MANIFEST_NAME");
  // only a malformed digest is the client's error (400 DIGEST_INVALID).
  auto tag = Tag::Parse(raw);
  if (!tag)
    return Fail(ErrorKind::kManifestUnknown,
                "reference is neither a tag nor a digest: no manifest has it");
  return Reference(*tag);
}

Result<Reference> ParseWrittenReference(std::string_view raw) {
  if (raw.find(':') != std::string_view::npos) return ParseReference(raw);
  auto tag = Tag::Parse(raw);
  if (!tag) return tl::unexpected(tag.error());
  return Reference(*tag);
}

std::string ReferenceString(const Reference& ref) {
  if (const auto* tag = std::get_if<Tag>(&ref)) return tag->str();
  return std::get<Digest>(ref).str();
}

}  // namespace hubcache
