// Range headers against an entity size. The input is "<size>\n<header>": the
// size in decimal on the first line (readable seeds), the header after it.
// Whatever the header, a satisfiable range must lie inside the entity.

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/strings.h"
#include "fuzz_check.h"
#include "registry/range.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  std::string_view input = fuzz::AsView(data, size);
  size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  std::string_view size_text = input.substr(0, newline);
  uint64_t entity_bytes = 0;
  auto [ptr, ec] =
      std::from_chars(size_text.data(), size_text.data() + size_text.size(), entity_bytes);
  if (ec != std::errc() || ptr != size_text.data() + size_text.size()) return 0;
  std::string_view header = input.substr(newline + 1);

  RangeRequest r = ParseRange(header, entity_bytes);
  switch (r.outcome) {
    case RangeOutcome::kSatisfiable:
      FUZZ_CHECK(entity_bytes > 0);
      FUZZ_CHECK(r.range.first <= r.range.last);
      FUZZ_CHECK(r.range.last < entity_bytes);
      FUZZ_CHECK(r.range.length() >= 1 && r.range.length() <= entity_bytes);
      break;
    case RangeOutcome::kUnsatisfiable:
      // Only a syntactically valid single range in bytes can be unsatisfiable.
      FUZZ_CHECK(ToLower(TrimSpaces(header).substr(0, 6)) == "bytes=");
      FUZZ_CHECK(header.find(',') == std::string_view::npos);
      break;
    case RangeOutcome::kNone:
      FUZZ_CHECK(r.range == (ByteRange{0, 0}));
      break;
  }
  return 0;
}
