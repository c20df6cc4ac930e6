#include "http/request_framing.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace hubcache {
namespace {

httplib::Request With(std::vector<std::pair<std::string, std::string>> headers) {
  httplib::Request req;
  for (auto& [name, value] : headers) req.headers.emplace(name, value);
  return req;
}

TEST_CASE("CheckFraming: what may be answered on a kept-alive connection") {
  struct Case {
    const char* name;
    std::vector<std::pair<std::string, std::string>> headers;
    bool reads_body;
    Framing want;
  };
  const std::vector<Case> cases = {
      {"no body", {}, false, Framing::kOk},
      {"Content-Length 0", {{"Content-Length", "0"}}, false, Framing::kOk},
      {"Content-Length 000", {{"Content-Length", "000"}}, false, Framing::kOk},
      {"a body that is read", {{"Content-Length", "12"}}, true, Framing::kOk},
      {"chunked, read", {{"Transfer-Encoding", "chunked"}}, true, Framing::kOk},
      {"a GET's body, unread", {{"Content-Length", "5"}}, false, Framing::kBodyUnread},
      {"chunked, unread", {{"Transfer-Encoding", "chunked"}}, false, Framing::kBodyUnread},
      {"negative", {{"Content-Length", "-1"}}, false, Framing::kInvalid},
      {"not a number", {{"Content-Length", "abc"}}, true, Framing::kInvalid},
      {"empty", {{"Content-Length", ""}}, false, Framing::kInvalid},
      {"sign", {{"Content-Length", "+5"}}, true, Framing::kInvalid},
      {"list", {{"Content-Length", "5, 5"}}, true, Framing::kInvalid},
      {"too long to be true", {{"Content-Length", "9999999999999999999"}}, true, Framing::kInvalid},
      {"two that agree", {{"Content-Length", "5"}, {"Content-Length", "5"}}, true, Framing::kOk},
      {"two that differ",
       {{"Content-Length", "5"}, {"Content-Length", "6"}},
       true,
       Framing::kInvalid},
      {"length and chunked",
       {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
       true,
       Framing::kInvalid},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(CheckFraming(With(c.headers), c.reads_body) == c.want);
  }
}

}  // namespace
}  // namespace hubcache
