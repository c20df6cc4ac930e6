#pragma once
// Where a repository's content comes from: hosted here (pushed by clients,
// served from local storage only, never fetched from or proxied to the
// upstream) or mirrored from the upstream. The one home of that decision.
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

enum class RepoSource { kMirrored, kHosted };

// Validates one pattern: the name grammar's characters, '/' and '*', not empty.
[[nodiscard]] Status CheckRepoPattern(std::string_view pattern);

class RepoSources {
 public:
  RepoSources() = default;
  // The patterns must have passed CheckRepoPattern (the configuration did).
  explicit RepoSources(const std::vector<std::string>& hosted_patterns);

  RepoSource Of(const RepoName& repo) const;
  bool IsHosted(const RepoName& repo) const { return Of(repo) == RepoSource::kHosted; }
  bool any_hosted() const { return !patterns_.empty(); }
  // The patterns as normalised (library/ applied), for messages and /stats.
  const std::vector<std::string>& patterns() const { return patterns_; }

 private:
  std::vector<std::string> patterns_;
};

// Whether `name` can name a registry in a repository path: a path component of
// the name grammar (lower-case, no port) holding a '.', or "localhost"; the
// rule Docker uses to tell a registry from a Docker Hub namespace.
bool IsRegistryHostName(std::string_view name);

// Glob match of `name` against `pattern` where '*' matches any run (also '/').
bool MatchRepoPattern(std::string_view pattern, std::string_view name);

}  // namespace hubcache
