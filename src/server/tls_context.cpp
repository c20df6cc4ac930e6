#include "server/tls_context.h"

#include <openssl/err.h>

#include <fstream>

#include "common/log.h"

namespace hubcache {
namespace {

// Forward-secret AEAD suites for TLS 1.2; TLS 1.3 suites are modern by default.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string OpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

bool Readable(const std::string& path) { return std::ifstream(path).good(); }

}  // namespace

Result<std::shared_ptr<TlsContext>> TlsContext::Create(std::string certificate, std::string key,
                                                       std::vector<std::string> client_cas) {
  std::shared_ptr<TlsContext> tls(
      new TlsContext(std::move(certificate), std::move(key), std::move(client_cas)));
  auto ctx = tls->Build();
  if (!ctx) return tl::unexpected(ctx.error());
  tls->current_ = std::move(*ctx);
  return tls;
}

Status TlsContext::Apply(SSL_CTX& ctx) const {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      &ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_cipher_list(&ctx, kTls12Ciphers) != 1) {
    return Fail(ErrorKind::kConfigInvalid, "TLS: cannot set ciphers: " + OpenSslError());
  }
  if (!Readable(certificate_)) {
    return Fail(ErrorKind::kConfigInvalid,
                "TLS certificate " + certificate_ + " is missing or unreadable");
  }
  if (!Readable(key_)) {
    return Fail(ErrorKind::kConfigInvalid, "TLS key " + key_ + " is missing or unreadable");
  }
  if (SSL_CTX_use_certificate_chain_file(&ctx, certificate_.c_str()) != 1) {
    return Fail(ErrorKind::kConfigInvalid,
                "TLS certificate " + certificate_ + " is not a PEM certificate: " + OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, key_.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Fail(
        ErrorKind::kConfigInvalid,
        "TLS key " + key_ +
            " is not a PEM private key or does not match the certificate: " + OpenSslError());
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    return Fail(ErrorKind::kConfigInvalid,
                "TLS key " + key_ + " does not match the certificate " + certificate_);
  }
  if (!client_cas_.empty()) {
    for (const auto& ca : client_cas_) {
      if (!Readable(ca) || SSL_CTX_load_verify_locations(&ctx, ca.c_str(), nullptr) != 1) {
        return Fail(ErrorKind::kConfigInvalid,
                    "TLS client CA " + ca + " cannot be loaded: " + OpenSslError());
      }
      if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca.c_str())) {
        SSL_CTX_set_client_CA_list(&ctx, names);
      }
    }
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return {};
}

Result<std::shared_ptr<SSL_CTX>> TlsContext::Build() const {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) return Fail(ErrorKind::kInternal, "TLS: SSL_CTX_new failed");
  if (auto s = Apply(*ctx); !s) return tl::unexpected(s.error());
  return ctx;
}

std::shared_ptr<SSL_CTX> TlsContext::Current() {
  std::lock_guard lock(mutex_);
  return current_;
}

bool TlsContext::Configure(SSL_CTX& base) {
  if (auto s = Apply(base); !s) {
    Logger("tls")->error("{}", s.error().message);
    return false;
  }
  // Every handshake picks up the newest certificate context (see Reload).
  SSL_CTX_set_client_hello_cb(
      &base,
      [](SSL* ssl, int*, void* arg) -> int {
        auto current = static_cast<TlsContext*>(arg)->Current();
        if (current && SSL_get_SSL_CTX(ssl) != current.get()) SSL_set_SSL_CTX(ssl, current.get());
        return SSL_CLIENT_HELLO_SUCCESS;
      },
      this);
  return true;
}

Status TlsContext::Reload() {
  auto ctx = Build();
  if (!ctx) return tl::unexpected(ctx.error());
  std::lock_guard lock(mutex_);
  current_ = std::move(*ctx);
  return {};
}

}  // namespace hubcache
