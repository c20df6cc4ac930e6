#pragma once
// A client for one bucket of an S3-compatible object store (AWS S3, Ceph
// radosgw, MinIO...), for the blob storage tier of issue 14.
//
// Requests are signed with libcurl's SigV4 (CURLOPT_AWS_SIGV4) and sent over
// pooled curl easy handles, so connections are reused; paths and query strings
// are written in SigV4's canonical form (upstream/s3_signing.h) and replies
// read with a small XML reader (upstream/s3_xml.h). No SDK.
//
// Memory is bounded whatever the object size: a GET streams to its sink as it
// arrives, and PutStream streams from its reader straight into curl's upload
// buffer, one part at a time for a multipart upload (no part is held whole;
// only the first 256 KiB of each request are kept, so a request curl must
// resend on a fresh connection can be replayed).
//
// Nothing partial is ever visible under a key: a single PUT that fails midway
// is cut short of its Content-Length (the store discards it), and a multipart
// upload is completed only after every part succeeded, else aborted.
//
// Keys given to the client are relative ("cache/blobs/sha256/ab/abcd..."); it
// prepends S3Options::root_directory and a '/', and List returns keys relative
// again. Keys must be non-empty, must not start with '/', and are at most
// 1024 bytes with the prefix.
//
// Errors (Result/Status) are one line naming the operation and key, with the
// store's error code when it sent one:
//   kUpstreamUnavailable  unreachable, timed out, 5xx, throttled (SlowDown)
//   kDenied               403 (credentials refused, no permission)
//   kRangeInvalid         416 (a Get range starting past the end)
//   kSizeInvalid          GetSmall over its bound; a PutStream reader short
//   kUpstreamInvalid      an answer that makes no sense (bad XML, no ETag)
//   kConfigInvalid        a bad key or option
// and an error a PutStream reader returns comes back as it is.
// Idempotent small requests (HEAD, small GET and PUT, DELETE, lists, the
// multipart control requests) are retried twice on 5xx or a broken connection.
//
// Thread-safe: every member may be called from any number of threads at once;
// each call uses its own curl handle. Ownership: the client owns its handles
// and options; a sink or reader passed in is borrowed for the call only.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hubcache {

class CurlHandlePool;  // upstream/curl_easy.h

struct Config;

