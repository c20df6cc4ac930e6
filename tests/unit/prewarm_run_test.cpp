// PrewarmRun against an in-process fake mirror (cpp-httplib on a loopback port
// chosen by the kernel): what it asks for, how it counts hits and misses, and
// how it reports each kind of failure.
#include "prewarm/prewarm_run.h"

#include <doctest/doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "joining_thread.h"
#include "prewarm/job_manager.h"
#include "prewarm/keep_warm.h"
#include "registry/media_types.h"
#include "test_support.h"
#include "wait_for.h"

namespace hubcache {
namespace {

std::string DigestStringOf(const std::string& bytes) { return "sha256:" + Sha256::HexOf(bytes); }

struct Object {
  std::string type;
  std::string body;
};

// A registry's pull API with scripted answers. Counts every request by path.
class FakeMirror {
 public:
  FakeMirror() {
    server_.Get(R"(/v2/(.+)/manifests/([^/]+))",
                [this](const auto& req, auto& res) { Serve(req, res, /*blob=*/false); });
    server_.Get(R"(/v2/(.+)/blobs/([^/]+))",
                [this](const auto& req, auto& res) { Serve(req, res, /*blob=*/true); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_.emplace([this] { server_.listen_after_bind(); }, [this] { server_.stop(); });
    for (int i = 0; i < 2000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~FakeMirror() {
    Release();
    server_.stop();
    thread_->join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Adds a manifest under repo, by digest and (when given) by tag; returns its digest.
  std::string AddManifest(const std::string& repo, const std::string& tag, std::string type,
                          std::string body) {
    std::lock_guard lock(mutex_);
    std::string digest = DigestStringOf(body);
    objects_["/v2/" + repo + "/manifests/" + digest] = {type, body};
    if (!tag.empty()) objects_["/v2/" + repo + "/manifests/" + tag] = {type, body};
    return digest;
  }
  std::string AddBlob(const std::string& repo, const std::string& bytes, bool cached) {
    std::lock_guard lock(mutex_);
    std::string digest = DigestStringOf(bytes);
    objects_["/v2/" + repo + "/blobs/" + digest] = {"application/octet-stream", bytes};
    if (cached) cached_.insert(digest);
    return digest;
  }
  // The next `times` requests for `path` answer `status` with a registry error.
  void FailPath(const std::string& path, int status, const std::string& code, int times = 1000) {
    std::lock_guard lock(mutex_);
    failures_[path] = {status, code, times};
  }
  // Serves `path` with these bytes instead of the real ones.
  void CorruptPath(const std::string& path, std::string bytes) {
    std::lock_guard lock(mutex_);
    objects_[path].body = std::move(bytes);
  }
  // Blobs at `path` send half their bytes, then wait until Release().
  void StallPath(const std::string& path) {
    std::lock_guard lock(mutex_);
    stalled_.insert(path);
  }
  // Every request must carry this Authorization header (401 otherwise).
  void RequireAuthorization(std::string value) {
    std::lock_guard lock(mutex_);
    required_authorization_ = std::move(value);
  }
  void Release() {
    {
      std::lock_guard lock(mutex_);
      released_ = true;
    }
    released_cv_.notify_all();
  }
  bool WaitForRequest(const std::string& path) {
    std::unique_lock lock(mutex_);
    return requested_cv_.wait_for(lock, std::chrono::seconds(10),
                                  [&] { return hits_.count(path) > 0; });
  }

  int Hits(const std::string& path) {
    std::lock_guard lock(mutex_);
    auto it = hits_.find(path);
    return it == hits_.end() ? 0 : it->second;
  }
  int BlobGets() {
    std::lock_guard lock(mutex_);
    int n = 0;
    for (const auto& [path, count] : hits_)
      n += path.find("/blobs/") != std::string::npos ? count : 0;
    return n;
  }
  std::string last_accept() {
    std::lock_guard lock(mutex_);
    return last_accept_;
  }

 private:
  struct Failure {
    int status;
    std::string code;
    int times;
  };

  void Serve(const httplib::Request& req, httplib::Response& res, bool blob) {
    std::unique_lock lock(mutex_);
    ++hits_[req.path];
    requested_cv_.notify_all();
    if (!blob) last_accept_ = req.get_header_value("Accept");
    if (!required_authorization_.empty() &&
        req.get_header_value("Authorization") != required_authorization_) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Basic realm=\"hubcache\"");
      res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
                      "application/json");
      return;
    }
    if (auto f = failures_.find(req.path); f != failures_.end() && f->second.times > 0) {
      --f->second.times;
      res.status = f->second.status;
      res.set_content(R"({"errors":[{"code":")" + f->second.code + R"(","message":"scripted"}]})",
                      "application/json");
      return;
    }
    auto it = objects_.find(req.path);
    if (it == objects_.end()) {
      res.status = 404;
      res.set_content(std::string(R"({"errors":[{"code":")") +
                          (blob ? "BLOB_UNKNOWN" : "MANIFEST_UNKNOWN") +
                          R"(","message":"unknown"}]})",
                      "application/json");
      return;
    }
    Object object = it->second;
    std::string digest = req.path.substr(req.path.rfind('/') + 1);
    if (!blob) {
      res.set_header("Docker-Content-Digest", DigestStringOf(object.body));
      res.set_content(object.body, object.type);
      return;
    }
    res.set_header("X-Hubcache-Cache", cached_.count(digest) ? "hit" : "miss");
    if (!stalled_.count(req.path)) {
      res.set_content(object.body, object.type);
      return;
    }
    lock.unlock();
    auto body = std::make_shared<std::string>(object.body);
    res.set_content_provider(
        body->size(), object.type, [this, body](size_t offset, size_t, httplib::DataSink& sink) {
          if (offset == 0) {
            sink.write(body->data(), body->size() / 2);
            return true;
          }
          std::unique_lock l(mutex_);
          released_cv_.wait_for(l, std::chrono::seconds(10), [&] { return released_; });
          return false;  // never finishes: a cut-short transfer
        });
  }

