#pragma once
// Where a repository's content comes from: hosted here (pushed by clients,
// served from local storage only, never fetched from or proxied to an
// upstream), mirrored from Docker Hub or from another configured registry, or
// refused. The one home of that decision.
//
// A name whose first component is a registry host (IsRegistryHostName:
// "ghcr.io/owner/app") belongs to that registry: mirrored from it when it is
// configured and its allow/deny rules let the rest through, refused otherwise
// (never sent to Docker Hub, never an open proxy). Any other name is Docker
// Hub's. Hosted patterns are checked first and win.
//
// Patterns (HUBCACHE_HOSTED) are matched against the full repository name
// after the `library/` rule: `*` matches any run of characters, '/' included,
// so `chatsuite/*` covers `chatsuite/api` and `chatsuite/a/b`, and `*` alone
// hosts everything. A pattern with no '/' other than `*` gets `library/`
// prepended, as a one-component name does (`myapp` means `library/myapp`).
// Immutable after construction; thread-safe.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "registry/reference.h"

namespace hubcache {

enum class RepoSource {
  kMirrored,  // fetched from an upstream: Docker Hub, or a registry named by its first component
  kHosted,    // pushed here
  kRefused,   // names a registry not mirrored here, or a repository its rules leave out
};

// A registry mirrored besides Docker Hub. Its repositories are named here
// "<name>/<repository>" (the path prefix form); containerd's ?ns= may name it
// by `name` or by `authority` (the host[:port] of its URL, what an image
// reference on the node says).
struct MirroredRegistry {
  std::string name;       // "ghcr.io"
  std::string authority;  // "ghcr.io", "127.0.0.1:5001"
  // Patterns over the repository name the registry knows (no library/ rule);
  // empty allow = all; deny wins.
  std::vector<std::string> allow;
  std::vector<std::string> deny;
};

// Where one repository goes.
struct RepoRoute {
  RepoSource source = RepoSource::kMirrored;
  // kMirrored: 0 for Docker Hub, i for registries()[i - 1]; and the name the
  // upstream knows the repository by ("owner/app" for "ghcr.io/owner/app").
  size_t upstream = 0;
  std::string remote;
  std::string reason;  // kRefused: a sentence for the error body
};

// Validates one pattern: the name grammar's characters, '/' and '*', not empty.
[[nodiscard]] Status CheckRepoPattern(std::string_view pattern);

// The name Docker Hub goes by in ?ns= and in metrics.
inline constexpr const char* kDockerHubRegistry = "docker.io";

class RepoSources {
 public:
  RepoSources() = default;
  // The patterns must have passed CheckRepoPattern and the names
  // IsRegistryHostName (the configuration did).
  explicit RepoSources(const std::vector<std::string>& hosted_patterns,
                       std::vector<MirroredRegistry> registries = {});

  RepoRoute Route(const RepoName& repo) const;
  RepoSource Of(const RepoName& repo) const { return Route(repo).source; }
  bool IsHosted(const RepoName& repo) const { return Of(repo) == RepoSource::kHosted; }
  bool any_hosted() const { return !patterns_.empty(); }
  // The patterns as normalised (library/ applied), for messages and /stats.
  const std::vector<std::string>& patterns() const { return patterns_; }
  const std::vector<MirroredRegistry>& registries() const { return registries_; }
  // The registry name of an upstream index of RepoRoute: "docker.io" for 0.
  const std::string& RegistryName(size_t upstream) const;
  // The registry a repository's content comes from, for logs and metrics:
  // "docker.io", "ghcr.io", ...; "hosted" for a hosted one.
  std::string RegistryOf(const RepoName& repo) const;

  // The raw repository name of a request that named its registry with ?ns=
  // (containerd), as this mirror keys it: unchanged for Docker Hub,
  // "<name>/<raw>" for a mirrored registry; kNameUnknown for any other.
  [[nodiscard]] Result<std::string> QualifyForNs(std::string_view ns, const std::string& raw) const;

 private:
  std::vector<std::string> patterns_;
  std::vector<MirroredRegistry> registries_;
};

// Whether `name` can name a registry in a repository path: a path component of
// the name grammar (lower-case, no port) holding a '.', or "localhost"; the
// rule Docker uses to tell a registry from a Docker Hub namespace.
bool IsRegistryHostName(std::string_view name);

// Glob match of `name` against `pattern` where '*' matches any run (also '/').
bool MatchRepoPattern(std::string_view pattern, std::string_view name);

}  // namespace hubcache
