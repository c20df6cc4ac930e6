#include "server/request_parser.h"

#include <algorithm>

#include "common/strings.h"

namespace hubcache {
namespace {

// field-value bytes: visible, obs-text, space and tab; no other control byte.
bool IsValueByte(unsigned char c) { return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f); }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The elements of a comma-separated list (RFC 9110 section 5.6.1), empty ones dropped.
std::vector<std::string_view> ListElements(std::string_view value) {
  std::vector<std::string_view> out;
  while (true) {
    size_t comma = value.find(',');
    std::string_view element = TrimOws(value.substr(0, comma));
    if (!element.empty()) out.push_back(element);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return out;
}

bool Fail(ParseFailure& failure, ParseFailureKind kind, int status, std::string message) {
  failure.kind = kind;
  failure.status = status;
  failure.message = std::move(message);
  return false;
}

bool Malformed(ParseFailure& failure, std::string message) {
  return Fail(failure, ParseFailureKind::kMalformed, 400, std::move(message));
}

bool ParseRequestLine(std::string_view line, RequestHead& out, ParseFailure& failure) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return Malformed(failure, "malformed request line");
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return Malformed(failure, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Malformed(failure, "malformed request method");
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
      })) {
    return Malformed(failure, "malformed request target");
  }
  if (target == "*") {
    if (method != "OPTIONS") return Malformed(failure, "the target * is for OPTIONS only");
  } else if (target.front() != '/') {
    return Malformed(failure, "only origin-form request targets (/path?query) are served");
  }
  if (version == "HTTP/1.1") {
    out.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    out.minor_version = 0;
  } else if (version.size() == 8 && version.substr(0, 5) == "HTTP/" && IsDigit(version[5]) &&
             version[6] == '.' && IsDigit(version[7])) {
    return Fail(failure, ParseFailureKind::kVersion, 505, "only HTTP/1.1 and HTTP/1.0 are served");
  } else {
    return Malformed(failure, "malformed HTTP version");
  }
  out.method = std::string(method);
  out.target = std::string(target);
  return true;
}

// What the fields say about framing and the connection.
bool ReadFraming(RequestHead& out, ParseFailure& failure) {
  size_t hosts = 0;
  size_t lengths = 0;
  std::vector<std::string_view> codings;
  bool has_transfer_encoding = false;
  bool close = false;
  bool keep_alive = false;
  for (const auto& [name, value] : out.fields) {
    if (EqualsIgnoreCase(name, "Host")) {
      ++hosts;
    } else if (EqualsIgnoreCase(name, "Content-Length")) {
      if (++lengths > 1) return Malformed(failure, "more than one Content-Length");
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), IsDigit)) {
        return Malformed(failure, "invalid Content-Length");
      }
      out.content_length = std::stoull(value);
    } else if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
      has_transfer_encoding = true;
      for (std::string_view coding : ListElements(value)) codings.push_back(coding);
    } else if (EqualsIgnoreCase(name, "Connection")) {
      for (std::string_view option : ListElements(value)) {
        if (EqualsIgnoreCase(option, "close")) close = true;
        if (EqualsIgnoreCase(option, "keep-alive")) keep_alive = true;
      }
    } else if (EqualsIgnoreCase(name, "Expect")) {
      if (!EqualsIgnoreCase(value, "100-continue")) {
        return Fail(failure, ParseFailureKind::kExpectation, 417,
                    "only Expect: 100-continue is understood");
      }
      out.expect_continue = out.minor_version == 1;
    }
  }
  if (out.minor_version == 1 ? hosts != 1 : hosts > 1) {
    return Malformed(failure, "a request needs exactly one Host header");
  }
  if (has_transfer_encoding) {
    if (lengths > 0) return Malformed(failure, "both Content-Length and Transfer-Encoding");
    if (out.minor_version == 0)
      return Malformed(failure, "Transfer-Encoding in an HTTP/1.0 request");
    if (codings.empty() || !EqualsIgnoreCase(codings.back(), "chunked")) {
      return Malformed(failure, "the last transfer coding must be chunked");
    }
    if (codings.size() > 1) {
      return Fail(failure, ParseFailureKind::kNotImplemented, 501,
                  "transfer codings other than chunked are not supported");
    }
    out.framing = BodyFraming::kChunked;
  } else if (lengths > 0) {
    out.framing = BodyFraming::kLength;
  }
  out.keep_alive = !close && (out.minor_version == 1 || keep_alive);
  return true;
}

}  // namespace

