#pragma once
// Incremental SHA-256 (OpenSSL EVP). Not thread-safe; one per stream.

#include <memory>
#include <string>
#include <string_view>

namespace hubcache {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Lower-case hex of the digest; the hasher must not be updated afterwards.
  std::string FinishHex();

  static std::string HexOf(std::string_view data);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace hubcache
