// S3Client without a store: option checks, the URLs it addresses (virtual-hosted or
// path style), keys under the root directory, presigned URLs. tests/s3_client_itest.cpp
// runs it against a real gateway.
#include "upstream/s3_client.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
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

// One HTTP/1.1 request as read off a socket: its head and Content-Length body.
struct RawRequest {
  std::string head;
  std::string body;
};

// How a scripted server reads a request body.
enum class BodyRead {
  kContinue,  // answers "Expect: 100-continue" (curl sends it with every PUT), reads it
  kWait,      // answers no 100: curl sends the body after its 1 s wait; reads it
  kNone,      // reads the head only
};

// Reads a request; false when the peer closed or 5 s passed first.
bool ReadRequest(int fd, RawRequest& out, BodyRead how = BodyRead::kContinue) {
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  char buf[65536];
  size_t end = std::string::npos;
  while ((end = data.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    data.append(buf, static_cast<size_t>(n));
  }
  out.head = data.substr(0, end + 4);
  out.body = data.substr(end + 4);
  if (how == BodyRead::kNone) return true;
  size_t length = 0;
  std::string lower;
  for (char c : out.head) lower.push_back(static_cast<char>(std::tolower(c)));
  if (size_t at = lower.find("content-length:"); at != std::string::npos) {
    length = std::stoul(lower.substr(at + 15));
  }
  if (how == BodyRead::kContinue && lower.find("expect: 100-continue") != std::string::npos &&
      out.body.size() < length) {
    const std::string go_on = "HTTP/1.1 100 Continue\r\n\r\n";
    if (::send(fd, go_on.data(), go_on.size(), MSG_NOSIGNAL) < 0) return false;
  }
  while (out.body.size() < length) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    out.body.append(buf, static_cast<size_t>(n));
  }
  return true;
}

void Send(int fd, const std::string& text) {
  CHECK(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
}

// A loopback server whose connections are each handled by a script, in order,
// on one thread; stopped and joined when destroyed.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd, int index)> script)
      : script_(std::move(script)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 8) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (int index = 0;; ++index) {
        int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        script_(fd, index);
        ::close(fd);
      }
    });
  }
  ~ScriptedServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // ends the accept
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::function<void(int, int)> script_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// A pooled connection the store closed as the next PUT went out: curl sends the
// request again on a fresh connection, and the body must be the same bytes while
// the reader is asked for each offset only once (it may be a pipe of a fill).
TEST_CASE("S3Client::PutStream: a pooled connection found dead is retried, never re-read") {
  struct Case {
    const char* what;
    size_t size;
    BodyRead first_put;  // how the dying connection takes the PUT
    bool succeeds;
  };
  const std::vector<Case> cases = {
      // The usual race: closed before the 100 Continue, no body byte read yet.
      {"closed after the head", 3'000'000, BodyRead::kNone, true},
      // A store without 100-continue: the body went out, replayed from the buffer.
      {"closed after a 100 KB body", 100'000, BodyRead::kWait, true},
      // More than the replay buffer (256 KiB) went out: the PUT fails, nothing stored.
      {"closed after a 600 KB body", 600'000, BodyRead::kWait, false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    std::string content(c.size, '\0');
    for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7 + i / 251);
    std::mutex mutex;
    std::vector<RawRequest> seen;  // guarded by mutex: every request read whole
    std::vector<int> connection_of;
    ScriptedServer server([&](int fd, int index) {
      auto record = [&](const RawRequest& r) {
        std::lock_guard lock(mutex);  // before any answer, which the test waits for
        seen.push_back(r);
        connection_of.push_back(index);
      };
      RawRequest r;
      if (index == 0) {
        // The HEAD that leaves a kept-alive connection in the pool...
        if (!ReadRequest(fd, r)) return;
        record(r);
        Send(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        // ...then the PUT on it is closed unanswered.
        if (ReadRequest(fd, r, c.first_put) && c.first_put != BodyRead::kNone) record(r);
        return;
      }
      while (ReadRequest(fd, r)) {
        record(r);
        Send(fd, "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n");
      }
    });
    S3Options o = Base();
    o.endpoint = "http://127.0.0.1:" + std::to_string(server.port());
    o.request_timeout = std::chrono::seconds(10);
    o.stall_timeout = std::chrono::seconds(5);
    auto client = S3Client::Create(o);
    REQUIRE(client.has_value());
    REQUIRE((*client)->Head("warm").has_value());

    std::vector<uint64_t> offsets;
    S3Client::Reader reader = [&](uint64_t offset, char* out, size_t max) -> Result<size_t> {
      offsets.push_back(offset);
      size_t n = std::min<size_t>(max, content.size() - offset);
      std::memcpy(out, content.data() + offset, n);
      return n;
    };
    auto put = (*client)->PutStream("k", content.size(), reader, "");
    for (size_t i = 1; i < offsets.size(); ++i) CHECK(offsets[i] > offsets[i - 1]);
    std::lock_guard lock(mutex);
    if (c.succeeds) {
      REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
      REQUIRE(seen.size() >= 2u);
      CHECK(connection_of.back() == 1);
      CHECK(seen.back().head.rfind("PUT /bucket/k ", 0) == 0);
      CHECK(seen.back().body == content);
    } else {
      CHECK_FALSE(put.has_value());
      CHECK(connection_of == std::vector<int>{0, 0});
    }
  }
}

}  // namespace
}  // namespace hubcache
