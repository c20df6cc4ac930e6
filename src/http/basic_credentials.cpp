#include "http/basic_credentials.h"

#include <openssl/evp.h>

#include <algorithm>

namespace hubcache {
namespace {

constexpr size_t kMaxEncodedBytes = 4096;

bool IsBase64Char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

bool IsCaseInsensitive(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower[i]) return false;
  }
  return true;
}

// RFC 5234 CTL: %x00-1F and %x7F.
bool HasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace

std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view value) {
  // A field value carries no trailing whitespace (RFC 9110 section 5.5), but a
  // lenient parser may leave some: it is not part of the credentials.
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  constexpr std::string_view kScheme = "basic";
  if (value.size() <= kScheme.size() || !IsCaseInsensitive(value.substr(0, 5), kScheme)) {
    return std::nullopt;
  }
  std::string_view rest = value.substr(kScheme.size());
  size_t spaces = rest.find_first_not_of(' ');
  if (spaces == 0 || spaces == std::string_view::npos) return std::nullopt;  // 1*SP, then token
  std::string_view encoded = rest.substr(spaces);
  // token68 as base64: [A-Za-z0-9+/]* then at most two '=', a multiple of 4 long.
  size_t data_end = encoded.find_last_not_of('=');
  if (data_end == std::string_view::npos) return std::nullopt;
  const size_t padding = encoded.size() - data_end - 1;
  if (encoded.size() > kMaxEncodedBytes || encoded.size() % 4 != 0 || padding > 2 ||
      !std::all_of(encoded.begin(), encoded.begin() + static_cast<long>(data_end + 1),
                   IsBase64Char)) {
    return std::nullopt;
  }
  std::string decoded(encoded.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                          reinterpret_cast<const unsigned char*>(encoded.data()),
                          static_cast<int>(encoded.size()));
  if (n < 0 || static_cast<size_t>(n) < padding) return std::nullopt;
  // EVP_DecodeBlock counts the padding bytes as zeros: drop them.
  decoded.resize(static_cast<size_t>(n) - padding);
  size_t colon = decoded.find(':');
  if (colon == std::string::npos || HasControl(decoded)) return std::nullopt;
  return BasicCredentials{decoded.substr(0, colon), decoded.substr(colon + 1)};
}

}  // namespace hubcache
