#include "http/responses.h"

#include "registry/errors.h"
#include "server/response_writer.h"

namespace hubcache {
namespace {

constexpr const char* kOctetStream = "application/octet-stream";

}  // namespace

void WriteError(HttpResponse& res, const Error& error) {
  res.status = ToWire(error.kind).http_status;
  res.set_content(ErrorJson(error), "application/json");
}

void ServeFile(HttpResponse& res, UniqueFd fd, uint64_t first, uint64_t length,
               std::unique_ptr<PinSet::Pin> pin) {
  // What the transfer needs alive until it ends: the file, and the pin that
  // keeps the evictor off it.
  struct Owner {
    UniqueFd fd;
    std::unique_ptr<PinSet::Pin> pin;
  };
  auto owner = std::make_shared<Owner>(Owner{std::move(fd), std::move(pin)});
  const int file = owner->fd.get();
  SetFileBody(res, length, kOctetStream, FileBody(file, first, std::move(owner)));
}

void ServeBlobStream(HttpResponse& res, BlobService& blobs, std::shared_ptr<BlobRead> read,
                     uint64_t first, uint64_t length) {
  // Writes the body from `offset` on (of `length`): the provider of a TLS
  // connection, and what finishes a fill's body that its file cannot (the disk
  // failed: Stream() goes on from the upstream).
  auto stream = [&blobs, read, first, length](size_t offset, size_t, httplib::DataSink& sink) {
    return blobs.Stream(*read, first + offset, length - offset,
                        [&sink](const char* data, size_t size) { return sink.write(data, size); });
  };
  if (!read->fill) return res.set_content_provider(length, kOctetStream, std::move(stream));
  // A fill: sendfile(2) from its temp file as it grows, like a hit from its file.
  const int file = read->fill->read_fd();
  auto ready = [&blobs, read](uint64_t offset) { return blobs.FillReadableEnd(*read, offset); };
  SetFileBody(res, length, kOctetStream,
              FileBody(file, first, read, std::move(ready), std::move(stream)));
}

void ServeBlobChunked(HttpResponse& res, BlobService& blobs, std::shared_ptr<BlobRead> read) {
  res.set_chunked_content_provider(
      kOctetStream, [&blobs, read](size_t offset, httplib::DataSink& sink) {
        if (offset != 0) return false;  // one call streams it all
        if (!blobs.Stream(*read, 0, std::nullopt, [&sink](const char* data, size_t size) {
              return sink.write(data, size);
            })) {
          return false;
        }
        sink.done();
        return true;
      });
}

void AnnounceLength(HttpResponse& res, uint64_t length, const std::string& content_type) {
  if (length == 0) {
    res.set_header("Content-Type", content_type);
    return;
  }
  // httplib writes no body for HEAD; the provider is never called.
  res.set_content_provider(length, content_type,
                           [](size_t, size_t, httplib::DataSink&) { return false; });
}

}  // namespace hubcache
