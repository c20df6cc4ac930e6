#pragma once
// The one parser of what clients send (RFC 9112), strict by design: what it
// accepts has exactly one reading, so no other layer can read a request
// differently (request smuggling), and nothing else in hubcache parses a
// request head or body framing.
//
//   - lines end in CRLF only: a bare LF or a bare CR is a 400;
//   - request line: method SP origin-form-target SP HTTP/1.1 or HTTP/1.0
//     (another version: 505); "*" only for OPTIONS; absolute-form and
//     authority-form targets (proxy requests) are refused;
//   - field lines: a token, the colon right after it (no whitespace before
//     it), a value of visible bytes, spaces and tabs; no NUL or other control
//     byte anywhere; no obs-fold (a line starting with a space or tab); header
//     values are never percent-decoded;
//   - exactly one Host in HTTP/1.1 (at most one in 1.0);
//   - framing: one Content-Length with one decimal value, or a
//     Transfer-Encoding whose last (and only) coding is chunked, never both;
//     another coding is a 501; Transfer-Encoding in HTTP/1.0 is a 400;
//   - limits: the request line (414), the head's bytes and its number of
//     fields (431), checked as bytes arrive.
// Any failure names the status to answer; the connection must then be closed
// after that one answer, its remaining bytes never read as another request.
//
// HeadParser and ChunkedDecoder are incremental (bytes may arrive one at a
// time) and hold no reference to their input. Not thread-safe: one per
// connection, used by the thread serving it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hubcache {

struct HeadLimits {
  size_t max_request_line = 8 * 1024;   // 414 past it
  size_t max_header_bytes = 64 * 1024;  // the whole head, request line included: 431
  size_t max_header_fields = 100;       // 431 past it
};

// Why a request was refused: the status to answer and the counter to bump.
enum class ParseFailureKind {
  kMalformed,           // 400 (framing, syntax)
  kRequestLineTooLong,  // 414
  kHeadTooLarge,        // 431
  kTooManyFields,       // 431
  kNotImplemented,      // 501: a transfer coding we do not decode
  kVersion,             // 505
  kExpectation,         // 417: an Expect other than 100-continue
};

struct ParseFailure {
  ParseFailureKind kind = ParseFailureKind::kMalformed;
  int status = 400;
  std::string message;
};

enum class BodyFraming {
  kNone,     // no body
  kLength,   // content_length bytes
  kChunked,  // chunked transfer coding (ChunkedDecoder)
};

struct RequestHead {
  std::string method;
  std::string target;  // as sent: not decoded
  int minor_version = 1;
  std::vector<std::pair<std::string, std::string>> fields;  // in order, values trimmed
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;        // by version and Connection
  bool expect_continue = false;  // Expect: 100-continue

  bool has_body() const {
    return framing == BodyFraming::kChunked ||
           (framing == BodyFraming::kLength && content_length > 0);
  }
};

// Parses a complete head: the request line and field lines, each ending in
// CRLF, and the empty line that ends the head. Empty lines before the request
// line are skipped (RFC 9112 section 2.2). Limits are HeadParser's, not checked here.
[[nodiscard]] bool ParseRequestHead(std::string_view head, RequestHead& out, ParseFailure& failure);

class HeadParser {
 public:
  enum class State { kIncomplete, kComplete, kFailed };

  explicit HeadParser(HeadLimits limits) : limits_(limits) {}

  // Takes bytes of the head: returns how many of `data` it consumed (all of
  // them while incomplete; up to the head's end when complete; what is left
  // is the body or the next request). Call only while kIncomplete.
  size_t Feed(std::string_view data);

  State state() const { return state_; }
  // Whether any byte of the request arrived (an end before that is no error).
  bool started() const { return !buffer_.empty(); }
  const RequestHead& head() const { return head_; }  // when kComplete
  RequestHead& head() { return head_; }
  const ParseFailure& failure() const { return failure_; }  // when kFailed

 private:
  size_t Fail(ParseFailureKind kind, int status, std::string message, size_t consumed);

  const HeadLimits limits_;
  State state_ = State::kIncomplete;
  std::string buffer_;  // the head so far
  size_t line_start_ = 0;
  bool seen_request_line_ = false;
  size_t fields_ = 0;
  RequestHead head_;
  ParseFailure failure_;
};

// Decodes a chunked body (RFC 9112 section 7.1): hexadecimal sizes of at most
// 15 digits, chunk extensions skipped (bounded), data followed by CRLF,
// trailer fields skipped (bounded) up to the final empty line.
class ChunkedDecoder {
 public:
  enum class State { kIncomplete, kDone, kFailed };

  // Decodes from `in`: returns how many bytes it consumed and sets `data` to
  // the body bytes among them (a view into `in`, maybe empty). Call again with
  // the rest while kIncomplete; once kDone, what follows is the next request.
  size_t Feed(std::string_view in, std::string_view& data);

  State state() const {
    return state_ == Step::kDone     ? State::kDone
           : state_ == Step::kFailed ? State::kFailed
                                     : State::kIncomplete;
  }
  const std::string& error() const { return error_; }

 private:
  enum class Step {
    kSize,       // hex digits of a chunk size
    kExtension,  // after ';' up to CR
    kSizeLf,     // LF after the size line's CR
    kData,       // remaining_ bytes of data
    kDataCr,     // CR after data
    kDataLf,     // LF after data
    kTrailer,    // a trailer field line or the final empty line
    kTrailerLf,  // LF after a trailer line's CR
    kDone,
    kFailed,
  };
  size_t Fail(std::string message, size_t consumed);

  Step state_ = Step::kSize;
  uint64_t size_ = 0;
  size_t size_digits_ = 0;
  uint64_t remaining_ = 0;
  size_t extension_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  size_t trailer_line_ = 0;
  std::string error_;
};

}  // namespace hubcache
