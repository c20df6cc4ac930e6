#include "http/basic_credentials.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

std::string Base64(const std::string& in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16 |
                 static_cast<unsigned char>(in[i + 1]) << 8 | static_cast<unsigned char>(in[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(v >> shift) & 63];
  }
  if (i + 1 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1])
                                                               << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

TEST_CASE("ParseBasicAuthorization accepts the Basic scheme and splits at the first colon") {
  struct Case {
    std::string value;
    std::string user;
    std::string password;
  };
  const std::vector<Case> cases = {
      {"Basic " + Base64("puller:pull-secret-1"), "puller", "pull-secret-1"},
      {"basic " + Base64("u:p"), "u", "p"},
      {"BASIC " + Base64("u:p"), "u", "p"},
      {"bAsIc " + Base64("u:p"), "u", "p"},
      {"Basic    " + Base64("u:p"), "u", "p"},       // 1*SP
      {"Basic " + Base64("u:p") + " \t", "u", "p"},  // trailing OWS is not part of the value
      {"Basic " + Base64("u:a:b"), "u", "a:b"},      // the password may hold colons
      {"Basic " + Base64("u:"), "u", ""},
      {"Basic " + Base64(":p"), "", "p"},
      {"Basic " + Base64("user:pass"), "user", "pass"},                  // no padding
      {"Basic " + Base64("user:passw"), "user", "passw"},                // "=="
      {"Basic " + Base64("user:passwo"), "user", "passwo"},              // "="
      {"Basic " + Base64("\xc3\xbc:\xc3\xa4"), "\xc3\xbc", "\xc3\xa4"},  // UTF-8
  };
  for (const auto& c : cases) {
    CAPTURE(c.value);
    auto got = ParseBasicAuthorization(c.value);
    REQUIRE(got.has_value());
    CHECK(got->user == c.user);
    CHECK(got->password == c.password);
  }
}

TEST_CASE("ParseBasicAuthorization refuses anything else") {
  const std::string good = Base64("u:p");
  const std::vector<std::string> cases = {
      "",
      "Basic",
      "Basic ",
      "Basic" + good,     // no space
      "Basic%20" + good,  // percent-encoded space (decoded by a lenient parser)
      "Basic\t" + good,   // a tab is not SP
      " Basic " + good,   // leading space
      "Basic\x0b" + good,
      "Basix " + good,
      "Basically " + good,
      "Bearer " + good,
      "Digest " + good,
      "Basic " + good + " extra",  // two tokens
      "Basic " + good + "," + good,
      "Basic " + good.substr(1),  // not a multiple of 4
      "Basic ====",
      "Basic A===",                       // three '='
      "Basic dT=A",                       // data after padding
      "Basic dX*6cA==",                   // not base64
      "Basic dXNlcg==",                   // "user": no colon
      "Basic " + std::string(4100, 'A'),  // over 4 KiB
  };
  for (const auto& value : cases) {
    CAPTURE(value);
    CHECK_FALSE(ParseBasicAuthorization(value).has_value());
  }
}

TEST_CASE("ParseBasicAuthorization refuses control characters in user or password") {
  const std::vector<std::string> cases = {
      std::string("u:secret\0garbage", 16),  // bcrypt would stop at the NUL
      std::string("u\0:p", 4),
      std::string("u:\0", 3),
      "u:p\n",
      "u:p\r\nX-Injected: 1",
      "u\t:p",
      "u:p\x7f",
      "u:\x1b[31mred",
  };
  for (const auto& decoded : cases) {
    CAPTURE(decoded);
    CHECK_FALSE(ParseBasicAuthorization("Basic " + Base64(decoded)).has_value());
  }
}

}  // namespace
}  // namespace hubcache