  httplib::Server server_;
  int port_ = 0;
  std::optional<JoiningThread> thread_;  // declared after server_: joined first
  std::mutex mutex_;
  std::condition_variable released_cv_;
  std::condition_variable requested_cv_;
  std::map<std::string, Object> objects_;
  std::set<std::string> cached_;
  std::map<std::string, Failure> failures_;
  std::set<std::string> stalled_;
  std::map<std::string, int> hits_;
  std::string last_accept_;
  std::string required_authorization_;
  bool released_ = false;
};

std::string ImageManifest(const std::string& config, size_t config_size,
                          const std::vector<std::pair<std::string, size_t>>& layers) {
  std::string out =
      R"({"schemaVersion":2,"mediaType":")" + std::string(kOciManifest) +
      R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + config +
      R"(","size":)" + std::to_string(config_size) + R"(},"layers":[)";
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i) out += ",";
    out += R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
           layers[i].first + R"(","size":)" + std::to_string(layers[i].second) + "}";
  }
  return out + "]}";
}

std::string Index(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out =
      R"({"schemaVersion":2,"mediaType":")" + std::string(kOciIndex) + R"(","manifests":[)";
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [digest, arch] = entries[i];
    if (i) out += ",";
    out += R"({"mediaType":")" + std::string(kOciManifest) + R"(","digest":")" + digest +
           R"(","size":1,"platform":{"os":"linux","architecture":")" + arch + R"("}})";
  }
  return out + "]}";
}

ImageRef Ref(const std::string& text) {
  auto ref = ParseImageRef(text);
  REQUIRE(ref.has_value());
  return *ref;
}

