#pragma once
// An in-process fake upstream registry for unit tests of the cache services:
// a cpp-httplib server on 127.0.0.1 (a free port) serving what the test put in
// it, anonymously, and counting every request by method and path. A test can
// make any path answer a given status, or make a blob's bytes wrong. Only for
// what a unit test needs; the integration tests use Debian's docker-registry.
//
// Thread-safe: the server thread and the test thread share the content under a
// mutex. Owns its server and thread; the destructor stops and joins them.

#include <httplib.h>

#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"

namespace hubcache::testing {

class FakeUpstream {
 public:
  FakeUpstream() {
    server_.Get(R"(/v2/(.+)/manifests/([^/]+))",
                [this](const auto& req, auto& res) { Manifest(req, res); });
    server_.Get(R"(/v2/(.+)/blobs/(sha256:[0-9a-f]{64}))",
                [this](const auto& req, auto& res) { Blob(req, res); });
    server_.Get(R"(/v2/(.+)/tags/list)", [this](const auto& req, auto& res) { Tags(req, res); });
    server_.Get("/v2/", [](const auto&, auto& res) { res.set_content("{}", "application/json"); });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("fake upstream: cannot bind");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~FakeUpstream() {
    server_.stop();
    thread_.join();
  }
  FakeUpstream(const FakeUpstream&) = delete;
  FakeUpstream& operator=(const FakeUpstream&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // Content. A manifest answers GET and HEAD of repo:tag and repo@digest; its
  // digest is returned.
  std::string PutManifest(const std::string& repo, const std::string& tag,
                          const std::string& media_type, const std::string& body) {
    std::lock_guard lock(mutex_);
    std::string digest = "sha256:" + Sha256::HexOf(body);
    manifests_[repo + "/" + tag] = {media_type, body};
    manifests_[repo + "/" + digest] = {media_type, body};
    return digest;
  }
  std::string PutBlob(const std::string& bytes) {
    std::lock_guard lock(mutex_);
    std::string digest = "sha256:" + Sha256::HexOf(bytes);
    blobs_[digest] = bytes;
    return digest;
  }
  // Tag list pages: each but the last links to the next.
  void PutTagPages(const std::string& repo, std::vector<std::vector<std::string>> pages) {
    std::lock_guard lock(mutex_);
    tag_pages_[repo] = std::move(pages);
  }
  // Every request for `path` (as sent, without the query) answers `status`.
  void FailPath(const std::string& path, int status) {
    std::lock_guard lock(mutex_);
    failing_[path] = status;
  }
  // Every path answers as it should again, every blob with its own bytes.
  void Heal() {
    std::lock_guard lock(mutex_);
    failing_.clear();
    corrupt_.clear();
  }
  // The blob answers these bytes instead of its own (same length or not).
  void CorruptBlob(const std::string& digest, std::string bytes) {
    std::lock_guard lock(mutex_);
    corrupt_[digest] = std::move(bytes);
  }

  // Requests seen, "GET /v2/..." (path without the query).
  int Count(const std::string& method, const std::string& path) const {
    std::lock_guard lock(mutex_);
    auto it = seen_.find(method + " " + path);
    return it == seen_.end() ? 0 : it->second;
  }

 private:
  struct Stored {
    std::string media_type;
    std::string body;
  };

  // Counts the request; true when the test made its path fail (answered).
  bool Intercept(const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mutex_);
    ++seen_[req.method + " " + req.path];
    auto it = failing_.find(req.path);
    if (it == failing_.end()) return false;
    res.status = it->second;
    res.set_content(R"({"errors":[{"code":"UNKNOWN","message":"injected"}]})", "application/json");
    return true;
  }
  void NotFound(httplib::Response& res, const char* code) {
    res.status = 404;
    res.set_content(std::string(R"({"errors":[{"code":")") + code + R"(","message":"no"}]})",
                    "application/json");
  }
  void Manifest(const httplib::Request& req, httplib::Response& res) {
    if (Intercept(req, res)) return;
    std::lock_guard lock(mutex_);
    auto it = manifests_.find(req.matches[1].str() + "/" + req.matches[2].str());
    if (it == manifests_.end()) return NotFound(res, "MANIFEST_UNKNOWN");
    res.set_header("Docker-Content-Digest", "sha256:" + Sha256::HexOf(it->second.body));
    res.set_content(it->second.body, it->second.media_type);
  }
  void Blob(const httplib::Request& req, httplib::Response& res) {
    if (Intercept(req, res)) return;
    std::lock_guard lock(mutex_);
    const std::string digest = req.matches[2].str();
    auto it = blobs_.find(digest);
    if (it == blobs_.end()) return NotFound(res, "BLOB_UNKNOWN");
    auto bad = corrupt_.find(digest);
    res.set_content(bad == corrupt_.end() ? it->second : bad->second, "application/octet-stream");
  }
  void Tags(const httplib::Request& req, httplib::Response& res) {
    if (Intercept(req, res)) return;
    std::lock_guard lock(mutex_);
    const std::string repo = req.matches[1].str();
    auto it = tag_pages_.find(repo);
    if (it == tag_pages_.end()) return NotFound(res, "NAME_UNKNOWN");
    size_t page = req.has_param("page") ? std::stoul(req.get_param_value("page")) : 0;
    if (page >= it->second.size()) return NotFound(res, "NAME_UNKNOWN");
    std::string list;
    for (const auto& t : it->second[page]) list += (list.empty() ? "\"" : ",\"") + t + "\"";
    if (page + 1 < it->second.size()) {
      res.set_header("Link", "</v2/" + repo + "/tags/list?page=" + std::to_string(page + 1) +
                                 ">; rel=\"next\"");
    }
    res.set_content(R"({"name":")" + repo + R"(","tags":[)" + list + "]}", "application/json");
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::string, Stored> manifests_;                                 // guarded by mutex_
  std::map<std::string, std::string> blobs_;                                // guarded by mutex_
  std::map<std::string, std::string> corrupt_;                              // guarded by mutex_
  std::map<std::string, std::vector<std::vector<std::string>>> tag_pages_;  // guarded
  std::map<std::string, int> failing_;                                      // guarded by mutex_
  std::map<std::string, int> seen_;                                         // guarded by mutex_
};

}  // namespace hubcache::testing
