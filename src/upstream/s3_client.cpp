#include "upstream/s3_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "common/sha256.h"
#include "common/strings.h"
#include "config/config.h"
#include "upstream/connect_guard.h"
#include "upstream/curl_easy.h"
#include "upstream/s3_signing.h"
#include "upstream/s3_xml.h"

namespace hubcache {

// What S3Client::Request refers to, in a named namespace: a member of a class with
// external linkage must not have a type of an anonymous namespace.
namespace s3_transfer {

enum class Op { kHead, kGet, kPut, kDelete, kList, kMultipart };

// A streamed request body: `length` bytes from `read`, starting at object
// offset `base`.
struct UploadState {
  const S3Client::Reader* read = nullptr;
  uint64_t base = 0;
  uint64_t length = 0;
  uint64_t pos = 0;      // the next byte curl gets, relative to base
  uint64_t fetched = 0;  // bytes obtained from the reader so far
  std::string replay;    // the first kReplayBytes fetched
  std::optional<Error> error;
  S3Counters* counters = nullptr;
};

// A 2xx GET body on its way to an S3Sink.
struct DownloadState {
  S3Sink* sink = nullptr;
  uint64_t first = 0;
  std::optional<uint64_t> length;
  bool started = false;  // on_size delivered
  uint64_t skip = 0;     // leading bytes to drop (a 200 answering a range request)
  uint64_t remaining = 0;
  bool complete = false;  // every wanted byte delivered (the rest may be cut)
  std::optional<Error> error;
};

}  // namespace s3_transfer

using s3_transfer::DownloadState;
using s3_transfer::Op;
using s3_transfer::UploadState;

namespace {

// A page of 1000 keys is about 300 KB of XML.
constexpr size_t kMaxListBodyBytes = 8 * 1024 * 1024;
constexpr size_t kMaxKeyBytes = 1024;
constexpr uint64_t kMinPartBytes = 5ULL * 1024 * 1024;
constexpr uint64_t kMaxPartBytes = 5ULL * 1024 * 1024 * 1024;
constexpr uint64_t kMaxParts = 10'000;
// The first bytes of each streamed request body, kept so that curl can send
// the request again on a fresh connection (a pooled one found dead).
constexpr size_t kReplayBytes = 256 * 1024;
constexpr long kBufferBytes = 256 * 1024;
constexpr int kAttempts = 3;
constexpr const char* kDefaultContentType = "application/octet-stream";

bool IsTlsFailure(CURLcode rc) {
  return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
         rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_CACERT_BADFILE ||
         rc == CURLE_SSL_ISSUER_ERROR;
}

// Failures where the same request may well work a moment later on another
// connection; not refusals, timeouts or a receiver that said stop.
bool IsRetryableTransport(CURLcode rc) {
  return rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
         rc == CURLE_PARTIAL_FILE || rc == CURLE_HTTP2 || rc == CURLE_HTTP2_STREAM;
}

// Text that can go in a header field as it is: no control byte, no run of
// spaces (SigV4 would sign it collapsed), no blank at either end.
bool IsFieldValue(std::string_view v) {
  if (!v.empty() && (v.front() == ' ' || v.back() == ' ')) return false;
  for (size_t i = 0; i < v.size(); ++i) {
    auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c == 0x7f || (c == ' ' && i > 0 && v[i - 1] == ' ')) return false;
  }
  return true;
}

tl::unexpected<Error> BadContentType(const std::string& type) {
  return Fail(ErrorKind::kConfigInvalid, "S3 Content-Type '" + type + "' cannot be sent");
}

// A bucket name usable as a DNS label of a virtual host.
bool IsDnsBucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63 || b.front() == '-' || b.back() == '-') return false;
  return std::all_of(b.begin(), b.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
  });
}

// "bytes 0-9/100" -> {0, 9, 100}.
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t total = 0;
};
std::optional<ContentRange> ParseContentRange(std::string_view v) {
  if (!StartsWith(v, "bytes ")) return std::nullopt;
  v.remove_prefix(6);
  size_t dash = v.find('-');
  size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return std::nullopt;
  }
  auto first = ParseUint(v.substr(0, dash));
  auto last = ParseUint(v.substr(dash + 1, slash - dash - 1));
  auto total = ParseUint(v.substr(slash + 1));
  if (!first || !last || !total || *last < *first || *last >= *total) return std::nullopt;
  return ContentRange{*first, *last, *total};
}

