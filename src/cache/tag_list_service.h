#pragma once
// GET /v2/<name>/tags/list and /v2/_catalog. Tags come from the upstream first
// (all pages, merged and sorted) and from the last cached copy when the upstream
// fails; the catalog lists what this cache holds.
// Thread-safe: any number of requests at once (one upstream fetch per
// repository at a time, SingleFlight). Borrows the upstreams, the index and the
// stats, which outlive it (Mirror owns them all).

#include <string>
#include <vector>

#include "cache/stats.h"
#include "common/result.h"
#include "common/single_flight.h"
#include "index/index_db.h"
#include "registry/reference.h"
#include "upstream/upstream_set.h"

namespace hubcache {

class TagListService {
 public:
  TagListService(UpstreamSet& upstream, IndexDb& index, CacheStats& stats)
      : upstream_(upstream), index_(index), stats_(stats) {}

  // All tags of `repo`, sorted and unique.
  [[nodiscard]] Result<std::vector<std::string>> Tags(const RepoName& repo);
  // All cached repositories, sorted.
  [[nodiscard]] Result<std::vector<std::string>> Catalog();

 private:
  Result<std::vector<std::string>> FetchUpstream(const RepoName& repo);

  UpstreamSet& upstream_;
  IndexDb& index_;
  CacheStats& stats_;
  SingleFlight<Result<std::vector<std::string>>> flights_;
};

}  // namespace hubcache
