#include "common/http_date.h"

#include <doctest/doctest.h>

#include <ctime>

namespace hubcache {
namespace {

TEST_CASE("HttpDate: IMF-fixdate, in GMT, whatever the locale") {
  CHECK(HttpDate(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's example
  CHECK(HttpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(HttpDate(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
  CHECK(HttpDate(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("HttpDateNow: the current second") {
  const std::time_t before = std::time(nullptr);
  const std::string now = HttpDateNow();
  const std::time_t after = std::time(nullptr);
  CHECK((now == HttpDate(before) || now == HttpDate(after)));
  CHECK(&HttpDateNow() == &HttpDateNow());  // formatted once per second, per thread
}

}  // namespace
}  // namespace hubcache