PrewarmOptions Options(const FakeMirror& mirror, int concurrency = 4) {
  PrewarmOptions o;
  o.session.base_url = mirror.url();
  o.session.connect_timeout = std::chrono::milliseconds(2000);
  o.session.stall_timeout = std::chrono::milliseconds(5000);
  o.concurrency = concurrency;
  o.retry_delay = std::chrono::milliseconds(10);
  return o;
}

// library/multi:1 = index {amd64: config c1 + layers L1, S; arm64: config c2 + layers L2, S}
// library/single:1 = manifest {config c3 + layers S (shared), L3}; L3 already cached.
struct PrewarmFixture {
  FakeMirror mirror;
  std::string shared, l1, l2, l3, c1, c2, c3, amd64, arm64;
  PrewarmFixture() {
    shared = mirror.AddBlob("library/multi", std::string(3000, 's'), false);
    mirror.AddBlob("library/single", std::string(3000, 's'), false);
    l1 = mirror.AddBlob("library/multi", std::string(1000, '1'), false);
    l2 = mirror.AddBlob("library/multi", std::string(2000, '2'), false);
    l3 = mirror.AddBlob("library/single", std::string(4000, '3'), true);
    c1 = mirror.AddBlob("library/multi", R"({"architecture":"amd64"})", false);
    c2 = mirror.AddBlob("library/multi", R"({"architecture":"arm64"})", false);
    c3 = mirror.AddBlob("library/single", R"({"architecture":"amd64","x":1})", false);
    amd64 = mirror.AddManifest("library/multi", "", std::string(kOciManifest),
                               ImageManifest(c1, 24, {{l1, 1000}, {shared, 3000}}));
    arm64 = mirror.AddManifest("library/multi", "", std::string(kOciManifest),
                               ImageManifest(c2, 24, {{l2, 2000}, {shared, 3000}}));
    mirror.AddManifest("library/multi", "1", std::string(kOciIndex),
                       Index({{amd64, "amd64"}, {arm64, "arm64"}}));
    mirror.AddManifest("library/single", "1", std::string(kDockerManifestV2),
                       ImageManifest(c3, 30, {{shared, 3000}, {l3, 4000}}));
  }
};

TEST_CASE("PrewarmRun walks an index and fetches every distinct blob once") {
  PrewarmFixture f;
  PrewarmRun run({Ref("multi:1"), Ref("docker.io/library/single:1")}, Options(f.mirror));
  std::vector<std::string> events;
  std::mutex events_mutex;
  run.SetObserver([&](const ImageProgress& p) {
    std::lock_guard lock(events_mutex);
    events.push_back(p.image + " " + ImageStateName(p.state));
  });
  RunSnapshot result = run.Run();

  REQUIRE(result.images.size() == 2);
  const auto& multi = result.images[0];
  const auto& single = result.images[1];
  CHECK(multi.state == ImageState::kDone);
  CHECK(single.state == ImageState::kDone);
  CHECK(multi.platforms == 2);
  CHECK(multi.blobs_total == 5);  // c1, l1, shared, c2, l2
  CHECK(multi.blobs_done == 5);
  CHECK(multi.bytes_total == 24 + 1000 + 3000 + 24 + 2000);
  CHECK(single.platforms == 1);
  CHECK(single.blobs_total == 3);
  CHECK(single.bytes_total == 30 + 3000 + 4000);
  // Every byte is counted for each image, as fetched or cached. The shared
  // layer goes through whichever image lists it first (they resolve in
  // parallel) and is a miss for that one only; l3 was a hit.
  CHECK(multi.bytes_fetched + multi.bytes_cached == multi.bytes_total);
  CHECK(single.bytes_fetched + single.bytes_cached == single.bytes_total);
  CHECK(multi.bytes_fetched + single.bytes_fetched == 24 + 1000 + 3000 + 24 + 2000 + 30);
  CHECK(result.bytes_total == 24 + 1000 + 3000 + 24 + 2000 + 30 + 4000);
  CHECK(result.bytes_fetched == 24 + 1000 + 3000 + 24 + 2000 + 30);
  CHECK(result.bytes_cached == 4000);
  CHECK(result.images_ok() == 2);
  CHECK(result.finished());

  CHECK(f.mirror.BlobGets() == 7);
  CHECK(f.mirror.Hits("/v2/library/multi/blobs/" + f.shared) +
            f.mirror.Hits("/v2/library/single/blobs/" + f.shared) ==
        1);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/1") == 1);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/" + f.amd64) == 1);
  // The full Accept set, so that the mirror caches the tag under the key clients use.
  CHECK(AcceptSet::FromHeader(f.mirror.last_accept()).IsAll());
  std::lock_guard lock(events_mutex);
  CHECK(events.size() == 4);  // resolved + finished, per image
}

