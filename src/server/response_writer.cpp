#include "server/response_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "common/http_date.h"
#include "common/mapped_buffer.h"
#include "common/strings.h"

namespace hubcache {
namespace {

// sendfile(2) calls are at most this long, so that a transfer that fails is
// noticed between them.
constexpr size_t kSendFileChunkBytes = 8 * 1024 * 1024;

// Bodies (or, of a growing file, sendfile calls) at least this long go out
// corked: a single client's 1 GiB hit on loopback went from 0.77x to
// 0.96-1.0x nginx's rate.
constexpr size_t kCorkBytes = 1024 * 1024;

bool IsSafeFieldText(const std::string& s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Fields the writer sets itself (the framing, and Date), whatever a handler put there.
bool IsWriterOwnedField(const std::string& name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Keep-Alive") ||
         EqualsIgnoreCase(name, "Date");
}

bool WriteAll(ConnectionStream& stream, const char* data, size_t size) {
  return size == 0 || stream.write(data, size) == static_cast<ssize_t>(size);
}

// A provider that keeps returning true without writing is stuck: give up.
constexpr int kMaxIdleProviderCalls = 1000;

enum class FileSent { kWhole, kFailed, kSourceStopped };

// Sends [written, length) of `file` with sendfile(2), each chunk no further
// than `ready` allows for a growing file. kSourceStopped: the file will not
// grow far enough, and the rest is the fallback provider's.
FileSent SendFileBody(ConnectionStream& stream, const FileBody& file, size_t length,
                      uint64_t& written) {
  // A complete file is corked once, for the whole body. A growing file only
  // per call: the socket must not hold a short segment back while the file
  // waits for its upstream (Linux sends it only after 200 ms).
  const bool growing = static_cast<bool>(file.ready());
  ConnectionStream::Cork whole(stream, !growing && length - written >= kCorkBytes);
  while (written < length) {
    size_t want = std::min(length - written, kSendFileChunkBytes);
    const uint64_t at = file.first() + written;
    if (growing) {
      std::optional<uint64_t> end = file.ready()(at);
      if (!end || *end <= at) return FileSent::kSourceStopped;
      want = static_cast<size_t>(std::min<uint64_t>(want, *end - at));
    }
    ConnectionStream::Cork call(stream, growing && want >= kCorkBytes);
    if (!stream.SendFile(file.fd(), static_cast<off_t>(at), want)) return FileSent::kFailed;
    written += want;
  }
  return FileSent::kWhole;
}

bool WriteLengthBody(ConnectionStream& stream, const HttpResponse& res, uint64_t& written) {
  const uint64_t length = res.provider_length();
  if (const FileBody* file = res.length_provider().target<FileBody>();
      file != nullptr && stream.can_send_file()) {
    FileSent sent = SendFileBody(stream, *file, length, written);
    if (sent != FileSent::kSourceStopped) return sent == FileSent::kWhole;
  }
  // From what went out already (a growing file's fallback takes over there).
  size_t offset = static_cast<size_t>(written);
  bool ok = true;
  httplib::DataSink sink;
  sink.write = [&](const char* data, size_t size) {
    // Never more than announced: the framing must stay true.
    if (!ok || size > length - offset || !WriteAll(stream, data, size)) return ok = false;
    offset += size;
    written = offset;
    return true;
  };
  sink.is_writable = [&] { return ok; };
  sink.done = [] {};
  int idle_calls = 0;
  while (offset < length) {
    const size_t before = offset;
    if (!res.length_provider()(offset, length - offset, sink) || !ok) return false;
    idle_calls = offset == before ? idle_calls + 1 : 0;
    if (idle_calls > kMaxIdleProviderCalls) return false;
  }
  return true;
}

bool WriteChunkedBody(ConnectionStream& stream, const HttpResponse& res, uint64_t& written) {
  size_t offset = 0;
  bool ok = true;
  bool done = false;
  httplib::DataSink sink;
  sink.write = [&](const char* data, size_t size) {
    if (!ok || done) return ok = false;
    if (size == 0) return true;
    char head[24];
    int n = std::snprintf(head, sizeof(head), "%zx\r\n", size);
    if (!WriteAll(stream, head, static_cast<size_t>(n)) || !WriteAll(stream, data, size) ||
        !WriteAll(stream, "\r\n", 2)) {
      return ok = false;
    }
    offset += size;
    written = offset;
    return true;
  };
  sink.is_writable = [&] { return ok; };
  sink.done = [&] { done = true; };
  int idle_calls = 0;
  while (!done) {
    const size_t before = offset;
    if (!res.chunked_provider()(offset, sink) || !ok) return false;
    idle_calls = offset == before && !done ? idle_calls + 1 : 0;
    if (idle_calls > kMaxIdleProviderCalls) return false;
  }
  return WriteAll(stream, "0\r\n\r\n", 5);
}

}  // namespace

struct FileBody::State {
  std::shared_ptr<void> owner;
  std::unique_ptr<MappedBuffer> buffer;  // made for the first buffered read
};

FileBody::FileBody(int fd, uint64_t first, std::shared_ptr<void> owner)
    : fd_(fd), first_(first), state_(std::make_shared<State>(State{std::move(owner), nullptr})) {}

FileBody::FileBody(int fd, uint64_t first, std::shared_ptr<void> owner, Ready ready,
                   Provider fallback)
    : FileBody(fd, first, std::move(owner)) {
  ready_ = std::move(ready);
  fallback_ = std::move(fallback);
}

bool FileBody::operator()(size_t offset, size_t length, httplib::DataSink& sink) const {
  if (fallback_) return fallback_(offset, length, sink);
  State& s = *state_;
  if (!s.buffer) s.buffer = std::make_unique<MappedBuffer>(kStreamChunkBytes);
  if (s.buffer->size() == 0) return false;  // out of memory
  size_t want = std::min(length, s.buffer->size());
  ssize_t n;
  do {
    n = ::pread(fd_, s.buffer->data(), want, static_cast<off_t>(first_ + offset));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;  // the file shrank or failed: cut the response short
  return sink.write(s.buffer->data(), static_cast<size_t>(n));
}

void SetFileBody(HttpResponse& res, uint64_t length, const std::string& content_type,
                 FileBody file) {
  res.set_content_provider(length, content_type, std::move(file));
}

const char* StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

ResponseWritten WriteResponse(ConnectionStream& stream, HttpResponse& res,
                              ResponseFraming framing) {
  if (res.status < 100 || res.status > 599) res.status = 500;
  const bool no_body = res.status < 200 || res.status == 204 || res.status == 304;
  const bool chunked = res.has_chunked_provider();
  std::string head;
  head.reserve(512);
  head += "HTTP/1.1 ";
  head += std::to_string(res.status);
  head += ' ';
  head += StatusReason(res.status);
  head += "\r\n";
  head += "Date: ";  // RFC 9110 section 6.6.1: a server with a clock sends it
  head += HttpDateNow();
  head += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (IsWriterOwnedField(name) || !IsSafeFieldText(name) || !IsSafeFieldText(value)) continue;
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  if (!no_body) {
    if (chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    } else {
      head += "Content-Length: ";
      head += std::to_string(res.has_length_provider() ? res.provider_length() : res.body.size());
      head += "\r\n";
    }
  }
  if (framing.close) {
    head += "Connection: close\r\n";
  } else if (framing.keep_alive_header) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  ResponseWritten written;
  if (!WriteAll(stream, head.data(), head.size())) return written;
  if (no_body || framing.head_only) {
    written.complete = true;
    return written;
  }
  bool ok;
  if (!res.has_length_provider() && !chunked) {
    ok = WriteAll(stream, res.body.data(), res.body.size());
    if (ok) written.body_bytes = res.body.size();
  } else if (chunked) {
    ok = WriteChunkedBody(stream, res, written.body_bytes);
  } else {
    ok = WriteLengthBody(stream, res, written.body_bytes);
  }
  written.complete = ok;
  return written;
}

}  // namespace hubcache
