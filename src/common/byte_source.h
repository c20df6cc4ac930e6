#pragma once
// A stream of bytes read in order, such as a request body: the cache reads
// uploads through this without knowing HTTP. Not thread-safe; one reader.

#include <cstddef>

#include "common/result.h"

namespace hubcache {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `size` bytes into `buffer`: how many, 0 at the end, or an
  // error (the sender went away, framing was malformed) after which nothing
  // more is read.
  [[nodiscard]] virtual Result<size_t> Read(char* buffer, size_t size) = 0;
};

// A source with nothing in it.
class EmptySource final : public ByteSource {
 public:
  Result<size_t> Read(char*, size_t) override { return size_t{0}; }
};

}  // namespace hubcache
