#pragma once
// A handler's answer, as the connection layer writes it: the status, the
// fields, and a body that is either bytes, a provider of a known length (a
// FileBody among them, server/response_writer.h), or a chunked provider. The
// response writer alone turns it into bytes on the connection and owns its
// framing (Content-Length, Transfer-Encoding, Connection). The setters follow
// cpp-httplib's Response, whose DataSink the providers write into.
// Not thread-safe: the thread serving the request fills it and writes it.
// Owns its providers (and what they hold) until it is destroyed.

#include <httplib.h>

#include <cstdint>
#include <string>

namespace hubcache {

class HttpResponse {
 public:
  int status = -1;  // -1: not set by the handler (answered as 200)
  httplib::Headers headers;
  std::string body;  // the body, when no provider gives it

  // Adds a field (another value when the name is there already).
  void set_header(const std::string& name, const std::string& value);
  // The first value of a field, "" when absent.
  std::string get_header_value(const std::string& name) const;

  // The body as bytes, and its Content-Type.
  void set_content(std::string content, const std::string& content_type);
  // `length` bytes from `provider`, called with the offset reached until it
  // has written them all; a provider that returns false cuts the body short.
  // A length of 0 is an empty body (the provider is never called).
  void set_content_provider(uint64_t length, const std::string& content_type,
                            httplib::ContentProvider provider);
  // A body of unknown length, chunked; the provider calls sink.done() at its end.
  void set_chunked_content_provider(const std::string& content_type,
                                    httplib::ContentProviderWithoutLength provider);

  // For the writer: which body, and its provider.
  bool has_length_provider() const { return static_cast<bool>(provider_); }
  bool has_chunked_provider() const { return static_cast<bool>(chunked_provider_); }
  uint64_t provider_length() const { return provider_length_; }
  const httplib::ContentProvider& length_provider() const { return provider_; }
  const httplib::ContentProviderWithoutLength& chunked_provider() const {
    return chunked_provider_;
  }

 private:
  void SetContentType(const std::string& content_type);

  uint64_t provider_length_ = 0;
  httplib::ContentProvider provider_;
  httplib::ContentProviderWithoutLength chunked_provider_;
};

}  // namespace hubcache
