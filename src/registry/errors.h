#pragma once
// The one table from ErrorKind to the registry wire form: an error code from the
// distribution spec and an HTTP status, rendered as
// {"errors":[{"code":...,"message":...,"detail":...}]} (detail only when given).
// The one place a registry error body is built. Pure functions; thread-safe.

#include <nlohmann/json_fwd.hpp>

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
// The same for a code no ErrorKind stands for (HTTP-level refusals, the
// admin API's own codes), with a "detail" when it is not null.
std::string ErrorJson(const char* code, const std::string& message);
std::string ErrorJson(const char* code, const std::string& message, const nlohmann::json& detail);

}  // namespace hubcache
