// S3Client end to end against a real S3 gateway that checks signatures (radosgw,
// started by tests/integration/test_s3.py, or any S3 endpoint and bucket).
//
//   S3_ENDPOINT=http://127.0.0.1:15070 S3_ACCESS_KEY=.. S3_SECRET_KEY=.. S3_BUCKET=..
//   S3_REGION=us-east-1 build/tests/s3_client_itest
//
// Every object lives under a root directory of its own ("itest-<pid>-<time>"), removed
// at the end. Not a meson test of its own: test_s3 runs it with the gateway's settings.

#define DOCTEST_CONFIG_IMPLEMENT
#include <curl/curl.h>
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/sha256.h"
#include "upstream/s3_client.h"

namespace hubcache {
namespace {

constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint64_t kChunk = 5 * kMiB;

struct TestEnv {
  std::string endpoint, access_key, secret_key, bucket, region, root;
};

TestEnv& Env() {
  static TestEnv env;
  return env;
}

S3Options Options() {
  S3Options o;
  o.endpoint = Env().endpoint;
  o.access_key = Env().access_key;
  o.secret_key = Env().secret_key;
  o.bucket = Env().bucket;
  o.region = Env().region;
  o.root_directory = Env().root;
  o.chunk_size = kChunk;
  o.request_timeout = std::chrono::seconds(30);
  o.stall_timeout = std::chrono::seconds(10);
  return o;
}

std::unique_ptr<S3Client> Client(const S3Options& options = Options()) {
  auto c = S3Client::Create(options);
  REQUIRE_MESSAGE(c.has_value(), (c ? "" : c.error().message));
  return std::move(*c);
}

// A byte of the deterministic test content at `offset` (seeded per object).
char PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t x = (offset >> 3) * 0x9E3779B97F4A7C15ULL + seed;
  x ^= x >> 29;
  return static_cast<char>(x >> (8 * (offset & 7)));
}

std::string Pattern(uint64_t seed, uint64_t size) {
  std::string out(size, '\0');
  for (uint64_t i = 0; i < size; ++i) out[i] = PatternByte(seed, i);
  return out;
}

// A reader of generated content; `fail_at`: the reader fails when asked for the
// byte at that offset (after supplying every byte before it).
S3Client::Reader PatternReader(uint64_t seed, uint64_t size,
                               std::optional<uint64_t> fail_at = std::nullopt,
                               std::optional<uint64_t> end_at = std::nullopt) {
  return [=](uint64_t offset, char* out, size_t max) -> Result<size_t> {
    uint64_t limit = std::min(size, end_at.value_or(size));
    if (fail_at) limit = std::min(limit, *fail_at);
    if (fail_at && offset >= *fail_at) {
      return Fail(ErrorKind::kDigestInvalid, "test reader: digest mismatch");
    }
    uint64_t n = std::min<uint64_t>(max, limit - offset);
    for (uint64_t i = 0; i < n; ++i) out[i] = PatternByte(seed, offset + i);
    return static_cast<size_t>(n);
  };
}

struct Fetched {
  bool found = false;
  uint64_t size = 0;
  int on_size_calls = 0;
  std::string bytes;
};

Result<Fetched> Fetch(S3Client& c, const std::string& key, uint64_t first,
                      std::optional<uint64_t> length) {
  Fetched f;
  S3Sink sink;
  sink.on_size = [&](uint64_t size) {
    f.size = size;
    ++f.on_size_calls;
    return f.bytes.empty();  // on_size comes before any data
  };
  sink.on_data = [&](const char* data, size_t n) {
    f.bytes.append(data, n);
    return true;
  };
  auto found = c.Get(key, first, length, sink);
  if (!found) return tl::unexpected(found.error());
  f.found = *found;
  return f;
}

bool NoUploadsUnder(S3Client& c, const std::string& prefix) {
  auto uploads = c.ListUploads(prefix);
  REQUIRE_MESSAGE(uploads.has_value(), (uploads ? "" : uploads.error().message));
  for (const auto& u : *uploads) MESSAGE("upload left: " << u.key << " " << u.upload_id);
  return uploads->empty();
}

// VmHWM / VmRSS of this process, in KiB.
uint64_t StatusKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0)
      return std::strtoull(line.c_str() + std::strlen(field), nullptr, 10);
  }
  return 0;
}

