#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace hubcache {
namespace {

using Env = std::map<std::string, std::string>;

std::map<std::string, SettingValue> ByEnv(const std::vector<SettingValue>& rows) {
  std::map<std::string, SettingValue> out;
  for (const auto& r : rows) out.emplace(r.info.env, r);
  return out;
}

TEST_CASE("Describe has one row per setting, in the order of Settings()") {
  auto rows = Describe(Config{});
  REQUIRE(rows.size() == Settings().size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(std::string(rows[i].info.env) == Settings()[i].env);
    CHECK(rows[i].value == rows[i].default_value);
  }
}

TEST_CASE("Describe writes values as the flags take them") {
  struct Case {
    std::string env;
    std::string given;
    std::string shown;
  };
  const std::vector<Case> cases = {
      {"HUBCACHE_TAG_FRESHNESS", "90", "90s"},
      {"HUBCACHE_TAG_FRESHNESS", "0", "0s"},
      {"HUBCACHE_TAG_FRESHNESS", "1500ms", "1500ms"},
      {"HUBCACHE_TAG_FRESHNESS", "120s", "2m"},
      {"HUBCACHE_FILL_TIMEOUT", "24h", "24h"},
      {"HUBCACHE_CACHE_MAX_SIZE", "0", "0"},
      {"HUBCACHE_CACHE_MAX_SIZE", "50GiB", "50GiB"},
      {"HUBCACHE_CACHE_MAX_SIZE", "1.5G", "1536MiB"},
      {"HUBCACHE_CACHE_MAX_SIZE", "500MB", "500MB"},
      {"HUBCACHE_CACHE_MAX_SIZE", "1001", "1001"},
      {"HUBCACHE_CACHE_LOW_WATERMARK", "0.9", "90%"},
      {"HUBCACHE_MIN_FREE", "2.5%", "2.5%"},
      {"HUBCACHE_MIN_FREE", "0", "0%"},
      {"HUBCACHE_MAX_CONNECTIONS", "32", "32"},
      {"REGISTRY_HTTP_ADDR", "127.0.0.1:7000", "127.0.0.1:7000"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.env);
    CAPTURE(c.given);
    auto config = LoadConfig(Env{{c.env, c.given}}, {});
    REQUIRE(config.has_value());
    auto row = ByEnv(Describe(*config)).at(c.env);
    CHECK(row.value == c.shown);
    // What is shown loads back to the same value.
    auto again = LoadConfig(Env{{c.env, row.value}}, {});
    REQUIRE(again.has_value());
    CHECK(ByEnv(Describe(*again)).at(c.env).value == c.shown);
  }
}

TEST_CASE("Describe masks secrets that are set, and only those") {
  const std::string password = "correct-horse-battery-staple";
  auto config = LoadConfig(Env{{"REGISTRY_PROXY_PASSWORD", password},
                               {"REGISTRY_PROXY_USERNAME", "hubuser"},
                               {"HUBCACHE_ADMIN_TOKEN", password + "-admin"}},
                           {});
  REQUIRE(config.has_value());
  auto rows = Describe(*config);
  std::set<std::string> secret;
  for (const auto& r : rows) {
    CHECK(r.value.find(password) == std::string::npos);
    if (r.secret) secret.insert(r.info.env);
  }
  auto by = ByEnv(rows);
  CHECK(by.at("REGISTRY_PROXY_PASSWORD").value == kMaskedValue);
  CHECK(by.at("HUBCACHE_ADMIN_TOKEN").value == kMaskedValue);
  CHECK(by.at("REGISTRY_PROXY_USERNAME").value == "hubuser");
  CHECK(secret.count("REGISTRY_PROXY_PASSWORD") == 1);
  CHECK(secret.count("HUBCACHE_ADMIN_TOKEN") == 1);
  CHECK(ByEnv(Describe(Config{})).at("REGISTRY_PROXY_PASSWORD").value.empty());
}

TEST_CASE("Describe masks the S3 secret key and session token, also from AWS_* variables") {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  for (const Env& env : {Env{{"REGISTRY_STORAGE_S3_ACCESSKEY", "AKIAEXAMPLE"},
                             {"REGISTRY_STORAGE_S3_SECRETKEY", secret},
                             {"REGISTRY_STORAGE_S3_SESSIONTOKEN", secret + "-token"}},
                         Env{{"AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"},
                             {"AWS_SECRET_ACCESS_KEY", secret},
                             {"AWS_SESSION_TOKEN", secret + "-token"}}}) {
    auto config = LoadConfig(env, {});
    REQUIRE(config.has_value());
    auto rows = Describe(*config);
    for (const auto& r : rows) CHECK(r.value.find(secret) == std::string::npos);
    auto by = ByEnv(rows);
    CHECK(by.at("REGISTRY_STORAGE_S3_SECRETKEY").value == kMaskedValue);
    CHECK(by.at("REGISTRY_STORAGE_S3_SESSIONTOKEN").value == kMaskedValue);
    CHECK(by.at("REGISTRY_STORAGE_S3_SECRETKEY").secret);
    CHECK(by.at("REGISTRY_STORAGE_S3_ACCESSKEY").value == "AKIAEXAMPLE");
  }
}

}  // namespace
}  // namespace hubcache
