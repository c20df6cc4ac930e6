#include "config/http_headers.h"

#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "config/config.h"

namespace hubcache {
namespace {

using Values = std::vector<std::string>;
using Env = std::map<std::string, std::string>;

TEST_CASE("ParseHeaderValues takes YAML flow lists and plain strings") {
  struct Case {
    std::string text;
    Values values;
  };
  const std::vector<Case> cases = {
      {R"(["https://ui.example"])", {"https://ui.example"}},
      {"[HEAD, GET, OPTIONS, DELETE]", {"HEAD", "GET", "OPTIONS", "DELETE"}},
      {"[Authorization,Accept,Cache-Control]", {"Authorization", "Accept", "Cache-Control"}},
      {R"(  [ "a" , 'b',c ]  )", {"a", "b", "c"}},
      {"[true]", {"true"}},
      {"[a, b,]", {"a", "b"}},  // a trailing comma, as YAML allows
      {"[*]", {"*"}},
      {R"(["*"])", {"*"}},
      {R"(['it''s'])", {"it's"}},
      {R"(["a \"q\" b", "back\\slash", "x\/y", "tab\there"])",
       {"a \"q\" b", "back\\slash", "x/y", "tab\there"}},
      {R"(["a, b", 'c]d'])", {"a, b", "c]d"}},
      {"[max-age=0, no cache]", {"max-age=0", "no cache"}},
      {"https://ui.example", {"https://ui.example"}},
      {"  spaced value  ", {"spaced value"}},
      {"*", {"*"}},
      {R"("quoted plain")", {"quoted plain"}},
      {"'single plain'", {"single plain"}},
      {"text with \"inner\" quotes", {"text with \"inner\" quotes"}},
      {"caf\xc3\xa9", {"caf\xc3\xa9"}},  // obs-text bytes pass
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto values = ParseHeaderValues(c.text);
    REQUIRE_MESSAGE(values.has_value(), (values ? std::string() : values.error().message));
    CHECK(*values == c.values);
    // What check-config shows is taken back unchanged.
    auto again = ParseHeaderValues(ShowHeaderValues(*values));
    REQUIRE(again.has_value());
    CHECK(*again == c.values);
  }
}

TEST_CASE("ParseHeaderValues refuses what is not a well-formed value") {
  struct Case {
    std::string text;
    std::string mention;  // in the error
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"[", "unterminated list"},
      {"[a, b", "unterminated list"},
      {R"(["a")", "unterminated list"},
      {R"(["a])", "unterminated \""},
      {"['a]", "unterminated '"},
      {R"("abc)", "unterminated \""},
      {"[]", "empty list"},
      {"[ ]", "empty list"},
      {"[a,,b]", "empty list element"},
      {"[,a]", "empty list element"},
      {R"([""])", "empty value"},
      {R"([a"b])", "stray quote"},
      {R"([a', b])", "stray quote"},
      {"[a b c\"]", "stray quote"},
      {R"(["a" "b"])", "expected , or ]"},
      {R"(["a"b])", "expected , or ]"},
      {"[a] b", "text after the closing ]"},
      {"[a]]", "text after the closing ]"},
      {R"("a" b)", "text after the closing quote"},
      {"[[a]]", "nested"},
      {"[{a: b}]", "nested"},
      {"{a: b}", "expected a list"},
      {"]a", "expected a list"},
      {R"(["a\nb"])", "unsupported escape"},
      {R"(["a\u0041"])", "unsupported escape"},
      {"[a\r\nb]", "control character"},
      {"a\nb", "control character"},
      {"evil\r\nSet-Cookie: x", "control character"},
      {std::string("a\0b", 3), "control character"},
      {"[a\x01]", "control character"},
      {"del\x7f", "control character"},
      {R"([" padded"])", "blank"},
      {R"(["padded	"])", "blank"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto values = ParseHeaderValues(c.text);
    REQUIRE_FALSE(values.has_value());
    CHECK(values.error().kind == ErrorKind::kConfigInvalid);
    CHECK_MESSAGE(values.error().message.find(c.mention) != std::string::npos,
                  values.error().message);
    CHECK(values.error().message.find('\n') == std::string::npos);
    CHECK(values.error().message.find('\r') == std::string::npos);
  }
}

TEST_CASE("CheckHeaderName wants a token that does not frame the response") {
  struct Case {
    std::string name;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"Access-Control-Allow-Origin", true},
      {"X-Custom_1", true},
      {"x-lower", true},
      {"!#$%&'*+-.^_`|~", true},
      {"", false},
      {"Bad Name", false},
      {"Bad:Name", false},
      {"Bad\rName", false},
      {"Caf\xc3\xa9", false},
      {"(paren)", false},
      {"Content-Length", false},
      {"content-length", false},
      {"Transfer-Encoding", false},
      {"CONNECTION", false},
      {"Keep-Alive", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(CheckHeaderName(c.name).has_value() == c.valid);
  }
}

TEST_CASE("LoadConfig reads REGISTRY_HTTP_HEADERS_<Name>, one field per element") {
  Env env = {
      {"REGISTRY_HTTP_ADDR", ":5001"},
      {"REGISTRY_HTTP_HEADERS_Access-Control-Allow-Origin", R"(["https://ui.example"])"},
      {"REGISTRY_HTTP_HEADERS_Access-Control-Allow-Methods", "[HEAD, GET, OPTIONS, DELETE]"},
      {"REGISTRY_HTTP_HEADERS_X-Plain", "just text"},
      {"REGISTRY_HTTP_HEADERSX", "not ours"},  // no underscore: not a header
  };
  auto config = LoadConfig(env, {});
  REQUIRE_MESSAGE(config.has_value(), (config ? std::string() : config.error().message));
  REQUIRE(config->http_headers.size() == 3u);
  CHECK(config->http_headers[0].name == "Access-Control-Allow-Methods");
  CHECK(config->http_headers[0].values == Values{"HEAD", "GET", "OPTIONS", "DELETE"});
  CHECK(config->http_headers[1].name == "Access-Control-Allow-Origin");
  CHECK(config->http_headers[1].values == Values{"https://ui.example"});
  CHECK(config->http_headers[2].name == "X-Plain");
  CHECK(config->http_headers[2].values == Values{"just text"});
  CHECK(LoadConfig({}, {})->http_headers.empty());
}

TEST_CASE("LoadConfig refuses a bad header setting in one line naming it") {
  struct Case {
    std::string variable;
    std::string value;
  };
  const std::vector<Case> cases = {
      {"REGISTRY_HTTP_HEADERS_", "[x]"},
      {"REGISTRY_HTTP_HEADERS_Bad Name", "[x]"},
      {"REGISTRY_HTTP_HEADERS_Content-Length", "[0]"},
      {"REGISTRY_HTTP_HEADERS_Transfer-Encoding", "[chunked]"},
      {"REGISTRY_HTTP_HEADERS_Connection", "close"},
      {"REGISTRY_HTTP_HEADERS_X-A", "[unterminated"},
      {"REGISTRY_HTTP_HEADERS_X-A", "[a\"]"},
      {"REGISTRY_HTTP_HEADERS_X-A", "a\r\nInjected: yes"},
      {"REGISTRY_HTTP_HEADERS_X-A", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.variable);
    CAPTURE(c.value);
    auto config = LoadConfig({{c.variable, c.value}}, {});
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().kind == ErrorKind::kConfigInvalid);
    CHECK(config.error().message.rfind(c.variable + ": ", 0) == 0);
    CHECK(config.error().message.find('\n') == std::string::npos);
  }
}

}  // namespace
}  // namespace hubcache
