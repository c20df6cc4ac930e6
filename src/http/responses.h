#pragma once
// Response helpers shared by the HTTP handlers: the registry error form and
// streamed bodies from a file or from the blob service (cache/blob_service.h).

#include <httplib.h>

#include <memory>

#include "cache/blob_service.h"
#include "cache/pins.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "registry/reference.h"
#include "server/http_response.h"

namespace hubcache {

// Status, Content-Type application/json and the registry error JSON.
void WriteError(HttpResponse& res, const Error& error);

// Streams [first, first + length) of an open file. `pin` (may be null) is held
// until the response is done, keeping the evictor off the file meanwhile.
void ServeFile(HttpResponse& res, UniqueFd fd, uint64_t first, uint64_t length,
               std::unique_ptr<PinSet::Pin> pin);

// Streams [first, first + length) of a blob that is no hit (a fill in flight,
// or the upstream) as `blobs` provides it; the response is cut short
// (connection closed) when the stream fails.
void ServeBlobStream(HttpResponse& res, BlobService& blobs, std::shared_ptr<BlobRead> read,
                     uint64_t first, uint64_t length);

// Streams a fill of unknown length with chunked encoding; the final chunk is
// sent only after the fill verified.
void ServeBlobChunked(HttpResponse& res, BlobService& blobs, std::shared_ptr<BlobRead> read);

// A body-less response (HEAD) that still announces `length` in Content-Length.
void AnnounceLength(HttpResponse& res, uint64_t length, const std::string& content_type);

}  // namespace hubcache
