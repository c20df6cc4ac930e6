#include "cache/pass_through.h"

#include "cache/upstream_errors.h"
#include "registry/routes.h"

namespace hubcache {

Status StreamFromUpstream(UpstreamSet& upstream, const PassThroughRequest& request, Sha256& hasher,
                          const std::function<bool(const char*, size_t)>& write) {
  uint64_t position = request.from;  // next byte of the blob to arrive
  bool skip_to_from = false;         // the upstream ignored Range and sent it all
  bool held = false;                 // the window's last byte, kept until verified
  char held_byte = 0;

  StreamSink sink;
  sink.on_headers = [&](const UpstreamResponse& head) {
    if (request.from > 0 && head.status == 200) {
      skip_to_from = true;
      position = 0;
    }
    return true;
  };
  sink.on_data = [&](const char* data, size_t size) {
    if (skip_to_from) {
      // Discard what precedes `from`; it is already hashed.
      uint64_t drop = std::min<uint64_t>(size, request.from - position);
      position += drop;
      data += drop;
      size -= static_cast<size_t>(drop);
      if (position < request.from) return true;
      skip_to_from = false;
    }
    hasher.Update(data, size);
    // Send the part of [position, position + size) inside the window, except
    // the window's very last byte.
    uint64_t begin = std::max(position, request.send_first);
    uint64_t end = std::min(position + size, request.send_last + 1);
    if (begin < end) {
      uint64_t stop = end;
      if (end == request.send_last + 1) {
        held = true;
        held_byte = data[end - 1 - position];
        stop = end - 1;
      }
      if (stop > begin && !write(data + (begin - position), static_cast<size_t>(stop - begin))) {
        return false;
      }
    }
    position += size;
    return true;
  };

  std::vector<std::string> headers;
  if (request.from > 0) headers.push_back("Range: bytes=" + std::to_string(request.from) + "-");
  const std::string what = request.repo->str() + "@" + request.digest->str();
  auto response = upstream.Stream(*request.repo, BlobPath(*request.repo, *request.digest), headers,
                                  sink, request.timeout);
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200 && response->status != 206) {
    return tl::unexpected(UpstreamStatusError(response->status, ErrorKind::kBlobUnknown, what));
  }
  if (position != request.total) {
    return Fail(ErrorKind::kUpstreamInvalid, what + ": upstream body truncated");
  }
  if (hasher.FinishHex() != request.digest->hex()) {
    return Fail(ErrorKind::kUpstreamInvalid, what + ": upstream bytes do not match the digest");
  }
  if (held && !write(&held_byte, 1))
    return Fail(ErrorKind::kUpstreamUnavailable, "client went away");
  return {};
}

}  // namespace hubcache