// Resets VmHWM to the current RSS.
bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";
  out.flush();
  return out.good();
}

// A plain GET with no credentials: {status, body}.
std::pair<long, std::string> PlainGet(const std::string& url) {
  CURL* h = curl_easy_init();
  std::string body;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(
      h, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) -> size_t {
        static_cast<std::string*>(u)->append(d, s * n);
        return s * n;
      });
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  REQUIRE_MESSAGE(rc == CURLE_OK, curl_easy_strerror(rc));
  return {status, body};
}

int64_t NowUnixS() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_CASE("Check: the bucket exists and the credentials work") {
  auto c = Client();
  auto ok = c->Check();
  CHECK_MESSAGE(ok.has_value(), (ok ? "" : ok.error().message));
  const std::string prefix = "S3 bucket '" + Env().bucket + "' at " + Env().endpoint + ": ";

  struct Case {
    const char* what;
    void (*change)(S3Options&);
    std::string want;
  };
  const std::vector<Case> cases = {
      {"wrong secret", [](S3Options& o) { o.secret_key += "x"; },
       prefix + "access denied (SignatureDoesNotMatch: check REGISTRY_STORAGE_S3_SECRETKEY)"},
      {"unknown access key", [](S3Options& o) { o.access_key = "NOSUCHKEY"; },
       prefix + "access denied (InvalidAccessKeyId: check REGISTRY_STORAGE_S3_ACCESSKEY)"},
      {"missing bucket", [](S3Options& o) { o.bucket = "no-such-bucket-hubcache"; },
       "S3 bucket 'no-such-bucket-hubcache' at " + Env().endpoint + ": no such bucket"},
  };
  for (const auto& k : cases) {
    CAPTURE(k.what);
    S3Options o = Options();
    k.change(o);
    auto status = Client(o)->Check();
    REQUIRE_FALSE(status.has_value());
    CHECK(status.error().message == k.want);
    CHECK(status.error().kind == ErrorKind::kConfigInvalid);
    CHECK(status.error().message.find('\n') == std::string::npos);
  }
  // Nothing listens on port 1.
  S3Options down = Options();
  down.endpoint = "http://127.0.0.1:1";
  down.connect_timeout = std::chrono::seconds(2);
  auto unreachable = Client(down)->Check();
  REQUIRE_FALSE(unreachable.has_value());
  CHECK(unreachable.error().message == "S3 bucket '" + Env().bucket +
                                           "' at http://127.0.0.1:1: unreachable (Couldn't "
                                           "connect to server)");
  CHECK(unreachable.error().kind == ErrorKind::kUpstreamUnavailable);
}

TEST_CASE("PutSmall, GetSmall, Head, Delete: a round trip") {
  auto c = Client();
  const std::string key = "small/manifest.json";
  const std::string body = R"({"schemaVersion":2})";
  REQUIRE(c->PutSmall(key, body, "application/vnd.oci.image.manifest.v1+json").has_value());
  auto size = c->Head(key);
  REQUIRE(size.has_value());
  CHECK(*size == std::optional<uint64_t>(body.size()));
  auto got = c->GetSmall(key, 1024);
  REQUIRE(got.has_value());
  CHECK(*got == std::optional<std::string>(body));

  auto too_small = c->GetSmall(key, body.size() - 1);
  REQUIRE_FALSE(too_small.has_value());
  CHECK(too_small.error().kind == ErrorKind::kSizeInvalid);
  auto exact = c->GetSmall(key, body.size());
  REQUIRE(exact.has_value());
  CHECK(**exact == body);

  auto injected = c->PutSmall(key, body, "text/plain\r\nX-Amz-Acl: public-read");
  REQUIRE_FALSE(injected.has_value());
  CHECK(injected.error().kind == ErrorKind::kConfigInvalid);
  REQUIRE(c->PutSmall(key, "replaced", "").has_value());  // overwrite
  CHECK(**c->GetSmall(key, 1024) == "replaced");
  REQUIRE(c->PutSmall("small/empty", "", "").has_value());
  CHECK(**c->Head("small/empty") == 0u);
  CHECK(**c->GetSmall("small/empty", 0) == "");

  REQUIRE(c->Delete(key).has_value());
  REQUIRE(c->Delete("small/empty").has_value());
  auto gone = c->Head(key);
  REQUIRE(gone.has_value());
  CHECK_FALSE(gone->has_value());
  auto absent = c->GetSmall(key, 1024);
  REQUIRE(absent.has_value());
  CHECK_FALSE(absent->has_value());
  CHECK(c->Delete(key).has_value());  // absent is fine
  CHECK(c->counters().errors.load() == 0u);
}

