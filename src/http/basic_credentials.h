#pragma once
// The Basic authentication scheme (RFC 7617) as a client sends it in an
// Authorization field value. Strict: the scheme is `Basic` in any case, then
// one or more spaces, then padded standard base64 of "user:password"; neither
// part may hold a control character (NUL included: bcrypt would stop reading
// at a NUL, so "secret\0garbage" would pass for "secret"). Anything else is no
// credential at all. Pure functions of their input, safe from any thread.

#include <optional>
#include <string>
#include <string_view>

namespace hubcache {

struct BasicCredentials {
  std::string user;      // may be empty; holds no ':' and no control byte
  std::string password;  // holds no control byte
};

// Untrusted input: never throws. nullopt when `value` is not well-formed Basic
// credentials (another scheme, bad base64, no ':', a control byte, over 4 KiB).
[[nodiscard]] std::optional<BasicCredentials> ParseBasicAuthorization(std::string_view value);

}  // namespace hubcache
