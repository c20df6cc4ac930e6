#include "http/responses.h"

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/mapped_buffer.h"
#include "http/access_log.h"
#include "http/connection_server.h"
#include "registry/errors.h"

namespace hubcache {
namespace {

constexpr const char* kOctetStream = "application/octet-stream";

// sink.write, counting the body bytes for the stats and the access log.
bool Send(httplib::DataSink& sink, const char* data, size_t size) {
  CountBodyBytes(size);
  return sink.write(data, size);
}

// Up to kSendFileChunkBytes of the file straight from the page cache to the
// socket (no copy through user space), then the same count through the sink so
// httplib's offset moves on (ConnectionStream::SendFile takes that write as
// done). Chunked so that a stopping server is noticed between chunks.
constexpr size_t kSendFileChunkBytes = 8 * 1024 * 1024;

bool SendFileChunk(ConnectionStream& connection, httplib::DataSink& sink, int fd, uint64_t at,
                   size_t remaining) {
  size_t want = std::min(remaining, kSendFileChunkBytes);
  if (!connection.SendFile(fd, static_cast<off_t>(at), want)) return false;
  static const char kAlreadySent = 0;  // never read: the bytes went out above
  CountBodyBytes(want);
  return sink.write(&kAlreadySent, want);
}

}  // namespace

void WriteError(httplib::Response& res, const Error& error) {
  res.status = ToWire(error.kind).http_status;
  res.set_content(ErrorJson(error), "application/json");
}

void ServeFile(httplib::Response& res, UniqueFd fd, uint64_t first, uint64_t length,
               std::unique_ptr<PinSet::Pin> pin) {
  struct Body {
    UniqueFd fd;
    std::unique_ptr<MappedBuffer> buffer;  // only when sendfile cannot be used (TLS)
    std::unique_ptr<PinSet::Pin> pin;
  };
  auto body = std::make_shared<Body>();
  body->fd = std::move(fd);
  body->pin = std::move(pin);
  res.set_content_provider(length, kOctetStream,
                           [body, first](size_t offset, size_t remaining, httplib::DataSink& sink) {
                             if (ConnectionStream* connection = CurrentConnection();
                                 connection && connection->can_send_file()) {
                               return SendFileChunk(*connection, sink, body->fd.get(),
                                                    first + offset, remaining);
                             }
                             if (!body->buffer)
                               body->buffer = std::make_unique<MappedBuffer>(kStreamChunkBytes);
                             size_t want = std::min(remaining, body->buffer->size());
                             ssize_t n;
                             do {
                               n = ::pread(body->fd.get(), body->buffer->data(), want,
                                           static_cast<off_t>(first + offset));
                             } while (n < 0 && errno == EINTR);
                             if (n <= 0)
                               return false;  // file shrank or failed: cut the response short
                             return Send(sink, body->buffer->data(), static_cast<size_t>(n));
                           });
}

void ServeBlobStream(httplib::Response& res, BlobService& blobs, std::shared_ptr<BlobRead> read,
                     uint64_t first, uint64_t length) {
  res.set_content_provider(
      length, kOctetStream,
      [&blobs, read, first, length](size_t offset, size_t, httplib::DataSink& sink) {
        if (offset != 0) return false;  // one call streams it all; a retry means it failed
        return blobs.Stream(*read, first, length, [&sink](const char* data, size_t size) {
          return Send(sink, data, size);
        });
      });
}

void ServeBlobChunked(httplib::Response& res, BlobService& blobs, std::shared_ptr<BlobRead> read) {
  res.set_chunked_content_provider(
      kOctetStream, [&blobs, read](size_t offset, httplib::DataSink& sink) {
        if (offset != 0) return false;  // one call streams it all
        if (!blobs.Stream(*read, 0, std::nullopt, [&sink](const char* data, size_t size) {
              return Send(sink, data, size);
            })) {
          return false;
        }
        sink.done();
        return true;
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