size_t OnRead(char* out, size_t size, size_t n, void* user) {
  auto* u = static_cast<UploadState*>(user);
  const uint64_t left = u->length - u->pos;
  if (left == 0) return 0;
  const size_t want = static_cast<size_t>(std::min<uint64_t>(size * n, left));
  if (u->pos < u->fetched) {  // sending again after a rewind: from the replay buffer
    size_t k = static_cast<size_t>(std::min<uint64_t>(want, u->fetched - u->pos));
    std::memcpy(out, u->replay.data() + u->pos, k);
    u->pos += k;
    u->counters->bytes_sent.fetch_add(k, std::memory_order_relaxed);
    return k;
  }
  auto got = (*u->read)(u->base + u->fetched, out, want);
  if (!got) {
    u->error = got.error();
    return CURL_READFUNC_ABORT;
  }
  if (*got == 0) {
    u->error = Error{ErrorKind::kSizeInvalid, "the reader ended at byte " +
                                                  std::to_string(u->base + u->fetched) + " of " +
                                                  std::to_string(u->base + u->length)};
    return CURL_READFUNC_ABORT;
  }
  if (*got > want) {
    u->error = Error{ErrorKind::kInternal, "the reader returned more bytes than asked for"};
    return CURL_READFUNC_ABORT;
  }
  if (u->fetched < kReplayBytes) {
    if (u->replay.capacity() == 0) {
      u->replay.reserve(static_cast<size_t>(std::min<uint64_t>(kReplayBytes, u->length)));
    }
    u->replay.append(out, std::min<size_t>(*got, kReplayBytes - u->fetched));
  }
  u->fetched += *got;
  u->pos += *got;
  u->counters->bytes_sent.fetch_add(*got, std::memory_order_relaxed);
  return *got;
}

// curl rewinds the body to send a request again (a reused connection found
// dead): possible while everything read so far is in the replay buffer.
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* u = static_cast<UploadState*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  auto to = static_cast<uint64_t>(offset);
  if (to > u->fetched || (to != u->fetched && u->fetched > u->replay.size())) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  u->pos = to;
  return CURL_SEEKFUNC_OK;
}

}  // namespace

// The store's address, worked out once from the options.
struct S3Client::Endpoint {
  std::string scheme;     // "http" or "https"
  std::string host;       // the Host header: "127.0.0.1:15070", "b.s3.us-east-1.amazonaws.com"
  std::string base_path;  // endpoint path plus "/bucket" for path style; "" for virtual hosts
  std::string display;    // the endpoint without the bucket, for messages
};

struct S3Client::Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // small bodies and error bodies

  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct S3Client::Request {
  Op op = Op::kGet;
  const char* api = "";     // the S3 operation, for messages: "PutObject"
  const char* method = "";  // GET HEAD PUT POST DELETE
  std::string full_key{};   // "" = the bucket
  std::vector<QueryParam> query{};
  std::vector<std::string> headers{};
  bool has_body = false;  // PUT/POST of `body` (maybe empty), signed with its SHA-256
  std::string_view body{};
  UploadState* upload = nullptr;  // a streamed body instead (UNSIGNED-PAYLOAD)
  DownloadState* download = nullptr;
  size_t max_body_bytes = kMaxErrorBodyBytes;  // a 2xx body kept in the response
  bool bounded = true;                         // request_timeout applies
  int attempts = 0;                            // sent so far
  // Of the last attempt: the curl code, and whether a retry may help.
  CURLcode rc = CURLE_OK;
  std::string curl_detail{};  // curl's error text
  bool retryable = false;
};

