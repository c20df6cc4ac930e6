#pragma once
// An image reference as people write it on a command line or in a list file,
// parsed into the strong types of reference.h:
//
//   alpine                            -> library/alpine:latest
//   alpine:3.19                       -> library/alpine:3.19
//   docker.io/library/alpine:3.19     -> library/alpine:3.19  (also index.docker.io, ...)
//   bitnami/redis:7.2                 -> bitnami/redis:7.2
//   nginx@sha256:<hex>                -> library/nginx@sha256:<hex>
//   nginx:1.25@sha256:<hex>           -> library/nginx:1.25@sha256:<hex> (the digest wins)
//
//   ghcr.io/owner/app:1               -> ghcr.io/owner/app:1 (another registry's
//                                        image, as the mirror names it; whether it
//                                        is mirrored is the mirror's answer)
//
// The domain rule is Docker's: the first path component is a registry host
// when it holds a '.' or ':', is "localhost", or has an upper-case letter. A
// host with a port (localhost:5000/...) cannot be a path component of the
// mirror's names and is refused with a message that says so.
// Pure functions; thread-safe.

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "registry/reference.h"

namespace hubcache {

struct ImageRef {
  RepoName repo;                 // normalised: "library/alpine"
  std::optional<Tag> tag;        // as written; "latest" when neither tag nor digest was given
  std::optional<Digest> digest;  // set for a pinned reference; it wins over the tag

  // What to ask the registry for: the digest when pinned, else the tag.
  Reference reference() const;
  // The canonical form: "library/alpine:3.19", "library/nginx:1.25@sha256:<hex>".
  std::string str() const;
};

// Parses one reference; surrounding spaces are ignored. Errors say what is wrong
// in a sentence fit for a per-line report.
[[nodiscard]] Result<ImageRef> ParseImageRef(std::string_view text);

// Whether `host` (any case) is a name of Docker Hub's registry.
bool IsDockerHubHost(std::string_view host);

}  // namespace hubcache
