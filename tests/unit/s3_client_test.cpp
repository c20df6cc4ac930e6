// S3Client without a store: option checks, the URLs it addresses (virtual-hosted or
// path style), keys under the root directory, presigned URLs. tests/s3_client_itest.cpp
// runs it against a real gateway.
#include "upstream/s3_client.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace hubcache {
namespace {

S3Options Base() {
  S3Options o;
  o.bucket = "bucket";
  o.access_key = "AKIAIOSFODNN7EXAMPLE";
  o.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  return o;
}

std::string UrlBeforeQuery(const S3Client& c, const std::string& key) {
  std::string url = c.PresignGet(key, std::chrono::seconds(60), 1'700'000'000);
  return url.substr(0, url.find('?'));
}

TEST_CASE("S3Client::Create: where requests go") {
  struct Case {
    const char* what;
    void (*change)(S3Options&);
    std::string url;          // of key "k/v"
    std::string description;  // how errors name the store
  };
  const std::vector<Case> cases = {
      {"AWS, virtual-hosted", [](S3Options&) {}, "https://bucket.s3.us-east-1.amazonaws.com/k/v",
       "S3 bucket 'bucket' at https://s3.us-east-1.amazonaws.com"},
      {"AWS in another region", [](S3Options& o) { o.region = "eu-west-1"; },
       "https://bucket.s3.eu-west-1.amazonaws.com/k/v",
       "S3 bucket 'bucket' at https://s3.eu-west-1.amazonaws.com"},
      {"AWS without TLS", [](S3Options& o) { o.secure = false; },
       "http://bucket.s3.us-east-1.amazonaws.com/k/v",
       "S3 bucket 'bucket' at http://s3.us-east-1.amazonaws.com"},
      {"AWS, path style forced", [](S3Options& o) { o.force_path_style = true; },
       "https://s3.us-east-1.amazonaws.com/bucket/k/v",
       "S3 bucket 'bucket' at https://s3.us-east-1.amazonaws.com"},
      {"a dotted bucket over https: path style (the certificate would not match)",
       [](S3Options& o) { o.bucket = "my.bucket"; },
       "https://s3.us-east-1.amazonaws.com/my.bucket/k/v",
       "S3 bucket 'my.bucket' at https://s3.us-east-1.amazonaws.com"},
      {"a dotted bucket over http: virtual-hosted",
       [](S3Options& o) {
         o.bucket = "my.bucket";
         o.endpoint = "http://s3.example";
       },
       "http://my.bucket.s3.example/k/v", "S3 bucket 'my.bucket' at http://s3.example"},
      {"a bucket that is no DNS label: path style",
       [](S3Options& o) {
         o.bucket = "My_Bucket";
         o.endpoint = "https://s3.example";
       },
       "https://s3.example/My_Bucket/k/v", "S3 bucket 'My_Bucket' at https://s3.example"},
      {"an IP endpoint: path style", [](S3Options& o) { o.endpoint = "http://127.0.0.1:15070"; },
       "http://127.0.0.1:15070/bucket/k/v", "S3 bucket 'bucket' at http://127.0.0.1:15070"},
      {"an IPv6 endpoint: path style", [](S3Options& o) { o.endpoint = "https://[::1]:9000"; },
       "https://[::1]:9000/bucket/k/v", "S3 bucket 'bucket' at https://[::1]:9000"},
      {"localhost: path style", [](S3Options& o) { o.endpoint = "http://localhost:9000/"; },
       "http://localhost:9000/bucket/k/v", "S3 bucket 'bucket' at http://localhost:9000"},
      {"a host without scheme takes https from secure",
       [](S3Options& o) { o.endpoint = "minio.example:9000"; },
       "https://bucket.minio.example:9000/k/v", "S3 bucket 'bucket' at https://minio.example:9000"},
      {"a host without scheme, secure false",
       [](S3Options& o) {
         o.endpoint = "minio.example:9000";
         o.secure = false;
       },
       "http://bucket.minio.example:9000/k/v", "S3 bucket 'bucket' at http://minio.example:9000"},
      {"the scheme's own port is left out",
       [](S3Options& o) { o.endpoint = "HTTP://S3.Example:80"; }, "http://bucket.s3.example/k/v",
       "S3 bucket 'bucket' at http://s3.example"},
      {"an endpoint with a path",
       [](S3Options& o) {
         o.endpoint = "https://gw.example/s3/";
         o.force_path_style = true;
       },
       "https://gw.example/s3/bucket/k/v", "S3 bucket 'bucket' at https://gw.example/s3"},
      {"a root directory prefixes keys",
       [](S3Options& o) {
         o.endpoint = "http://127.0.0.1:1";
         o.root_directory = "/registry/v2/";
       },
       "http://127.0.0.1:1/bucket/registry/v2/k/v", "S3 bucket 'bucket' at http://127.0.0.1:1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    S3Options o = Base();
    c.change(o);
    auto client = S3Client::Create(o);
    REQUIRE_MESSAGE(client.has_value(), (client ? "" : client.error().message));
    CHECK(UrlBeforeQuery(**client, "k/v") == c.url);
    CHECK((*client)->description() == c.description);
  }
}

TEST_CASE("S3Client::Create: refused options") {
  struct Case {
    const char* what;
    void (*change)(S3Options&);
  };
  const std::vector<Case> cases = {
      {"no bucket", [](S3Options& o) { o.bucket = ""; }},
      {"a slash in the bucket", [](S3Options& o) { o.bucket = "a/b"; }},
      {"a space in the bucket", [](S3Options& o) { o.bucket = "a b"; }},
      {"no region", [](S3Options& o) { o.region = ""; }},
      {"a colon in the region", [](S3Options& o) { o.region = "us:east"; }},
      {"no access key", [](S3Options& o) { o.access_key = ""; }},
      {"no secret key", [](S3Options& o) { o.secret_key = ""; }},
      {"parts under 5 MiB", [](S3Options& o) { o.chunk_size = 5 * 1024 * 1024 - 1; }},
      {"parts over 5 GiB", [](S3Options& o) { o.chunk_size = (5ULL << 30) + 1; }},
      {"not http", [](S3Options& o) { o.endpoint = "ftp://s3.example"; }},
      {"no host", [](S3Options& o) { o.endpoint = "http://"; }},
      {"not a URL", [](S3Options& o) { o.endpoint = "http://a b"; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    S3Options o = Base();
    c.change(o);
    auto client = S3Client::Create(o);
    REQUIRE_FALSE(client.has_value());
    CHECK(client.error().kind == ErrorKind::kConfigInvalid);
    CHECK(client.error().message.find('\n') == std::string::npos);
  }
}

TEST_CASE("S3Client::PresignGet: AWS's example through the client") {
  S3Options o = Base();
  o.bucket = "examplebucket";
  o.endpoint = "https://s3.amazonaws.com";
  auto client = S3Client::Create(o);
  REQUIRE(client.has_value());
  CHECK((*client)->PresignGet("test.txt", std::chrono::seconds(86400), 1369353600) ==
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
}

TEST_CASE("S3Client::PresignGet: keys are encoded; bad keys give no URL") {
  S3Options o = Base();
  o.endpoint = "http://127.0.0.1:9000";
  o.root_directory = "root";
  auto client = S3Client::Create(o);
  REQUIRE(client.has_value());
  struct Case {
    std::string key;
    std::string path;  // "" = no URL
  };
  const std::vector<Case> cases = {
      {"blobs/sha256:ab", "/bucket/root/blobs/sha256%3Aab"},
      {"a b+c~d", "/bucket/root/a%20b%2Bc~d"},
      {"x?y#z", "/bucket/root/x%3Fy%23z"},
      {"", ""},
      {"/leading", ""},
      {std::string(1020, 'k'), ""},  // over 1024 bytes with "root/"
      {std::string(1019, 'k'), "/bucket/root/" + std::string(1019, 'k')},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key.substr(0, 20));
    std::string url = (*client)->PresignGet(c.key, std::chrono::seconds(60), 1'700'000'000);
    if (c.path.empty()) {
      CHECK(url.empty());
    } else {
      CHECK(url.rfind("http://127.0.0.1:9000" + c.path + "?", 0) == 0);
    }
  }
}

TEST_CASE("S3OptionsFrom: the configuration's settings") {
  auto config = LoadConfig({{"REGISTRY_STORAGE", "s3"},
                            {"REGISTRY_STORAGE_S3_BUCKET", "b"},
                            {"REGISTRY_STORAGE_S3_REGIONENDPOINT", "http://127.0.0.1:9000"},
                            {"REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry/"},
                            {"REGISTRY_STORAGE_S3_CHUNKSIZE", "16MiB"},
                            {"REGISTRY_STORAGE_S3_SECURE", "false"},
                            {"REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"},
                            {"AWS_ACCESS_KEY_ID", "ak"},
                            {"AWS_SECRET_ACCESS_KEY", "sk"},
                            {"AWS_SESSION_TOKEN", "tok"},
                            {"AWS_REGION", "eu-west-1"}},
                           {});
  REQUIRE(config.has_value());
  S3Options o = S3OptionsFrom(*config);
  CHECK(o.bucket == "b");
  CHECK(o.region == "eu-west-1");
  CHECK(o.endpoint == "http://127.0.0.1:9000");
  CHECK(o.access_key == "ak");
  CHECK(o.secret_key == "sk");
  CHECK(o.session_token == "tok");
  CHECK(o.root_directory == "registry");
  CHECK(o.chunk_size == 16u << 20);
  CHECK_FALSE(o.secure);
  CHECK(o.force_path_style);
  CHECK(S3Client::Create(o).has_value());
}

}  // namespace
}  // namespace hubcache
