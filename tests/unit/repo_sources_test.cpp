#include "registry/repo_sources.h"
#include "http/request_repo.h"
#include "test_support.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

using testing::Name;

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

TEST_CASE("RepoSources: routes a name to Docker Hub, a mirrored registry, hosted, or nowhere") {
  RepoSources sources({"ghcr.io/team/pushed", "ci/*"},
                      {{"ghcr.io", "ghcr.io", {"team/*", "solo"}, {"team/secret-*"}},
                       {"registry.k8s.io", "registry.k8s.io", {}, {}},
                       {"local.test", "127.0.0.1:5001", {}, {}}});
  struct Case {
    const char* name;
    RepoSource source;
    size_t upstream;     // kMirrored
    const char* remote;  // kMirrored
    const char* registry;
  };
  const Case cases[] = {
      {"alpine", RepoSource::kMirrored, 0, "library/alpine", "docker.io"},
      {"bitnami/redis", RepoSource::kMirrored, 0, "bitnami/redis", "docker.io"},
      {"ghcr.io/team/app", RepoSource::kMirrored, 1, "team/app", "ghcr.io"},
      {"ghcr.io/solo", RepoSource::kMirrored, 1, "solo", "ghcr.io"},
      {"ghcr.io/team/a/b", RepoSource::kMirrored, 1, "team/a/b", "ghcr.io"},
      {"registry.k8s.io/pause", RepoSource::kMirrored, 2, "pause", "registry.k8s.io"},
      {"local.test/x/y", RepoSource::kMirrored, 3, "x/y", "local.test"},
      {"ghcr.io/team/pushed", RepoSource::kHosted, 0, "", "hosted"},  // hosted wins
      {"ci/app", RepoSource::kHosted, 0, "", "hosted"},
      {"ghcr.io/team/secret-x", RepoSource::kRefused, 0, "", "refused"},  // denied
      {"ghcr.io/other/app", RepoSource::kRefused, 0, "", "refused"},      // not allowed
      {"quay.io/coreos/etcd", RepoSource::kRefused, 0, "", "refused"},    // not configured
      {"localhost/app", RepoSource::kRefused, 0, "", "refused"},
      {"library/ghcr.io", RepoSource::kMirrored, 0, "library/ghcr.io", "docker.io"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    RepoRoute route = sources.Route(Name(c.name));
    CHECK(route.source == c.source);
    CHECK(sources.RegistryOf(Name(c.name)) == c.registry);
    if (c.source == RepoSource::kMirrored) {
      CHECK(route.upstream == c.upstream);
      CHECK(route.remote == c.remote);
    } else if (c.source == RepoSource::kRefused) {
      CHECK(route.reason.find("not mirrored here") != std::string::npos);
    }
  }
}

TEST_CASE("RepoSources::QualifyForNs: containerd's ns= names the registry") {
  RepoSources sources({},
                      {{"ghcr.io", "ghcr.io", {}, {}}, {"local.test", "127.0.0.1:5001", {}, {}}});
  CHECK(sources.QualifyForNs("docker.io", "library/alpine") == "library/alpine");
  CHECK(sources.QualifyForNs("Docker.IO", "alpine") == "alpine");
  CHECK(sources.QualifyForNs("ghcr.io", "team/app") == "ghcr.io/team/app");
  CHECK(sources.QualifyForNs("GHCR.io", "team/app") == "ghcr.io/team/app");
  CHECK(sources.QualifyForNs("127.0.0.1:5001", "x") == "local.test/x");
  for (const char* other : {"quay.io", "", "registry-1.docker.io", "docker.io.example",
                            "ghcr.io:443", "127.0.0.1:5002"}) {
    CAPTURE(other);
    auto q = sources.QualifyForNs(other, "team/app");
    REQUIRE_FALSE(q.has_value());
    CHECK(q.error().kind == ErrorKind::kNameUnknown);
  }
}

TEST_CASE("RequestRepoName: the path's name, qualified by every ?ns= of the request") {
  RepoSources sources({}, {{"ghcr.io", "ghcr.io", {}, {}}});
  const Route route{RouteKind::kManifest, "team/app", "latest"};
  struct Case {
    std::vector<std::string> ns;
    std::string want;  // "" = refused with NAME_UNKNOWN
  };
  const Case cases[] = {
      {{}, "team/app"},
      {{"docker.io"}, "team/app"},
      {{"ghcr.io"}, "ghcr.io/team/app"},
      {{"ghcr.io", "ghcr.io"}, "ghcr.io/team/app"},
      {{"ghcr.io", "docker.io"}, ""},  // two registries
      {{"quay.io"}, ""},               // not mirrored here
  };
  for (const Case& c : cases) {
    httplib::Request req;
    for (const auto& ns : c.ns) req.params.emplace("ns", ns);
    CAPTURE(req.params.size());
    auto got = RequestRepoName(req, route, sources);
    if (c.want.empty()) {
      REQUIRE_FALSE(got.has_value());
      CHECK(got.error().kind == ErrorKind::kNameUnknown);
    } else {
      REQUIRE(got.has_value());
      CHECK(*got == c.want);
    }
  }
}

TEST_CASE("IsRegistryHostName: what can be a registry's first path component") {
  for (const char* good : {"ghcr.io", "registry.k8s.io", "public.ecr.aws", "a.b", "localhost",
                           "my-registry.example", "1.2.3.4"}) {
    CAPTURE(good);
    CHECK(IsRegistryHostName(good));
  }
  for (const char* bad : {"", "ghcr", "team", "GHCR.io", "host:5000", ".io", "a.", "a..b", "a.-b",
                          "-a.b", "a_b.c", "a/b.c"}) {
    CAPTURE(bad);
    CHECK_FALSE(IsRegistryHostName(bad));
  }
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
