#include "http/htpasswd.h"

#include <crypt.h>
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.h"

namespace hubcache {
namespace {

using testing::TempDir;

// What `htpasswd -B -C cost` writes for `password`.
std::string Bcrypt(const std::string& password, int cost) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn("$2y$", static_cast<unsigned long>(cost), nullptr, 0, setting,
                           sizeof(setting)) != nullptr);
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), setting, &data);
  REQUIRE(hash != nullptr);
  REQUIRE(hash[0] != '*');
  return hash;
}

std::unique_ptr<HtpasswdFile> LoadUsers(const TempDir& dir, int cost) {
  const std::string path = (dir.path() / "htpasswd").string();
  std::ofstream(path) << "puller:" << Bcrypt("pull-secret", cost) << "\n"
                      << "boss:" << Bcrypt("boss-secret", cost) << "\n";
  auto file = HtpasswdFile::Load(path);
  REQUIRE(file.has_value());
  return std::move(*file);
}

TEST_CASE("HtpasswdFile::Verify accepts exactly the right password of a listed user") {
  TempDir dir;
  auto file = LoadUsers(dir, 4);
  struct Case {
    std::string user;
    std::string password;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"puller", "pull-secret", true},
      {"puller", "pull-secret", true},  // again, from the verified cache
      {"boss", "boss-secret", true},
      {"puller", "boss-secret", false},
      {"puller", "pull-secre", false},
      {"puller", "pull-secret ", false},
      {"puller", std::string("pull-secret\0garbage", 19), false},  // crypt stops at the NUL
      {"puller", "", false},
      {"nobody", "pull-secret", false},
      {"", "pull-secret", false},
      {"Puller", "pull-secret", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.user);
    CAPTURE(c.password);
    CHECK(file->Verify(c.user, c.password) == c.ok);
  }
}

TEST_CASE("HtpasswdFile::Verify: an unknown user costs the same bcrypt as a wrong password") {
  TempDir dir;
  constexpr int kCost = 8;  // about 15 ms a check: far above the noise of a map lookup
  auto file = LoadUsers(dir, kCost);
  auto time_us = [&](const std::string& user) {
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(file->Verify(user, "wrong-password"));
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start)
        .count();
  };
  std::vector<long> known, unknown;
  for (int i = 0; i < 5; ++i) {  // interleaved, so that load from elsewhere hits both alike
    known.push_back(time_us("puller"));
    unknown.push_back(time_us("nobody-" + std::to_string(i)));
  }
  std::sort(known.begin(), known.end());
  std::sort(unknown.begin(), unknown.end());
  CAPTURE(known[2]);
  CAPTURE(unknown[2]);
  CHECK(unknown[2] * 2 >= known[2]);
}

}  // namespace
}  // namespace hubcache
