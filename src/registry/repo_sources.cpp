#include "registry/repo_sources.h"

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

RepoSources::RepoSources(const std::vector<std::string>& hosted_patterns) {
  for (const auto& p : hosted_patterns) {
    if (p != "*" && p.find('/') == std::string::npos) {
      patterns_.push_back("library/" + p);
    } else {
      patterns_.push_back(p);
    }
  }
}

RepoSource RepoSources::Of(const RepoName& repo) const {
  for (const auto& p : patterns_) {
    if (MatchRepoPattern(p, repo.str())) return RepoSource::kHosted;
  }
  return RepoSource::kMirrored;
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
