#include "server/http_response.h"

#include <utility>

namespace hubcache {

void HttpResponse::set_header(const std::string& name, const std::string& value) {
  headers.emplace(name, value);
}

std::string HttpResponse::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void HttpResponse::SetContentType(const std::string& content_type) {
  headers.erase("Content-Type");
  set_header("Content-Type", content_type);
}

void HttpResponse::set_content(std::string content, const std::string& content_type) {
  body = std::move(content);
  provider_ = nullptr;
  chunked_provider_ = nullptr;
  provider_length_ = 0;
  SetContentType(content_type);
}

void HttpResponse::set_content_provider(uint64_t length, const std::string& content_type,
                                        httplib::ContentProvider provider) {
  body.clear();
  chunked_provider_ = nullptr;
  provider_length_ = length;
  provider_ = length > 0 ? std::move(provider) : nullptr;
  SetContentType(content_type);
}

void HttpResponse::set_chunked_content_provider(const std::string& content_type,
                                                httplib::ContentProviderWithoutLength provider) {
  body.clear();
  provider_ = nullptr;
  provider_length_ = 0;
  chunked_provider_ = std::move(provider);
  SetContentType(content_type);
}

}  // namespace hubcache