bool ParseRequestHead(std::string_view head, RequestHead& out, ParseFailure& failure) {
  out = RequestHead{};
  size_t pos = 0;
  while (head.substr(pos, 2) == "\r\n") pos += 2;
  bool request_line = true;
  for (;;) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) return Malformed(failure, "incomplete request head");
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) {
      if (request_line) return Malformed(failure, "incomplete request head");
      break;
    }
    if (request_line) {
      if (!ParseRequestLine(line, out, failure)) return false;
      request_line = false;
      continue;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      return Malformed(failure, "folded header field lines (obs-fold) are not accepted");
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Malformed(failure, "header field without a colon");
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) return Malformed(failure, "malformed header field name");
    std::string_view value = line.substr(colon + 1);
    if (!std::all_of(value.begin(), value.end(),
                     [](char c) { return IsValueByte(static_cast<unsigned char>(c)); })) {
      return Malformed(failure, "control character in a header field value");
    }
    out.fields.emplace_back(std::string(name), std::string(TrimOws(value)));
  }
  if (pos != head.size()) return Malformed(failure, "bytes after the request head");
  return ReadFraming(out, failure);
}

size_t HeadParser::Fail(ParseFailureKind kind, int status, std::string message, size_t consumed) {
  state_ = State::kFailed;
  failure_.kind = kind;
  failure_.status = status;
  failure_.message = std::move(message);
  return consumed;
}

size_t HeadParser::Feed(std::string_view data) {
  size_t i = 0;
  while (i < data.size()) {
    // A run of ordinary bytes is checked against the limits and taken at
    // once; a failure names the first byte past a limit, as byte by byte.
    if (buffer_.empty() || buffer_.back() != '\r') {
      size_t end = i;
      while (end < data.size() && data[end] != '\r' && data[end] != '\n') ++end;
      if (end > i) {
        const size_t run = end - i;
        const size_t line_room =
            seen_request_line_ ? run : limits_.max_request_line - (buffer_.size() - line_start_);
        const size_t head_room = limits_.max_header_bytes - buffer_.size();
        if (line_room < run && line_room <= head_room) {
          return Fail(ParseFailureKind::kRequestLineTooLong, 414, "the request line is too long",
                      i + line_room + 1);
        }
        if (head_room < run) {
          return Fail(ParseFailureKind::kHeadTooLarge, 431, "the request headers are too large",
                      i + head_room + 1);
        }
        buffer_.append(data.substr(i, run));
        i = end;
        continue;
      }
    }
    const char c = data[i];
    const bool after_cr = !buffer_.empty() && buffer_.back() == '\r';
    if (after_cr && c != '\n') {
      return Fail(ParseFailureKind::kMalformed, 400, "a CR not followed by LF in the request head",
                  i + 1);
    }
    if (c == '\n' && !after_cr) {
      return Fail(ParseFailureKind::kMalformed, 400, "a request head line ends in a bare LF",
                  i + 1);
    }
    buffer_.push_back(c);
    ++i;
    if (buffer_.size() > limits_.max_header_bytes) {
      return Fail(ParseFailureKind::kHeadTooLarge, 431, "the request headers are too large", i);
    }
    if (c != '\n') continue;
    const bool empty_line = buffer_.size() - line_start_ == 2;
    line_start_ = buffer_.size();
    if (empty_line) {
      if (!seen_request_line_) continue;  // before the request line: skipped
      ParseFailure failure;
      if (!ParseRequestHead(buffer_, head_, failure)) {
        return Fail(failure.kind, failure.status, std::move(failure.message), i);
      }
      state_ = State::kComplete;
      return i;
    }
    if (!seen_request_line_) {
      seen_request_line_ = true;
    } else if (++fields_ > limits_.max_header_fields) {
      return Fail(ParseFailureKind::kTooManyFields, 431, "too many request header fields", i);
    }
  }
  return data.size();
}

