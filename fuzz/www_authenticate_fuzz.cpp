// WWW-Authenticate from an upstream (or anything claiming to be one): parse,
// pick, and check that what was parsed is well-formed and survives a round trip
// through a canonical serialisation (quoted values, escaped quotes/backslashes).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "upstream/www_authenticate.h"

namespace hubcache {
namespace {

bool IsLower(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return false;
  }
  return true;
}

std::string Quote(std::string_view value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string Serialise(const std::vector<AuthChallenge>& challenges) {
  std::string out;
  for (const auto& c : challenges) {
    if (!out.empty()) out += ", ";
    out += c.scheme;
    bool first = true;
    for (const auto& [name, value] : c.params) {
      out += first ? " " : ", ";
      first = false;
      out += name + "=" + Quote(value);
    }
  }
  return out;
}

bool SameChallenges(const std::vector<AuthChallenge>& a, const std::vector<AuthChallenge>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].scheme != b[i].scheme || a[i].params != b[i].params) return false;
  }
  return true;
}

}  // namespace
}  // namespace hubcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  std::string_view header = fuzz::AsView(data, size);
  auto challenges = ParseWwwAuthenticate(header);
  for (const auto& c : challenges) {
    FUZZ_CHECK(!c.scheme.empty() && IsLower(c.scheme));
    FUZZ_CHECK(c.scheme.find_first_of(" \t,=\"") == std::string::npos);
    for (const auto& [name, value] : c.params) {
      FUZZ_CHECK(!name.empty() && IsLower(name));
      FUZZ_CHECK(name.find_first_of(" \t,=\"") == std::string::npos);
    }
  }
  auto again = ParseWwwAuthenticate(Serialise(challenges));
  FUZZ_CHECK(SameChallenges(challenges, again));

  auto picked = PickChallenge(header);
  if (picked) {
    FUZZ_CHECK((picked->scheme == "bearer" && !picked->Param("realm").empty()) ||
               picked->scheme == "basic");
  }
  return 0;
}
