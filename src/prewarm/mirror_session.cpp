#include "prewarm/mirror_session.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "registry/hubcache_headers.h"
#include "registry/media_types.h"
#include "registry/routes.h"
#include "upstream/curl_easy.h"

namespace hubcache {
namespace {

constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;

const nlohmann::json* FirstError(const nlohmann::json& doc) {
  if (!doc.is_object()) return nullptr;
  auto it = doc.find("errors");
  if (it == doc.end() || !it->is_array() || it->empty() || !(*it)[0].is_object()) return nullptr;
  return &(*it)[0];
}

}  // namespace

struct MirrorSession::Transfer {
  const std::atomic<bool>* cancel = nullptr;
  bool is_blob = false;
  const std::function<void(const MirrorReply&)>* on_head = nullptr;
  const std::function<void(const char*, size_t)>* on_data = nullptr;
  MirrorReply reply;
  bool head_done = false;
  bool too_large = false;
  uint64_t body_bytes = 0;

  std::map<std::string, std::string> headers;  // of the current response

  static size_t OnHeader(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    AddResponseHeaderLine(line, t->headers);
    if (StartsWith(line, "HTTP/")) {
      // A new response (after a 100 Continue, say): start over.
      t->reply = MirrorReply{};
      size_t space = line.find(' ');
      if (space != std::string_view::npos && line.size() >= space + 4) {
        t->reply.status = std::atoi(std::string(line.substr(space + 1, 3)).c_str());
      }
      return size * n;
    }
    if (!TrimSpaces(line).empty() || t->reply.status == 100) return size * n;
    // The end of the head: what the session reports of it.
    auto header = [&](const std::string& name) {
      auto it = t->headers.find(name);
      return it == t->headers.end() ? std::string() : it->second;
    };
    t->reply.content_type = header("content-type");
    t->reply.digest = header("docker-content-digest");
    t->reply.cache = ToLower(header(ToLower(kCacheHeader)));
    const std::string length = header("content-length");
    char* end = nullptr;
    unsigned long long v = std::strtoull(length.c_str(), &end, 10);
    if (!length.empty() && end != length.c_str() && *end == '\0') {
      t->reply.content_length = v;
      t->reply.has_content_length = true;
    }
    t->head_done = true;
    if (t->is_blob && t->reply.status == 200 && t->on_head) (*t->on_head)(t->reply);
    return size * n;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t bytes = size * n;
    t->body_bytes += bytes;
    if (t->is_blob && t->reply.status == 200) {
      (*t->on_data)(data, bytes);
      return bytes;
    }
    size_t limit = t->is_blob || t->reply.status != 200 ? kMaxErrorBodyBytes : kMaxManifestBytes;
    if (t->reply.body.size() + bytes > limit) {
      t->too_large = true;
      return 0;
    }
    t->reply.body.append(data, bytes);
    return bytes;
  }

  static int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(user);
    return t->cancel->load() ? 1 : 0;
  }
};

std::string MirrorReply::ErrorCode() const {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const auto* e = FirstError(doc);
  if (e == nullptr) return "";
  auto it = e->find("code");
  return it != e->end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string MirrorReply::ErrorMessage() const {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const auto* e = FirstError(doc);
  if (e == nullptr) return "";
  auto it = e->find("message");
  return it != e->end() && it->is_string() ? it->get<std::string>() : std::string();
}

MirrorSession::MirrorSession(SessionOptions options, const std::atomic<bool>& cancel)
    : options_(std::move(options)), cancel_(cancel) {
  handle_ = NewCurlEasy().release();
}

MirrorSession::~MirrorSession() {
  if (handle_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(handle_));
}

Result<MirrorReply> MirrorSession::GetManifest(const RepoName& repo, const std::string& reference) {
  Transfer transfer;
  return Perform(ManifestPath(repo, reference), transfer);
}

Result<MirrorReply> MirrorSession::GetBlob(
    const RepoName& repo, const Digest& digest,
    const std::function<void(const MirrorReply& head)>& on_head,
    const std::function<void(const char* data, size_t size)>& on_data) {
  Transfer transfer;
  transfer.is_blob = true;
  transfer.on_head = &on_head;
  transfer.on_data = &on_data;
  return Perform(BlobPath(repo, digest), transfer);
}

Result<MirrorReply> MirrorSession::Perform(const std::string& path, Transfer& transfer) {
  if (handle_ == nullptr) return Fail(ErrorKind::kInternal, "libcurl cannot start a transfer");
  if (cancel_.load()) return Fail(ErrorKind::kUpstreamUnavailable, "canceled");
  auto* h = static_cast<CURL*>(handle_);
  transfer.cancel = &cancel_;
  const std::string url = options_.base_url + path;

  curl_slist* headers = nullptr;
  if (!transfer.is_blob) {
    headers = curl_slist_append(headers, ("Accept: " + AcceptSet::All().UpstreamHeader()).c_str());
    // This run fetches the blobs itself, and counts what it fetched.
    headers = curl_slist_append(headers, (std::string(kPrefetchHeader) + ": off").c_str());
  }
  char error_buffer[CURL_ERROR_SIZE] = {0};

  curl_easy_reset(h);  // keeps the connection cache
  SetTransferBasics(h, url,
                    {.user_agent = "hubcache-prewarm/" HUBCACHE_VERSION,
                     .error_buffer = error_buffer,
                     .connect_timeout = options_.connect_timeout,
                     .stall = options_.stall_timeout});
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (!transfer.is_blob) {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.manifest_timeout.count()));
  }
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024L);
  if (!options_.username.empty()) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(h, CURLOPT_USERNAME, options_.username.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, options_.password.c_str());
  }
  if (!options_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (options_.insecure) curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
  if (options_.insecure || !options_.verify_host) curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &transfer);

  CURLcode code = curl_easy_perform(h);
  curl_slist_free_all(headers);

  if (code == CURLE_ABORTED_BY_CALLBACK) return Fail(ErrorKind::kUpstreamUnavailable, "canceled");
  if (transfer.too_large) {
    return Fail(ErrorKind::kManifestInvalid, url + ": response larger than allowed");
  }
  if (code != CURLE_OK) {
    std::string what = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(code);
    bool connected = transfer.reply.status != 0;
    return Fail(ErrorKind::kUpstreamUnavailable,
                (connected ? "transfer from the mirror failed: "
                           : "cannot reach the mirror at " + options_.base_url + ": ") +
                    what);
  }
  if (transfer.reply.has_content_length && transfer.reply.status == 200 &&
      transfer.body_bytes != transfer.reply.content_length) {
    return Fail(ErrorKind::kUpstreamUnavailable, "transfer from the mirror cut short");
  }
  return std::move(transfer.reply);
}

std::string SelfUrl(const std::string& listen_addr, int port) {
  size_t colon = listen_addr.rfind(':');
  std::string host = colon == std::string::npos ? std::string() : listen_addr.substr(0, colon);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]" || host == "::") host = "[::1]";
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
}

}  // namespace hubcache
