#include "registry/pagination.h"

#include <algorithm>
#include <charconv>

namespace hubcache {
namespace {

constexpr size_t kMaxPageSize = 10000;

}  // namespace

Result<PageRequest> ParsePageRequest(const std::string& n, bool has_n, const std::string& last) {
  PageRequest request;
  request.last = last;
  if (has_n) {
    size_t value = 0;
    auto [ptr, ec] = std::from_chars(n.data(), n.data() + n.size(), value);
    if (n.empty() || ec != std::errc() || ptr != n.data() + n.size()) {
      return Fail(ErrorKind::kPaginationInvalid, "n must be a non-negative integer");
    }
    request.n = std::min(value, kMaxPageSize);
  }
  return request;
}

Page Paginate(const std::vector<std::string>& sorted, const PageRequest& request) {
  Page page;
  auto begin = request.last.empty() ? sorted.begin()
                                    : std::upper_bound(sorted.begin(), sorted.end(), request.last);
  size_t remaining = static_cast<size_t>(sorted.end() - begin);
  size_t take = request.n ? std::min(*request.n, remaining) : remaining;
  page.items.assign(begin, begin + static_cast<std::ptrdiff_t>(take));
  page.has_more = request.n && *request.n > 0 && take < remaining;
  return page;
}

std::string NextPageLink(const std::string& path, size_t n, const std::string& last) {
  return "<" + path + "?n=" + std::to_string(n) + "&last=" + last + ">; rel=\"next\"";
}

}  // namespace hubcache