namespace {

// State of one curl transfer, shared with its callbacks.
struct Transfer {
  CURL* handle = nullptr;
  S3Counters* counters = nullptr;
  DownloadState* download = nullptr;  // a 2xx body goes there when set
  size_t max_body_bytes = 0;          // else it is kept up to this
  std::map<std::string, std::string>* headers = nullptr;
  std::string* body = nullptr;
  bool too_large = false;
  bool aborted = false;
};

size_t OnS3HeaderLine(char* data, size_t size, size_t n, void* user) {
  AddResponseHeaderLine(std::string_view(data, size * n), *static_cast<Transfer*>(user)->headers);
  return size * n;
}

// Works out the object size and what to deliver from the head of a 2xx GET;
// false (with d.error set) when it makes no sense or the sink says stop.
bool StartDownload(DownloadState& d, long status, const std::map<std::string, std::string>& h) {
  d.started = true;
  auto header = [&](const char* name) {
    auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
  };
  uint64_t total = 0;
  if (status == 206) {
    auto range = ParseContentRange(header("content-range"));
    const uint64_t wanted =
        range ? std::min(range->total - d.first, d.length.value_or(range->total)) : 0;
    if (!range || range->first != d.first || range->last - range->first + 1 != wanted) {
      d.error = Error{ErrorKind::kUpstreamInvalid,
                      "the object store answered a range request with Content-Range '" +
                          header("content-range") + "'"};
      return false;
    }
    total = range->total;
    d.remaining = range->last - range->first + 1;
  } else {
    auto length = ParseUint(header("content-length"));
    if (!length) {
      d.error = Error{ErrorKind::kUpstreamInvalid, "the object store sent no Content-Length"};
      return false;
    }
    total = *length;
    if (d.first > total || (d.first == total && total > 0)) {
      d.error = Error{ErrorKind::kRangeInvalid, "range starts past the end of the object"};
      return false;
    }
    d.skip = d.first;
    d.remaining = total - d.first;
  }
  if (d.length) d.remaining = std::min(d.remaining, *d.length);
  d.complete = d.remaining == 0;
  if (d.sink->on_size && !d.sink->on_size(total)) {
    d.error = Error{ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver"};
    return false;
  }
  return true;
}

// A 2xx body streamed to the download sink, or kept (bounded); an error body
// is kept up to kMaxErrorBodyBytes, the rest dropped.
size_t OnS3BodyData(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t bytes = size * n;
  t->counters->bytes_received.fetch_add(bytes, std::memory_order_relaxed);
  const long status = ResponseStatus(t->handle);
  const bool ok = status >= 200 && status < 300;
  DownloadState* d = t->download;
  if (ok && d != nullptr) {
    if (!d->started && !StartDownload(*d, status, *t->headers)) {
      t->aborted = true;
      return 0;
    }
    std::string_view chunk(data, bytes);
    size_t drop = static_cast<size_t>(std::min<uint64_t>(d->skip, chunk.size()));
    chunk.remove_prefix(drop);
    d->skip -= drop;
    if (chunk.size() > d->remaining) chunk = chunk.substr(0, static_cast<size_t>(d->remaining));
    if (!chunk.empty()) {
      if (d->sink->on_data && !d->sink->on_data(chunk.data(), chunk.size())) {
        d->error = Error{ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver"};
        t->aborted = true;
        return 0;
      }
      d->remaining -= chunk.size();
    }
    if (d->remaining == 0 && d->skip == 0) {
      d->complete = true;
      // A whole object answering a range: stop once the range is delivered.
      if (status == 200 && drop + chunk.size() < bytes) return 0;
    }
    return bytes;
  }
  std::string& body = *t->body;
  if (!ok) {
    body.append(data,
                std::min(bytes, kMaxErrorBodyBytes - std::min(body.size(), kMaxErrorBodyBytes)));
    return bytes;
  }
  if (body.size() + bytes > t->max_body_bytes) {
    t->too_large = true;
    return 0;
  }
  body.append(data, bytes);
  return bytes;
}

}  // namespace

Result<std::unique_ptr<S3Client>> S3Client::Create(S3Options options) {
  auto invalid = [](const std::string& why) { return Fail(ErrorKind::kConfigInvalid, why); };
  const std::string& b = options.bucket;
  if (b.empty() || b.size() > 255 || !std::all_of(b.begin(), b.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-' || c == '_';
      })) {
    return invalid("S3 bucket name '" + b + "' is not valid");
  }
  if (options.region.empty() || options.region.find_first_of(": \t\r\n/") != std::string::npos) {
    return invalid("S3 region '" + options.region + "' is not valid");
  }
  if (options.access_key.empty() || options.secret_key.empty()) {
    return invalid("S3 credentials missing: an access key and a secret key are needed");
  }
  if (options.chunk_size < kMinPartBytes || options.chunk_size > kMaxPartBytes) {
    return invalid("S3 chunk size " + std::to_string(options.chunk_size) +
                   " is outside 5 MiB .. 5 GiB (S3's part sizes)");
  }
  while (!options.root_directory.empty() && options.root_directory.front() == '/')
    options.root_directory.erase(0, 1);
  while (!options.root_directory.empty() && options.root_directory.back() == '/')
    options.root_directory.pop_back();

  auto endpoint = std::make_unique<Endpoint>();
  std::string url = options.endpoint;
  if (url.empty()) {
    url = "s3." + options.region + ".amazonaws.com";
  }
  if (url.find("://") == std::string::npos) url = (options.secure ? "https://" : "http://") + url;
  CURLU* u = curl_url();
  char* scheme = nullptr;
  char* host = nullptr;
  char* port = nullptr;
  char* path = nullptr;
  bool parsed = curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
  if (parsed && curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) port = nullptr;
  std::string s = parsed ? ToLower(scheme) : "";
  std::string h = parsed ? ToLower(host) : "";
  std::string p = port != nullptr ? port : "";
  std::string base_path = path != nullptr ? path : "";
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_free(path);
  curl_url_cleanup(u);
  if (!parsed || (s != "http" && s != "https") || h.empty()) {
    return invalid("S3 endpoint '" + options.endpoint + "' is not an http(s) URL");
  }
  if ((s == "http" && p == "80") || (s == "https" && p == "443")) p.clear();
  while (!base_path.empty() && base_path.back() == '/') base_path.pop_back();
  const std::string hostport = p.empty() ? h : h + ":" + p;
  std::string bare = h;
  if (bare.size() > 2 && bare.front() == '[') bare = bare.substr(1, bare.size() - 2);
  const bool path_style = options.force_path_style || IpAddress::Parse(bare).has_value() ||
                          h == "localhost" || !IsDnsBucket(b) ||
                          (s == "https" && b.find('.') != std::string::npos);
  endpoint->scheme = s;
  endpoint->display = s + "://" + hostport + base_path;
  if (path_style) {
    endpoint->host = hostport;
    endpoint->base_path = base_path + "/" + SigV4UriEncode(b, false);
  } else {
    endpoint->host = b + "." + hostport;
    endpoint->base_path = base_path;
  }
  return std::unique_ptr<S3Client>(new S3Client(std::move(options), std::move(endpoint)));
}

S3Client::S3Client(S3Options options, std::unique_ptr<Endpoint> endpoint)
    : options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      description_("S3 bucket '" + options_.bucket + "' at " + endpoint_->display),
      handles_(std::make_unique<CurlHandlePool>()) {}

S3Client::~S3Client() = default;

Result<std::string> S3Client::FullKey(const std::string& key) const {
  if (key.empty() || key.front() == '/') {
    return Fail(ErrorKind::kConfigInvalid, "S3 key '" + key + "' is empty or starts with '/'");
  }
  std::string full = options_.root_directory.empty() ? key : options_.root_directory + "/" + key;
  if (full.size() > kMaxKeyBytes) {
    return Fail(ErrorKind::kConfigInvalid, "S3 key longer than 1024 bytes: " + key.substr(0, 64));
  }
  return full;
}

std::string S3Client::Url(const std::string& full_key, const std::string& query) const {
  std::string path = full_key.empty() ? (endpoint_->base_path.empty() ? "/" : endpoint_->base_path)
                                      : endpoint_->base_path + "/" + SigV4UriEncode(full_key, true);
  std::string url = endpoint_->scheme + "://" + endpoint_->host + path;
  if (!query.empty()) url += "?" + query;
  return url;
}

Result<S3Client::Response> S3Client::Perform(Request& r) {
  CURL* h = handles_->Acquire();
  if (h == nullptr) return Fail(ErrorKind::kInternal, "libcurl cannot start a transfer");
  Response response;
  Transfer t{h, &counters_, r.download, r.max_body_bytes, &response.headers, &response.body};

  const std::string url = Url(r.full_key, CanonicalQueryString(r.query));
  curl_slist* headers = nullptr;
  const std::string payload_hash =
      r.upload != nullptr ? "UNSIGNED-PAYLOAD" : Sha256::HexOf(r.has_body ? r.body : "");
  headers = curl_slist_append(headers, ("x-amz-content-sha256: " + payload_hash).c_str());
  if (!options_.session_token.empty()) {
    headers =
        curl_slist_append(headers, ("x-amz-security-token: " + options_.session_token).c_str());
  }
  for (const auto& line : r.headers) headers = curl_slist_append(headers, line.c_str());
  char error_buffer[CURL_ERROR_SIZE] = {0};
  const std::string sigv4 = "aws:amz:" + options_.region + ":s3";

  SetTransferBasics(h, url,
                    {.error_buffer = error_buffer,
                     .connect_timeout = options_.connect_timeout,
                     .stall = options_.stall_timeout});
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, options_.access_key.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, options_.secret_key.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   r.bounded ? static_cast<long>(options_.request_timeout.count()) : 0L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, kBufferBytes);
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, kBufferBytes);
  const std::string method = r.method;
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method == "DELETE") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
  } else if (r.upload != nullptr) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(r.upload->length));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnRead);
    curl_easy_setopt(h, CURLOPT_READDATA, r.upload);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &OnSeek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, r.upload);
  } else if (r.has_body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    // Never a null pointer: curl would then read the body from stdin.
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.empty() ? "" : r.body.data());
    if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r.method);
    counters_.bytes_sent.fetch_add(r.body.size(), std::memory_order_relaxed);
  }
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnS3HeaderLine);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnS3BodyData);

  const auto started = std::chrono::steady_clock::now();
  CURLcode rc = curl_easy_perform(h);
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started)
                                            .count());
  response.status = ResponseStatus(h);
  handles_->Release(h);
  curl_slist_free_all(headers);

  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  std::atomic<uint64_t>* per_op[] = {&counters_.head_requests, &counters_.get_requests,
                                     &counters_.put_requests,  &counters_.delete_requests,
                                     &counters_.list_requests, &counters_.multipart_requests};
  per_op[static_cast<int>(r.op)]->fetch_add(1, std::memory_order_relaxed);
  size_t bucket = 0;
  while (bucket < S3Counters::kLatencyBoundsMs.size() && ms > S3Counters::kLatencyBoundsMs[bucket])
    ++bucket;
  counters_.latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  counters_.latency_ms_sum.fetch_add(ms, std::memory_order_relaxed);
  Logger("s3")->debug("{} {} key={} status={} rc={} ms={}", r.api, r.method, r.full_key,
                      response.status, static_cast<int>(rc), ms);

  ++r.attempts;
  r.rc = rc;
  r.retryable = false;
  DownloadState* d = r.download;
  if (rc == CURLE_WRITE_ERROR && d != nullptr && d->complete && !d->error) {
    rc = CURLE_OK;  // the wanted range was delivered; the rest of a 200 was cut
  }
  if (rc != CURLE_OK) {
    if (r.upload != nullptr && r.upload->error) return tl::unexpected(*r.upload->error);
    if (d != nullptr && d->error) return tl::unexpected(*d->error);
    if (t.aborted) return Fail(ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver");
    if (t.too_large) {
      return Fail(ErrorKind::kSizeInvalid, description_ + ": " + r.api + " " + r.full_key +
                                               ": larger than " + std::to_string(r.max_body_bytes) +
                                               " bytes");
    }
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    r.retryable = IsRetryableTransport(rc) && (d == nullptr || !d->started);
    r.curl_detail = error_buffer[0] ? error_buffer : curl_easy_strerror(rc);
    return Fail(ErrorKind::kUpstreamUnavailable,
                description_ + ": " + r.api + " " + r.full_key + ": " + r.curl_detail);
  }
  if (d != nullptr && response.status >= 200 && response.status < 300 && !d->started) {
    // An empty body still tells the size.
    if (!StartDownload(*d, response.status, response.headers)) return tl::unexpected(*d->error);
  }
  r.retryable = response.status >= 500 && (d == nullptr || !d->started);
  return response;
}

