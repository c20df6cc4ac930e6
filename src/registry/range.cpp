#include "registry/range.h"

#include "common/strings.h"

#include <charconv>

namespace hubcache {
namespace {

std::optional<uint64_t> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return value;
}

}  // namespace

RangeRequest ParseRange(std::string_view header, uint64_t size_bytes) {
  RangeRequest none;
  header = TrimSpaces(header);
  constexpr std::string_view kPrefix = "bytes=";
  if (ToLower(header.substr(0, kPrefix.size())) != kPrefix)
    return none;  // units are case-insensitive
  std::string_view spec = TrimSpaces(header.substr(kPrefix.size()));
  if (spec.find(',') != std::string_view::npos) return none;  // multi-range: full body
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return none;
  std::string_view first_s = TrimSpaces(spec.substr(0, dash));
  std::string_view last_s = TrimSpaces(spec.substr(dash + 1));

  RangeRequest result;
  if (first_s.empty()) {
    // Suffix range: the last N bytes.
    auto suffix = ParseNumber(last_s);
    if (!suffix) return none;
    if (*suffix == 0 || size_bytes == 0) {
      result.outcome = RangeOutcome::kUnsatisfiable;
      return result;
    }
    uint64_t n = *suffix > size_bytes ? size_bytes : *suffix;
    result.outcome = RangeOutcome::kSatisfiable;
    result.range = {size_bytes - n, size_bytes - 1};
    return result;
  }
  auto first = ParseNumber(first_s);
  if (!first) return none;
  uint64_t last = size_bytes == 0 ? 0 : size_bytes - 1;
  if (!last_s.empty()) {
    auto parsed = ParseNumber(last_s);
    if (!parsed || *parsed < *first) return none;
    if (*parsed < last) last = *parsed;
  }
  if (*first >= size_bytes) {
    result.outcome = RangeOutcome::kUnsatisfiable;
    return result;
  }
  result.outcome = RangeOutcome::kSatisfiable;
  result.range = {*first, last};
  return result;
}

}  // namespace hubcache