struct S3Options {
  std::string bucket;
  std::string region = "us-east-1";
  // REGISTRY_STORAGE_S3_REGIONENDPOINT: "http://127.0.0.1:15070",
  // "https://minio.example:9000" or a bare "host[:port]" (scheme from
  // `secure`); "" = AWS (s3.<region>.amazonaws.com).
  std::string endpoint;
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // sent as x-amz-security-token; "" = none
  // Key prefix without leading or trailing '/'; "" = none.
  std::string root_directory;
  // https when the endpoint has no scheme, and for AWS.
  bool secure = true;
  // Path-style URLs (endpoint/bucket/key). Also used, whatever this says, when
  // the endpoint is an IP address or localhost, and for bucket names that are
  // no DNS label or hold a '.' over https (the certificate would not match).
  bool force_path_style = false;
  // Multipart part size, >= 5 MiB (S3's smallest part); a larger part is used
  // when an object would need more than 10000 parts.
  uint64_t chunk_size = 10 * 1024 * 1024;
  std::chrono::milliseconds connect_timeout{10'000};
  // A transfer that moves no byte either way for this long is abandoned (also
  // a PutStream reader that blocks this long).
  std::chrono::milliseconds stall_timeout{30'000};
  // Bound on a whole small request (HEAD, small GET/PUT, DELETE, list, the
  // multipart control requests). Streamed bodies are bounded by stall_timeout.
  std::chrono::milliseconds request_timeout{60'000};
};

// The options the configuration's REGISTRY_STORAGE_S3_* settings give
// (root directory stripped of its '/'s).
S3Options S3OptionsFrom(const Config& config);

// Receives a streamed GET. on_size comes once, before any data (also for an
// empty range); either callback returns false to abort.
struct S3Sink {
  // The object's total size (from Content-Range, else Content-Length).
  std::function<bool(uint64_t object_size)> on_size;
  std::function<bool(const char* data, size_t size)> on_data;
};

// What the client has done, for stats. Every field is a relaxed atomic.
struct S3Counters {
  // Upper bounds (inclusive, ms) of the latency buckets; one more is +Inf.
  static constexpr std::array<uint64_t, 12> kLatencyBoundsMs = {1,   5,   10,   25,   50,   100,
                                                                250, 500, 1000, 2500, 5000, 10000};

  std::atomic<uint64_t> requests{0};  // HTTP requests sent (retries each count)
  // Transport failures and unexpected statuses; a 404 on Head/Get/GetSmall
  // (absent) and on Delete is not one.
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> bytes_sent{0};      // request bodies
  std::atomic<uint64_t> bytes_received{0};  // response bodies
  // Requests by duration, NOT cumulative: [i] counts those <= kLatencyBoundsMs[i]
  // and above the bound before; the last entry is +Inf.
  std::array<std::atomic<uint64_t>, kLatencyBoundsMs.size() + 1> latency_buckets{};
  std::atomic<uint64_t> latency_ms_sum{0};
  // Requests by operation.
  std::atomic<uint64_t> head_requests{0};
  std::atomic<uint64_t> get_requests{0};     // GetSmall and Get
  std::atomic<uint64_t> put_requests{0};     // PutSmall and single-part PutStream
  std::atomic<uint64_t> delete_requests{0};  // Delete
  std::atomic<uint64_t> list_requests{0};    // List, ListUploads, Check
  // Create, UploadPart, Complete and Abort of multipart uploads.
  std::atomic<uint64_t> multipart_requests{0};
};

class S3Client {
 public:
  // Checks the options (bucket name, endpoint URL, chunk size); contacts
  // nothing.
  [[nodiscard]] static Result<std::unique_ptr<S3Client>> Create(S3Options options);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Start-up check: the bucket exists and the credentials may list it (a
  // ListObjectsV2 of one key under root_directory). The error is one line an
  // operator understands, e.g.
  //   S3 bucket 'x' at http://127.0.0.1:15070: access denied (SignatureDoesNotMatch: check
  //   REGISTRY_STORAGE_S3_SECRETKEY)
  //   S3 bucket 'x' at http://127.0.0.1:15070: no such bucket
  //   S3 bucket 'x' at http://127.0.0.1:1: unreachable (Couldn't connect to server)
  // kUpstreamUnavailable when the store is unreachable or answers 5xx (it may
  // come back), else kConfigInvalid (the settings or the bucket are wrong).
  [[nodiscard]] Status Check();

  // The object's size; nullopt when absent.
  [[nodiscard]] Result<std::optional<uint64_t>> Head(const std::string& key);

  // Streams bytes [first, first + length) (length nullopt: to the end) to sink;
  // false when the object is absent. A length reaching past the end stops at
  // the end. A range starting at or past the end is kRangeInvalid, except
  // (0, nullopt) and a length of 0 (the size alone); a range of an empty
  // object may be too, as AWS answers 416 there.
  [[nodiscard]] Result<bool> Get(const std::string& key, uint64_t first,
                                 std::optional<uint64_t> length, S3Sink& sink);

  // The whole object; nullopt when absent; an object over max_bytes is an
  // error (kSizeInvalid). `content_type`, when given, gets its Content-Type.
  [[nodiscard]] Result<std::optional<std::string>> GetSmall(const std::string& key,
                                                            size_t max_bytes,
                                                            std::string* content_type = nullptr);

  // One PutObject of `bytes` (signed with their SHA-256). content_type "" =
  // application/octet-stream; one with a control byte or a run of spaces is
  // refused (kConfigInvalid), as in PutStream.
  [[nodiscard]] Status PutSmall(const std::string& key, std::string_view bytes,
                                const std::string& content_type);

  // Supplies the bytes from `offset` on into out[0, max): how many (> 0), 0
  // only when no more bytes will ever come, or an error to abort. Called with
  // offsets in order; may block until bytes exist (it may read a file still
  // being filled), but not longer than stall_timeout.
  using Reader = std::function<Result<size_t>(uint64_t offset, char* out, size_t max)>;

  // Writes an object of exactly `size` bytes that `read` supplies in order.
  // size <= chunk_size: one PutObject with Content-Length = size, streamed from
  // `read` through curl's read callback; else a multipart upload
  // (CreateMultipartUpload, UploadPart of chunk_size parts each streamed from
  // `read` with its Content-Length, one after another, CompleteMultipartUpload).
  // Any failure, or a reader that ends early (kSizeInvalid) or fails (its
  // error is returned), aborts: the PUT is cut short (the object is never
  // created) or the upload is aborted (AbortMultipartUpload). Nothing partial
  // ever appears under `key`. The payload is sent UNSIGNED-PAYLOAD (TLS
  // protects it on the way; the caller verifies digests). content_type "" =
  // application/octet-stream.
  [[nodiscard]] Status PutStream(const std::string& key, uint64_t size, const Reader& read,
                                 const std::string& content_type);

  // Removes the object; absent is fine.
  [[nodiscard]] Status Delete(const std::string& key);

  struct ListedObject {
    std::string key;  // relative to root_directory
    uint64_t size = 0;
    int64_t modified_unix_ms = 0;
  };
  // The most keys one ListObjectsV2 page may hold (S3's limit).
  static constexpr size_t kMaxListPage = 1000;
  // One page (ListObjectsV2, at most max_keys, 1..kMaxListPage) of the objects whose
  // key starts with `prefix`, in key order. *continuation: "" to start; set to
  // the token of the next page, "" when this was the last.
  [[nodiscard]] Result<std::vector<ListedObject>> List(const std::string& prefix, size_t max_keys,
                                                       std::string* continuation);

  struct PendingUpload {
    std::string key;  // relative to root_directory
    std::string upload_id;
    int64_t initiated_unix_ms = 0;
  };
  // Multipart uploads in progress under `prefix` (ListMultipartUploads, every
  // page): what a crash left behind, for a sweeper to AbortUpload.
  [[nodiscard]] Result<std::vector<PendingUpload>> ListUploads(const std::string& prefix);
  // AbortMultipartUpload; an upload already gone is fine.
  [[nodiscard]] Status AbortUpload(const std::string& key, const std::string& upload_id);

  // A presigned GET URL of the key (SigV4 query signing, host header only),
  // valid for `expires` (1 s .. 7 days) from now_unix_s. Anyone holding it may
  // read the object until then: never log it.
  std::string PresignGet(const std::string& key, std::chrono::seconds expires,
                         int64_t now_unix_s) const;

  // "S3 bucket 'x' at https://s3.us-east-1.amazonaws.com": how errors and logs
  // name the store.
  const std::string& description() const { return description_; }
  const S3Counters& counters() const { return counters_; }
  const S3Options& options() const { return options_; }

 private:
  struct Endpoint;
  struct Request;
  struct Response;

  S3Client(S3Options options, std::unique_ptr<Endpoint> endpoint);

  // The full key (root_directory applied), or an error for a bad key.
  Result<std::string> FullKey(const std::string& key) const;
  std::string Url(const std::string& full_key, const std::string& query) const;
  // Sends one request (no retry); transport failures are errors, statuses
  // come back in the response.
  Result<Response> Perform(Request& request);
  // Perform, retried twice (after 50 and 250 ms) on a 5xx or a broken
  // connection. Only for requests whose body can be sent again.
  Result<Response> PerformIdempotent(Request& request);
  // The error for an unexpected status, counted.
  Error StatusError(const Request& request, const Response& response);
  // PerformIdempotent for a request whose 200 answer is an XML document, read
  // by `parse` (s3_xml.h). Another status, or a document `parse` refuses, is
  // an error and counted.
  template <class T>
  Result<T> PerformForDocument(Request& request, Result<T> (*parse)(std::string_view));

  Result<std::optional<uint64_t>> HeadFull(const std::string& full_key);
  Result<std::string> CreateUpload(const std::string& full_key, const std::string& content_type);
  // An object of `size` bytes from the uploaded parts.
  Status Complete(const std::string& full_key, const std::string& upload_id,
                  const std::vector<std::string>& etags, uint64_t size);
  Status Abort(const std::string& full_key, const std::string& upload_id);
  Status PutMultipart(const std::string& full_key, uint64_t size, const Reader& read,
                      const std::string& content_type);

  const S3Options options_;
  std::unique_ptr<Endpoint> endpoint_;
  std::string description_;
  std::unique_ptr<CurlHandlePool> handles_;
  S3Counters counters_;
};

}  // namespace hubcache
