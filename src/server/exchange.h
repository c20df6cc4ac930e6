#pragma once
// One request and its answer on a client connection, read by the one strict
// parser (server/request_parser.h) and nothing else:
//   1. the head is parsed (limits, framing); a failure is answered once and
//      the connection closed;
//   2. the router admits the request from its head alone: credentials and
//      per-client limits are checked before any body byte is read;
//   3. only a route that asks for the body gets it, read incrementally up to
//      the route's limit (413 past it; a framing error in it: 400); a body
//      nobody reads closes the connection after the answer;
//   4. the answer is written (server/response_writer.h).
// The handlers see an httplib::Request built from the parsed head (the path
// percent-decoded, the query split into parameters; header values as sent)
// and fill an HttpResponse (server/http_response.h); cpp-httplib itself never
// parses a request (so req.ranges stays empty: a Range header is read once, by
// registry/range.h).
// Thread-safety: ServeExchange runs on the thread serving the connection, and
// everything of one request (its RequestContext, RequestBody, request and
// response) is that thread's alone; a RequestRouter is shared by every
// connection and must take concurrent calls. The caller owns the stream; the
// router is borrowed.

#include <openssl/ssl.h>

#include <httplib.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/byte_source.h"
#include "server/connection_counters.h"
#include "server/connection_stream.h"
#include "server/http_response.h"
#include "server/request_parser.h"

namespace hubcache {

// What a route wants once it has seen a request's head.
struct Admission {
  enum class Kind {
    kAnswered,  // the response is written already (refused, or nothing to read)
    kHandle,    // handle it; the handler may stream the body (RequestBody)
    kReadBody,  // read the body (up to max_body bytes) into req.body, then handle it
  };
  Kind kind = Kind::kHandle;
  size_t max_body = 0;
};

// A request's body as the handler reads it: incrementally, through the one
// parser's framing (Content-Length or chunked), with `100 Continue` sent before
// the first read when the client asked for it. A handler that answers without
// reading it all leaves the connection to be closed after the answer.
// Not thread-safe: the thread serving the request reads it.
class RequestBody final : public ByteSource {
 public:
  RequestBody(ConnectionStream& stream, const RequestHead& head);
  bool present() const { return present_; }
  // The Content-Length, when the body is framed by one.
  std::optional<uint64_t> declared_length() const;
  // Reads the next bytes: 0 at the end, an error when the client went away or
  // the chunked framing is malformed (then the connection is closed).
  Result<size_t> Read(char* buffer, size_t size) override;
  bool complete() const { return done_; }
  bool failed() const { return failed_; }
  // How many bytes were read so far.
  uint64_t consumed() const { return consumed_; }

 private:
  ConnectionStream& stream_;
  const RequestHead& head_;
  bool present_;
  bool continue_sent_ = false;
  bool done_ = false;
  bool failed_ = false;
  uint64_t consumed_ = 0;
  ChunkedDecoder decoder_;
  std::string_view pending_;  // decoded chunk data not yet handed out
};

// One request as the connection layer saw it beyond its head: when it began,
// how much of the answer's body went out, and what the router holds for it
// between Admit and Finish. Made by ServeExchange for each request and used by
// the thread serving it only.
struct RequestContext {
  std::chrono::steady_clock::time_point start;  // the head was read whole
  uint64_t body_bytes = 0;                      // of the answer's body, set before Finish
  bool client_slot_held = false;                // the router's: a per-client slot, taken in Admit
};

// Implemented by the HTTP front (http_server.cpp). Called by the thread that
// serves the connection, for one request at a time per connection; the
// implementation must be safe for concurrent calls across connections.
class RequestRouter {
 public:
  virtual ~RequestRouter() = default;
  // The head is parsed into `req`. Credentials and limits are checked here.
  virtual Admission Admit(RequestContext& context, httplib::Request& req, HttpResponse& res) = 0;
  // Produces the answer; may read `body` (see RequestBody).
  virtual void Handle(httplib::Request& req, HttpResponse& res, RequestBody& body) = 0;
  // After the answer went out (or failed), for every admitted request: logs,
  // counts and gives back what Admit took.
  virtual void Finish(const RequestContext& context, const httplib::Request& req,
                      const HttpResponse& res) = 0;
};

// Splits a request target into the percent-decoded path and its query
// parameters ('+' is a space there). False for an invalid percent escape. What
// the escapes stand for (NUL, '/', '..') is the routes' grammar to refuse.
[[nodiscard]] bool DecodeTarget(const std::string& target, std::string& path,
                                httplib::Params& params);

// How the connection goes on after one request.
enum class ExchangeEnd {
  kKeepAlive,  // ready for the next request
  kClose,      // answered whole; close now
  kBroken,     // refused, cut short, or the client is gone: close now
};

// Serves one request from `stream` (BeginRequest() called). `last`: this is
// the connection's last request.
ExchangeEnd ServeExchange(ConnectionStream& stream, const ConnectionLimits& limits, SSL* ssl,
                          bool last, RequestRouter& router, ConnectionCounters& counters);

}  // namespace hubcache