TEST_CASE("Keys that need encoding") {
  auto c = Client();
  const std::vector<std::string> keys = {
      "enc/sha256:abc",  "enc/a+b",           "enc/a b",          "enc/tilde~x",
      "enc/all :+~ /x",  "enc/q?hash#pct%",   "enc/amp&eq=semi;", "enc/\xc3\xbc\xc3\xa9",
      "enc/paren(1)*!'", "enc/double//slash",
  };
  for (size_t i = 0; i < keys.size(); ++i) {
    CAPTURE(keys[i]);
    const std::string body = "content of " + keys[i];
    auto put = c->PutSmall(keys[i], body, "text/plain");
    REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
    CHECK(**c->Head(keys[i]) == body.size());
    CHECK(**c->GetSmall(keys[i], 1024) == body);
    auto f = Fetch(*c, keys[i], 3, 4);
    REQUIRE(f.has_value());
    CHECK(f->bytes == body.substr(3, 4));
    auto presigned = PlainGet(c->PresignGet(keys[i], std::chrono::seconds(60), NowUnixS()));
    CHECK(presigned.first == 200);
    CHECK(presigned.second == body);
  }
  std::string token;
  std::set<std::string> listed;
  do {
    auto page = c->List("enc/", 1000, &token);
    REQUIRE(page.has_value());
    for (const auto& o : *page) listed.insert(o.key);
  } while (!token.empty());
  CHECK(listed == std::set<std::string>(keys.begin(), keys.end()));
  for (const auto& k : keys) CHECK(c->Delete(k).has_value());
  CHECK(c->counters().errors.load() == 0u);
}

TEST_CASE("Get with ranges") {
  auto c = Client();
  const std::string key = "ranges/blob";
  const uint64_t size = 3 * kMiB + 12345;
  const std::string content = Pattern(7, size);
  REQUIRE(c->PutSmall(key, content, "").has_value());

  struct Case {
    uint64_t first;
    std::optional<uint64_t> length;
    std::string want;
  };
  const std::vector<Case> cases = {
      {0, std::nullopt, content},
      {0, 10, content.substr(0, 10)},
      {0, 1, content.substr(0, 1)},
      {1000, 5000, content.substr(1000, 5000)},
      {kMiB + 1, 2 * kMiB, content.substr(kMiB + 1, 2 * kMiB)},
      {size - 7, std::nullopt, content.substr(size - 7)},
      {size - 1, std::nullopt, content.substr(size - 1)},
      {size - 3, 100, content.substr(size - 3)},  // past the end: stops there
      {12, 0, ""},                                // nothing, but the size
      {size, 0, ""},
  };
  for (const auto& k : cases) {
    CAPTURE(k.first);
    CAPTURE(k.length.value_or(-1));
    auto f = Fetch(*c, key, k.first, k.length);
    REQUIRE_MESSAGE(f.has_value(), (f ? "" : f.error().message));
    CHECK(f->found);
    CHECK(f->on_size_calls == 1);
    CHECK(f->size == size);
    CHECK(f->bytes.size() == k.want.size());
    CHECK(f->bytes == k.want);
  }
  for (uint64_t first : {size, size + 1, size + kMiB}) {
    CAPTURE(first);
    auto past = Fetch(*c, key, first, std::nullopt);
    REQUIRE_FALSE(past.has_value());
    CHECK(past.error().kind == ErrorKind::kRangeInvalid);
  }
  auto absent = Fetch(*c, "ranges/absent", 0, std::nullopt);
  REQUIRE(absent.has_value());
  CHECK_FALSE(absent->found);
  CHECK(absent->on_size_calls == 0);
  auto absent_range = Fetch(*c, "ranges/absent", 5, 5);
  REQUIRE(absent_range.has_value());
  CHECK_FALSE(absent_range->found);

  // A sink that stops: an error, not a hang.
  S3Sink stop;
  stop.on_size = [](uint64_t) { return true; };
  stop.on_data = [](const char*, size_t) { return false; };
  CHECK_FALSE(c->Get(key, 0, std::nullopt, stop).has_value());

  // An empty object, read whole.
  REQUIRE(c->PutSmall("ranges/empty", "", "").has_value());
  auto empty = Fetch(*c, "ranges/empty", 0, std::nullopt);
  REQUIRE(empty.has_value());
  CHECK(empty->found);
  CHECK(empty->on_size_calls == 1);
  CHECK(empty->size == 0u);
  CHECK(c->Delete(key).has_value());
  CHECK(c->Delete("ranges/empty").has_value());
}

