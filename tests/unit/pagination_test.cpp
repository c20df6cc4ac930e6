#include "registry/pagination.h"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

namespace hubcache {
namespace {

using Items = std::vector<std::string>;

TEST_CASE("ParsePageRequest") {
  struct Case {
    std::string n;
    bool has_n;
    std::string last;
    bool valid;
    std::optional<size_t> want_n;
  };
  const std::vector<Case> cases = {
      {"", false, "", true, std::nullopt},
      {"ignored", false, "", true, std::nullopt},  // n absent: its text does not matter
      {"", false, "library/alpine", true, std::nullopt},
      {"0", true, "", true, 0},
      {"1", true, "", true, 1},
      {"100", true, "b", true, 100},
      {"007", true, "", true, 7},
      {"10000", true, "", true, 10000},
      {"10001", true, "", true, 10000},  // capped
      {"4294967296", true, "", true, 10000},
      {"", true, "", false, std::nullopt},
      {"-1", true, "", false, std::nullopt},
      {"+1", true, "", false, std::nullopt},
      {"abc", true, "", false, std::nullopt},
      {"1a", true, "", false, std::nullopt},
      {"1.5", true, "", false, std::nullopt},
      {" 1", true, "", false, std::nullopt},
      {"1 ", true, "", false, std::nullopt},
      {"0x10", true, "", false, std::nullopt},
      {"1e3", true, "", false, std::nullopt},
      {"99999999999999999999999999", true, "", false, std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.n);
    CAPTURE(c.has_n);
    auto got = ParsePageRequest(c.n, c.has_n, c.last);
    REQUIRE(got.has_value() == c.valid);
    if (c.valid) {
      CHECK(got->n == c.want_n);
      CHECK(got->last == c.last);
    } else {
      CHECK(got.error().kind == ErrorKind::kPaginationInvalid);
    }
  }
}

TEST_CASE("Paginate") {
  const Items sorted = {"a", "b", "c", "d", "e"};
  struct Case {
    const char* name;
    std::optional<size_t> n;
    std::string last;
    Items items;
    bool has_more;
  };
  const std::vector<Case> cases = {
      {"everything", std::nullopt, "", {"a", "b", "c", "d", "e"}, false},
      {"first page", 2, "", {"a", "b"}, true},
      {"second page", 2, "b", {"c", "d"}, true},
      {"last page, short", 2, "d", {"e"}, false},
      {"page ends exactly at the end", 2, "c", {"d", "e"}, false},
      {"n equals the size", 5, "", {"a", "b", "c", "d", "e"}, false},
      {"n larger than the size", 50, "", {"a", "b", "c", "d", "e"}, false},
      {"n=1", 1, "", {"a"}, true},
      {"n=0 is empty with no next page", 0, "", {}, false},
      {"n=0 after last", 0, "b", {}, false},
      {"last is the final item", 2, "e", {}, false},
      {"last beyond every item", 2, "zzz", {}, false},
      {"last before every item", 2, "0", {"a", "b"}, true},
      {"last between items", 2, "bb", {"c", "d"}, true},
      {"no n, after last", std::nullopt, "c", {"d", "e"}, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    PageRequest request;
    request.n = c.n;
    request.last = c.last;
    auto page = Paginate(sorted, request);
    CHECK(page.items == c.items);
    CHECK(page.has_more == c.has_more);
  }
}

TEST_CASE("Paginate: walking every page visits every item once") {
  Items sorted;
  for (int i = 0; i < 103; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "repo%03d", i);
    sorted.push_back(name);
  }
  for (size_t n : {1u, 2u, 7u, 10u, 103u, 104u}) {
    CAPTURE(n);
    Items seen;
    PageRequest request{n, ""};
    int pages = 0;
    while (true) {
      auto page = Paginate(sorted, request);
      seen.insert(seen.end(), page.items.begin(), page.items.end());
      ++pages;
      REQUIRE(pages <= 200);
      if (!page.has_more) break;
      REQUIRE_FALSE(page.items.empty());
      request.last = page.items.back();
    }
    CHECK(seen == sorted);
  }
}

TEST_CASE("Paginate: empty list") {
  PageRequest request{10, ""};
  auto page = Paginate({}, request);
  CHECK(page.items.empty());
  CHECK_FALSE(page.has_more);
  auto all = Paginate({}, PageRequest{});
  CHECK(all.items.empty());
  CHECK_FALSE(all.has_more);
}

TEST_CASE("NextPageLink") {
  struct Case {
    std::string path;
    size_t n;
    std::string last;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"/v2/_catalog", 2, "b", R"(</v2/_catalog?n=2&last=b>; rel="next")"},
      {"/v2/_catalog", 100, "library/alpine",
       R"(</v2/_catalog?n=100&last=library/alpine>; rel="next")"},
      {"/v2/library/alpine/tags/list", 10, "3.19",
       R"(</v2/library/alpine/tags/list?n=10&last=3.19>; rel="next")"},
      {"/v2/bitnami/redis/tags/list", 1, "7.2.4-debian-12-r0",
       R"(</v2/bitnami/redis/tags/list?n=1&last=7.2.4-debian-12-r0>; rel="next")"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.last);
    CHECK(NextPageLink(c.path, c.n, c.last) == c.want);
  }
}

}  // namespace
}  // namespace hubcache
