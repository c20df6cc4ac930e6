#include "common/http_date.h"

#include <cstdio>

namespace hubcache {

std::string HttpDate(std::time_t unix_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  if (gmtime_r(&unix_seconds, &tm) == nullptr || tm.tm_year + 1900 > 9999 ||
      tm.tm_year + 1900 < 0) {
    return "Thu, 01 Jan 1970 00:00:00 GMT";
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return text;
}

const std::string& HttpDateNow() {
  thread_local std::time_t second = -1;
  thread_local std::string text;
  const std::time_t now = std::time(nullptr);
  if (now != second) {
    second = now;
    text = HttpDate(now);
  }
  return text;
}

}  // namespace hubcache
