#pragma once
// The n/last pagination of /v2/_catalog and /v2/<name>/tags/list: items after
// `last` in lexical order, at most n of them, and whether a next page exists.

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace hubcache {

struct PageRequest {
  std::optional<size_t> n;  // absent = everything
  std::string last;         // exclusive start; empty = from the beginning
};

struct Page {
  std::vector<std::string> items;
  bool has_more = false;  // when true, a Link to the next page is due
};

// Parses the raw n and last query values. n must be a non-negative integer.
[[nodiscard]] Result<PageRequest> ParsePageRequest(const std::string& n, bool has_n,
                                                   const std::string& last);

// `sorted` must be sorted and unique.
Page Paginate(const std::vector<std::string>& sorted, const PageRequest& request);

// The Link header value for the next page of `path` ("/v2/_catalog").
std::string NextPageLink(const std::string& path, size_t n, const std::string& last);

}  // namespace hubcache
