#include "server/exchange.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <string>

#include "common/log.h"
#include "common/strings.h"
#include "registry/errors.h"
#include "server/response_writer.h"

namespace hubcache {
namespace {

bool PercentDecode(std::string_view in, bool plus_is_space, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      if (!IsHexDigit(in[i + 1]) || !IsHexDigit(in[i + 2])) return false;
      out.push_back(static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2])));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

std::atomic<uint64_t>& Counter(ConnectionCounters& counters, ParseFailureKind kind) {
  switch (kind) {
    case ParseFailureKind::kRequestLineTooLong:
      return counters.rejected_request_line_too_long;
    case ParseFailureKind::kHeadTooLarge:
      return counters.rejected_headers_too_large;
    case ParseFailureKind::kTooManyFields:
      return counters.rejected_too_many_headers;
    case ParseFailureKind::kNotImplemented:
    case ParseFailureKind::kVersion:
    case ParseFailureKind::kExpectation:
      return counters.rejected_unsupported;
    case ParseFailureKind::kMalformed:
      break;
  }
  return counters.rejected_malformed_request;
}

enum class BodyRead { kOk, kTooLarge, kMalformed, kGone };

BodyRead ReadBody(ConnectionStream& stream, const RequestHead& head, size_t max_body,
                  std::string& body, std::string& error) {
  if (head.framing == BodyFraming::kLength) {
    if (head.content_length > max_body) return BodyRead::kTooLarge;
    body.reserve(static_cast<size_t>(head.content_length));
    while (body.size() < head.content_length) {
      std::string_view in = stream.Peek();
      if (in.empty()) return BodyRead::kGone;
      size_t n = std::min<size_t>(in.size(), head.content_length - body.size());
      body.append(in.data(), n);
      stream.Consume(n);
    }
    return BodyRead::kOk;
  }
  if (head.framing != BodyFraming::kChunked) return BodyRead::kOk;
  ChunkedDecoder decoder;
  while (decoder.state() == ChunkedDecoder::State::kIncomplete) {
    std::string_view in = stream.Peek();
    if (in.empty()) return BodyRead::kGone;
    std::string_view data;
    stream.Consume(decoder.Feed(in, data));
    if (data.size() > max_body - body.size()) return BodyRead::kTooLarge;
    body.append(data);
  }
  if (decoder.state() == ChunkedDecoder::State::kFailed) {
    error = decoder.error();
    return BodyRead::kMalformed;
  }
  return BodyRead::kOk;
}

void BuildRequest(RequestHead& head, std::string path, httplib::Params params,
                  ConnectionStream& stream, SSL* ssl, httplib::Request& req) {
  req.method = std::move(head.method);
  req.target = std::move(head.target);
  req.version = head.minor_version == 1 ? "HTTP/1.1" : "HTTP/1.0";
  req.path = std::move(path);
  req.params = std::move(params);
  for (auto& [name, value] : head.fields) req.headers.emplace(std::move(name), std::move(value));
  stream.get_remote_ip_and_port(req.remote_addr, req.remote_port);
  stream.get_local_ip_and_port(req.local_addr, req.local_port);
  req.ssl = ssl;
}

void HandleGuarded(RequestRouter& router, httplib::Request& req, HttpResponse& res,
                   RequestBody& body) {
  // The fields set at admission (API version, configured fields) go out on
  // the 500 too.
  httplib::Headers admitted = res.headers;
  try {
    router.Handle(req, res, body);
    if (res.status == -1) res.status = 200;
    return;
  } catch (const std::exception& e) {
    Logger("http")->error("handler exception: {}", e.what());
  } catch (...) {
    Logger("http")->error("handler exception of unknown type");
  }
  res = HttpResponse();
  res.headers = std::move(admitted);
  res.status = 500;
  res.set_content(ErrorJson("UNKNOWN", "internal error"), "application/json");
}

}  // namespace

RequestBody::RequestBody(ConnectionStream& stream, const RequestHead& head)
    : stream_(stream), head_(head), present_(head.has_body()) {
  done_ = !present_;
}

std::optional<uint64_t> RequestBody::declared_length() const {
  if (head_.framing == BodyFraming::kLength) return head_.content_length;
  if (!present_) return uint64_t{0};
  return std::nullopt;
}

Result<size_t> RequestBody::Read(char* buffer, size_t size) {
  if (failed_) return Fail(ErrorKind::kBlobUploadInvalid, "the request body failed before");
  if (done_ || size == 0) return size_t{0};
  if (head_.expect_continue && !continue_sent_) {
    continue_sent_ = true;
    static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (stream_.write(kContinue, sizeof(kContinue) - 1) < 0 || !stream_.Flush()) {
      failed_ = true;
      return Fail(ErrorKind::kBlobUploadInvalid, "the client went away");
    }
  }
  if (head_.framing == BodyFraming::kLength) {
    std::string_view in = stream_.Peek();
    if (in.empty()) {
      failed_ = true;
      return Fail(ErrorKind::kBlobUploadInvalid, "the client sent " + std::to_string(consumed_) +
                                                     " of " + std::to_string(head_.content_length) +
                                                     " bytes and went away");
    }
    size_t n = std::min<uint64_t>({in.size(), size, head_.content_length - consumed_});
    std::memcpy(buffer, in.data(), n);
    stream_.Consume(n);
    consumed_ += n;
    if (consumed_ == head_.content_length) done_ = true;
    return n;
  }
  while (pending_.empty()) {
    if (decoder_.state() == ChunkedDecoder::State::kDone) {
      done_ = true;
      return size_t{0};
    }
    std::string_view in = stream_.Peek();
    if (in.empty()) {
      failed_ = true;
      return Fail(ErrorKind::kBlobUploadInvalid, "the client went away mid-body");
    }
    stream_.Consume(decoder_.Feed(in, pending_));
    if (decoder_.state() == ChunkedDecoder::State::kFailed) {
      failed_ = true;
      return Fail(ErrorKind::kBlobUploadInvalid, "malformed chunked body: " + decoder_.error());
    }
  }
  size_t n = std::min(size, pending_.size());
  std::memcpy(buffer, pending_.data(), n);
  pending_.remove_prefix(n);
  consumed_ += n;
  if (pending_.empty() && decoder_.state() == ChunkedDecoder::State::kDone) done_ = true;
  return n;
}