TEST_CASE("PrewarmRun counts a blob shared with an earlier image as cached for the later one") {
  PrewarmFixture f;
  // One worker: multi is resolved and its blobs fetched before single starts.
  PrewarmRun run({Ref("multi:1"), Ref("single:1")}, Options(f.mirror, 1));
  RunSnapshot result = run.Run();
  CHECK(result.images[0].bytes_fetched == 24 + 1000 + 3000 + 24 + 2000);
  CHECK(result.images[0].bytes_cached == 0);
  CHECK(result.images[1].bytes_fetched == 30);
  CHECK(result.images[1].bytes_cached == 3000 + 4000);
  CHECK(f.mirror.Hits("/v2/library/multi/blobs/" + f.shared) == 1);
  CHECK(f.mirror.Hits("/v2/library/single/blobs/" + f.shared) == 0);
}

TEST_CASE("PrewarmRun with --platform fetches only that platform's blobs") {
  PrewarmFixture f;
  PrewarmOptions options = Options(f.mirror, 1);
  options.platforms = {Platform{"linux", "arm64", ""}};
  PrewarmRun run({Ref("multi:1")}, options);
  RunSnapshot result = run.Run();
  REQUIRE(result.images.size() == 1);
  CHECK(result.images[0].state == ImageState::kDone);
  CHECK(result.images[0].platforms == 1);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/" + f.amd64) == 0);
  CHECK(f.mirror.Hits("/v2/library/multi/blobs/" + f.l1) == 0);
  CHECK(f.mirror.Hits("/v2/library/multi/blobs/" + f.l2) == 1);
  CHECK(f.mirror.BlobGets() == 3);

  options.platforms = {Platform{"linux", "s390x", ""}};
  PrewarmRun none({Ref("multi:1")}, options);
  RunSnapshot r2 = none.Run();
  CHECK(r2.images[0].state == ImageState::kFailed);
  CHECK(r2.images[0].reason == FailureReason::kNoPlatform);
  CHECK(r2.images[0].error.find("linux/amd64, linux/arm64") != std::string::npos);
}

TEST_CASE("PrewarmRun resolves a pinned reference by digest, ignoring its tag") {
  PrewarmFixture f;
  PrewarmRun run({Ref("multi:nonexistent@" + f.arm64)}, Options(f.mirror));
  RunSnapshot result = run.Run();
  CHECK(result.images[0].state == ImageState::kDone);
  CHECK(result.images[0].digest == f.arm64);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/" + f.arm64) == 1);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/nonexistent") == 0);
  CHECK(f.mirror.BlobGets() == 3);
}