Result<S3Client::Response> S3Client::PerformIdempotent(Request& r) {
  for (int attempt = 1;; ++attempt) {
    auto response = Perform(r);
    if (!r.retryable || attempt == kAttempts) return response;
    if (response) counters_.errors.fetch_add(1, std::memory_order_relaxed);
    Logger("s3")->info(
        "{} {} retried (attempt {} failed: {})", r.api, r.full_key, attempt,
        response ? "HTTP " + std::to_string(response->status) : response.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt == 1 ? 50 : 250));
  }
}

Error S3Client::StatusError(const Request& r, const Response& response) {
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
  std::string message = description_ + ": " + r.api + (r.full_key.empty() ? "" : " ") + r.full_key +
                        ": HTTP " + std::to_string(response.status);
  if (auto reply = ParseS3Error(response.body)) {
    message += " (" + reply->code + (reply->message.empty() ? "" : ": " + reply->message) + ")";
  }
  ErrorKind kind = ErrorKind::kUpstreamInvalid;
  if (response.status == 403) {
    kind = ErrorKind::kDenied;
  } else if (response.status == 416) {
    kind = ErrorKind::kRangeInvalid;
  } else if (response.status >= 500 || response.status == 429) {
    kind = ErrorKind::kUpstreamUnavailable;
  }
  return Error{kind, message};
}