bool DecodeTarget(const std::string& target, std::string& path, httplib::Params& params) {
  size_t question = target.find('?');
  if (!PercentDecode(std::string_view(target).substr(0, question), false, path)) return false;
  params.clear();
  if (question == std::string::npos) return true;
  std::string_view query = std::string_view(target).substr(question + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key;
    std::string value;
    if (!PercentDecode(pair.substr(0, eq), true, key)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), true, value)) {
      return false;
    }
    params.emplace(std::move(key), std::move(value));
  }
  return true;
}

ExchangeEnd ServeExchange(ConnectionStream& stream, const ConnectionLimits& limits, SSL* ssl,
                          bool last, RequestRouter& router, ConnectionCounters& counters) {
  HeadParser parser(
      HeadLimits{limits.max_request_line, limits.max_header_bytes, limits.max_header_fields});
  while (parser.state() == HeadParser::State::kIncomplete) {
    std::string_view in = stream.Peek();
    if (in.empty()) {
      // The client closed between requests, or went silent mid-head (408
      // answered then): nothing more to say.
      return ExchangeEnd::kBroken;
    }
    stream.Consume(parser.Feed(in));
  }
  stream.EndHead();
  if (parser.state() == HeadParser::State::kFailed) {
    const ParseFailure& failure = parser.failure();
    stream.Reject(failure.status, failure.message.c_str(), Counter(counters, failure.kind));
    return ExchangeEnd::kBroken;
  }
  RequestHead& head = parser.head();
  std::string path;
  httplib::Params params;
  if (!DecodeTarget(head.target, path, params)) {
    stream.Reject(400, "invalid percent-encoding in the request target",
                  counters.rejected_malformed_request);
    return ExchangeEnd::kBroken;
  }
  const bool has_body = head.has_body();
  httplib::Request req;
  HttpResponse res;
  // Moves the method, target and fields out of `head`; its framing stays.
  BuildRequest(head, std::move(path), std::move(params), stream, ssl, req);

  bool close = last || !head.keep_alive;
  bool body_unread = false;
  RequestBody body(stream, head);
  RequestContext context{.start = std::chrono::steady_clock::now()};
  Admission admission = router.Admit(context, req, res);
  switch (admission.kind) {
    case Admission::Kind::kAnswered:
      body_unread = has_body;
      break;
    case Admission::Kind::kHandle:
      HandleGuarded(router, req, res, body);
      body_unread = !body.complete();
      break;
    case Admission::Kind::kReadBody: {
      if (head.expect_continue && has_body &&
          !(head.framing == BodyFraming::kLength && head.content_length > admission.max_body)) {
        static constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (stream.write(kContinue, sizeof(kContinue) - 1) < 0 || !stream.Flush()) {
          router.Finish(context, req, res);
          return ExchangeEnd::kBroken;
        }
      }
      std::string error;
      switch (ReadBody(stream, head, admission.max_body, req.body, error)) {
        case BodyRead::kOk: {
          const RequestHead no_body;
          RequestBody read_already(stream, no_body);
          HandleGuarded(router, req, res, read_already);
          break;
        }
        case BodyRead::kTooLarge:
          res = HttpResponse();
          res.status = 413;
          stream.Reject(413, "the request body is too large", counters.rejected_body_too_large);
          router.Finish(context, req, res);
          return ExchangeEnd::kBroken;
        case BodyRead::kMalformed:
          res = HttpResponse();
          res.status = 400;
          stream.Reject(400, error.c_str(), counters.rejected_malformed_request);
          router.Finish(context, req, res);
          return ExchangeEnd::kBroken;
        case BodyRead::kGone:
          res = HttpResponse();
          res.status = 400;
          router.Finish(context, req, res);
          return ExchangeEnd::kBroken;
      }
      break;
    }
  }
  if (body_unread) {
    close = true;
    stream.CloseAfterResponse();
  }
  if (res.get_header_value("Connection") == "close") close = true;
  ResponseFraming framing{.head_only = req.method == "HEAD",
                          .close = close,
                          .keep_alive_header = head.minor_version == 0 && !close};
  const ResponseWritten written = WriteResponse(stream, res, framing);
  context.body_bytes = written.body_bytes;
  router.Finish(context, req, res);
  if (!written.complete) return ExchangeEnd::kBroken;
  return close ? ExchangeEnd::kClose : ExchangeEnd::kKeepAlive;
}

}  // namespace hubcache
