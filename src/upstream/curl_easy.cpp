#include "upstream/curl_easy.h"

#include <algorithm>

#include "common/strings.h"

namespace hubcache {

namespace {

void InitCurlOnce() {
  static const bool initialised = [] {
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  }();
  (void)initialised;
}

}  // namespace

CurlEasy NewCurlEasy() {
  InitCurlOnce();
  return CurlEasy(curl_easy_init());
}

CurlHandlePool::~CurlHandlePool() {
  for (CURL* h : idle_) curl_easy_cleanup(h);
}

CURL* CurlHandlePool::Acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      CURL* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return NewCurlEasy().release();
}

void CurlHandlePool::Release(CURL* handle) {
  curl_easy_reset(handle);  // keeps live connections
  std::lock_guard lock(mutex_);
  idle_.push_back(handle);
}

void AddResponseHeaderLine(std::string_view line, std::map<std::string, std::string>& headers) {
  if (StartsWith(line, "HTTP/")) {
    headers.clear();
    return;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;
  std::string name = ToLower(TrimSpaces(line.substr(0, colon)));
  std::string value(TrimSpaces(line.substr(colon + 1)));
  auto [it, inserted] = headers.emplace(name, value);
  if (!inserted) it->second += ", " + value;
}

void SetTransferBasics(CURL* h, const std::string& url, const TransferBasics& basics) {
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, basics.user_agent);
  if (basics.error_buffer != nullptr) curl_easy_setopt(h, CURLOPT_ERRORBUFFER, basics.error_buffer);
  if (basics.connect_timeout.count() > 0) {
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(basics.connect_timeout.count()));
  }
  if (basics.stall.count() > 0) {
    const long stall_s = std::max<long>(1, static_cast<long>(basics.stall.count() / 1000));
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s);
  }
}

long ResponseStatus(CURL* h) {
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

}  // namespace hubcache