TEST_CASE("PrewarmRun names the reason of each failure and still warms the rest") {
  PrewarmFixture f;
  f.mirror.FailPath("/v2/bitnami/private/manifests/1", 401, "UNAUTHORIZED");
  f.mirror.FailPath("/v2/library/limited/manifests/1", 429, "TOOMANYREQUESTS");
  f.mirror.FailPath("/v2/library/down/manifests/1", 503, "UNAVAILABLE");
  std::string bad = f.mirror.AddManifest("library/bad", "1", std::string(kOciManifest),
                                         ImageManifest(f.c1, 24, {{f.l1, 1000}}));
  f.mirror.AddBlob("library/bad", R"({"architecture":"amd64"})", false);
  f.mirror.AddBlob("library/bad", std::string(1000, '1'), false);
  f.mirror.CorruptPath("/v2/library/bad/blobs/" + f.l1, std::string(1000, 'X'));
  std::string missing_blob = DigestStringOf("never stored");
  f.mirror.AddManifest("library/holes", "1", std::string(kOciManifest),
                       ImageManifest(missing_blob, 12, {}));

  PrewarmRun run({Ref("nope:1"), Ref("bitnami/private:1"), Ref("limited:1"), Ref("down:1"),
                  Ref("bad:1"), Ref("holes:1"), Ref("nope@" + f.amd64), Ref("single:1")},
                 Options(f.mirror));
  RunSnapshot result = run.Run();
  REQUIRE(result.images.size() == 8);
  const std::vector<FailureReason> want = {
      FailureReason::kUnknownTag,      FailureReason::kUnauthorized, FailureReason::kRateLimited,
      FailureReason::kNetwork,         FailureReason::kInvalid,      FailureReason::kUnknownBlob,
      FailureReason::kUnknownManifest, FailureReason::kNone};
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(result.images[i].image);
    CAPTURE(result.images[i].error);
    CHECK(result.images[i].reason == want[i]);
    CHECK(result.images[i].state ==
          (want[i] == FailureReason::kNone ? ImageState::kDone : ImageState::kFailed));
  }
  CHECK(result.images[0].error.find("404") != std::string::npos);
  CHECK(result.images[4].error.find("do not match the digest") != std::string::npos);
  CHECK(result.images_ok() == 1);
  CHECK(result.images_failed() == 7);
  // 5xx is retried (attempts = 2); 4xx is not.
  CHECK(f.mirror.Hits("/v2/library/down/manifests/1") == 2);
  CHECK(f.mirror.Hits("/v2/library/limited/manifests/1") == 1);
  CHECK(f.mirror.Hits("/v2/library/bad/blobs/" + f.l1) == 1);
}

TEST_CASE("PrewarmRun retries a 503 once and then succeeds") {
  PrewarmFixture f;
  f.mirror.FailPath("/v2/library/single/blobs/" + f.l3, 503, "UNAVAILABLE", 1);
  PrewarmRun run({Ref("single:1")}, Options(f.mirror));
  RunSnapshot result = run.Run();
  CHECK(result.images[0].state == ImageState::kDone);
  CHECK(f.mirror.Hits("/v2/library/single/blobs/" + f.l3) == 2);
}

TEST_CASE("PrewarmRun sends Basic credentials to a mirror that asks for them") {
  PrewarmFixture f;
  f.mirror.RequireAuthorization("Basic cHVsbGVyOnMzY3JldA==");  // puller:s3cret
  PrewarmRun anonymous({Ref("single:1")}, Options(f.mirror));
  RunSnapshot refused = anonymous.Run();
  CHECK(refused.images[0].reason == FailureReason::kUnauthorized);

  PrewarmOptions options = Options(f.mirror);
  options.session.username = "puller";
  options.session.password = "s3cret";
  PrewarmRun run({Ref("single:1")}, options);
  RunSnapshot result = run.Run();
  CHECK(result.images[0].state == ImageState::kDone);
  CHECK(f.mirror.BlobGets() == 3);
}

TEST_CASE("PrewarmRun reports a mirror it cannot reach as a network failure") {
  PrewarmOptions options;
  {
    FakeMirror gone;  // a port that was just listening and is now closed
    options = Options(gone);
  }
  options.attempts = 1;
  PrewarmRun run({Ref("alpine"), Ref("redis")}, options);
  RunSnapshot result = run.Run();
  for (const auto& image : result.images) {
    CHECK(image.state == ImageState::kFailed);
    CHECK(image.reason == FailureReason::kNetwork);
    CHECK(image.error.find("cannot reach the mirror") != std::string::npos);
  }
}

