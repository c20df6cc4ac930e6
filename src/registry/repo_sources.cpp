#include "registry/repo_sources.h"

#include "common/strings.h"

namespace hubcache {

Status CheckRepoPattern(std::string_view pattern) {
  if (pattern.empty()) return Fail(ErrorKind::kConfigInvalid, "empty repository pattern");
  if (pattern.size() > 255) {
    return Fail(ErrorKind::kConfigInvalid, "repository pattern longer than 255 characters");
  }
  for (char c : pattern) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/' || c == '*';
    if (!ok) {
      return Fail(ErrorKind::kConfigInvalid,
                  "repository pattern '" + std::string(pattern) +
                      "' may hold only a-z, 0-9, '.', '_', '-', '/' and '*'");
    }
  }
  if (pattern.front() == '/' || pattern.back() == '/' ||
      pattern.find("//") != std::string_view::npos) {
    return Fail(ErrorKind::kConfigInvalid,
                "repository pattern '" + std::string(pattern) + "' has an empty path component");
  }
  return {};
}

RepoSources::RepoSources(const std::vector<std::string>& hosted_patterns,
                         std::vector<MirroredRegistry> registries)
    : registries_(std::move(registries)) {
  for (const auto& p : hosted_patterns) {
    if (p != "*" && p.find('/') == std::string::npos) {
      patterns_.push_back("library/" + p);
    } else {
      patterns_.push_back(p);
    }
  }
}

RepoRoute RepoSources::Route(const RepoName& repo) const {
  RepoRoute route;
  const std::string& name = repo.str();
  for (const auto& p : patterns_) {
    if (MatchRepoPattern(p, name)) {
      route.source = RepoSource::kHosted;
      return route;
    }
  }
  size_t slash = name.find('/');
  std::string_view first = std::string_view(name).substr(0, slash);
  if (slash == std::string::npos || !IsRegistryHostName(first)) {
    route.remote = name;
    return route;
  }
  std::string_view rest = std::string_view(name).substr(slash + 1);
  for (size_t i = 0; i < registries_.size(); ++i) {
    const MirroredRegistry& r = registries_[i];
    if (r.name != first) continue;
    bool allowed = r.allow.empty();
    for (const auto& p : r.allow) allowed = allowed || MatchRepoPattern(p, rest);
    for (const auto& p : r.deny) allowed = allowed && !MatchRepoPattern(p, rest);
    if (!allowed) {
      route.source = RepoSource::kRefused;
      route.reason = "repository " + std::string(rest) + " of " + r.name +
                     " is not mirrored here (the registry's allow/deny rules)";
      return route;
    }
    route.upstream = i + 1;
    route.remote = std::string(rest);
    return route;
  }
  route.source = RepoSource::kRefused;
  route.reason = "registry " + std::string(first) + " is not mirrored here";
  return route;
}

const std::string& RepoSources::RegistryName(size_t upstream) const {
  static const std::string kDockerHub = kDockerHubRegistry;
  return upstream == 0 || upstream > registries_.size() ? kDockerHub
                                                        : registries_[upstream - 1].name;
}

std::string RepoSources::RegistryOf(const RepoName& repo) const {
  RepoRoute route = Route(repo);
  switch (route.source) {
    case RepoSource::kHosted:
      return "hosted";
    case RepoSource::kRefused:
      return "refused";
    case RepoSource::kMirrored:
      break;
  }
  return RegistryName(route.upstream);
}

Result<std::string> RepoSources::QualifyForNs(std::string_view ns, const std::string& raw) const {
  // containerd sends "docker.io" for Docker Hub's images, nothing else.
  std::string lower = ToLower(ns);
  if (lower == kDockerHubRegistry) return raw;
  for (const auto& r : registries_) {
    if (lower == r.name || lower == r.authority) return r.name + "/" + raw;
  }
  return Fail(ErrorKind::kNameUnknown,
              "registry " + std::string(ns) + " (ns=) is not mirrored here");
}

bool IsRegistryHostName(std::string_view name) {
  if (name == "localhost") return true;
  if (name.empty() || name.size() > 253 || name.find('.') == std::string_view::npos) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  // Labels of [a-z0-9] joined by single '.' or runs of '-'.
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (size_t i = 1; i < name.size(); ++i) {
    char c = name[i];
    if (alnum(c) || c == '-') continue;
    if (c == '.' && name[i - 1] != '.' && name[i - 1] != '-') continue;
    return false;
  }
  return name.find(".-") == std::string_view::npos;
}

bool MatchRepoPattern(std::string_view pattern, std::string_view name) {
  // Iterative glob with one backtrack point: linear in practice, no recursion.
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace hubcache