TEST_CASE("PutStream: one PutObject up to chunk_size, multipart above") {
  auto c = Client();
  struct Case {
    const char* what;
    uint64_t size;
    uint64_t put_requests;        // single PutObject requests
    uint64_t multipart_requests;  // create + parts + complete
  };
  const std::vector<Case> cases = {
      {"empty", 0, 1, 0},
      {"one byte", 1, 1, 0},
      {"exactly chunk_size", kChunk, 1, 0},
      {"chunk_size + 1", kChunk + 1, 0, 1 + 2 + 1},
      {"2.5 chunks", kChunk * 5 / 2, 0, 1 + 3 + 1},
      {"exactly 2 chunks", 2 * kChunk, 0, 1 + 2 + 1},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& k = cases[i];
    CAPTURE(k.what);
    const std::string key = "stream/" + std::to_string(i);
    const uint64_t puts = c->counters().put_requests.load();
    const uint64_t multis = c->counters().multipart_requests.load();
    auto put = c->PutStream(key, k.size, PatternReader(i, k.size), "application/octet-stream");
    REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
    CHECK(c->counters().put_requests.load() - puts == k.put_requests);
    CHECK(c->counters().multipart_requests.load() - multis == k.multipart_requests);
    auto f = Fetch(*c, key, 0, std::nullopt);
    REQUIRE(f.has_value());
    CHECK(f->found);
    CHECK(f->size == k.size);
    CHECK(f->bytes == Pattern(i, k.size));
    std::string token;
    auto listed = c->List(key, 10, &token);
    REQUIRE(listed.has_value());
    REQUIRE(listed->size() == 1u);
    CHECK((*listed)[0].key == key);
    CHECK((*listed)[0].size == k.size);
    CHECK((*listed)[0].modified_unix_ms > 0);
  }
  CHECK(NoUploadsUnder(*c, "stream/"));
  for (size_t i = 0; i < cases.size(); ++i) CHECK(c->Delete("stream/" + std::to_string(i)));
  CHECK(c->counters().errors.load() == 0u);
}

// Bytes that a feeder thread appends slowly; the reader blocks until they exist.
class SlowFile {
 public:
  SlowFile(uint64_t seed, uint64_t size) : seed_(seed), size_(size) {}

  void Feed(uint64_t piece, std::chrono::milliseconds pause) {
    for (uint64_t at = 0; at < size_; at += piece) {
      std::this_thread::sleep_for(pause);
      std::lock_guard lock(mutex_);
      available_ = std::min(size_, at + piece);
      cv_.notify_all();
    }
  }

  S3Client::Reader Reader() {
    return [this](uint64_t offset, char* out, size_t max) -> Result<size_t> {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return available_ > offset; });
      ++blocked_reads_;
      uint64_t n = std::min<uint64_t>(max, available_ - offset);
      for (uint64_t i = 0; i < n; ++i) out[i] = PatternByte(seed_, offset + i);
      return static_cast<size_t>(n);
    };
  }

 private:
  const uint64_t seed_;
  const uint64_t size_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t available_ = 0;  // guarded by mutex_
  uint64_t blocked_reads_ = 0;
};

