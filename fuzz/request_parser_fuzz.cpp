// Request heads and chunked bodies, as a client sends them (server/request_parser.h).
// The input is the raw bytes on a connection. Invariants:
//   - the head parses the same whether its bytes arrive whole or one by one;
//   - a parsed head ends in CRLF CRLF, and no method, target, name or value
//     holds a CR, LF or NUL; its framing is one of the two it may be;
//   - written back canonically, a parsed head parses to the same request;
//   - what follows a chunked head decodes the same in any split.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "server/request_parser.h"

namespace {

using namespace hubcache;

bool Clean(std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == s.npos; }

std::string Canonical(const RequestHead& head) {
  std::string out =
      head.method + " " + head.target + " HTTP/1." + std::to_string(head.minor_version) + "\r\n";
  for (const auto& [name, value] : head.fields) out += name + ": " + value + "\r\n";
  return out + "\r\n";
}

struct Decoded {
  ChunkedDecoder::State state;
  std::string body;
  size_t consumed = 0;
};

Decoded Decode(std::string_view in, size_t step) {
  ChunkedDecoder decoder;
  Decoded out{ChunkedDecoder::State::kIncomplete, {}, 0};
  while (out.consumed < in.size() && decoder.state() == ChunkedDecoder::State::kIncomplete) {
    std::string_view data;
    size_t n = decoder.Feed(in.substr(out.consumed, step), data);
    FUZZ_CHECK(data.size() <= n);
    out.body.append(data);
    out.consumed += n;
    if (n == 0) break;
  }
  out.state = decoder.state();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = fuzz::AsView(data, size);
  HeadLimits limits;
  limits.max_header_bytes = 4096;  // reachable by the fuzzer
  limits.max_request_line = 1024;
  limits.max_header_fields = 16;

  HeadParser whole(limits);
  size_t consumed = whole.Feed(input);
  HeadParser bytewise(limits);
  size_t consumed_bytewise = 0;
  for (size_t i = 0; i < input.size() && bytewise.state() == HeadParser::State::kIncomplete; ++i) {
    consumed_bytewise += bytewise.Feed(input.substr(i, 1));
  }
  FUZZ_CHECK(whole.state() == bytewise.state());
  FUZZ_CHECK(consumed == consumed_bytewise);
  FUZZ_CHECK(consumed <= input.size());
  if (whole.state() == HeadParser::State::kFailed) {
    FUZZ_CHECK(whole.failure().status >= 400 && whole.failure().status < 600);
    return 0;
  }
  if (whole.state() != HeadParser::State::kComplete) {
    FUZZ_CHECK(consumed == input.size());
    return 0;
  }
  const RequestHead& head = whole.head();
  FUZZ_CHECK(input.substr(0, consumed).size() >= 4);
  FUZZ_CHECK(input.substr(consumed - 4, 4) == "\r\n\r\n");
  FUZZ_CHECK(!head.method.empty() && Clean(head.method));
  FUZZ_CHECK(!head.target.empty() && Clean(head.target));
  for (const auto& [name, value] : head.fields) {
    FUZZ_CHECK(!name.empty() && Clean(name) && Clean(value));
    FUZZ_CHECK(name.find(':') == std::string::npos);
  }
  if (head.framing != BodyFraming::kLength) FUZZ_CHECK(head.content_length == 0);

  RequestHead again;
  ParseFailure failure;
  FUZZ_CHECK(ParseRequestHead(Canonical(head), again, failure));
  FUZZ_CHECK(again.method == head.method && again.target == head.target);
  FUZZ_CHECK(again.fields == head.fields);
  FUZZ_CHECK(again.framing == head.framing && again.content_length == head.content_length);
  FUZZ_CHECK(again.keep_alive == head.keep_alive);

  if (head.framing == BodyFraming::kChunked) {
    std::string_view rest = input.substr(consumed);
    Decoded one = Decode(rest, rest.size() + 1);
    for (size_t step : {size_t{1}, size_t{3}}) {
      Decoded other = Decode(rest, step);
      FUZZ_CHECK(other.state == one.state);
      if (one.state != ChunkedDecoder::State::kFailed) {
        FUZZ_CHECK(other.body == one.body);
        FUZZ_CHECK(other.consumed == one.consumed);
      }
    }
    FUZZ_CHECK(one.body.size() <= rest.size());
  }
  return 0;
}
