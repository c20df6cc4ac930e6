#include "registry/repo_sources.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

RepoName Name(const std::string& raw) {
  auto name = RepoName::Parse(raw);
  REQUIRE(name);
  return *name;
}

TEST_CASE("MatchRepoPattern: '*' spans any run, '/' included") {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"chatsuite/*", "chatsuite/api", true},
      {"chatsuite/*", "chatsuite/a/b", true},
      {"chatsuite/*", "chatsuite", false},
      {"chatsuite/*", "chatsuitex/api", false},
      {"chatsuite/*", "other/chatsuite/api", false},
      {"team/app", "team/app", true},
      {"team/app", "team/app2", false},
      {"team/app", "team/ap", false},
      {"*", "library/alpine", true},
      {"*/dev-*", "a/b/dev-x", true},
      {"*/dev-*", "a/b/prod-x", false},
      {"a*b*c", "axxbyyc", true},
      {"a*b*c", "axxbyy", false},
      {"**", "x", true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.name);
    CHECK(MatchRepoPattern(c.pattern, c.name) == c.match);
  }
}

TEST_CASE("RepoSources: the library/ rule applies to patterns as to names") {
  RepoSources sources({"myapp", "chatsuite/*", "*/snapshots"});
  CHECK(sources.IsHosted(Name("myapp")));  // library/myapp
  CHECK(sources.IsHosted(Name("library/myapp")));
  CHECK_FALSE(sources.IsHosted(Name("alpine")));
  CHECK(sources.IsHosted(Name("chatsuite/client-app")));
  CHECK(sources.IsHosted(Name("team/snapshots")));
  CHECK_FALSE(sources.IsHosted(Name("team/snapshots2")));
  CHECK(sources.patterns() ==
        std::vector<std::string>{"library/myapp", "chatsuite/*", "*/snapshots"});
  CHECK(RepoSources({"*"}).IsHosted(Name("alpine")));
  CHECK_FALSE(RepoSources().IsHosted(Name("alpine")));
  CHECK_FALSE(RepoSources().any_hosted());
}

TEST_CASE("CheckRepoPattern refuses what no repository name could match") {
  for (const char* bad : {"", "Upper/*", "a//b", "/a", "a/", "a b", "a?b", "a/[x]"}) {
    CAPTURE(bad);
    CHECK_FALSE(CheckRepoPattern(bad));
  }
  for (const char* good : {"*", "a/*", "team/app", "a.b_c-d/*"}) {
    CAPTURE(good);
    CHECK(CheckRepoPattern(good));
  }
}

}  // namespace
}  // namespace hubcache