template <class T>
Result<T> S3Client::PerformForDocument(Request& r, Result<T> (*parse)(std::string_view)) {
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200) return tl::unexpected(StatusError(r, *response));
  auto document = parse(response->body);
  if (!document) counters_.errors.fetch_add(1, std::memory_order_relaxed);
  return document;
}

Status S3Client::Check() {
  Request r{.op = Op::kList, .api = "ListObjectsV2", .method = "GET"};
  r.query = {{"list-type", "2"}, {"max-keys", "1"}};
  if (!options_.root_directory.empty())
    r.query.push_back({"prefix", options_.root_directory + "/"});
  r.max_body_bytes = kMaxListBodyBytes;
  auto response = PerformIdempotent(r);
  auto fail = [&](const std::string& what, ErrorKind kind = ErrorKind::kConfigInvalid) {
    return Fail(kind, description_ + ": " + what);
  };
  if (!response) {
    if (r.rc == CURLE_OK) return tl::unexpected(response.error());
    if (IsTlsFailure(r.rc)) return fail("TLS failed (" + r.curl_detail + ")");
    return fail(std::string("unreachable (") + curl_easy_strerror(r.rc) + ")",
                ErrorKind::kUpstreamUnavailable);
  }
  if (response->status == 200) {
    if (auto page = ParseListObjectsV2(response->body); !page) {
      return fail("does not answer as S3 does (" + page.error().message + ")");
    }
    return {};
  }
  counters_.errors.fetch_add(1, std::memory_order_relaxed);
  auto reply = ParseS3Error(response->body);
  const std::string code = reply ? reply->code : "";
  const std::string store_says = reply && !reply->message.empty() ? ": " + reply->message : "";
  if (code == "NoSuchBucket" || (code.empty() && response->status == 404)) {
    return fail("no such bucket");
  }
  if (code == "SignatureDoesNotMatch") {
    return fail("access denied (SignatureDoesNotMatch: check REGISTRY_STORAGE_S3_SECRETKEY)");
  }
  if (code == "InvalidAccessKeyId") {
    return fail("access denied (InvalidAccessKeyId: check REGISTRY_STORAGE_S3_ACCESSKEY)");
  }
  if (code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired") {
    return fail("access denied (" + code +
                ": check REGISTRY_STORAGE_S3_SESSIONTOKEN or AWS_SESSION_TOKEN)");
  }
  if (code == "AccessDenied") {
    return fail("access denied (AccessDenied: these credentials may not list the bucket)");
  }
  if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" ||
      response->status == 301) {
    return fail("wrong region (" + (code.empty() ? "HTTP 301" : code) + store_says +
                ": check REGISTRY_STORAGE_S3_REGION)");
  }
  if (code == "RequestTimeTooSkewed") {
    return fail(
        "clock skew (RequestTimeTooSkewed: this host's clock is off by more than 15 "
        "minutes)");
  }
  return fail(
      "HTTP " + std::to_string(response->status) +
          (code.empty() ? "" : " (" + code + store_says + ")"),
      response->status >= 500 ? ErrorKind::kUpstreamUnavailable : ErrorKind::kConfigInvalid);
}

