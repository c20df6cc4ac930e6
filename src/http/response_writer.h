#pragma once
// Writes a handler's httplib::Response on a client connection: the status
// line, the handler's fields (any with a CR, LF or NUL dropped: no response
// splitting), our framing fields, and the body from Response::body or its
// content provider. Framing is ours alone: Content-Length is the body's real
// length (a provider that writes more is cut off), Transfer-Encoding: chunked
// for a provider without a length, no body for HEAD, 1xx, 204 and 304.
// A provider that fails cuts the body short: the connection must then close,
// so the client sees a truncated response, never a complete-looking one.
// Stateless functions; the stream is used by the calling thread only.

#include <httplib.h>

#include "http/connection_stream.h"

namespace hubcache {

// "OK", "Not Found", ...: the reason phrase for a status.
const char* StatusReason(int status);

struct ResponseFraming {
  bool head_only = false;          // the request was HEAD: fields only
  bool close = false;              // Connection: close, no further request
  bool keep_alive_header = false;  // an HTTP/1.0 client kept alive: say so
};

// Returns false when the answer did not go out whole (the client is gone or
// the body was cut short): the connection cannot carry another request.
[[nodiscard]] bool WriteResponse(ConnectionStream& stream, httplib::Response& res,
                                 ResponseFraming framing);

}  // namespace hubcache