size_t ChunkedDecoder::Fail(std::string message, size_t consumed) {
  state_ = Step::kFailed;
  error_ = std::move(message);
  return consumed;
}

size_t ChunkedDecoder::Feed(std::string_view in, std::string_view& data) {
  // Bounds on what is skipped: extensions of one chunk, all trailer fields.
  constexpr size_t kMaxExtensionBytes = 4096;
  constexpr size_t kMaxTrailerBytes = 16 * 1024;
  constexpr size_t kMaxSizeDigits = 15;  // under 2^60: no overflow
  data = {};
  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case Step::kSize:
        if (IsHexDigit(c)) {
          if (++size_digits_ > kMaxSizeDigits) return Fail("chunk size too large", i + 1);
          size_ = size_ * 16 + static_cast<uint64_t>(HexValue(c));
        } else if (size_digits_ > 0 && c == ';') {
          state_ = Step::kExtension;
          extension_bytes_ = 0;
        } else if (size_digits_ > 0 && c == '\r') {
          state_ = Step::kSizeLf;
        } else {
          return Fail("malformed chunk size", i + 1);
        }
        ++i;
        break;
      case Step::kExtension:
        if (c == '\r') {
          state_ = Step::kSizeLf;
        } else if (!IsValueByte(static_cast<unsigned char>(c))) {
          return Fail("control character in a chunk extension", i + 1);
        } else if (++extension_bytes_ > kMaxExtensionBytes) {
          return Fail("chunk extension too long", i + 1);
        }
        ++i;
        break;
      case Step::kSizeLf:
        if (c != '\n') return Fail("chunk size line not ended by CRLF", i + 1);
        ++i;
        if (size_ == 0) {
          state_ = Step::kTrailer;
          trailer_line_ = 0;
        } else {
          remaining_ = size_;
          state_ = Step::kData;
        }
        size_ = 0;
        size_digits_ = 0;
        break;
      case Step::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, in.size() - i));
        data = in.substr(i, n);
        remaining_ -= n;
        i += n;
        if (remaining_ == 0) state_ = Step::kDataCr;
        return i;  // one span of data per call
      }
      case Step::kDataCr:
        if (c != '\r') return Fail("chunk data not followed by CRLF", i + 1);
        state_ = Step::kDataLf;
        ++i;
        break;
      case Step::kDataLf:
        if (c != '\n') return Fail("chunk data not followed by CRLF", i + 1);
        state_ = Step::kSize;
        ++i;
        break;
      case Step::kTrailer:
        if (++trailer_bytes_ > kMaxTrailerBytes) return Fail("chunked trailer too large", i + 1);
        if (c == '\r') {
          state_ = Step::kTrailerLf;
        } else if (c == '\n' || (!IsValueByte(static_cast<unsigned char>(c)))) {
          return Fail("malformed chunked trailer", i + 1);
        } else {
          ++trailer_line_;
        }
        ++i;
        break;
      case Step::kTrailerLf:
        if (c != '\n') return Fail("chunked trailer line not ended by CRLF", i + 1);
        ++i;
        if (trailer_line_ == 0) {
          state_ = Step::kDone;
          return i;
        }
        trailer_line_ = 0;
        state_ = Step::kTrailer;
        break;
      case Step::kDone:
      case Step::kFailed:
        return i;
    }
  }
  return i;
}

}  // namespace hubcache
