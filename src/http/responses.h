#pragma once
// Response helpers shared by the HTTP handlers: the registry error form and
// streamed bodies from a file or a fill in flight.

#include <httplib.h>

#include <memory>

#include "cache/blob_fill.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace hubcache {

// Status, Content-Type application/json and the registry error JSON.
void WriteError(httplib::Response& res, const Error& error);

// Streams [first, first + length) of an open file.
void ServeFile(httplib::Response& res, UniqueFd fd, uint64_t first, uint64_t length);

// Streams [first, first + length) of a fill as it arrives; the response is cut
// short (connection closed) if the fill fails. `wait_limit` bounds each wait.
void ServeFill(httplib::Response& res, std::shared_ptr<BlobFill> fill, uint64_t first,
               uint64_t length, std::chrono::milliseconds wait_limit);

// Streams a fill of unknown length with chunked encoding; the final chunk is
// sent only after the fill verified.
void ServeFillChunked(httplib::Response& res, std::shared_ptr<BlobFill> fill,
                      std::chrono::milliseconds wait_limit);

// A body-less response (HEAD) that still announces `length` in Content-Length.
void AnnounceLength(httplib::Response& res, uint64_t length, const std::string& content_type);

}  // namespace hubcache
