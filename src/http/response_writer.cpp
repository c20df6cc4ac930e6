#include "http/response_writer.h"

#include <string>

#include "common/strings.h"

namespace hubcache {
namespace {

bool IsSafeFieldText(const std::string& s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Fields the writer sets itself, whatever a handler put there.
bool IsFramingField(const std::string& name) {
  return EqualsIgnoreCase(name, "Content-Length") || EqualsIgnoreCase(name, "Transfer-Encoding") ||
         EqualsIgnoreCase(name, "Connection") || EqualsIgnoreCase(name, "Keep-Alive");
}

bool WriteAll(ConnectionStream& stream, const char* data, size_t size) {
  return size == 0 || stream.write(data, size) == static_cast<ssize_t>(size);
}

// A provider that keeps returning true without writing is stuck: give up.
constexpr int kMaxIdleProviderCalls = 1000;

bool WriteLengthBody(ConnectionStream& stream, httplib::Response& res) {
  const size_t length = res.content_length_;
  size_t offset = 0;
  bool ok = true;
  httplib::DataSink sink;
  sink.write = [&](const char* data, size_t size) {
    // Never more than announced: the framing must stay true.
    if (!ok || size > length - offset || !WriteAll(stream, data, size)) return ok = false;
    offset += size;
    return true;
  };
  sink.is_writable = [&] { return ok; };
  sink.done = [] {};
  int idle_calls = 0;
  while (offset < length) {
    const size_t before = offset;
    if (!res.content_provider_(offset, length - offset, sink) || !ok) return false;
    idle_calls = offset == before ? idle_calls + 1 : 0;
    if (idle_calls > kMaxIdleProviderCalls) return false;
  }
  return true;
}

bool WriteChunkedBody(ConnectionStream& stream, httplib::Response& res) {
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
    return true;
  };
  sink.is_writable = [&] { return ok; };
  sink.done = [&] { done = true; };
  int idle_calls = 0;
  while (!done) {
    const size_t before = offset;
    // httplib keeps a chunked provider behind a three-argument adapter.
    if (!res.content_provider_(offset, 0, sink) || !ok) return false;
    idle_calls = offset == before && !done ? idle_calls + 1 : 0;
    if (idle_calls > kMaxIdleProviderCalls) return false;
  }
  return WriteAll(stream, "0\r\n\r\n", 5);
}

}  // namespace

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

bool WriteResponse(ConnectionStream& stream, httplib::Response& res, ResponseFraming framing) {
  if (res.status < 100 || res.status > 599) res.status = 500;
  const bool no_body = res.status < 200 || res.status == 204 || res.status == 304;
  const bool chunked = res.content_provider_ && res.is_chunked_content_provider_;
  std::string head;
  head.reserve(512);
  head += "HTTP/1.1 ";
  head += std::to_string(res.status);
  head += ' ';
  head += StatusReason(res.status);
  head += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (IsFramingField(name) || !IsSafeFieldText(name) || !IsSafeFieldText(value)) continue;
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
      head += std::to_string(res.content_provider_ ? res.content_length_ : res.body.size());
      head += "\r\n";
    }
  }
  if (framing.close) {
    head += "Connection: close\r\n";
  } else if (framing.keep_alive_header) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  if (!WriteAll(stream, head.data(), head.size())) return false;
  if (no_body || framing.head_only) return true;
  bool ok;
  if (!res.content_provider_) {
    ok = WriteAll(stream, res.body.data(), res.body.size());
  } else if (chunked) {
    ok = WriteChunkedBody(stream, res);
  } else {
    ok = WriteLengthBody(stream, res);
  }
  res.content_provider_success_ = ok;
  return ok;
}

}  // namespace hubcache
