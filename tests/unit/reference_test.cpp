#include "registry/reference.h"

#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <variant>
#include <vector>

namespace hubcache {
namespace {

// sha256 of the empty string: a real, valid digest.
const std::string kEmptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string Repeat(char c, size_t n) { return std::string(n, c); }

TEST_CASE("RepoName::Parse accepts the distribution grammar and normalises library/") {
  struct Case {
    std::string input;
    std::string normalised;
  };
  const std::vector<Case> cases = {
      {"alpine", "library/alpine"},
      {"library/alpine", "library/alpine"},
      {"bitnami/redis", "bitnami/redis"},
      {"a/b/c", "a/b/c"},
      {"a/b/c/d/e", "a/b/c/d/e"},
      {"foo-bar", "library/foo-bar"},
      {"foo--bar", "library/foo--bar"},
      {"foo---bar", "library/foo---bar"},
      {"foo__bar", "library/foo__bar"},
      {"foo_bar", "library/foo_bar"},
      {"foo.bar", "library/foo.bar"},
      {"a0", "library/a0"},
      {"a", "library/a"},
      {"0", "library/0"},
      {"a.b.c", "library/a.b.c"},
      {"a-b_c.d__e", "library/a-b_c.d__e"},
      {"my-org/my.app_v2", "my-org/my.app_v2"},
      {"grafana/grafana-oss", "grafana/grafana-oss"},
      {"library/library", "library/library"},
      {"manifests/blobs", "manifests/blobs"},
      // 255 characters in total, the limit.
      {Repeat('a', 100) + "/" + Repeat('b', 154), Repeat('a', 100) + "/" + Repeat('b', 154)},
      // A single component of 247 becomes exactly 255 with "library/".
      {Repeat('a', 247), "library/" + Repeat('a', 247)},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto name = RepoName::Parse(c.input);
    REQUIRE(name.has_value());
    CHECK(name->str() == c.normalised);
  }
}

TEST_CASE("RepoName::Parse rejects names outside the grammar with NAME_INVALID") {
  const std::vector<std::string> cases = {
      "",
      "UPPER",
      "Alpine",
      "library/Alpine",
      "-a",
      "a-",
      "_a",
      "a_",
      ".a",
      "a.",
      "a..b",
      "a___b",
      "a.-b",
      "a-.b",
      "a._b",
      "a_.b",
      "a_-b",
      "../etc",
      "..",
      ".",
      "a/../b",
      "a/./b",
      "a//b",
      "/a",
      "a/",
      "/",
      "//",
      "a b",
      " a",
      "a ",
      "a\tb",
      "a\nb",
      "a:b",
      "a@b",
      "a\\b",
      "a+b",
      "a%2fb",
      "a%2Fb",
      "caf\xc3\xa9",
      std::string("a\0b", 3),
      Repeat('a', 256),
      Repeat('a', 100) + "/" + Repeat('b', 155),  // 256 with a slash
      Repeat('a', 248),                           // 256 once "library/" is added
  };
  for (const auto& input : cases) {
    CAPTURE(input);
    auto name = RepoName::Parse(input);
    REQUIRE_FALSE(name.has_value());
    CHECK(name.error().kind == ErrorKind::kNameInvalid);
    CHECK_FALSE(name.error().message.empty());
  }
}

TEST_CASE("RepoName: a short name and its library/ form are the same repository") {
  auto a = RepoName::Parse("alpine");
  auto b = RepoName::Parse("library/alpine");
  auto c = RepoName::Parse("bitnami/alpine");
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(*a == *b);
  CHECK_FALSE(*a == *c);
  CHECK(*c < *a);
}

TEST_CASE("Tag::Parse") {
  struct Case {
    std::string input;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"latest", true},
      {"3.19", true},
      {"v1.2.3", true},
      {"1", true},
      {"X", true},
      {"UPPER-case_Mixed.9", true},
      {"_x", true},
      {"__", true},
      {"a-", true},
      {"a.", true},
      {"a..b", true},
      {"sha256-abc", true},
      {Repeat('a', 128), true},
      {"_" + Repeat('a', 127), true},
      {Repeat('a', 129), false},
      {"", false},
      {"-x", false},
      {".x", false},
      {"a:b", false},
      {"a/b", false},
      {"a b", false},
      {" a", false},
      {"a+b", false},
      {"a@b", false},
      {"a%20b", false},
      {"caf\xc3\xa9", false},
      {std::string("a\0b", 3), false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto tag = Tag::Parse(c.input);
    REQUIRE(tag.has_value() == c.valid);
    if (c.valid) {
      CHECK(tag->str() == c.input);
    } else {
      CHECK(tag.error().kind == ErrorKind::kTagInvalid);
    }
  }
}

TEST_CASE("Digest::Parse accepts only sha256 with 64 lower-case hex characters") {
  auto ok = Digest::Parse("sha256:" + kEmptyHex);
  REQUIRE(ok.has_value());
  CHECK(ok->hex() == kEmptyHex);
  CHECK(ok->str() == "sha256:" + kEmptyHex);
  CHECK(*ok == Digest::FromHex(kEmptyHex));

  auto all_digits = Digest::Parse("sha256:" + Repeat('0', 64));
  REQUIRE(all_digits.has_value());
  CHECK(all_digits->hex() == Repeat('0', 64));
  CHECK(Digest::Parse("sha256:" + Repeat('f', 64)).has_value());

  std::string upper = kEmptyHex;
  for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  std::string one_upper = kEmptyHex;
  one_upper[10] = 'C';

  const std::vector<std::string> invalid = {
      "",
      ":",
      "sha256",
      "sha256:",
      "sha256" + kEmptyHex,                       // missing colon
      kEmptyHex,                                  // no algorithm at all
      ":" + kEmptyHex,                            // empty algorithm
      "sha256:" + upper,                          // uppercase
      "sha256:" + one_upper,                      // a single uppercase letter
      "SHA256:" + kEmptyHex,                      // algorithm is case-sensitive
      "sha256:" + kEmptyHex.substr(0, 63),        // short
      "sha256:" + kEmptyHex + "0",                // long
      "sha256:" + kEmptyHex.substr(0, 63) + "g",  // non-hex
      "sha256:" + kEmptyHex.substr(0, 63) + "/",
      "sha256:" + kEmptyHex.substr(0, 62) + "..",
      "sha256:../../../../etc/passwd",
      "sha256: " + kEmptyHex.substr(0, 63),
      "sha256:" + kEmptyHex + " ",
      "sha256::" + kEmptyHex.substr(0, 63),
      "sha512:" + kEmptyHex + kEmptyHex,  // unsupported algorithm
      "sha384:" + Repeat('a', 96),
      "md5:d41d8cd98f00b204e9800998ecf8427e",
      "sha256+b64:" + kEmptyHex,
      "sha256:" + std::string(kEmptyHex.substr(0, 63)) + std::string(1, '\0'),
  };
  for (const auto& input : invalid) {
    CAPTURE(input);
    auto digest = Digest::Parse(input);
    REQUIRE_FALSE(digest.has_value());
    CHECK(digest.error().kind == ErrorKind::kDigestInvalid);
  }
}

TEST_CASE("Digest ordering and equality follow the hex") {
  auto a = Digest::Parse("sha256:" + Repeat('0', 64));
  auto b = Digest::Parse("sha256:" + Repeat('1', 64));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a < *b);
  CHECK_FALSE(*a == *b);
  CHECK(*a == Digest::FromHex(Repeat('0', 64)));
}

TEST_CASE("ParseReference tells tags from digests") {
  struct Case {
    std::string input;
    enum { kTag, kDigest, kError } want;
    ErrorKind error = ErrorKind::kInternal;
  };
  const std::vector<Case> cases = {
      {"latest", Case::kTag},
      {"3.19.1", Case::kTag},
      {"_x", Case::kTag},
      {Repeat('t', 128), Case::kTag},
      {"sha256:" + kEmptyHex, Case::kDigest},
      {"sha256:" + Repeat('a', 64), Case::kDigest},
      // Looks like a digest (has a colon): digest errors.
      {"sha256:" + kEmptyHex.substr(0, 63), Case::kError, ErrorKind::kDigestInvalid},
      {"sha256:XYZ", Case::kError, ErrorKind::kDigestInvalid},
      {"sha512:" + kEmptyHex + kEmptyHex, Case::kError, ErrorKind::kDigestInvalid},
      {"a:b", Case::kError, ErrorKind::kDigestInvalid},
      {":", Case::kError, ErrorKind::kDigestInvalid},
      // Neither a tag nor a digest: no manifest can exist under it (404, not 400).
      {"", Case::kError, ErrorKind::kManifestUnknown},
      {"-x", Case::kError, ErrorKind::kManifestUnknown},
      {".x", Case::kError, ErrorKind::kManifestUnknown},
      {Repeat('t', 129), Case::kError, ErrorKind::kManifestUnknown},
      {"a b", Case::kError, ErrorKind::kManifestUnknown},
      {"a/b", Case::kError, ErrorKind::kManifestUnknown},
      {"a@b", Case::kError, ErrorKind::kManifestUnknown},
      {"..", Case::kError, ErrorKind::kManifestUnknown},
      {".INVALID_MANIFEST_NAME", Case::kError, ErrorKind::kManifestUnknown},  // OCI conformance
  };
  for (const auto& c : cases) {
    CAPTURE(c.input);
    auto ref = ParseReference(c.input);
    switch (c.want) {
      case Case::kTag:
        REQUIRE(ref.has_value());
        REQUIRE(std::holds_alternative<Tag>(*ref));
        CHECK(std::get<Tag>(*ref).str() == c.input);
        CHECK(ReferenceString(*ref) == c.input);
        break;
      case Case::kDigest:
        REQUIRE(ref.has_value());
        REQUIRE(std::holds_alternative<Digest>(*ref));
        CHECK(std::get<Digest>(*ref).str() == c.input);
        CHECK(ReferenceString(*ref) == c.input);
        break;
      case Case::kError:
        REQUIRE_FALSE(ref.has_value());
        CHECK(ref.error().kind == c.error);
        break;
    }
  }
}

TEST_CASE("ParseWrittenReference: a PUT under what is no tag is the client's TAG_INVALID") {
  for (std::string bad : {std::string(), std::string("-x"), std::string(".x"), Repeat('t', 129),
                          std::string("a b"), std::string(".."), std::string("a@b")}) {
    CAPTURE(bad);
    auto ref = ParseWrittenReference(bad);
    REQUIRE_FALSE(ref.has_value());
    CHECK(ref.error().kind == ErrorKind::kTagInvalid);
  }
  auto tag = ParseWrittenReference("v1.2_rc-3");
  REQUIRE(tag.has_value());
  CHECK(std::get<Tag>(*tag).str() == "v1.2_rc-3");
  auto digest = ParseWrittenReference("sha256:" + kEmptyHex);
  REQUIRE(digest.has_value());
  CHECK(std::holds_alternative<Digest>(*digest));
  auto bad_digest = ParseWrittenReference("sha256:XYZ");
  REQUIRE_FALSE(bad_digest.has_value());
  CHECK(bad_digest.error().kind == ErrorKind::kDigestInvalid);
}

}  // namespace
}  // namespace hubcache
