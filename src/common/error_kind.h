#pragma once
// Every failure the mirror can report, independent of how it goes on the wire.
// registry/errors.h maps each kind to a registry error code and HTTP status.

namespace hubcache {

enum class ErrorKind {
  kInternal,              // a bug or an unexpected local failure
  kNameInvalid,           // repository name fails the distribution grammar
  kTagInvalid,            // tag fails the grammar
  kDigestInvalid,         // digest malformed or unsupported algorithm
  kManifestInvalid,       // bytes are not a manifest
  kManifestUnknown,       // no such manifest (here or upstream)
  kBlobUnknown,           // no such blob (here or upstream)
  kNameUnknown,           // no such repository
  kRangeInvalid,          // Range header not satisfiable
  kPaginationInvalid,     // n query parameter is not a number
  kUnsupported,           // writes on a read-only mirror
  kUnauthorized,          // upstream refused our credentials, or a client sent none valid
  kCredentialsMalformed,  // a client's request holds more than one Authorization field
  kDenied,                // upstream forbade access
  kTooManyRequests,       // upstream rate limit (Docker Hub 429)
  kUpstreamUnavailable,   // upstream unreachable, timed out or answered 5xx
  kUpstreamInvalid,       // upstream sent something unusable (digest mismatch, truncation)
  kConfigInvalid,         // bad configuration value
  kIo,                    // local disk or database failure
  kInsufficientStorage,   // the disk is full: a push cannot be kept (507)
  kBlobUploadUnknown,     // no such upload (in this repository)
  kBlobUploadInvalid,     // an upload's bytes or framing are wrong
  kUploadOutOfOrder,      // a chunk does not start at the upload's offset (416)
  kManifestBlobUnknown,   // a pushed manifest references what is not here
  kManifestTooLarge,      // a pushed manifest exceeds the size limit (413)
  kSizeInvalid,           // a declared length does not match the content
};

}  // namespace hubcache