TEST_CASE("PrewarmRun::Cancel aborts a transfer in flight and fails the rest as canceled") {
  PrewarmFixture f;
  f.mirror.StallPath("/v2/library/single/blobs/" + f.l3);
  PrewarmRun run({Ref("single:1"), Ref("multi:1")}, Options(f.mirror, 1));
  RunSnapshot result;
  JoiningThread runner([&] { result = run.Run(); }, [&] { run.Cancel(); });
  REQUIRE(f.mirror.WaitForRequest("/v2/library/single/blobs/" + f.l3));
  auto started = std::chrono::steady_clock::now();
  run.Cancel();
  runner.join();
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
  CHECK(result.canceled);
  CHECK(result.finished());
  CHECK(result.images[0].state == ImageState::kFailed);
  CHECK(result.images[0].reason == FailureReason::kCanceled);
  CHECK(result.images[1].reason == FailureReason::kCanceled);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/1") == 0);
}

TEST_CASE("PrewarmRun with no images finishes at once") {
  PrewarmRun run({}, PrewarmOptions{});
  RunSnapshot result = run.Run();
  CHECK(result.finished());
  CHECK(result.images.empty());
}

nlohmann::json Body(const ApiReply& reply) { return nlohmann::json::parse(reply.body); }

SessionOptions SessionTo(const FakeMirror& mirror) { return Options(mirror).session; }

PrewarmJobOptions JobOptions(const FakeMirror& mirror) {
  PrewarmJobOptions o;
  o.prewarm = Options(mirror);
  o.prewarm.session.base_url = "http://127.0.0.1:1";  // HandlePost's target is the one used
  return o;
}

TEST_CASE("PrewarmJobs: POST validates the whole request before starting anything") {
  PrewarmFixture f;
  PrewarmJobs jobs(JobOptions(f.mirror));
  struct Case {
    std::string body;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"", "expected a JSON list"},
      {"{", "expected a JSON list"},
      {R"("alpine")", "expected a JSON list"},
      {R"({"image": ["alpine"]})", "expected a JSON list"},
      {"[]", "empty"},
      {R"(["alpine", "Bad Image", 7])", "invalid entries"},
      {R"({"images": ["alpine"], "platforms": ["linux"]})", "invalid entries"},
      {R"({"images": ["alpine"], "platforms": "linux/amd64"})", "platforms must be a list"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    ApiReply reply = jobs.HandlePost(c.body, SessionTo(f.mirror));
    CHECK(reply.status == 400);
    auto error = Body(reply)["errors"][0];
    CHECK(error["code"] == "INVALID_REQUEST");
    CHECK(error["message"].get<std::string>().find(c.message_part) != std::string::npos);
  }
  auto invalid = Body(
      jobs.HandlePost(R"(["alpine", "Bad Image", 7])", SessionTo(f.mirror)))["errors"][0]["detail"];
  REQUIRE(invalid.size() == 2);
  CHECK(invalid[0]["index"] == 1);
  CHECK(invalid[1]["index"] == 2);
  CHECK(jobs.running() == 0);
  CHECK(f.mirror.Hits("/v2/library/alpine/manifests/latest") == 0);
}

