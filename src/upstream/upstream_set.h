#pragma once
// Every registry the mirror fetches from, behind the one interface the cache
// services call. Each request goes to the upstream its repository routes to
// (registry/repo_sources.h): "ghcr.io/owner/app" to ghcr.io's client, asked
// for "owner/app" (the path's name rewritten, the token scope the upstream's
// own); a Docker Hub name to the default client, unchanged. A repository that
// routes to no upstream (hosted, an unconfigured registry, outside its allow
// list) fails with kNameUnknown before any connection is opened.
//
// Thread-safe: the clients are, and the routing table is immutable. Owns the
// clients; borrows nothing.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "config/config.h"
#include "registry/reference.h"
#include "registry/repo_sources.h"
#include "upstream/upstream_client.h"

namespace hubcache {

class UpstreamSet {
 public:
  // One client per upstream: Docker Hub's (REGISTRY_PROXY_*) first, then each
  // of config.upstreams in order, routed by `sources` (whose registries are
  // config.upstreams, same order).
  [[nodiscard]] static Result<std::unique_ptr<UpstreamSet>> Create(const Config& config,
                                                                   const RepoSources& sources);

  // UpstreamClient::Fetch and Stream, sent where `repo` routes. `path` must
  // start with RepositoryPath(repo.str()) (registry/routes.h builds them all), or be
  // "/v2/" with a null repo (Docker Hub's). Statuses come back as the client
  // returns them.
  [[nodiscard]] Result<UpstreamResponse> Fetch(const std::string& method, const RepoName* repo,
                                               const std::string& path,
                                               const std::vector<std::string>& headers,
                                               size_t max_body_bytes);
  [[nodiscard]] Result<UpstreamResponse> Stream(const RepoName& repo, const std::string& path,
                                                const std::vector<std::string>& headers,
                                                StreamSink& sink,
                                                std::chrono::milliseconds total_timeout);

  // How long a cached tag of `repo` is served without asking its upstream.
  std::chrono::milliseconds TagFreshness(const RepoName& repo) const;

  // The upstreams in RepoRoute::upstream order: 0 is Docker Hub's.
  size_t size() const { return members_.size(); }
  UpstreamClient& client(size_t i) { return *members_[i].client; }
  const UpstreamClient& client(size_t i) const { return *members_[i].client; }
  const std::string& name(size_t i) const { return sources_.RegistryName(i); }
  const std::string& url(size_t i) const { return members_[i].url; }
  UpstreamClient& docker_hub() { return client(0); }

  // Every client: never connect to where hubcache itself listens.
  void SetOwnListener(const std::string& host, uint16_t port);

 private:
  struct Member {
    std::unique_ptr<UpstreamClient> client;
    std::string url;
    std::chrono::milliseconds tag_freshness;
  };
  UpstreamSet(RepoSources sources, std::vector<Member> members)
      : sources_(std::move(sources)), members_(std::move(members)) {}

  // The client `repo` routes to, its name there, and `path` with that name.
  struct Target {
    UpstreamClient* client;
    RepoName remote;
    std::string path;
  };
  Result<Target> Resolve(const RepoName& repo, const std::string& path) const;

  const RepoSources sources_;
  std::vector<Member> members_;
};

}  // namespace hubcache