TEST_CASE("PutStream: a reader that blocks until a slow writer has the bytes") {
  auto c = Client();
  for (uint64_t size : {3 * kMiB, 2 * kChunk + kMiB}) {
    CAPTURE(size);
    SlowFile file(size, size);
    std::thread feeder([&] { file.Feed(256 * 1024, std::chrono::milliseconds(15)); });
    const auto started = std::chrono::steady_clock::now();
    auto put = c->PutStream("slow/" + std::to_string(size), size, file.Reader(), "");
    const auto took = std::chrono::steady_clock::now() - started;
    feeder.join();
    REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
    CHECK(took >= std::chrono::milliseconds(15 * (size / (256 * 1024))));
    auto f = Fetch(*c, "slow/" + std::to_string(size), 0, std::nullopt);
    REQUIRE(f.has_value());
    CHECK(f->bytes == Pattern(size, size));
    CHECK(c->Delete("slow/" + std::to_string(size)).has_value());
  }
}

TEST_CASE("PutStream: a reader that fails or ends early leaves nothing behind") {
  auto c = Client();
  struct Case {
    const char* what;
    uint64_t size;
    std::optional<uint64_t> fail_at;
    std::optional<uint64_t> end_at;
    ErrorKind kind;
  };
  const uint64_t multi = kChunk * 5 / 2;
  const std::vector<Case> cases = {
      {"single part, fails midway", 3 * kMiB, 3 * kMiB / 2, {}, ErrorKind::kDigestInvalid},
      {"single part, fails at the last byte",
       3 * kMiB,
       3 * kMiB - 1,
       {},
       ErrorKind::kDigestInvalid},
      {"single part, fails at once", 3 * kMiB, 0, {}, ErrorKind::kDigestInvalid},
      {"single part, ends early", 3 * kMiB, {}, kMiB, ErrorKind::kSizeInvalid},
      {"multipart, fails in the second part", multi, kChunk + kMiB, {}, ErrorKind::kDigestInvalid},
      {"multipart, fails at the last byte", multi, multi - 1, {}, ErrorKind::kDigestInvalid},
      {"multipart, fails at a part boundary", multi, kChunk, {}, ErrorKind::kDigestInvalid},
      {"multipart, ends early", multi, {}, 2 * kChunk + 10, ErrorKind::kSizeInvalid},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& k = cases[i];
    CAPTURE(k.what);
    const std::string key = "failing/" + std::to_string(i);
    auto put = c->PutStream(key, k.size, PatternReader(i, k.size, k.fail_at, k.end_at), "");
    REQUIRE_FALSE(put.has_value());
    CHECK(put.error().kind == k.kind);
    if (k.fail_at) CHECK(put.error().message == "test reader: digest mismatch");
    auto head = c->Head(key);
    REQUIRE(head.has_value());
    CHECK_FALSE(head->has_value());
    std::string token;
    auto listed = c->List(key, 10, &token);
    REQUIRE(listed.has_value());
    CHECK(listed->empty());
  }
  CHECK(NoUploadsUnder(*c, "failing/"));
  // The reader's failures are the caller's, not the store's.
  CHECK(c->counters().errors.load() == 0u);
}

TEST_CASE("List: a prefix, in pages") {
  auto c = Client();
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) keys.push_back("list/obj-" + std::to_string(i));
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(c->PutSmall(keys[i], std::string(i * 100, 'x'), "").has_value());
  }
  REQUIRE(c->PutSmall("listx/other", "y", "").has_value());  // shares "list", not "list/"

  std::vector<std::vector<S3Client::ListedObject>> pages;
  std::string token;
  do {
    auto page = c->List("list/", 2, &token);
    REQUIRE(page.has_value());
    pages.push_back(*page);
    REQUIRE(pages.size() <= 3u);
  } while (!token.empty());
  REQUIRE(pages.size() == 3u);
  CHECK(pages[0].size() == 2u);
  CHECK(pages[1].size() == 2u);
  CHECK(pages[2].size() == 1u);
  std::vector<std::string> seen;
  for (const auto& page : pages) {
    for (const auto& o : page) {
      seen.push_back(o.key);
      CHECK(o.size == (o.key.back() - '0') * 100u);
      CHECK(o.modified_unix_ms > (NowUnixS() - 3600) * 1000);
    }
  }
  CHECK(seen == keys);

  token.clear();
  auto all = c->List("list", 1000, &token);
  REQUIRE(all.has_value());
  CHECK(all->size() == 6u);
  CHECK(token.empty());
  auto none = c->List("nothing-here/", 10, &token);
  REQUIRE(none.has_value());
  CHECK(none->empty());

  for (const auto& k : keys) CHECK(c->Delete(k).has_value());
  CHECK(c->Delete("listx/other").has_value());
}