TEST_CASE("PrewarmJobs: a job runs in the background and reports its progress by id") {
  PrewarmFixture f;
  PrewarmJobs jobs(JobOptions(f.mirror));
  ApiReply started = jobs.HandlePost(
      R"({"images": ["multi:1", "docker.io/library/single:1", "nope:1"],
          "platforms": ["linux/amd64"]})",
      SessionTo(f.mirror));
  REQUIRE(started.status == 202);
  auto body = Body(started);
  std::string id = body["id"];
  CHECK(id.size() == 16);
  CHECK(body["status_url"] == "/admin/prewarm/" + id);
  CHECK(body["images"] ==
        nlohmann::json({"library/multi:1", "library/single:1", "library/nope:1"}));
  REQUIRE(WaitFor([&] { return Body(jobs.HandleGet(id)).contains("finished_ms"); },
                  std::chrono::seconds(10)));
  ApiReply got = jobs.HandleGet(id);
  CHECK(got.status == 200);
  auto job = Body(got);
  CAPTURE(job.dump(2));
  CHECK(job["id"] == id);
  CHECK(job["state"] == "failed");  // one image of three failed
  CHECK(job["platforms"] == nlohmann::json({"linux/amd64"}));
  CHECK(job["images_ok"] == 2);
  CHECK(job["images_failed"] == 1);
  CHECK(job["images"][0]["platforms"] == 1);
  CHECK(job["images"][2]["reason"] == "unknown tag");
  CHECK(job["bytes_fetched"].get<uint64_t>() > 0);
  CHECK(f.mirror.Hits("/v2/library/multi/blobs/" + f.l2) == 0);  // arm64 only

  CHECK(jobs.HandleGet("0123456789abcdef").status == 404);
}

TEST_CASE("PrewarmJobs: bounded running jobs (429) and kept jobs (oldest forgotten)") {
  PrewarmFixture f;
  f.mirror.StallPath("/v2/library/single/blobs/" + f.l3);
  PrewarmJobOptions options = JobOptions(f.mirror);
  options.max_running_jobs = 1;
  options.max_kept_jobs = 2;
  PrewarmJobs jobs(options);

  std::string stalled = Body(jobs.HandlePost(R"(["single:1"])", SessionTo(f.mirror)))["id"];
  REQUIRE(f.mirror.WaitForRequest("/v2/library/single/blobs/" + f.l3));
  ApiReply busy = jobs.HandlePost(R"(["multi:1"])", SessionTo(f.mirror));
  CHECK(busy.status == 429);
  CHECK(jobs.running() == 1);
  f.mirror.Release();  // the stalled transfer is cut short, and so is its retry
  REQUIRE(WaitFor([&] { return jobs.running() == 0; }, std::chrono::seconds(10)));

  std::vector<std::string> ids = {stalled};
  for (int i = 0; i < 3; ++i) {
    ApiReply reply = jobs.HandlePost(R"(["multi:1"])", SessionTo(f.mirror));
    REQUIRE(reply.status == 202);
    ids.push_back(Body(reply)["id"]);
    REQUIRE(WaitFor([&] { return jobs.running() == 0; }, std::chrono::seconds(10)));
  }
  // The next start forgets all but the two most recent finished jobs.
  ids.push_back(Body(jobs.HandlePost(R"(["multi:1"])", SessionTo(f.mirror)))["id"]);
  REQUIRE(WaitFor([&] { return jobs.running() == 0; }, std::chrono::seconds(10)));
  CHECK(jobs.HandleGet(ids[0]).status == 404);
  CHECK(jobs.HandleGet(ids[1]).status == 404);
  CHECK(jobs.HandleGet(ids[2]).status == 200);
  CHECK(jobs.HandleGet(ids[3]).status == 200);
  CHECK(jobs.HandleGet(ids[4]).status == 200);
}

TEST_CASE("PrewarmJobs: destruction cancels a running job and joins it") {
  PrewarmFixture f;
  f.mirror.StallPath("/v2/library/single/blobs/" + f.l3);
  auto started = std::chrono::steady_clock::now();
  {
    PrewarmJobs jobs(JobOptions(f.mirror));
    REQUIRE(jobs.HandlePost(R"(["single:1"])", SessionTo(f.mirror)).status == 202);
    REQUIRE(f.mirror.WaitForRequest("/v2/library/single/blobs/" + f.l3));
  }
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
}

