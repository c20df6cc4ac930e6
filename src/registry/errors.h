#pragma once
// The one table from ErrorKind to the registry wire form: an error code from the
// distribution spec and an HTTP status, rendered as
// {"errors":[{"code":...,"message":...}]} (the optional "detail" is not used).

#include <string>

#include "common/result.h"

namespace hubcache {

struct WireError {
  int http_status;
  const char* code;
};

WireError ToWire(ErrorKind kind);

// The registry error JSON body for an error.
std::string ErrorJson(const Error& error);
// The same for a code no ErrorKind stands for (HTTP-level refusals).
std::string ErrorJson(const char* code, const std::string& message);

}  // namespace hubcache
