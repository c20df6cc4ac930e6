#pragma once
// The server's TLS settings: TLS 1.2+ with modern ciphers, a PEM certificate
// chain and key, optional client-certificate verification, and re-reading the
// certificate and key on demand (SIGHUP) without dropping connections: each
// new handshake switches to the newest certificate context, connections
// already established keep theirs. Thread-safe.

#include <openssl/ssl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"

namespace hubcache {

class TlsContext {
 public:
  // Loads and checks the files; errors name the file and what is wrong.
  [[nodiscard]] static Result<std::shared_ptr<TlsContext>> Create(
      std::string certificate, std::string key, std::vector<std::string> client_cas);

  // Sets up the SSL_CTX the server handshakes with; this object must outlive `base`.
  bool Configure(SSL_CTX& base);

  // Re-reads certificate and key; on failure the current ones stay in use.
  [[nodiscard]] Status Reload();

 private:
  TlsContext(std::string certificate, std::string key, std::vector<std::string> client_cas)
      : certificate_(std::move(certificate)),
        key_(std::move(key)),
        client_cas_(std::move(client_cas)) {}
  // A complete context from the files (also validates them).
  Result<std::shared_ptr<SSL_CTX>> Build() const;
  Status Apply(SSL_CTX& ctx) const;
  std::shared_ptr<SSL_CTX> Current();

  const std::string certificate_;
  const std::string key_;
  const std::vector<std::string> client_cas_;
  std::mutex mutex_;
  std::shared_ptr<SSL_CTX> current_;  // guarded by mutex_
};

}  // namespace hubcache
