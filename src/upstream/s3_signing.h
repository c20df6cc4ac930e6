#pragma once
// The parts of AWS Signature Version 4 that hubcache computes itself for S3.
//
// libcurl signs each request's headers (CURLOPT_AWS_SIGV4), but the libcurl of
// Debian 12 (7.88) takes the URL's path and query string as they are written:
// the path must already be UriEncoded and the query already in canonical form
// (names and values encoded, sorted, "uploads=" not "uploads"), or the store
// computes another signature and answers 403. And curl cannot presign a URL.
// So the encoding, the canonical query, the signing key and query signing
// (presigned GETs) live here, as pure functions checked against the examples
// AWS publishes.
//
// Reference: "Authenticating Requests (AWS Signature Version 4)" in the Amazon
// S3 API reference, and its "Query String Authentication" page.
//
// Thread-safe: no state. Secrets pass through; nothing is logged.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hubcache {

// UriEncode as SigV4 defines it: every byte but the unreserved A-Z a-z 0-9 - . _ ~
// becomes %XX (upper-case hex, UTF-8 bytes as they are); '/' is kept when
// keep_slash (an object key in the path) and encoded otherwise (query names
// and values). A space is %20, never '+'.
std::string SigV4UriEncode(std::string_view text, bool keep_slash);

// A query parameter, raw (not encoded). An empty value is written "name=".
struct QueryParam {
  std::string name;
  std::string value;
};

// The canonical query string: each name and value UriEncoded, sorted by encoded
// name then encoded value (byte order), joined as name=value with '&'. The same
// string is what goes on the wire, so the store reads what was signed.
std::string CanonicalQueryString(std::vector<QueryParam> params);

// "20130524T000000Z": the x-amz-date form of unix seconds (UTC).
std::string AmzDate(int64_t unix_s);

// Lower-case hex of bytes.
std::string HexEncode(std::string_view bytes);

// HMAC-SHA256 of data under key: 32 raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);

// The SigV4 signing key (raw bytes):
//   HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service), "aws4_request")
std::string SigV4SigningKey(std::string_view secret_key, std::string_view yyyymmdd,
                            std::string_view region, std::string_view service);

// A request to sign in its query string (a presigned URL), host header only.
struct PresignInput {
  std::string method = "GET";
  std::string scheme = "https";
  // The Host header as a client sends it: "examplebucket.s3.amazonaws.com",
  // with ":port" when the port is not the scheme's default.
  std::string host;
  std::string canonical_uri;       // the path, already SigV4UriEncoded: "/test.txt"
  std::vector<QueryParam> params;  // parameters besides the X-Amz-* ones
  std::string region = "us-east-1";
  std::string service = "s3";
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // "" = none; else signed as X-Amz-Security-Token
  int64_t now_unix_s = 0;
  int64_t expires_s = 3600;  // X-Amz-Expires, clamped to 1 s .. 7 days (S3's range)
};

struct Presigned {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signature;  // lower-case hex
  std::string url;        // scheme://host/uri?<canonical query>&X-Amz-Signature=...
};

// Query-string SigV4 (payload UNSIGNED-PAYLOAD, signed header "host").
Presigned PresignV4(const PresignInput& input);

}  // namespace hubcache
