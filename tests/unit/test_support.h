#pragma once
// The small helpers unit tests share: digests and names of test content, whole
// files in and out, counting. One home for each, so that no two test files
// carry their own copy (and a unity build sees each name once). Free functions,
// no state; safe from any thread.

#include <doctest/doctest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "registry/reference.h"

namespace hubcache::testing {

// The digest of the empty blob: a valid digest for tests that need any.
inline const std::string kEmptyDigest =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// The sha256 digest of `bytes`.
inline Digest DigestOf(std::string_view bytes) { return Digest::FromHex(Sha256::HexOf(bytes)); }

// A repository name the test knows is valid; fails the test when it is not.
inline RepoName Name(const std::string& raw) {
  auto name = RepoName::Parse(raw);
  REQUIRE_MESSAGE(name.has_value(), "not a repository name: " << raw);
  return *name;
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write " << path.string());
}

// The entries directly in `dir`.
inline size_t CountFiles(const std::filesystem::path& dir) {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    (void)entry;
    ++n;
  }
  return n;
}

// How often `needle` occurs in `haystack`, overlaps included.
inline size_t CountOccurrences(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

// A response's "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" line, in bytes.
inline constexpr size_t kDateLineBytes = 37;

// `responses` without the Date field of each response head, which must be
// well formed (IMF-fixdate): what is left can be compared byte for byte.
inline std::string WithoutDate(std::string responses) {
  static const std::regex date_line(
      "\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
      "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} "
      "GMT\r\n");
  return std::regex_replace(responses, date_line, "\r\n");
}

}  // namespace hubcache::testing
