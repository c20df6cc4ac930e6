#include "server/request_parser.h"

#include <doctest/doctest.h>

#include <string>

namespace hubcache {
namespace {

using namespace std::string_literals;

struct Parsed {
  HeadParser::State state;
  size_t consumed;
  RequestHead head;
  ParseFailure failure;
};

// Feeds `bytes` whole, then again one byte at a time: both must agree.
Parsed Parse(const std::string& bytes, HeadLimits limits = {}) {
  HeadParser whole(limits);
  size_t consumed = whole.Feed(bytes);
  HeadParser bytewise(limits);
  size_t consumed_bytewise = 0;
  for (char c : bytes) {
    if (bytewise.state() != HeadParser::State::kIncomplete) break;
    consumed_bytewise += bytewise.Feed(std::string_view(&c, 1));
  }
  CHECK(whole.state() == bytewise.state());
  CHECK(consumed == consumed_bytewise);
  return {whole.state(), consumed, whole.head(), whole.failure()};
}

TEST_CASE("HeadParser: well-formed requests and what they say") {
  struct Case {
    std::string name;
    std::string bytes;
    const char* method;
    const char* target;
    BodyFraming framing;
    uint64_t length;
    bool keep_alive;
  };
  const Case cases[] = {
      {"plain GET", "GET /v2/ HTTP/1.1\r\nHost: m\r\n\r\n", "GET", "/v2/", BodyFraming::kNone, 0,
       true},
      {"values trimmed, names any case",
       "HEAD /v2/a/manifests/b?ns=docker.io HTTP/1.1\r\nhOsT:   m  \r\nAccept:\t*/* \r\n\r\n",
       "HEAD", "/v2/a/manifests/b?ns=docker.io", BodyFraming::kNone, 0, true},
      {"Content-Length", "POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nContent-Length: 12\r\n\r\n",
       "POST", "/admin/prewarm", BodyFraming::kLength, 12, true},
      {"chunked", "POST /x HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: ChunKed\r\n\r\n", "POST", "/x",
       BodyFraming::kChunked, 0, true},
      {"Connection: close", "GET / HTTP/1.1\r\nHost: m\r\nConnection: foo, close\r\n\r\n", "GET",
       "/", BodyFraming::kNone, 0, false},
      {"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n", "GET", "/", BodyFraming::kNone, 0,
       false},
      {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "GET", "/",
       BodyFraming::kNone, 0, true},
      {"an empty line before the request line", "\r\nGET / HTTP/1.1\r\nHost: m\r\n\r\n", "GET", "/",
       BodyFraming::kNone, 0, true},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: m\r\n\r\n", "OPTIONS", "*", BodyFraming::kNone, 0,
       true},
      {"obs-text in a value", "GET / HTTP/1.1\r\nHost: m\r\nX-A: caf\xc3\xa9\r\n\r\n", "GET", "/",
       BodyFraming::kNone, 0, true},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Parsed p = Parse(c.bytes + "NEXT");
    REQUIRE(p.state == HeadParser::State::kComplete);
    CHECK(p.consumed == c.bytes.size());  // the rest is the body or the next request
    CHECK(p.head.method == c.method);
    CHECK(p.head.target == c.target);
    CHECK(p.head.framing == c.framing);
    CHECK(p.head.content_length == c.length);
    CHECK(p.head.keep_alive == c.keep_alive);
  }
}

TEST_CASE("HeadParser: field values are kept as sent, never decoded") {
  Parsed p = Parse("GET / HTTP/1.1\r\nHost: m\r\nX-Enc: %32%0d%0a\r\nX-Empty:\r\n\r\n");
  REQUIRE(p.state == HeadParser::State::kComplete);
  REQUIRE(p.head.fields.size() == 3);
  CHECK(p.head.fields[1].first == "X-Enc");
  CHECK(p.head.fields[1].second == "%32%0d%0a");
  CHECK(p.head.fields[2].second == "");
}

TEST_CASE("HeadParser: Expect: 100-continue is noted, other expectations refused") {
  Parsed p =
      Parse("POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n");
  REQUIRE(p.state == HeadParser::State::kComplete);
  CHECK(p.head.expect_continue);
  p = Parse("POST / HTTP/1.1\r\nHost: m\r\nExpect: something\r\n\r\n");
  REQUIRE(p.state == HeadParser::State::kFailed);
  CHECK(p.failure.status == 417);
}

TEST_CASE("HeadParser: every ambiguous or malformed head is refused with its status") {
  struct Case {
    std::string name;
    std::string bytes;
    int status;
    ParseFailureKind kind;
  };
  const std::string many_fields = [] {
    std::string s = "GET /v2/ HTTP/1.1\r\nHost: m\r\n";
    for (int i = 0; i < 100; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
    return s + "\r\n";
  }();
  const auto bad = ParseFailureKind::kMalformed;
  const Case cases[] = {
      // Line endings: CRLF only.
      {"bare LF ending a field", "GET / HTTP/1.1\r\nHost: m\nContent-Length: 38\r\n\r\n", 400, bad},
      {"bare LF ending the request line", "GET / HTTP/1.1\nHost: m\r\n\r\n", 400, bad},
      {"bare LF as the blank line", "GET / HTTP/1.1\r\nHost: m\r\n\n", 400, bad},
      {"bare CR inside a value", "GET / HTTP/1.1\r\nHost: m\rX\r\n\r\n", 400, bad},
      // Field syntax.
      {"space before the colon", "POST / HTTP/1.1\r\nHost: m\r\nContent-Length : 38\r\n\r\n", 400,
       bad},
      {"tab before the colon", "GET / HTTP/1.1\r\nHost\t: m\r\n\r\n", 400, bad},
      {"no colon", "GET / HTTP/1.1\r\nHost: m\r\nno colon here\r\n\r\n", 400, bad},
      {"empty name", "GET / HTTP/1.1\r\nHost: m\r\n: v\r\n\r\n", 400, bad},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: m\r\nX-A: b\r\n c\r\n\r\n", 400, bad},
      {"NUL in Content-Length", "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3\0 8\r\n\r\n"s, 400,
       bad},
      {"NUL in a name", "GET / HTTP/1.1\r\nHo\0st: m\r\n\r\n"s, 400, bad},
      {"DEL in a value", "GET / HTTP/1.1\r\nHost: m\x7f\r\n\r\n", 400, bad},
      {"vertical tab in a value", "GET / HTTP/1.1\r\nHost: m\vx\r\n\r\n", 400, bad},
      // Framing.
      {"percent-encoded Content-Length",
       "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: %32\r\n\r\n", 400, bad},
      {"negative Content-Length", "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: -1\r\n\r\n", 400,
       bad},
      {"listed Content-Length", "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3, 3\r\n\r\n", 400,
       bad},
      {"two Content-Length",
       "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400, bad},
      {"huge Content-Length",
       "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, bad},
      {"Content-Length and chunked",
       "POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       bad},
      {"chunked, identity",
       "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400, bad},
      {"identity alone", "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: identity\r\n\r\n", 400,
       bad},
      {"empty Transfer-Encoding", "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: \r\n\r\n", 400,
       bad},
      {"gzip, chunked", "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       501, ParseFailureKind::kNotImplemented},
      {"chunked twice",
       "POST / HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n",
       501, ParseFailureKind::kNotImplemented},
      {"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, bad},
      // Host.
      {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, bad},
      {"two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, bad},
      // Request line.
      {"two spaces", "GET  / HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"no version", "GET /\r\nHost: m\r\n\r\n", 400, bad},
      {"lower-case version", "GET / http/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: m\r\n\r\n", 505, ParseFailureKind::kVersion},
      {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: m\r\n\r\n", 505, ParseFailureKind::kVersion},
      {"absolute-form target", "GET http://evil/v2/ HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"authority-form target", "CONNECT evil:443 HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"* for GET", "GET * HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"control byte in the target", "GET /a\x01 HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"method not a token", "G(T / HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      // Limits.
      {"request line over 8 KiB", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n", 414,
       ParseFailureKind::kRequestLineTooLong},
      {"a line without an end", std::string(9000, 'x'), 414, ParseFailureKind::kRequestLineTooLong},
      {"head over 64 KiB", "GET / HTTP/1.1\r\nX-Big: " + std::string(70 * 1024, 'b') + "\r\n\r\n",
       431, ParseFailureKind::kHeadTooLarge},
      {"CR after CR", "\r\n\r\rGET / HTTP/1.1\r\nHost: m\r\n\r\n", 400, bad},
      {"101 fields", many_fields, 431, ParseFailureKind::kTooManyFields},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Parsed p = Parse(c.bytes);
    REQUIRE(p.state == HeadParser::State::kFailed);
    CHECK(p.failure.status == c.status);
    CHECK(p.failure.kind == c.kind);
    CHECK_FALSE(p.failure.message.empty());
  }
}

TEST_CASE("HeadParser: the limits' edges") {
  // A single field of 60 KiB is within the 64 KiB head: no 400, no 431.
  Parsed p =
      Parse("GET / HTTP/1.1\r\nHost: m\r\nX-Big: " + std::string(60 * 1024, 'b') + "\r\n\r\n");
  CHECK(p.state == HeadParser::State::kComplete);
  // Exactly 100 fields pass.
  std::string s = "GET / HTTP/1.1\r\nHost: m\r\n";
  for (int i = 0; i < 99; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
  CHECK(Parse(s + "\r\n").state == HeadParser::State::kComplete);
  // The request line's limit is its own: 8 KiB passes.
  std::string line = "GET /" + std::string(8 * 1024 - 14, 'a') + " HTTP/1.1";
  REQUIRE(line.size() == 8 * 1024);
  CHECK(Parse(line + "\r\nHost: m\r\n\r\n").state == HeadParser::State::kComplete);
  CHECK(Parse("GET /" + std::string(8 * 1024 - 13, 'a') + " HTTP/1.1\r\nHost: m\r\n\r\n")
            .failure.status == 414);
  // Blank lines before the request line count toward the head's bytes.
  std::string blanks;
  for (int i = 0; i < 40 * 1024; ++i) blanks += "\r\n";
  Parsed flood = Parse(blanks + "GET / HTTP/1.1\r\nHost: m\r\n\r\n");
  CHECK(flood.failure.status == 431);
}

TEST_CASE("HeadParser: the first limit passed names the byte, in runs as byte by byte") {
  // Runs of ordinary bytes are taken at once: the failure still falls on the
  // first byte past a limit, the request line's before the head's at a tie.
  HeadLimits limits;
  limits.max_request_line = 12;
  limits.max_header_bytes = 10;
  Parsed head_first = Parse("GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", limits);
  CHECK(head_first.failure.status == 431);
  CHECK(head_first.consumed == 11);
  limits.max_header_bytes = 12;
  Parsed tie = Parse("GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", limits);
  CHECK(tie.failure.status == 414);
  CHECK(tie.consumed == 13);
  // After blank lines, the request line counts from its own start.
  limits.max_header_bytes = 100;
  Parsed after_blanks = Parse("\r\n\r\nGET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", limits);
  CHECK(after_blanks.failure.status == 414);
  CHECK(after_blanks.consumed == 4 + 13);
  // Fields are not held to the request line's limit, only to the head's.
  limits.max_request_line = 16;
  Parsed field =
      Parse("GET / HTTP/1.1\r\nHost: m\r\nX-Long: " + std::string(90, 'v') + "\r\n\r\n", limits);
  CHECK(field.failure.status == 431);
  CHECK(field.consumed == 101);
}

// Decodes `encoded` fed in pieces of `step` bytes.
struct Decoded {
  ChunkedDecoder::State state;
  std::string body;
  size_t consumed;
};

Decoded Decode(const std::string& encoded, size_t step) {
  ChunkedDecoder decoder;
  Decoded out{ChunkedDecoder::State::kIncomplete, "", 0};
  size_t at = 0;
  while (at < encoded.size() && decoder.state() == ChunkedDecoder::State::kIncomplete) {
    std::string_view piece = std::string_view(encoded).substr(at, step);
    std::string_view data;
    size_t n = decoder.Feed(piece, data);
    out.body.append(data);
    at += n;
    if (n == 0) break;
  }
  out.state = decoder.state();
  out.consumed = at;
  return out;
}

TEST_CASE("ChunkedDecoder: bodies in any split decode the same") {
  const std::string encoded =
      "5\r\nhello\r\n1;ext=\"v\"\r\n,\r\nA\r\n 012345678\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
  for (size_t step : {size_t{1}, size_t{2}, size_t{7}, encoded.size()}) {
    CAPTURE(step);
    Decoded d = Decode(encoded, step);
    CHECK(d.state == ChunkedDecoder::State::kDone);
    CHECK(d.body == "hello, 012345678");
    CHECK(d.consumed == encoded.size() - 4);  // "NEXT" is the next request
  }
}

TEST_CASE("ChunkedDecoder: malformed chunked bodies fail") {
  struct Case {
    std::string name;
    std::string encoded;
  };
  const Case cases[] = {
      {"not hex", "zz\r\nab\r\n0\r\n\r\n"},
      {"negative size", "-1\r\nab\r\n0\r\n\r\n"},
      {"0x prefix", "0x2\r\nab\r\n0\r\n\r\n"},
      {"overflowing size", "10000000000000000\r\nab\r\n0\r\n\r\n"},
      {"empty size", "\r\nab\r\n0\r\n\r\n"},
      {"space after the size", "2 \r\nab\r\n0\r\n\r\n"},
      {"data without its CRLF", "2\r\nabc\r\n0\r\n\r\n"},
      {"bare LF after the size", "2\nab\r\n0\r\n\r\n"},
      {"bare LF after data", "2\r\nab\n0\r\n\r\n"},
      {"bare LF ending the trailer", "0\r\n\n"},
      {"control byte in an extension", "2;a\x01\r\nab\r\n0\r\n\r\n"},
      {"extension too long", "2;" + std::string(5000, 'e') + "\r\nab\r\n0\r\n\r\n"},
      {"trailer too long", "0\r\nX: " + std::string(20000, 't') + "\r\n\r\n"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(Decode(c.encoded, c.encoded.size()).state == ChunkedDecoder::State::kFailed);
    CHECK(Decode(c.encoded, 1).state == ChunkedDecoder::State::kFailed);
  }
}

}  // namespace
}  // namespace hubcache
