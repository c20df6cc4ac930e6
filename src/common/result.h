#pragma once
// Result<T>: a value or an Error. The project's one way to report failure; no
// exceptions cross module boundaries on the data plane.

#include <string>
#include <utility>

#include <tl/expected.hpp>

#include "common/error_kind.h"

namespace hubcache {

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

template <typename T>
using Result = tl::expected<T, Error>;

using Status = tl::expected<void, Error>;

inline tl::unexpected<Error> Fail(ErrorKind kind, std::string message) {
  return tl::unexpected<Error>(Error{kind, std::move(message)});
}

}  // namespace hubcache
