#include "http/request_framing.h"

#include <string>

namespace hubcache {
namespace {

bool IsLength(const std::string& value) {
  if (value.empty() || value.size() > 18) return false;  // up to an exabyte, no overflow
  for (char c : value) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Framing CheckFraming(const httplib::Request& req, bool reads_body) {
  const size_t lengths = req.get_header_value_count("Content-Length");
  const bool chunked = req.has_header("Transfer-Encoding");
  if (lengths > 0 && chunked) return Framing::kInvalid;
  std::string first;
  for (size_t i = 0; i < lengths; ++i) {
    std::string value = req.get_header_value("Content-Length", i);
    if (!IsLength(value)) return Framing::kInvalid;
    if (i == 0) first = value;
    if (value != first) return Framing::kInvalid;
  }
  bool has_body = chunked || (lengths > 0 && first.find_first_not_of('0') != std::string::npos);
  if (has_body && !reads_body) return Framing::kBodyUnread;
  return Framing::kOk;
}

}  // namespace hubcache
