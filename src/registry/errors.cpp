#include "registry/errors.h"

#include <nlohmann/json.hpp>

namespace hubcache {

WireError ToWire(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNameInvalid:
      return {400, "NAME_INVALID"};
    case ErrorKind::kTagInvalid:
      return {400, "TAG_INVALID"};
    case ErrorKind::kDigestInvalid:
      return {400, "DIGEST_INVALID"};
    case ErrorKind::kManifestInvalid:
      return {400, "MANIFEST_INVALID"};
    case ErrorKind::kManifestUnknown:
      return {404, "MANIFEST_UNKNOWN"};
    case ErrorKind::kBlobUnknown:
      return {404, "BLOB_UNKNOWN"};
    case ErrorKind::kNameUnknown:
      return {404, "NAME_UNKNOWN"};
    case ErrorKind::kRangeInvalid:
      return {416, "RANGE_INVALID"};
    case ErrorKind::kPaginationInvalid:
      return {400, "PAGINATION_NUMBER_INVALID"};
    case ErrorKind::kUnsupported:
      return {405, "UNSUPPORTED"};
    case ErrorKind::kUnauthorized:
      return {401, "UNAUTHORIZED"};
    case ErrorKind::kCredentialsMalformed:
      return {400, "UNAUTHORIZED"};
    case ErrorKind::kDenied:
      return {403, "DENIED"};
    case ErrorKind::kTooManyRequests:
      return {429, "TOOMANYREQUESTS"};
    case ErrorKind::kUpstreamUnavailable:
      return {503, "UNAVAILABLE"};
    case ErrorKind::kUpstreamInvalid:
      return {502, "UNKNOWN"};
    case ErrorKind::kConfigInvalid:
      return {500, "UNKNOWN"};
    case ErrorKind::kIo:
      return {500, "UNKNOWN"};
    case ErrorKind::kInternal:
      return {500, "UNKNOWN"};
    case ErrorKind::kInsufficientStorage:
      return {507, "UNKNOWN"};
    case ErrorKind::kBlobUploadUnknown:
      return {404, "BLOB_UPLOAD_UNKNOWN"};
    case ErrorKind::kBlobUploadInvalid:
      return {400, "BLOB_UPLOAD_INVALID"};
    case ErrorKind::kUploadOutOfOrder:
      return {416, "BLOB_UPLOAD_INVALID"};
    case ErrorKind::kManifestBlobUnknown:
      return {400, "MANIFEST_BLOB_UNKNOWN"};
    case ErrorKind::kManifestTooLarge:
      return {413, "SIZE_INVALID"};
    case ErrorKind::kSizeInvalid:
      return {400, "SIZE_INVALID"};
  }
  return {500, "UNKNOWN"};
}

std::string ErrorJson(const Error& error) {
  return ErrorJson(ToWire(error.kind).code, error.message);
}

std::string ErrorJson(const char* code, const std::string& message) {
  return ErrorJson(code, message, nlohmann::json(nullptr));
}

std::string ErrorJson(const char* code, const std::string& message, const nlohmann::json& detail) {
  nlohmann::json entry = {{"code", code}, {"message", message}};
  if (!detail.is_null()) entry["detail"] = detail;
  // Messages may quote what a client sent: never let invalid UTF-8 throw.
  return nlohmann::json{{"errors", nlohmann::json::array({entry})}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hubcache
