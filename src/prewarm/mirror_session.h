#pragma once
// A libcurl connection to a running mirror (or any registry's pull API), as a
// pre-warm uses it: manifests fetched whole with the full Accept set, blobs
// streamed to a callback. One easy handle, so its connection is reused from
// request to request.
//
// Not thread-safe: one session per thread. A session polls the `cancel` flag it
// borrows (which must outlive it) and aborts the transfer in flight, within
// about a second, once the flag is set.

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "common/result.h"
#include "registry/reference.h"

namespace hubcache {

struct SessionOptions {
  std::string base_url = "http://127.0.0.1:5000";  // no trailing slash
  std::chrono::milliseconds connect_timeout{10'000};
  // A transfer that receives nothing for this long fails (the mirror may wait
  // up to its connect + stall timeouts for the upstream before answering).
  std::chrono::milliseconds stall_timeout{90'000};
  // Bound on a whole manifest request.
  std::chrono::milliseconds manifest_timeout{120'000};
  // Basic credentials for a mirror that asks for them; never logged.
  std::string username;
  std::string password;
  // TLS to an https:// mirror: a PEM bundle to verify it with (empty: the
  // system's CAs); `insecure` skips verification (lab use only).
  std::string ca_file;
  bool insecure = false;
  // Whether the certificate must name the host (off when the server reaches
  // itself over loopback and trusts exactly its own certificate).
  bool verify_host = true;
};

struct MirrorReply {
  int status = 0;
  std::string content_type;
  std::string digest;  // Docker-Content-Digest
  std::string cache;   // X-Hubcache-Cache: "hit", "miss", "stale", or "" (not a hubcache)
  uint64_t content_length = 0;
  bool has_content_length = false;
  std::string body;  // a manifest's bytes, or the error body of a non-2xx reply

  // The code and message of a registry error body ("MANIFEST_UNKNOWN"), or "".
  std::string ErrorCode() const;
  std::string ErrorMessage() const;
};

class MirrorSession {
 public:
  MirrorSession(SessionOptions options, const std::atomic<bool>& cancel);
  ~MirrorSession();
  MirrorSession(const MirrorSession&) = delete;
  MirrorSession& operator=(const MirrorSession&) = delete;

  // GET /v2/<repo>/manifests/<reference>. Transport failures are errors
  // (kUpstreamUnavailable); HTTP statuses come back in the reply.
  [[nodiscard]] Result<MirrorReply> GetManifest(const RepoName& repo, const std::string& reference);

  // GET /v2/<repo>/blobs/<digest>. For a 200, `on_head` sees the headers before
  // the first byte and `on_data` every chunk of the body (reply.body stays
  // empty); other statuses come back with their error body. A transfer cut
  // short is an error.
  [[nodiscard]] Result<MirrorReply> GetBlob(
      const RepoName& repo, const Digest& digest,
      const std::function<void(const MirrorReply& head)>& on_head,
      const std::function<void(const char* data, size_t size)>& on_data);

 private:
  struct Transfer;
  Result<MirrorReply> Perform(const std::string& path, Transfer& transfer);

  const SessionOptions options_;
  const std::atomic<bool>& cancel_;
  void* handle_;  // CURL*
};

// The URL at which a server listening on `listen_addr` (host:port, ":port",
// "[::]:port") with the bound `port` reaches itself: loopback for a wildcard.
std::string SelfUrl(const std::string& listen_addr, int port);

}  // namespace hubcache
