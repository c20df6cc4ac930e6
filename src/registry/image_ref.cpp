#include "registry/image_ref.h"

#include <array>

#include "common/strings.h"
#include "registry/repo_sources.h"

namespace hubcache {
namespace {

// The names under which Docker Hub's registry is known: docker.io and its
// legacy index name as Docker normalises them, plus the hosts people copy from
// API docs and browser URLs.
constexpr std::array<std::string_view, 4> kDockerHubHosts = {
    "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"};

bool HasUpper(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

bool HasSpace(std::string_view s) {
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') return true;
  }
  return false;
}

// Docker's rule (distribution/reference splitDockerDomain): the first component
// names a registry when it looks like a host.
bool LooksLikeHost(std::string_view component) {
  return component.find_first_of(".:") != std::string_view::npos || component == "localhost" ||
         HasUpper(component);
}

}  // namespace

bool IsDockerHubHost(std::string_view host) {
  std::string lower = ToLower(host);
  for (auto h : kDockerHubHosts) {
    if (lower == h) return true;
  }
  return false;
}

Reference ImageRef::reference() const {
  if (digest) return Reference(*digest);
  return Reference(tag ? *tag : *Tag::Parse("latest"));
}

std::string ImageRef::str() const {
  std::string out = repo.str();
  if (tag) out += ":" + tag->str();
  if (digest) out += "@" + digest->str();
  return out;
}

Result<ImageRef> ParseImageRef(std::string_view text) {
  std::string_view rest = TrimSpaces(text);
  if (rest.empty()) return Fail(ErrorKind::kNameInvalid, "empty image reference");
  if (HasSpace(rest)) {
    return Fail(ErrorKind::kNameInvalid, "an image reference cannot contain spaces");
  }

  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, slash);
    if (LooksLikeHost(first)) {
      bool host_like = first.find_first_of(".:") != std::string_view::npos || first == "localhost";
      if (!host_like) {
        // Docker would read "Foo/bar" as registry "Foo"; the likelier mistake is the case.
        return Fail(ErrorKind::kNameInvalid,
                    "repository name '" + std::string(rest) + "' must be lower-case");
      }
      if (IsDockerHubHost(first)) {
        rest.remove_prefix(slash + 1);
      } else if (!IsRegistryHostName(first)) {
        // host:port cannot be a component of the repository path the mirror is asked for.
        return Fail(ErrorKind::kNameInvalid,
                    "registry '" + std::string(first) +
                        "' cannot be named in a mirror path (a port, or not a lower-case host "
                        "name): give it a name in hubcache.upstreams and use that");
      }
      // Another registry's image keeps its registry as the first component:
      // the mirror routes "ghcr.io/owner/app" to ghcr.io (registry/repo_sources.h).
    }
  }

  std::optional<Digest> digest;
  if (size_t at = rest.find('@'); at != std::string_view::npos) {
    auto parsed = Digest::Parse(rest.substr(at + 1));
    if (!parsed) {
      return Fail(ErrorKind::kDigestInvalid, "invalid digest '" + std::string(rest.substr(at + 1)) +
                                                 "': " + parsed.error().message);
    }
    digest = *parsed;
    rest = rest.substr(0, at);
  }

  std::optional<Tag> tag;
  size_t colon = rest.rfind(':');
  size_t last_slash = rest.rfind('/');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view raw_tag = rest.substr(colon + 1);
    auto parsed = Tag::Parse(raw_tag);
    if (!parsed) {
      return Fail(ErrorKind::kTagInvalid,
                  "invalid tag '" + std::string(raw_tag) +
                      "' (1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -)");
    }
    tag = *parsed;
    rest = rest.substr(0, colon);
  }

  if (rest.empty()) return Fail(ErrorKind::kNameInvalid, "image reference has no repository name");
  if (HasUpper(rest)) {
    return Fail(ErrorKind::kNameInvalid,
                "repository name '" + std::string(rest) + "' must be lower-case");
  }
  auto repo = RepoName::Parse(rest);
  if (!repo) {
    return Fail(ErrorKind::kNameInvalid,
                "invalid repository name '" + std::string(rest) + "': " + repo.error().message);
  }
  if (!tag && !digest) tag = *Tag::Parse("latest");
  return ImageRef{*repo, tag, digest};
}

}  // namespace hubcache