TEST_CASE("PresignGet: a URL anyone may GET until it expires") {
  auto c = Client();
  const std::string key = "presign/blob";
  const std::string body = Pattern(3, 100'000);
  REQUIRE(c->PutSmall(key, body, "").has_value());
  const int64_t now = NowUnixS();

  const std::string url = c->PresignGet(key, std::chrono::seconds(300), now);
  CHECK(url.rfind(Env().endpoint + "/" + Env().bucket + "/", 0) == 0);
  auto fetched = PlainGet(url);
  CHECK(fetched.first == 200);
  CHECK(fetched.second == body);

  struct Case {
    const char* what;
    std::string url;
  };
  std::string tampered = url;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  std::string other_key = url;
  other_key.replace(other_key.find("presign/blob"), 12, "presign/blod");
  const std::vector<Case> refused = {
      {"expired", c->PresignGet(key, std::chrono::seconds(60), now - 3600)},
      {"signature changed", tampered},
      {"another key", other_key},
      {"another secret",
       [&] {
         S3Options o = Options();
         o.secret_key = "not-the-secret";
         return Client(o)->PresignGet(key, std::chrono::seconds(300), now);
       }()},
  };
  for (const auto& k : refused) {
    CAPTURE(k.what);
    CHECK(PlainGet(k.url).first == 403);
  }
  CHECK(PlainGet(Env().endpoint + "/" + Env().bucket + "/" + Env().root + "/" + key).first ==
        403);  // no signature at all
  CHECK(c->Delete(key).has_value());
}

TEST_CASE("Many threads share one client") {
  auto c = Client();
  constexpr int kThreads = 8;
  constexpr int kEach = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string key = "threads/" + std::to_string(t) + "-" + std::to_string(i);
        std::string body = Pattern(t * 100 + i, 1000 + i);
        auto got = c->PutSmall(key, body, "").and_then([&] { return c->GetSmall(key, 4096); });
        if (!got || !*got || **got != body || !c->Delete(key)) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures.load() == 0);
}

TEST_CASE("Counters") {
  auto c = Client();
  REQUIRE(c->PutSmall("counters/a", std::string(1000, 'a'), "").has_value());
  REQUIRE(c->GetSmall("counters/a", 2000).has_value());
  REQUIRE(c->Head("counters/a").has_value());
  REQUIRE(c->Head("counters/absent").has_value());  // 404: not an error
  std::string token;
  REQUIRE(c->List("counters/", 10, &token).has_value());
  REQUIRE(c->PutStream("counters/m", kChunk + 1, PatternReader(1, kChunk + 1), "").has_value());
  REQUIRE(c->Delete("counters/a").has_value());
  REQUIRE(c->Delete("counters/m").has_value());
  S3Options o = Options();
  o.secret_key = "wrong";
  auto bad = Client(o);
  CHECK_FALSE(bad->Head("counters/a").has_value());

  const S3Counters& k = c->counters();
  CHECK(k.put_requests.load() == 1u);
  CHECK(k.get_requests.load() == 1u);
  CHECK(k.head_requests.load() == 2u);
  CHECK(k.list_requests.load() == 1u);
  CHECK(k.multipart_requests.load() == 4u);  // create, 2 parts, complete
  CHECK(k.delete_requests.load() == 2u);
  CHECK(k.requests.load() == 11u);
  CHECK(k.errors.load() == 0u);
  CHECK(k.bytes_sent.load() >= 1000u + kChunk + 1);
  CHECK(k.bytes_received.load() >= 1000u);
  uint64_t in_buckets = 0;
  for (const auto& b : k.latency_buckets) in_buckets += b.load();
  CHECK(in_buckets == k.requests.load());
  CHECK(bad->counters().errors.load() == 1u);  // a 403 on HEAD is an error
  CHECK(bad->counters().requests.load() == 1u);
}