Result<std::optional<uint64_t>> S3Client::Head(const std::string& key) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  return HeadFull(*full);
}

Result<std::optional<uint64_t>> S3Client::HeadFull(const std::string& full_key) {
  Request r{.op = Op::kHead, .api = "HeadObject", .method = "HEAD", .full_key = full_key};
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status == 404) return std::optional<uint64_t>();
  if (response->status != 200) return tl::unexpected(StatusError(r, *response));
  auto size = ParseUint(response->Header("content-length"));
  if (!size) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    return Fail(ErrorKind::kUpstreamInvalid,
                description_ + ": HeadObject " + full_key + ": no Content-Length");
  }
  return std::optional<uint64_t>(*size);
}

Result<bool> S3Client::Get(const std::string& key, uint64_t first, std::optional<uint64_t> length,
                           S3Sink& sink) {
  if (length && *length == 0) {  // no Range can say "nothing": the size alone
    auto size = Head(key);
    if (!size) return tl::unexpected(size.error());
    if (!*size) return false;
    if (first > **size) {
      return Fail(ErrorKind::kRangeInvalid, description_ + ": GetObject " + key +
                                                ": range starts past the end of the object");
    }
    if (sink.on_size && !sink.on_size(**size)) {
      return Fail(ErrorKind::kUpstreamInvalid, "transfer aborted by the receiver");
    }
    return true;
  }
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  DownloadState download;
  download.sink = &sink;
  download.first = first;
  download.length = length;
  Request r{.op = Op::kGet, .api = "GetObject", .method = "GET", .full_key = *full};
  r.download = &download;
  r.bounded = false;
  if (first > 0 || length) {
    r.headers.push_back("Range: bytes=" + std::to_string(first) + "-" +
                        (length ? std::to_string(first + *length - 1) : ""));
  }
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status == 404) {
    auto reply = ParseS3Error(response->body);
    if (!reply || reply->code == "NoSuchKey") return false;
  }
  if (response->status != 200 && response->status != 206) {
    return tl::unexpected(StatusError(r, *response));
  }
  if (!download.complete) {
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    return Fail(ErrorKind::kUpstreamInvalid,
                description_ + ": GetObject " + *full + ": the body ended early");
  }
  return true;
}

Result<std::optional<std::string>> S3Client::GetSmall(const std::string& key, size_t max_bytes,
                                                      std::string* content_type) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  Request r{.op = Op::kGet, .api = "GetObject", .method = "GET", .full_key = *full};
  r.max_body_bytes = max_bytes;
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status == 404) {
    auto reply = ParseS3Error(response->body);
    if (!reply || reply->code == "NoSuchKey") return std::optional<std::string>();
  }
  if (response->status != 200) return tl::unexpected(StatusError(r, *response));
  if (content_type != nullptr) *content_type = response->Header("content-type");
  return std::optional<std::string>(std::move(response->body));
}

Status S3Client::PutSmall(const std::string& key, std::string_view bytes,
                          const std::string& content_type) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  if (!IsFieldValue(content_type)) return BadContentType(content_type);
  Request r{.op = Op::kPut, .api = "PutObject", .method = "PUT", .full_key = *full};
  r.has_body = true;
  r.body = bytes;
  r.headers.push_back("Content-Type: " +
                      (content_type.empty() ? std::string(kDefaultContentType) : content_type));
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200) return tl::unexpected(StatusError(r, *response));
  return {};
}

Status S3Client::PutStream(const std::string& key, uint64_t size, const Reader& read,
                           const std::string& content_type) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  if (!IsFieldValue(content_type)) return BadContentType(content_type);
  const std::string type = content_type.empty() ? kDefaultContentType : content_type;
  if (size > options_.chunk_size) return PutMultipart(*full, size, read, type);
  UploadState upload;
  upload.read = &read;
  upload.length = size;
  upload.counters = &counters_;
  Request r{.op = Op::kPut, .api = "PutObject", .method = "PUT", .full_key = *full};
  r.upload = &upload;
  r.bounded = false;
  r.headers.push_back("Content-Type: " + type);
  auto response = Perform(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200) return tl::unexpected(StatusError(r, *response));
  return {};
}

