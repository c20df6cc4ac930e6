#pragma once
// Response helpers shared by the HTTP handlers: the registry error form and
// streamed bodies from a file or a fill in flight.

#include <httplib.h>

#include <memory>

#include "cache/blob_fill.h"
#include "cache/pins.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "registry/reference.h"
#include "upstream/upstream_client.h"

namespace hubcache {

// Status, Content-Type application/json and the registry error JSON.
void WriteError(httplib::Response& res, const Error& error);

// Streams [first, first + length) of an open file. `pin` (may be null) is held
// until the response is done, keeping the evictor off the file meanwhile.
void ServeFile(httplib::Response& res, UniqueFd fd, uint64_t first, uint64_t length,
               std::unique_ptr<PinSet::Pin> pin);

// Where a blob comes from when the cache cannot take it (pass_through.h).
struct UpstreamSource {
  UpstreamClient* upstream;
  RepoName repo;
  Digest digest;
  uint64_t total;  // the blob's size
  std::chrono::milliseconds timeout;
};

// Streams [first, first + length) of a fill as it arrives; the response is cut
// short (connection closed) if the fill fails. If it fails because the cache
// could not be written, the rest comes from `source` instead, still verified.
// `wait_limit` bounds each wait for bytes.
void ServeFill(httplib::Response& res, std::shared_ptr<BlobFill> fill, uint64_t first,
               uint64_t length, std::chrono::milliseconds wait_limit, UpstreamSource source);

// Streams [first, first + length) straight from the upstream, verified, caching
// nothing: for when no fill can even start.
void ServeFromUpstream(httplib::Response& res, UpstreamSource source, uint64_t first,
                       uint64_t length);

// Streams a fill of unknown length with chunked encoding; the final chunk is
// sent only after the fill verified.
void ServeFillChunked(httplib::Response& res, std::shared_ptr<BlobFill> fill,
                      std::chrono::milliseconds wait_limit);

// A body-less response (HEAD) that still announces `length` in Content-Length.
void AnnounceLength(httplib::Response& res, uint64_t length, const std::string& content_type);

}  // namespace hubcache
