#include "http/responses.h"

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "registry/errors.h"

namespace hubcache {
namespace {

constexpr size_t kChunkBytes = 256 * 1024;
constexpr const char* kOctetStream = "application/octet-stream";

}  // namespace

void WriteError(httplib::Response& res, const Error& error) {
  res.status = ToWire(error.kind).http_status;
  res.set_content(ErrorJson(error), "application/json");
}

void ServeFile(httplib::Response& res, UniqueFd fd, uint64_t first, uint64_t length) {
  struct Body {
    UniqueFd fd;
    std::vector<char> buffer;
  };
  auto body = std::make_shared<Body>(Body{std::move(fd), std::vector<char>(kChunkBytes)});
  res.set_content_provider(length, kOctetStream,
                           [body, first](size_t offset, size_t remaining, httplib::DataSink& sink) {
                             size_t want = std::min(remaining, body->buffer.size());
                             ssize_t n;
                             do {
                               n = ::pread(body->fd.get(), body->buffer.data(), want,
                                           static_cast<off_t>(first + offset));
                             } while (n < 0 && errno == EINTR);
                             if (n <= 0)
                               return false;  // file shrank or failed: cut the response short
                             return sink.write(body->buffer.data(), static_cast<size_t>(n));
                           });
}

void ServeFill(httplib::Response& res, std::shared_ptr<BlobFill> fill, uint64_t first,
               uint64_t length, std::chrono::milliseconds wait_limit) {
  auto buffer = std::make_shared<std::vector<char>>(kChunkBytes);
  res.set_content_provider(
      length, kOctetStream,
      [fill, buffer, first, wait_limit](size_t offset, size_t remaining, httplib::DataSink& sink) {
        size_t want = std::min(remaining, buffer->size());
        auto n = fill->ReadAt(first + offset, buffer->data(), want, wait_limit);
        if (!n || *n == 0) return false;
        return sink.write(buffer->data(), *n);
      });
}

void ServeFillChunked(httplib::Response& res, std::shared_ptr<BlobFill> fill,
                      std::chrono::milliseconds wait_limit) {
  auto buffer = std::make_shared<std::vector<char>>(kChunkBytes);
  res.set_chunked_content_provider(
      kOctetStream, [fill, buffer, wait_limit](size_t offset, httplib::DataSink& sink) {
        auto n = fill->ReadAt(offset, buffer->data(), buffer->size(), wait_limit);
        if (!n) return false;
        if (*n == 0) {
          sink.done();
          return true;
        }
        return sink.write(buffer->data(), *n);
      });
}

void AnnounceLength(httplib::Response& res, uint64_t length, const std::string& content_type) {
  if (length == 0) {
    res.set_header("Content-Type", content_type);
    return;
  }
  // httplib writes no body for HEAD; the provider is never called.
  res.set_content_provider(length, content_type,
                           [](size_t, size_t, httplib::DataSink&) { return false; });
}

}  // namespace hubcache
