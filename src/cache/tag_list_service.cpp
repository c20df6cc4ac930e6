#include "cache/tag_list_service.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "cache/upstream_errors.h"
#include "common/clock.h"
#include "common/log.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

constexpr int kMaxPages = 100;
constexpr size_t kMaxPageBytes = 8 * 1024 * 1024;

// The target of a `Link: <...>; rel="next"` header, or "".
std::string NextLink(const std::string& link) {
  if (link.find("rel=\"next\"") == std::string::npos) return "";
  size_t open = link.find('<');
  size_t close = link.find('>', open);
  if (open == std::string::npos || close == std::string::npos) return "";
  std::string target = link.substr(open + 1, close - open - 1);
  // Only a path on the upstream itself, never another host.
  if (target.rfind("/v2/", 0) != 0) return "";
  if (target.find_first_of("\r\n") != std::string::npos) return "";
  return target;
}

std::vector<std::string> ParseTags(const std::string& json) {
  std::vector<std::string> tags;
  auto doc = nlohmann::json::parse(json, nullptr, false);
  if (!doc.is_object() || !doc.contains("tags") || !doc["tags"].is_array()) return tags;
  for (const auto& t : doc["tags"]) {
    if (t.is_string()) tags.push_back(t.get<std::string>());
  }
  return tags;
}

}  // namespace

Result<std::vector<std::string>> TagListService::Tags(const RepoName& repo) {
  return flights_.Do("tags|" + repo.str(), [&]() -> Result<std::vector<std::string>> {
    auto fetched = FetchUpstream(repo);
    if (fetched) return fetched;
    if (!AllowsStaleServe(fetched.error())) return fetched;
    auto cached = index_.GetTagList(repo.str());
    if (!cached || !*cached) return fetched;
    ++stats_.stale_serves;
    Logger("cache")->warn("serving cached tag list repo={} reason=\"{}\"", repo.str(),
                          fetched.error().message);
    return ParseTags(**cached);
  });
}

Result<std::vector<std::string>> TagListService::FetchUpstream(const RepoName& repo) {
  std::vector<std::string> tags;
  std::string path = TagsListPath(repo);
  for (int page = 0; page < kMaxPages && !path.empty(); ++page) {
    auto response =
        ExpectOk(upstream_.Fetch("GET", &repo, path, {"Accept: application/json"}, kMaxPageBytes),
                 ErrorKind::kNameUnknown, repo.str() + " tags", stats_);
    if (!response) return tl::unexpected(response.error());
    auto page_tags = ParseTags(response->body);
    tags.insert(tags.end(), page_tags.begin(), page_tags.end());
    path = NextLink(response->Header("link"));
  }
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  nlohmann::json doc = {{"name", repo.str()}, {"tags", tags}};
  if (auto s = index_.PutTagList(repo.str(), doc.dump(), UnixNowMs()); !s) {
    Logger("cache")->warn("tag list not cached repo={} error=\"{}\"", repo.str(),
                          s.error().message);
  }
  return tags;
}

Result<std::vector<std::string>> TagListService::Catalog() { return index_.Repositories(); }

}  // namespace hubcache
