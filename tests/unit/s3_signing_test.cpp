#include "upstream/s3_signing.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

// The credentials of the examples in AWS's SigV4 documentation for S3.
const std::string kAccessKey = "AKIAIOSFODNN7EXAMPLE";
const std::string kSecretKey = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr int64_t k20130524 = 1369353600;  // 2013-05-24T00:00:00Z

TEST_CASE("SigV4UriEncode") {
  struct Case {
    std::string text;
    bool keep_slash;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"test.txt", true, "test.txt"},
      // AWS's example of a key with spaces.
      {"/documents and settings/", true, "/documents%20and%20settings/"},
      {"photos/2006/February/sample.jpg", true, "photos/2006/February/sample.jpg"},
      {"blobs/", false, "blobs%2F"},
      {"a/b", false, "a%2Fb"},
      {"AZaz09-._~", true, "AZaz09-._~"},
      {"AZaz09-._~", false, "AZaz09-._~"},
      {"a b", true, "a%20b"},  // never '+'
      {"a+b", true, "a%2Bb"},
      {"a:b", true, "a%3Ab"},
      {"key with:colon+plus ~tilde", true, "key%20with%3Acolon%2Bplus%20~tilde"},
      {"sha256:abc", false, "sha256%3Aabc"},
      {"100%", true, "100%25"},
      {"a=b&c", false, "a%3Db%26c"},
      {"*!'()", true, "%2A%21%27%28%29"},
      {"?#[]@", true, "%3F%23%5B%5D%40"},
      {"\xc3\xa9", true, "%C3%A9"},  // UTF-8 bytes, upper-case hex
      {std::string("\0\x1f\x7f\xff", 4), true, "%00%1F%7F%FF"},
      {"", true, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CAPTURE(c.keep_slash);
    CHECK(SigV4UriEncode(c.text, c.keep_slash) == c.want);
  }
}

TEST_CASE("CanonicalQueryString") {
  struct Case {
    std::vector<QueryParam> params;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{}, ""},
      // A parameter without a value keeps its '=' (libcurl 7.88 signs what is written).
      {{{"uploads", ""}}, "uploads="},
      {{{"lifecycle", ""}}, "lifecycle="},  // AWS's GET Bucket lifecycle example
      {{{"prefix", "blobs/"}}, "prefix=blobs%2F"},
      // AWS's GET Bucket (list objects) example, given in either order.
      {{{"max-keys", "2"}, {"prefix", "J"}}, "max-keys=2&prefix=J"},
      {{{"prefix", "J"}, {"max-keys", "2"}}, "max-keys=2&prefix=J"},
      {{{"prefix", "root/cache/"}, {"list-type", "2"}, {"max-keys", "1000"}},
       "list-type=2&max-keys=1000&prefix=root%2Fcache%2F"},
      {{{"uploadId", "2~abc_DEF-1.x"}, {"partNumber", "10"}},
       "partNumber=10&uploadId=2~abc_DEF-1.x"},
      {{{"uploads", ""}, {"prefix", "a b"}}, "prefix=a%20b&uploads="},
      // Sorted by encoded name, byte order: upper case before lower case.
      {{{"a", "1"}, {"B", "2"}, {"X-Amz-Date", "3"}}, "B=2&X-Amz-Date=3&a=1"},
      // Equal names: by value.
      {{{"k", "b"}, {"k", "a"}}, "k=a&k=b"},
      // Values are encoded, '/' and '=' included (continuation tokens hold them).
      {{{"continuation-token", "1/2+3="}}, "continuation-token=1%2F2%2B3%3D"},
      {{{"X-Amz-Credential", kAccessKey + "/20130524/us-east-1/s3/aws4_request"}},
       "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.want);
    CHECK(CanonicalQueryString(c.params) == c.want);
  }
}

TEST_CASE("AmzDate") {
  CHECK(AmzDate(k20130524) == "20130524T000000Z");
  CHECK(AmzDate(0) == "19700101T000000Z");
  CHECK(AmzDate(1440938160) == "20150830T123600Z");
  CHECK(AmzDate(4102444799) == "20991231T235959Z");
}

