#pragma once
// Parsing of a single-range "Range: bytes=..." header (RFC 9110) against a
// known entity size. Multiple ranges are not served: they answer the full body.

#include <cstdint>
#include <optional>
#include <string_view>

namespace hubcache {

struct ByteRange {
  uint64_t first;  // inclusive
  uint64_t last;   // inclusive
  uint64_t length() const { return last - first + 1; }
  bool operator==(const ByteRange&) const = default;
};

enum class RangeOutcome {
  kNone,           // no Range header, a multi-range or a malformed one: send 200
  kSatisfiable,    // send 206 with the range
  kUnsatisfiable,  // send 416 with "Content-Range: bytes */size"
};

struct RangeRequest {
  RangeOutcome outcome = RangeOutcome::kNone;
  ByteRange range{0, 0};
};

// size_bytes is the full entity size. Syntax errors yield kNone, as RFC 9110
// tells servers to ignore a Range they cannot parse.
RangeRequest ParseRange(std::string_view header, uint64_t size_bytes);

}  // namespace hubcache
