// UpstreamSet: which client a repository's requests go to, and what is refused
// before any connection (no server here: a routed request meets a closed port).

#include "upstream/upstream_set.h"
#include "test_support.h"

#include <doctest/doctest.h>

namespace hubcache {
namespace {

using testing::Name;

struct SetFixture {
  Config config;
  RepoSources sources;
  std::unique_ptr<UpstreamSet> set;
  SetFixture() {
    config.upstream_url = "http://127.0.0.1:1";
    config.tag_freshness = std::chrono::seconds(60);
    config.upstream_connect_timeout = std::chrono::milliseconds(500);
    UpstreamConfig ghcr;
    ghcr.name = "ghcr.io";
    ghcr.url = "http://127.0.0.1:2";
    ghcr.tag_freshness = std::chrono::seconds(5);
    ghcr.allow = {"team/*"};
    config.upstreams.push_back(ghcr);
    config.hosted = {"ci/*"};
    sources = RepoSources(config.hosted, {{"ghcr.io", "127.0.0.1:2", {"team/*"}, {}}});
    set = *UpstreamSet::Create(config, sources);
  }
};

TEST_CASE_FIXTURE(SetFixture, "UpstreamSet: one client per registry, Docker Hub's first") {
  REQUIRE(set->size() == 2);
  CHECK(set->name(0) == "docker.io");
  CHECK(set->url(0) == "http://127.0.0.1:1");
  CHECK(set->name(1) == "ghcr.io");
  CHECK(set->url(1) == "http://127.0.0.1:2");
  CHECK(set->TagFreshness(Name("alpine")) == std::chrono::seconds(60));
  CHECK(set->TagFreshness(Name("ghcr.io/team/app")) == std::chrono::seconds(5));
}

TEST_CASE_FIXTURE(SetFixture, "UpstreamSet: refused names fail before any connection") {
  for (const char* name : {"quay.io/a/b", "ghcr.io/other/app", "ci/app"}) {
    CAPTURE(name);
    RepoName repo = Name(name);
    auto r = set->Fetch("GET", &repo, "/v2/" + repo.str() + "/manifests/1", {}, 1024);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().kind == ErrorKind::kNameUnknown);
    StreamSink sink;
    auto s = set->Stream(repo, "/v2/" + repo.str() + "/blobs/x", {}, sink, std::chrono::seconds(1));
    REQUIRE_FALSE(s.has_value());
    CHECK(s.error().kind == ErrorKind::kNameUnknown);
  }
  for (size_t i = 0; i < set->size(); ++i) CHECK(set->client(i).counters().requests == 0);
}

TEST_CASE_FIXTURE(SetFixture, "UpstreamSet: a routed request goes to its registry's client") {
  RepoName repo = Name("ghcr.io/team/app");
  auto r = set->Fetch("GET", &repo, "/v2/ghcr.io/team/app/manifests/1", {}, 1024);
  CHECK_FALSE(r.has_value());  // nothing listens on port 2
  CHECK(set->client(1).counters().transport_errors > 0);
  CHECK(set->client(0).counters().requests == 0);
  // A path not under the repository's own is a caller's bug, refused.
  auto wrong = set->Fetch("GET", &repo, "/v2/team/app/manifests/1", {}, 1024);
  REQUIRE_FALSE(wrong.has_value());
  CHECK(wrong.error().kind == ErrorKind::kInternal);
  RepoName hub = Name("library/alpine");
  CHECK_FALSE(set->Fetch("GET", &hub, "/v2/library/alpine/manifests/1", {}, 1024).has_value());
  CHECK(set->client(0).counters().transport_errors > 0);
}

}  // namespace
}  // namespace hubcache
