#pragma once
// Writes a handler's HttpResponse on a client connection: the status
// line, the handler's fields (any with a CR, LF or NUL dropped: no response
// splitting), our framing fields, and the body from its bytes or its
// content provider. Framing is ours alone: Content-Length is the body's real
// length (a provider that writes more is cut off), Transfer-Encoding: chunked
// for a provider without a length, no body for HEAD, 1xx, 204 and 304.
// A provider that fails cuts the body short: the connection must then close,
// so the client sees a truncated response, never a complete-looking one.
// A FileBody provider is the writer's to send: with sendfile(2) straight from
// the page cache on a plain connection, through a buffer on a TLS one.
// Stateless functions; the stream is used by the calling thread only.
// FileBody is a copyable handle on shared state that one transfer uses at a time.

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "server/connection_stream.h"
#include "server/http_response.h"

namespace hubcache {

// The body of a response read from an open file: its bytes [first, first +
// length). `owner` keeps the file descriptor (and whatever else must last as
// long as the transfer) alive until the response is gone.
//
// A file still being written (a blob being fetched) comes with `ready` and
// `fallback`. `ready(offset)` waits until the file holds bytes at `offset`
// that may be sent and returns where they end (past `offset`), or nullopt when
// the file will not grow there. The writer then sends sendfile(2) chunks up to
// that end; on nullopt, and on a TLS connection throughout, it asks `fallback`,
// a content provider that writes the body from the given offset its own way.
class FileBody {
 public:
  using Ready = std::function<std::optional<uint64_t>(uint64_t file_offset)>;
  using Provider = std::function<bool(size_t offset, size_t length, httplib::DataSink& sink)>;

  FileBody(int fd, uint64_t first, std::shared_ptr<void> owner);
  FileBody(int fd, uint64_t first, std::shared_ptr<void> owner, Ready ready, Provider fallback);
  int fd() const { return fd_; }
  uint64_t first() const { return first_; }
  // Null for a complete file.
  const Ready& ready() const { return ready_; }
  // The content provider: the bytes at `offset` into `sink`, through a buffer
  // (or `fallback`). The writer calls it only when it cannot send the file itself.
  bool operator()(size_t offset, size_t length, httplib::DataSink& sink) const;

 private:
  struct State;
  int fd_;
  uint64_t first_;
  std::shared_ptr<State> state_;  // the owner, and the buffer of buffered reads
  Ready ready_;
  Provider fallback_;
};

// Makes `file` the body of `res`: `length` bytes of `content_type`.
void SetFileBody(HttpResponse& res, uint64_t length, const std::string& content_type,
                 FileBody file);

// "OK", "Not Found", ...: the reason phrase for a status.
const char* StatusReason(int status);

struct ResponseFraming {
  bool head_only = false;          // the request was HEAD: fields only
  bool close = false;              // Connection: close, no further request
  bool keep_alive_header = false;  // an HTTP/1.0 client kept alive: say so
};

struct ResponseWritten {
  // False when the answer did not go out whole (the client is gone or the body
  // was cut short): the connection cannot carry another request.
  bool complete = false;
  uint64_t body_bytes = 0;  // of the body, as sent (chunk framing not counted)
};

[[nodiscard]] ResponseWritten WriteResponse(ConnectionStream& stream, HttpResponse& res,
                                            ResponseFraming framing);

}  // namespace hubcache