TEST_CASE("KeepWarm runs the list now and again after the interval, and stops promptly") {
  PrewarmFixture f;
  char dir[] = "/tmp/hubcache-keepwarm-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string list = std::string(dir) + "/images.txt";
  {
    std::ofstream out(list);
    out << "# kept warm\nmulti:1\nNOT VALID\nsingle:1\n";
  }
  KeepWarmOptions options;
  options.list_path = list;
  options.interval = std::chrono::milliseconds(50);
  options.prewarm = Options(f.mirror);
  auto keep = KeepWarm::Create(options);
  REQUIRE(keep.has_value());
  CHECK_FALSE((*keep)->LastRun().has_value());
  (*keep)->Start();
  REQUIRE(WaitFor([&] { return (*keep)->StatusJson()["runs"].get<int>() >= 2; },
                  std::chrono::seconds(10)));
  auto last = (*keep)->LastRun();
  REQUIRE(last.has_value());
  CHECK(last->images_ok == 2);
  CHECK(last->images_failed == 0);
  CHECK(last->malformed_entries == 1);
  CHECK(last->bytes_fetched + last->bytes_cached > 0);
  auto status = (*keep)->StatusJson();
  CHECK(status["list"] == list);
  CHECK(status["last_run"]["images_ok"] == 2);
  CHECK(f.mirror.Hits("/v2/library/multi/manifests/1") >= 2);

  f.mirror.StallPath("/v2/library/single/blobs/" + f.l3);
  auto stop_started = std::chrono::steady_clock::now();
  (*keep)->Stop();
  (*keep)->Stop();  // idempotent
  CHECK(std::chrono::steady_clock::now() - stop_started < std::chrono::seconds(5));
  std::remove(list.c_str());
  rmdir(dir);
}

TEST_CASE("KeepWarm::Create refuses a list it cannot read") {
  KeepWarmOptions options;
  options.list_path = "/nonexistent/hubcache/images.txt";
  auto keep = KeepWarm::Create(options);
  REQUIRE_FALSE(keep.has_value());
  CHECK(keep.error().message.find("--prewarm-file") != std::string::npos);
  options.list_path = "-";
  CHECK_FALSE(KeepWarm::Create(options).has_value());
}

TEST_CASE("SelfSession: loopback, TLS trusting the server's own certificate, credentials") {
  Config config;
  config.http_addr = ":5000";
  auto plain = SelfSession(config, 5000, "", "");
  REQUIRE(plain.has_value());
  CHECK(plain->base_url == "http://127.0.0.1:5000");
  CHECK(plain->username.empty());
  CHECK(plain->verify_host);

  config.tls_certificate = "/etc/hubcache/tls.crt";
  auto tls = SelfSession(config, 5443, "hubcache-internal", "secret");
  REQUIRE(tls.has_value());
  CHECK(tls->base_url == "https://127.0.0.1:5443");
  CHECK(tls->ca_file == "/etc/hubcache/tls.crt");
  CHECK_FALSE(tls->verify_host);
  CHECK_FALSE(tls->insecure);
  CHECK(tls->username == "hubcache-internal");
  CHECK(tls->password == "secret");

  config.tls_client_cas = {"/etc/hubcache/clients.pem"};
  auto mtls = SelfSession(config, 5443, "", "");
  REQUIRE_FALSE(mtls.has_value());
  CHECK(mtls.error().message.find("client certificate") != std::string::npos);
}

TEST_CASE("SelfUrl reaches a server through loopback when it listens on every address") {
  CHECK(SelfUrl(":5000", 5000) == "http://127.0.0.1:5000");
  CHECK(SelfUrl("0.0.0.0:5000", 5000) == "http://127.0.0.1:5000");
  CHECK(SelfUrl("127.0.0.1:0", 41234) == "http://127.0.0.1:41234");
  CHECK(SelfUrl("10.1.2.3:5000", 5000) == "http://10.1.2.3:5000");
  CHECK(SelfUrl("[::]:5000", 5000) == "http://[::1]:5000");
  CHECK(SelfUrl("[::1]:5000", 5000) == "http://[::1]:5000");
}

}  // namespace
}  // namespace hubcache
