#include "http/access_log.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "joining_thread.h"

namespace hubcache {
namespace {

// A fresh directory for one test, removed with its contents.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "hubcache-access-log-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

AccessRecord Sample() {
  AccessRecord r;
  r.time_ms = 1767366245123;  // 2026-01-02T15:04:05.123Z
  r.client = "127.0.0.1";
  r.method = "GET";
  r.target = "/v2/library/alpine/blobs/sha256:abc";
  r.status = 200;
  r.bytes = 1234;
  r.duration_ms = 12.3456;
  r.cache = "hit";
  r.registry = "docker.io";
  return r;
}

std::vector<std::string> Lines(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("FormatAccessRecord text: one key=value line") {
  CHECK(FormatAccessRecord(Sample(), AccessLogFormat::kText) ==
        "2026-01-02T15:04:05.123Z client=127.0.0.1 method=GET "
        "path=/v2/library/alpine/blobs/sha256:abc status=200 bytes=1234 duration_ms=12.346 "
        "cache=hit registry=docker.io");
  AccessRecord odd = Sample();
  odd.target = "/a b\"c\n\\d\x01\xff";
  odd.cache = "";
  std::string line = FormatAccessRecord(odd, AccessLogFormat::kText);
  CHECK(line.find("path=/a%20b%22c%0A%5Cd%01%FF status=") != std::string::npos);
  CHECK(line.find("cache=-") != std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("FormatAccessRecord json: one object per line, client bytes never throw") {
  auto j = nlohmann::json::parse(FormatAccessRecord(Sample(), AccessLogFormat::kJson));
  CHECK(j["time"] == "2026-01-02T15:04:05.123Z");
  CHECK(j["client"] == "127.0.0.1");
  CHECK(j["method"] == "GET");
  CHECK(j["path"] == "/v2/library/alpine/blobs/sha256:abc");
  CHECK(j["status"] == 200);
  CHECK(j["bytes"] == 1234);
  CHECK(j["duration_ms"].get<double>() == doctest::Approx(12.346));
  CHECK(j["cache"] == "hit");
  AccessRecord odd = Sample();
  odd.target = "/\xff\xfe\n";
  odd.cache = "";
  std::string line = FormatAccessRecord(odd, AccessLogFormat::kJson);
  CHECK(line.find('\n') == std::string::npos);
  auto k = nlohmann::json::parse(line);
  CHECK(k["cache"].is_null());
}

TEST_CASE("AccessLog writes every record from many threads, in full lines") {
  ScratchDir dir;
  const auto path = dir.path() / "access.log";
  constexpr int kThreads = 4;
  constexpr int kEach = 500;
  {
    auto log = AccessLog::Open(path.string(), AccessLogFormat::kJson, 4096);
    REQUIRE(log);
    std::vector<JoiningThread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&log, t] {
        for (int i = 0; i < kEach; ++i) {
          AccessRecord r = Sample();
          r.bytes = static_cast<uint64_t>(t * kEach + i);
          (*log)->Submit(std::move(r));
        }
      });
    }
    for (auto& t : threads) t.join();
    // The destructor writes what is queued before it returns.
    log->reset();
  }
  auto lines = Lines(path);
  REQUIRE(lines.size() == kThreads * kEach);
  std::vector<bool> seen(kThreads * kEach);
  for (const auto& line : lines) {
    auto j = nlohmann::json::parse(line);
    seen[j["bytes"].get<size_t>()] = true;
  }
  CHECK(std::count(seen.begin(), seen.end(), true) == kThreads * kEach);
}

TEST_CASE("AccessLog counts what it drops when its queue is full") {
  ScratchDir dir;
  const auto path = dir.path() / "access.log";
  auto log = AccessLog::Open(path.string(), AccessLogFormat::kText, 2);
  REQUIRE(log);
  for (int i = 0; i < 10000; ++i) (*log)->Submit(Sample());
  uint64_t dropped = (*log)->dropped();
  log->reset();
  auto lines = Lines(path);
  CHECK(lines.size() + dropped == 10000);
}

TEST_CASE("AccessLog::Open refuses a path it cannot write") {
  auto log = AccessLog::Open("/nonexistent-dir/access.log", AccessLogFormat::kText);
  REQUIRE_FALSE(log);
  CHECK(log.error().message.find("/nonexistent-dir/access.log") != std::string::npos);
}

}  // namespace
}  // namespace hubcache
