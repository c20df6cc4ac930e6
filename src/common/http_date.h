#pragma once
// HTTP's date format (RFC 9110 section 5.6.7, IMF-fixdate), as in the Date
// field every response carries: "Sun, 06 Nov 1994 08:49:37 GMT". Formatted
// by hand, not by strftime, so no locale can change it.

#include <ctime>
#include <string>

namespace hubcache {

std::string HttpDate(std::time_t unix_seconds);

// The current second's HttpDate, formatted once per second per thread.
const std::string& HttpDateNow();

}  // namespace hubcache
