#pragma once
// Base64 (RFC 4648, with padding) of bytes, as Basic credentials carry them.
// Stateless. Decoding lives with the one parser that needs it, strictly
// validated (http/basic_credentials.h).

#include <string>
#include <string_view>

namespace hubcache {

std::string Base64Encode(std::string_view bytes);

}  // namespace hubcache
