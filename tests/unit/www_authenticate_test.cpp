#include "upstream/www_authenticate.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

namespace hubcache {
namespace {

using Params = std::map<std::string, std::string>;

struct Expected {
  std::string scheme;
  Params params;
};

// Docker Hub's answer to an anonymous GET /v2/library/alpine/manifests/latest.
const std::string kDockerHub =
    R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
    R"(scope="repository:library/alpine:pull")";

TEST_CASE("ParseWwwAuthenticate: well-formed headers") {
  struct Case {
    std::string header;
    std::vector<Expected> want;
  };
  const std::vector<Case> cases = {
      {kDockerHub,
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:library/alpine:pull"}}}}},
      // Docker Hub after a token lacking the scope.
      {kDockerHub + R"(,error="insufficient_scope")",
       {{"bearer",
         {{"realm", "https://auth.docker.io/token"},
          {"service", "registry.docker.io"},
          {"scope", "repository:library/alpine:pull"},
          {"error", "insufficient_scope"}}}}},
      {R"(Basic realm="Registry Realm")", {{"basic", {{"realm", "Registry Realm"}}}}},
      {R"(Basic realm="registry", charset="UTF-8")",
       {{"basic", {{"realm", "registry"}, {"charset", "UTF-8"}}}}},
      // A comma inside a quoted value does not split parameters.
      {R"(Bearer realm="https://t.example/token",scope="repository:a/b:pull,push")",
       {{"bearer", {{"realm", "https://t.example/token"}, {"scope", "repository:a/b:pull,push"}}}}},
      {R"(Bearer scope="repository:a:pull,push repository:b:pull",realm="r")",
       {{"bearer", {{"scope", "repository:a:pull,push repository:b:pull"}, {"realm", "r"}}}}},
      // Escaped quotes and backslashes in a quoted value.
      {R"(Basic realm="say \"hi\" \\ ok")", {{"basic", {{"realm", R"(say "hi" \ ok)"}}}}},
      {R"(Basic realm="\a\b")", {{"basic", {{"realm", "ab"}}}}},
      {R"(Bearer realm="",service="s")", {{"bearer", {{"realm", ""}, {"service", "s"}}}}},
      // Unquoted (token) values.
      {"Bearer realm=tokenrealm,service=registry.docker.io,error=invalid_token",
       {{"bearer",
         {{"realm", "tokenrealm"},
          {"service", "registry.docker.io"},
          {"error", "invalid_token"}}}}},
      {R"(Bearer service=registry.example, realm="https://a/t")",
       {{"bearer", {{"service", "registry.example"}, {"realm", "https://a/t"}}}}},
      // Scheme and parameter names are case-insensitive; values keep their case.
      {R"(BEARER REALM="https://A/Token",Service="Svc")",
       {{"bearer", {{"realm", "https://A/Token"}, {"service", "Svc"}}}}},
      {R"(bAsIc ReAlM="R")", {{"basic", {{"realm", "R"}}}}},
      // Optional whitespace around '=' and ','.
      {"  Bearer   realm = \"x\" ,\t service\t=\"y\"  ",
       {{"bearer", {{"realm", "x"}, {"service", "y"}}}}},
      // A scheme with no parameters.
      {"Negotiate", {{"negotiate", {}}}},
      {"Basic", {{"basic", {}}}},
      // Several challenges in one header.
      {R"(Basic realm="b", Bearer realm="https://t",service="s")",
       {{"basic", {{"realm", "b"}}}, {"bearer", {{"realm", "https://t"}, {"service", "s"}}}}},
      {R"(Bearer realm="https://t",service="s", Basic realm="b")",
       {{"bearer", {{"realm", "https://t"}, {"service", "s"}}}, {"basic", {{"realm", "b"}}}}},
      {R"(Negotiate, Basic realm="x")", {{"negotiate", {}}, {"basic", {{"realm", "x"}}}}},
      {R"(Basic realm="a, Bearer realm=b")", {{"basic", {{"realm", "a, Bearer realm=b"}}}}},
      {R"(Basic, Bearer realm="t")", {{"basic", {}}, {"bearer", {{"realm", "t"}}}}},
      {R"(Bearer realm="t", Basic)", {{"bearer", {{"realm", "t"}}}, {"basic", {}}}},
      // Repeated parameter: the last value wins, and nothing crashes.
      {R"(Bearer realm="a",realm="b")", {{"bearer", {{"realm", "b"}}}}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    auto got = ParseWwwAuthenticate(c.header);
    REQUIRE(got.size() == c.want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CAPTURE(i);
      CHECK(got[i].scheme == c.want[i].scheme);
      CHECK(got[i].params == c.want[i].params);
    }
  }
}

TEST_CASE("ParseWwwAuthenticate: Param() returns empty for a missing name") {
  auto got = ParseWwwAuthenticate(kDockerHub);
  REQUIRE(got.size() == 1u);
  CHECK(got[0].Param("realm") == "https://auth.docker.io/token");
  CHECK(got[0].Param("missing").empty());
  CHECK(got[0].Param("REALM").empty());  // names are stored lower-cased
}

TEST_CASE("ParseWwwAuthenticate: garbage never crashes and yields no usable realm") {
  struct Case {
    std::string header;
    size_t max_challenges;  // upper bound: garbage may still name a scheme
  };
  const std::vector<Case> cases = {
      {"", 0},
      {"   ", 0},
      {"\t", 0},
      {",,,", 0},
      {", , ,", 0},
      {R"(""")", 0},
      {"=====", 0},
      {"=x", 0},
      {"@@@", 0},
      {"\"Bearer\" realm=\"x\"", 0},
      {std::string("\0\0\0", 3), 0},
      {"\xff\xfe\x80", 0},
      {"Bearer @@@", 1},
      {"Bearer realm=", 1},
      {"Bearer realm", 2},
      {"Bearer ,,,,", 1},
      {"Bearer realm=\"unterminated", 1},
      {"Bearer realm=\"x\\", 1},    // backslash escapes the end
      {"Bearer realm=\"x\\\"", 1},  // the only quote after the value is escaped
      {"Bearer service=\"s\",realm=\"unterminated", 1},
      {"Bearer (realm)=\"x\"", 1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    auto got = ParseWwwAuthenticate(c.header);
    CHECK(got.size() <= c.max_challenges);
    for (const auto& challenge : got) {
      CHECK_FALSE(challenge.scheme.empty());
      // An unterminated or broken realm never yields a usable realm.
      CHECK(challenge.Param("realm").empty());
    }
    CHECK_FALSE(PickChallenge(c.header).has_value());
  }
}

TEST_CASE("ParseWwwAuthenticate: an unterminated quote keeps what came before it") {
  auto got = ParseWwwAuthenticate(R"(Bearer service="s",realm="https://auth)");
  REQUIRE(got.size() == 1u);
  CHECK(got[0].scheme == "bearer");
  CHECK(got[0].Param("service") == "s");
  CHECK(got[0].Param("realm").empty());
}

TEST_CASE("ParseWwwAuthenticate: long and hostile input") {
  std::string many_commas(100000, ',');
  CHECK(ParseWwwAuthenticate(many_commas).empty());
  std::string many_params = "Bearer ";
  for (int i = 0; i < 2000; ++i) many_params += "p" + std::to_string(i) + "=\"v\",";
  auto got = ParseWwwAuthenticate(many_params);
  REQUIRE(got.size() == 1u);
  CHECK(got[0].params.size() == 2000u);
  std::string many_schemes;
  for (int i = 0; i < 1000; ++i) many_schemes += "S" + std::to_string(i) + ", ";
  CHECK(ParseWwwAuthenticate(many_schemes).size() == 1000u);
  std::string long_value = "Bearer realm=\"" + std::string(1 << 20, 'x') + "\"";
  auto big = ParseWwwAuthenticate(long_value);
  REQUIRE(big.size() == 1u);
  CHECK(big[0].Param("realm").size() == size_t{1} << 20);
}

TEST_CASE("PickChallenge") {
  struct Case {
    std::string header;
    std::string scheme;  // empty: no usable challenge
    std::string realm;
  };
  const std::vector<Case> cases = {
      {kDockerHub, "bearer", "https://auth.docker.io/token"},
      {R"(Basic realm="r")", "basic", "r"},
      {"Basic", "basic", ""},
      // A bearer without a realm cannot be used: there is nowhere to get a token.
      {R"(Bearer service="s")", "", ""},
      {R"(Bearer realm="")", "", ""},
      {R"(Bearer service="s", Basic realm="b")", "basic", "b"},
      {R"(Bearer service="s", Bearer realm="https://t")", "bearer", "https://t"},
      {R"(Negotiate, Bearer realm="https://t")", "bearer", "https://t"},
      {R"(Bearer realm="https://t", Basic realm="b")", "bearer", "https://t"},
      // Preferred over Basic even when Basic comes first (as Docker's client does).
      {R"(Basic realm="b", Bearer realm="https://t")", "bearer", "https://t"},
      {R"(Digest realm="d", nonce="n")", "", ""},
      {"Negotiate", "", ""},
      {"", "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    auto got = PickChallenge(c.header);
    if (c.scheme.empty()) {
      CHECK_FALSE(got.has_value());
      continue;
    }
    REQUIRE(got.has_value());
    CHECK(got->scheme == c.scheme);
    CHECK(got->Param("realm") == c.realm);
  }
}

}  // namespace
}  // namespace hubcache