Result<std::string> S3Client::CreateUpload(const std::string& full_key,
                                           const std::string& content_type) {
  Request r{
      .op = Op::kMultipart, .api = "CreateMultipartUpload", .method = "POST", .full_key = full_key};
  r.query = {{"uploads", ""}};
  r.has_body = true;
  r.headers.push_back("Content-Type: " + content_type);
  return PerformForDocument(r, &ParseInitiateMultipartUpload);
}

Status S3Client::Complete(const std::string& full_key, const std::string& upload_id,
                          const std::vector<std::string>& etags, uint64_t size) {
  std::string body = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (size_t i = 0; i < etags.size(); ++i) {
    body += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
            XmlEscape(etags[i]) + "</ETag></Part>";
  }
  body += "</CompleteMultipartUpload>";
  Request r{.op = Op::kMultipart,
            .api = "CompleteMultipartUpload",
            .method = "POST",
            .full_key = full_key};
  r.query = {{"uploadId", upload_id}};
  r.has_body = true;
  r.body = body;
  r.headers.push_back("Content-Type: application/xml");
  // Assembling a large object takes a while; the store keeps the connection
  // alive with whitespace meanwhile, so only a stall ends it.
  r.bounded = false;
  for (int attempt = 1;; ++attempt) {
    auto response = PerformIdempotent(r);
    if (!response) return tl::unexpected(response.error());
    if (response->status == 404 && r.attempts > 1) {
      // An attempt whose answer was lost may have completed the upload: then the
      // object is there, whole.
      auto reply = ParseS3Error(response->body);
      auto there = HeadFull(full_key);
      if (reply && reply->code == "NoSuchUpload" && there && *there == size) return {};
    }
    if (response->status != 200) return tl::unexpected(StatusError(r, *response));
    // A 200 may still carry an <Error>: the parts were not assembled.
    auto done = CheckCompleteMultipartUpload(response->body);
    if (done) return {};
    counters_.errors.fetch_add(1, std::memory_order_relaxed);
    auto reply = ParseS3Error(response->body);
    const bool transient = reply && (reply->code == "InternalError" || reply->code == "SlowDown" ||
                                     reply->code == "ServiceUnavailable");
    if (!transient || attempt == kAttempts) {
      return Fail(done.error().kind, description_ + ": CompleteMultipartUpload " + full_key + ": " +
                                         done.error().message);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt == 1 ? 50 : 250));
  }
}

Status S3Client::Abort(const std::string& full_key, const std::string& upload_id) {
  Request r{.op = Op::kMultipart,
            .api = "AbortMultipartUpload",
            .method = "DELETE",
            .full_key = full_key};
  r.query = {{"uploadId", upload_id}};
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status == 204 || response->status == 200) return {};
  if (response->status == 404) return {};  // NoSuchUpload: already gone
  return tl::unexpected(StatusError(r, *response));
}

Status S3Client::PutMultipart(const std::string& full_key, uint64_t size, const Reader& read,
                              const std::string& content_type) {
  const uint64_t part_size = std::max(options_.chunk_size, (size + kMaxParts - 1) / kMaxParts);
  if (part_size > kMaxPartBytes) {
    return Fail(ErrorKind::kSizeInvalid, description_ + ": " + std::to_string(size) +
                                             " bytes are more than S3 takes in one object");
  }
  auto upload_id = CreateUpload(full_key, content_type);
  if (!upload_id) return tl::unexpected(upload_id.error());
  auto fail = [&](Error error) -> Status {
    if (auto aborted = Abort(full_key, *upload_id); !aborted) {
      Logger("s3")->warn("{}: multipart upload of {} not aborted (upload_id={}): {}", description_,
                         full_key, *upload_id, aborted.error().message);
    }
    return tl::unexpected(std::move(error));
  };
  std::vector<std::string> etags;
  for (uint64_t offset = 0; offset < size; offset += part_size) {
    UploadState upload;
    upload.read = &read;
    upload.base = offset;
    upload.length = std::min(part_size, size - offset);
    upload.counters = &counters_;
    Request r{.op = Op::kMultipart, .api = "UploadPart", .method = "PUT", .full_key = full_key};
    r.query = {{"partNumber", std::to_string(etags.size() + 1)}, {"uploadId", *upload_id}};
    r.upload = &upload;
    r.bounded = false;
    auto response = Perform(r);
    if (!response) return fail(response.error());
    if (response->status != 200) return fail(StatusError(r, *response));
    std::string etag = response->Header("etag");
    if (etag.empty()) {
      counters_.errors.fetch_add(1, std::memory_order_relaxed);
      return fail(Error{ErrorKind::kUpstreamInvalid,
                        description_ + ": UploadPart " + full_key + ": no ETag in the answer"});
    }
    etags.push_back(std::move(etag));
  }
  if (auto done = Complete(full_key, *upload_id, etags, size); !done) return fail(done.error());
  return {};
}

