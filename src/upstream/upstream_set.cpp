#include "upstream/upstream_set.h"
#include "registry/routes.h"

namespace hubcache {

namespace {

UpstreamOptions OptionsFor(const Config& config, std::string url, std::string username,
                           std::string password, std::string ca, bool insecure) {
  UpstreamOptions options;
  options.base_url = std::move(url);
  options.username = std::move(username);
  options.password = std::move(password);
  options.ca_file = std::move(ca);
  options.insecure = insecure;
  options.connect_timeout = config.upstream_connect_timeout;
  options.stall_timeout = config.upstream_stall_timeout;
  options.request_timeout = config.upstream_connect_timeout + 2 * config.upstream_stall_timeout;
  return options;
}

}  // namespace

Result<std::unique_ptr<UpstreamSet>> UpstreamSet::Create(const Config& config,
                                                         const RepoSources& sources) {
  std::vector<Member> members;
  auto add = [&](UpstreamOptions options, std::chrono::milliseconds freshness) -> Status {
    std::string url = options.base_url;
    auto client = UpstreamClient::Create(std::move(options));
    if (!client) return tl::unexpected(client.error());
    members.push_back(Member{std::move(*client), std::move(url), freshness});
    return {};
  };
  if (auto s =
          add(OptionsFor(config, config.upstream_url, config.upstream_username,
                         config.upstream_password, config.upstream_ca, config.upstream_insecure),
              config.tag_freshness);
      !s) {
    return tl::unexpected(s.error());
  }
  for (const auto& u : config.upstreams) {
    if (auto s = add(OptionsFor(config, u.url, u.username, u.password, u.ca, u.insecure),
                     u.tag_freshness);
        !s) {
      return tl::unexpected(s.error());
    }
  }
  if (members.size() != sources.registries().size() + 1) {
    return Fail(ErrorKind::kInternal, "upstreams and routing table differ");
  }
  return std::unique_ptr<UpstreamSet>(new UpstreamSet(sources, std::move(members)));
}

Result<UpstreamSet::Target> UpstreamSet::Resolve(const RepoName& repo,
                                                 const std::string& path) const {
  RepoRoute route = sources_.Route(repo);
  if (route.source == RepoSource::kHosted) {
    return Fail(ErrorKind::kNameUnknown,
                "repository " + repo.str() + " is hosted here, never fetched upstream");
  }
  if (route.source == RepoSource::kRefused) return Fail(ErrorKind::kNameUnknown, route.reason);
  UpstreamClient* client = members_[route.upstream].client.get();
  if (route.upstream == 0) return Target{client, repo, path};
  const std::string prefix = RepositoryPath(repo.str());
  if (path.compare(0, prefix.size(), prefix) != 0) {
    return Fail(ErrorKind::kInternal, "upstream path " + path + " is not under " + prefix);
  }
  auto remote = RepoName::ParseRemote(route.remote);
  if (!remote) return tl::unexpected(remote.error());
  return Target{client, std::move(*remote),
                RepositoryPath(route.remote) + path.substr(prefix.size())};
}

Result<UpstreamResponse> UpstreamSet::Fetch(const std::string& method, const RepoName* repo,
                                            const std::string& path,
                                            const std::vector<std::string>& headers,
                                            size_t max_body_bytes) {
  if (repo == nullptr) return docker_hub().Fetch(method, nullptr, path, headers, max_body_bytes);
  auto target = Resolve(*repo, path);
  if (!target) return tl::unexpected(target.error());
  return target->client->Fetch(method, &target->remote, target->path, headers, max_body_bytes);
}

Result<UpstreamResponse> UpstreamSet::Stream(const RepoName& repo, const std::string& path,
                                             const std::vector<std::string>& headers,
                                             StreamSink& sink,
                                             std::chrono::milliseconds total_timeout) {
  auto target = Resolve(repo, path);
  if (!target) return tl::unexpected(target.error());
  return target->client->Stream(target->remote, target->path, headers, sink, total_timeout);
}

std::chrono::milliseconds UpstreamSet::TagFreshness(const RepoName& repo) const {
  RepoRoute route = sources_.Route(repo);
  return members_[route.source == RepoSource::kMirrored ? route.upstream : 0].tag_freshness;
}

void UpstreamSet::SetOwnListener(const std::string& host, uint16_t port) {
  for (auto& m : members_) m.client->SetOwnListener(host, port);
}

}  // namespace hubcache
