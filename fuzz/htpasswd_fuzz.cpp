// htpasswd content as an operator (or an attacker who can write the file) may
// leave it: every line is either an entry, a skipped blank/comment line, or a
// reported problem; entries are well-formed bcrypt users.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/htpasswd.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  std::string_view content = fuzz::AsView(data, size);
  HtpasswdParse parsed = ParseHtpasswd(content);
  size_t lines = fuzz::SplitLines(content).size();
  FUZZ_CHECK(parsed.entries.size() + parsed.problems.size() <= lines);
  for (const auto& e : parsed.entries) {
    FUZZ_CHECK(!e.user.empty());
    FUZZ_CHECK(e.user.find_first_of(":\n") == std::string::npos);
    FUZZ_CHECK(e.hash.size() == 60 && e.hash.rfind("$2", 0) == 0);
    FUZZ_CHECK(e.hash.find('\n') == std::string::npos);
    // Lines are trimmed as the CNCF registry trims them.
    constexpr std::string_view kSpace = " \t\r\v\f";
    FUZZ_CHECK(kSpace.find(e.user.front()) == std::string_view::npos);
    FUZZ_CHECK(kSpace.find(e.hash.back()) == std::string_view::npos);
  }
  for (const auto& p : parsed.problems) {
    FUZZ_CHECK(p.rfind("line ", 0) == 0 && p.find('\n') == std::string::npos);
  }
  return 0;
}
