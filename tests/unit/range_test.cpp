#include "registry/range.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

TEST_CASE("ParseRange") {
  constexpr auto kNone = RangeOutcome::kNone;
  constexpr auto kOk = RangeOutcome::kSatisfiable;
  constexpr auto kBad = RangeOutcome::kUnsatisfiable;
  struct Case {
    std::string header;
    uint64_t size;
    RangeOutcome outcome;
    uint64_t first = 0;  // checked only when satisfiable
    uint64_t last = 0;
  };
  const std::vector<Case> cases = {
      // Plain first-last.
      {"bytes=0-99", 1000, kOk, 0, 99},
      {"bytes=0-0", 1000, kOk, 0, 0},
      {"bytes=0-0", 1, kOk, 0, 0},
      {"bytes=5-5", 1000, kOk, 5, 5},
      {"bytes=100-199", 1000, kOk, 100, 199},
      {"bytes=0-999", 1000, kOk, 0, 999},
      {"bytes=999-999", 1000, kOk, 999, 999},
      // Open-ended.
      {"bytes=100-", 1000, kOk, 100, 999},
      {"bytes=0-", 1000, kOk, 0, 999},
      {"bytes=999-", 1000, kOk, 999, 999},
      // Suffix: the last N bytes.
      {"bytes=-500", 1000, kOk, 500, 999},
      {"bytes=-1", 1000, kOk, 999, 999},
      {"bytes=-1000", 1000, kOk, 0, 999},
      {"bytes=-1001", 1000, kOk, 0, 999},  // larger than the entity: all of it
      {"bytes=-9999999999", 1000, kOk, 0, 999},
      {"bytes=-0", 1000, kBad},
      // A last beyond the end is clamped.
      {"bytes=0-1000", 1000, kOk, 0, 999},
      {"bytes=500-99999", 1000, kOk, 500, 999},
      {"bytes=0-9999999999999999999", 1000, kOk, 0, 999},
      // A first at or beyond the end cannot be satisfied.
      {"bytes=1000-", 1000, kBad},
      {"bytes=1000-1000", 1000, kBad},
      {"bytes=1001-2000", 1000, kBad},
      {"bytes=5000-", 1000, kBad},
      // An empty entity satisfies no range.
      {"bytes=0-", 0, kBad},
      {"bytes=0-0", 0, kBad},
      {"bytes=0-99", 0, kBad},
      {"bytes=-1", 0, kBad},
      {"bytes=-500", 0, kBad},
      // last < first is syntactically invalid: ignore the header.
      {"bytes=100-99", 1000, kNone},
      {"bytes=5-0", 1000, kNone},
      // Several ranges are answered with the full body.
      {"bytes=0-99,200-299", 1000, kNone},
      {"bytes=0-99, 200-299", 1000, kNone},
      {"bytes=-1,0-0", 1000, kNone},
      {"bytes=0-,", 1000, kNone},
      // Junk.
      {"", 1000, kNone},
      {"bytes", 1000, kNone},
      {"bytes=", 1000, kNone},
      {"bytes=-", 1000, kNone},
      {"bytes=abc", 1000, kNone},
      {"bytes=a-b", 1000, kNone},
      {"bytes=5", 1000, kNone},
      {"bytes=1-2-3", 1000, kNone},
      {"bytes=--5", 1000, kNone},
      {"bytes=+5-10", 1000, kNone},
      {"bytes=5-+10", 1000, kNone},
      {"bytes=0x10-", 1000, kNone},
      {"bytes=1.5-2", 1000, kNone},
      {"bytes=-5-", 1000, kNone},
      {"bytes 0-99", 1000, kNone},
      {"bytes:0-99", 1000, kNone},
      {"items=0-99", 1000, kNone},
      {"0-99", 1000, kNone},
      {"=0-99", 1000, kNone},
      {"bytes=99999999999999999999-", 1000, kNone},  // does not fit in 64 bits
      {"bytes=-99999999999999999999", 1000, kNone},
      {std::string("bytes=0\0-9", 9), 1000, kNone},
      // Range units are case-insensitive (RFC 9110 section 14.1).
      {"Bytes=0-9", 1000, kOk, 0, 9},
      {"BYTES=0-9", 1000, kOk, 0, 9},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    CAPTURE(c.size);
    auto got = ParseRange(c.header, c.size);
    CHECK(got.outcome == c.outcome);
    if (c.outcome == kOk && got.outcome == kOk) {
      CHECK(got.range.first == c.first);
      CHECK(got.range.last == c.last);
      CHECK(got.range.length() == c.last - c.first + 1);
      CHECK(got.range.last < c.size);
    }
  }
}

TEST_CASE("ParseRange: large entities") {
  const uint64_t five_gib = uint64_t{5} << 30;
  auto tail = ParseRange("bytes=-1048576", five_gib);
  REQUIRE(tail.outcome == RangeOutcome::kSatisfiable);
  CHECK(tail.range == ByteRange{five_gib - 1048576, five_gib - 1});
  CHECK(tail.range.length() == 1048576u);

  auto resume = ParseRange("bytes=4294967296-", five_gib);
  REQUIRE(resume.outcome == RangeOutcome::kSatisfiable);
  CHECK(resume.range == ByteRange{uint64_t{1} << 32, five_gib - 1});
  CHECK(resume.range.length() == five_gib - (uint64_t{1} << 32));
}

TEST_CASE("ParseRange: surrounding whitespace is tolerated") {
  auto got = ParseRange("  bytes=0-9  ", 100);
  REQUIRE(got.outcome == RangeOutcome::kSatisfiable);
  CHECK(got.range == ByteRange{0, 9});
}

}  // namespace
}  // namespace hubcache