TEST_CASE("HmacSha256 and HexEncode") {
  // RFC 4231, test case 2.
  CHECK(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(HexEncode(std::string("\x00\x0f\xf0\xff", 4)) == "000ff0ff");
  CHECK(HexEncode("") == "");
}

TEST_CASE("SigV4SigningKey: AWS's derivation example") {
  // "Examples of how to derive a signing key for Signature Version 4".
  CHECK(HexEncode(SigV4SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                  "us-east-1", "iam")) ==
        "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST_CASE("PresignV4: AWS's presigned URL example (examplebucket/test.txt)") {
  PresignInput in;
  in.scheme = "https";
  in.host = "examplebucket.s3.amazonaws.com";
  in.canonical_uri = "/test.txt";
  in.region = "us-east-1";
  in.access_key = kAccessKey;
  in.secret_key = kSecretKey;
  in.now_unix_s = k20130524;
  in.expires_s = 86400;
  Presigned p = PresignV4(in);
  CHECK(p.canonical_request ==
        "GET\n"
        "/test.txt\n"
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-"
        "east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-"
        "SignedHeaders=host\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "\n"
        "host\n"
        "UNSIGNED-PAYLOAD");
  CHECK(p.string_to_sign ==
        "AWS4-HMAC-SHA256\n"
        "20130524T000000Z\n"
        "20130524/us-east-1/s3/aws4_request\n"
        "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
  CHECK(p.signature == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  CHECK(p.url ==
        "https://examplebucket.s3.amazonaws.com/test.txt"
        "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("PresignV4: what changes the signature") {
  PresignInput base;
  base.host = "127.0.0.1:15070";
  base.scheme = "http";
  base.canonical_uri = "/hubcache/cache/blobs/a%3Ab";
  base.access_key = "ak";
  base.secret_key = "sk";
  base.now_unix_s = 1'700'000'000;
  base.expires_s = 60;
  const Presigned p0 = PresignV4(base);
  CHECK(p0.url.rfind("http://127.0.0.1:15070/hubcache/cache/blobs/a%3Ab?X-Amz-Algorithm=", 0) == 0);

  struct Case {
    const char* what;
    void (*change)(PresignInput&);
  };
  const std::vector<Case> cases = {
      {"host", [](PresignInput& in) { in.host = "127.0.0.1:15071"; }},
      {"path", [](PresignInput& in) { in.canonical_uri = "/hubcache/cache/blobs/a%3Ac"; }},
      {"region", [](PresignInput& in) { in.region = "eu-west-1"; }},
      {"secret", [](PresignInput& in) { in.secret_key = "sk2"; }},
      {"time", [](PresignInput& in) { in.now_unix_s += 1; }},
      {"expiry", [](PresignInput& in) { in.expires_s = 61; }},
      {"session token", [](PresignInput& in) { in.session_token = "tok"; }},
      {"method", [](PresignInput& in) { in.method = "HEAD"; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    PresignInput in = base;
    c.change(in);
    CHECK(PresignV4(in).signature != p0.signature);
  }
}

TEST_CASE("PresignV4: session token and expiry bounds") {
  PresignInput in;
  in.host = "b.s3.eu-west-1.amazonaws.com";
  in.canonical_uri = "/k";
  in.region = "eu-west-1";
  in.access_key = "ak";
  in.secret_key = "sk";
  in.session_token = "a/b+c=";
  in.now_unix_s = k20130524;
  in.expires_s = 0;
  Presigned p = PresignV4(in);
  CHECK(p.url.find("&X-Amz-Expires=1&") != std::string::npos);
  CHECK(p.url.find("&X-Amz-Security-Token=a%2Fb%2Bc%3D&") != std::string::npos);
  CHECK(p.canonical_request.find("X-Amz-Security-Token=a%2Fb%2Bc%3D") != std::string::npos);
  in.expires_s = 30LL * 24 * 3600;
  CHECK(PresignV4(in).url.find("&X-Amz-Expires=604800&") != std::string::npos);
}

}  // namespace
}  // namespace hubcache