Status S3Client::Delete(const std::string& key) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  Request r{.op = Op::kDelete, .api = "DeleteObject", .method = "DELETE", .full_key = *full};
  auto response = PerformIdempotent(r);
  if (!response) return tl::unexpected(response.error());
  if (response->status == 204 || response->status == 200) return {};
  if (response->status == 404) {
    auto reply = ParseS3Error(response->body);
    if (!reply || reply->code == "NoSuchKey") return {};
  }
  return tl::unexpected(StatusError(r, *response));
}

Result<std::vector<S3Client::ListedObject>> S3Client::List(const std::string& prefix,
                                                           size_t max_keys,
                                                           std::string* continuation) {
  const std::string root = options_.root_directory.empty() ? "" : options_.root_directory + "/";
  Request r{.op = Op::kList, .api = "ListObjectsV2", .method = "GET"};
  r.query = {{"list-type", "2"},
             {"max-keys", std::to_string(std::clamp<size_t>(max_keys, 1, kMaxListPage))}};
  if (!root.empty() || !prefix.empty()) r.query.push_back({"prefix", root + prefix});
  if (continuation != nullptr && !continuation->empty()) {
    r.query.push_back({"continuation-token", *continuation});
  }
  r.max_body_bytes = kMaxListBodyBytes;
  auto page = PerformForDocument(r, &ParseListObjectsV2);
  if (!page) return tl::unexpected(page.error());
  std::vector<ListedObject> out;
  out.reserve(page->objects.size());
  for (auto& o : page->objects) {
    if (!StartsWith(o.key, root)) continue;
    out.push_back({o.key.substr(root.size()), o.size, o.modified_unix_ms});
  }
  if (continuation != nullptr) *continuation = page->truncated ? page->next_continuation_token : "";
  return out;
}

Result<std::vector<S3Client::PendingUpload>> S3Client::ListUploads(const std::string& prefix) {
  const std::string root = options_.root_directory.empty() ? "" : options_.root_directory + "/";
  std::vector<PendingUpload> out;
  std::string key_marker;
  std::string id_marker;
  while (true) {
    Request r{.op = Op::kList, .api = "ListMultipartUploads", .method = "GET"};
    r.query = {{"uploads", ""}};
    if (!root.empty() || !prefix.empty()) r.query.push_back({"prefix", root + prefix});
    if (!key_marker.empty()) r.query.push_back({"key-marker", key_marker});
    if (!id_marker.empty()) r.query.push_back({"upload-id-marker", id_marker});
    r.max_body_bytes = kMaxListBodyBytes;
    auto page = PerformForDocument(r, &ParseListMultipartUploads);
    if (!page) return tl::unexpected(page.error());
    for (auto& u : page->uploads) {
      if (!StartsWith(u.key, root)) continue;
      out.push_back({u.key.substr(root.size()), u.upload_id, u.initiated_unix_ms});
    }
    if (!page->truncated) return out;
    if (page->next_key_marker.empty() ||
        (page->next_key_marker == key_marker && page->next_upload_id_marker == id_marker)) {
      return Fail(ErrorKind::kUpstreamInvalid,
                  description_ + ": ListMultipartUploads: a truncated page without new markers");
    }
    key_marker = page->next_key_marker;
    id_marker = page->next_upload_id_marker;
  }
}

Status S3Client::AbortUpload(const std::string& key, const std::string& upload_id) {
  auto full = FullKey(key);
  if (!full) return tl::unexpected(full.error());
  return Abort(*full, upload_id);
}

std::string S3Client::PresignGet(const std::string& key, std::chrono::seconds expires,
                                 int64_t now_unix_s) const {
  auto full = FullKey(key);
  if (!full) return "";
  PresignInput in;
  in.scheme = endpoint_->scheme;
  in.host = endpoint_->host;
  in.canonical_uri = endpoint_->base_path + "/" + SigV4UriEncode(*full, true);
  in.region = options_.region;
  in.access_key = options_.access_key;
  in.secret_key = options_.secret_key;
  in.session_token = options_.session_token;
  in.now_unix_s = now_unix_s;
  in.expires_s = expires.count();
  return PresignV4(in).url;
}

S3Options S3OptionsFrom(const Config& config) {
  S3Options o;
  o.bucket = config.s3_bucket;
  o.region = config.s3_region;
  o.endpoint = config.s3_region_endpoint;
  o.access_key = config.s3_access_key;
  o.secret_key = config.s3_secret_key;
  o.session_token = config.s3_session_token;
  o.root_directory = config.s3_root_directory;
  while (!o.root_directory.empty() && o.root_directory.front() == '/') o.root_directory.erase(0, 1);
  while (!o.root_directory.empty() && o.root_directory.back() == '/') o.root_directory.pop_back();
  o.secure = config.s3_secure;
  o.force_path_style = config.s3_force_path_style;
  o.chunk_size = config.s3_chunk_size_bytes;
  return o;
}

}  // namespace hubcache
