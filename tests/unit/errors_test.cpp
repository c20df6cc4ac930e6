#include "registry/errors.h"

#include <doctest/doctest.h>

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hubcache {
namespace {

TEST_CASE("ToWire maps every ErrorKind to a registry code and HTTP status") {
  struct Case {
    ErrorKind kind;
    int status;
    std::string code;
  };
  const std::vector<Case> cases = {
      {ErrorKind::kNameInvalid, 400, "NAME_INVALID"},
      {ErrorKind::kTagInvalid, 400, "TAG_INVALID"},
      {ErrorKind::kDigestInvalid, 400, "DIGEST_INVALID"},
      {ErrorKind::kManifestInvalid, 400, "MANIFEST_INVALID"},
      {ErrorKind::kManifestUnknown, 404, "MANIFEST_UNKNOWN"},
      {ErrorKind::kBlobUnknown, 404, "BLOB_UNKNOWN"},
      {ErrorKind::kNameUnknown, 404, "NAME_UNKNOWN"},
      {ErrorKind::kRangeInvalid, 416, "RANGE_INVALID"},
      {ErrorKind::kPaginationInvalid, 400, "PAGINATION_NUMBER_INVALID"},
      {ErrorKind::kUnsupported, 405, "UNSUPPORTED"},
      {ErrorKind::kUnauthorized, 401, "UNAUTHORIZED"},
      {ErrorKind::kCredentialsMalformed, 400, "UNAUTHORIZED"},
      {ErrorKind::kDenied, 403, "DENIED"},
      {ErrorKind::kTooManyRequests, 429, "TOOMANYREQUESTS"},
      {ErrorKind::kUpstreamUnavailable, 503, "UNAVAILABLE"},
      {ErrorKind::kUpstreamInvalid, 502, "UNKNOWN"},
      {ErrorKind::kConfigInvalid, 500, "UNKNOWN"},
      {ErrorKind::kIo, 500, "UNKNOWN"},
      {ErrorKind::kInternal, 500, "UNKNOWN"},
  };
  std::set<ErrorKind> seen;
  for (const auto& c : cases) {
    CAPTURE(c.code);
    CAPTURE(static_cast<int>(c.kind));
    auto wire = ToWire(c.kind);
    CHECK(wire.http_status == c.status);
    REQUIRE(wire.code != nullptr);
    CHECK(std::string(wire.code) == c.code);
    seen.insert(c.kind);
  }
  // The table above covers the whole enum (kIo is its last member).
  CHECK(seen.size() == static_cast<size_t>(ErrorKind::kIo) + 1);
}

TEST_CASE("ToWire: an out-of-range kind is a 500, not a crash") {
  auto wire = ToWire(static_cast<ErrorKind>(999));
  CHECK(wire.http_status == 500);
  CHECK(std::string(wire.code) == "UNKNOWN");
}

TEST_CASE("ErrorJson has the distribution spec's shape") {
  struct Case {
    Error error;
    std::string code;
  };
  const std::vector<Case> cases = {
      {{ErrorKind::kNameInvalid, "invalid repository name"}, "NAME_INVALID"},
      {{ErrorKind::kManifestUnknown, "manifest unknown"}, "MANIFEST_UNKNOWN"},
      {{ErrorKind::kBlobUnknown, ""}, "BLOB_UNKNOWN"},
      {{ErrorKind::kTooManyRequests, "rate limit \"exceeded\"\n\tretry later \\ ok"},
       "TOOMANYREQUESTS"},
      {{ErrorKind::kUnauthorized, "caf\xc3\xa9 \xe2\x9c\x93"}, "UNAUTHORIZED"},
      {{ErrorKind::kInternal, std::string("nul\0inside", 10)}, "UNKNOWN"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.code);
    std::string body = ErrorJson(c.error);
    auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    REQUIRE(doc.is_object());
    CHECK(doc.size() == 1u);
    REQUIRE(doc.contains("errors"));
    REQUIRE(doc["errors"].is_array());
    REQUIRE(doc["errors"].size() == 1u);
    const auto& entry = doc["errors"][0];
    REQUIRE(entry.is_object());
    REQUIRE(entry.contains("code"));
    REQUIRE(entry["code"].is_string());
    CHECK(entry["code"].get<std::string>() == c.code);
    REQUIRE(entry.contains("message"));
    REQUIRE(entry["message"].is_string());
    CHECK(entry["message"].get<std::string>() == c.error.message);
    // Body is one line: clients and logs do not see embedded newlines.
    CHECK(body.find('\n') == std::string::npos);
  }
}

}  // namespace
}  // namespace hubcache