TEST_CASE("Memory: a 256 MiB object streamed up and down") {
  auto c = Client();
  constexpr uint64_t kSize = 256 * kMiB;
  const std::string key = "memory/256MiB";
  // The measurement itself: 48 MiB touched after a reset must show.
  REQUIRE(ResetPeakRss());
  {
    const uint64_t base = StatusKiB("VmRSS:");
    std::vector<char> touched(48 * kMiB, 1);
    CHECK(StatusKiB("VmHWM:") >= base + 40 * 1024);
    CHECK(touched[kMiB] == 1);
  }
  REQUIRE(ResetPeakRss());
  const uint64_t rss_before = StatusKiB("VmRSS:");

  const auto t0 = std::chrono::steady_clock::now();
  auto put = c->PutStream(key, kSize, PatternReader(256, kSize), "");
  REQUIRE_MESSAGE(put.has_value(), (put ? "" : put.error().message));
  const auto t1 = std::chrono::steady_clock::now();
  Sha256 want;
  {
    std::vector<char> buf(kMiB);
    for (uint64_t at = 0; at < kSize; at += kMiB) {
      for (uint64_t i = 0; i < kMiB; ++i) buf[i] = PatternByte(256, at + i);
      want.Update(buf.data(), buf.size());
    }
  }
  Sha256 got;
  uint64_t received = 0;
  S3Sink sink;
  sink.on_size = [&](uint64_t size) { return size == kSize; };
  sink.on_data = [&](const char* data, size_t n) {
    got.Update(data, n);
    received += n;
    return true;
  };
  const auto t2 = std::chrono::steady_clock::now();
  auto found = c->Get(key, 0, std::nullopt, sink);
  const auto t3 = std::chrono::steady_clock::now();
  REQUIRE(found.has_value());
  CHECK(*found);
  CHECK(received == kSize);
  CHECK(got.FinishHex() == want.FinishHex());
  const uint64_t peak = StatusKiB("VmHWM:");
  const uint64_t growth_kib = peak > rss_before ? peak - rss_before : 0;
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::printf(
      "memory: 256 MiB PutStream %lld ms, Get %lld ms; VmRSS before %llu KiB, VmHWM %llu KiB, "
      "growth %llu KiB\n",
      static_cast<long long>(ms(t1 - t0)), static_cast<long long>(ms(t3 - t2)),
      static_cast<unsigned long long>(rss_before), static_cast<unsigned long long>(peak),
      static_cast<unsigned long long>(growth_kib));
#if defined(__SANITIZE_ADDRESS__)
  MESSAGE("ASan build: the RSS bound is checked in the plain build only");
#else
  CHECK(growth_kib < 32 * 1024);
#endif
  CHECK(c->Delete(key).has_value());
}

}  // namespace
}  // namespace hubcache

int main(int argc, char** argv) {
  using hubcache::Env;
  const char* names[] = {"S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_BUCKET", "S3_REGION"};
  std::string* fields[] = {&Env().endpoint, &Env().access_key, &Env().secret_key, &Env().bucket,
                           &Env().region};
  for (size_t i = 0; i < 5; ++i) {
    const char* v = std::getenv(names[i]);
    if (v == nullptr || *v == '\0') {
      std::fprintf(stderr,
                   "s3_client_itest: set S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET and "
                   "S3_REGION (tests/integration/test_s3.py does)\n");
      return 2;
    }
    *fields[i] = v;
  }
  Env().root =
      "itest-" + std::to_string(::getpid()) + "-" +
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  if (std::getenv("S3_ITEST_DEBUG") != nullptr) hubcache::SetLogLevel("debug");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  doctest::Context context(argc, argv);
  int rc = context.run();
  // Whatever a failing case left under the root.
  if (auto c = hubcache::S3Client::Create(hubcache::Options())) {
    std::string token;
    do {
      auto page = (*c)->List("", 1000, &token);
      if (!page) break;
      for (const auto& o : *page) (void)(*c)->Delete(o.key);
    } while (!token.empty());
    if (auto uploads = (*c)->ListUploads("")) {
      for (const auto& u : *uploads) (void)(*c)->AbortUpload(u.key, u.upload_id);
    }
  }
  curl_global_cleanup();
  return rc;
}
