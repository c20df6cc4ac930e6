#include "config/config.h"

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace hubcache {
namespace {

using std::chrono::milliseconds;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

TEST_CASE("ParseDuration") {
  struct Case {
    std::string text;
    bool valid;
    int64_t ms = 0;
  };
  const std::vector<Case> cases = {
      {"0", true, 0},
      {"1", true, 1000},
      {"90", true, 90'000},
      {"90s", true, 90'000},
      {"0s", true, 0},
      {"250ms", true, 250},
      {"0ms", true, 0},
      {"5m", true, 300'000},
      {"1h", true, 3'600'000},
      {"24h", true, 86'400'000},
      {"007s", true, 7000},
      {"999999999999ms", true, 999'999'999'999},
      {"", false},
      {"s", false},
      {"ms", false},
      {"5x", false},
      {"5sec", false},
      {"5 s", false},
      {" 5s", false},
      {"5s ", false},
      {"5S", false},
      {"5M", false},
      {"5d", false},
      {"5us", false},
      {"-1s", false},
      {"-1", false},
      {"+1s", false},
      {"1.5s", false},
      {"1m30s", true, 90'000},  // Go's compound form, as config.yml files write it
      {"24h0m0s", true, 86'400'000},
      {"1h1m1s1ms", true, 3'661'001},
      {"1h30", false},
      {"30s1h", true, 3'630'000},
      {"1hh", false},
      {"1e3", false},
      {"0x10", false},
      {"1000000000000", false},  // more than 12 digits
      {"abc", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto got = ParseDuration(c.text);
    REQUIRE(got.has_value() == c.valid);
    if (c.valid) {
      CHECK(got->count() == c.ms);
    } else {
      CHECK(got.error().kind == ErrorKind::kConfigInvalid);
      CHECK_FALSE(got.error().message.empty());
    }
  }
}

TEST_CASE("LoadConfig: defaults with no environment and no flags") {
  auto config = LoadConfig({}, {});
  REQUIRE(config.has_value());
  const Config defaults;
  CHECK(config->http_addr == ":5000");
  CHECK(config->upstream_url == "https://registry-1.docker.io");
  CHECK(config->upstream_username.empty());
  CHECK(config->upstream_password.empty());
  CHECK(config->root_dir == defaults.root_dir);
  CHECK(config->log_level == "info");
  CHECK(config->tag_freshness == milliseconds(60'000));
  CHECK(config->upstream_connect_timeout == defaults.upstream_connect_timeout);
  CHECK(config->upstream_stall_timeout == defaults.upstream_stall_timeout);
  CHECK(config->fill_timeout == defaults.fill_timeout);
  CHECK(config->max_connections == defaults.max_connections);
  CHECK(config->keepalive_timeout == defaults.keepalive_timeout);
  CHECK(config->cache_max_size_bytes == 0u);
  CHECK(config->cache_low_watermark == doctest::Approx(0.90));
  CHECK(config->min_free_fraction == doctest::Approx(0.05));
  CHECK(config->access_flush_interval == defaults.access_flush_interval);
  CHECK(config->shutdown_grace == defaults.shutdown_grace);
  CHECK(config->admin_token.empty());
}

TEST_CASE("LoadConfig: each setting from its environment variable") {
  const Env env = {
      {"REGISTRY_HTTP_ADDR", "127.0.0.1:6000"},
      {"REGISTRY_PROXY_REMOTEURL", "http://registry.internal:5000"},
      {"REGISTRY_PROXY_USERNAME", "user"},
      {"REGISTRY_PROXY_PASSWORD", "dckr_pat_secret"},
      {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/var/lib/hubcache"},
      {"REGISTRY_LOG_LEVEL", "debug"},
      {"HUBCACHE_TAG_FRESHNESS", "5m"},
      {"HUBCACHE_UPSTREAM_CONNECT_TIMEOUT", "3s"},
      {"HUBCACHE_UPSTREAM_STALL_TIMEOUT", "45s"},
      {"HUBCACHE_FILL_TIMEOUT", "2h"},
      {"HUBCACHE_MAX_CONNECTIONS", "64"},
      {"HUBCACHE_KEEPALIVE_TIMEOUT", "500ms"},
      {"UNRELATED_VARIABLE", "ignored"},
      {"PATH", "/usr/bin"},
  };
  auto config = LoadConfig(env, {});
  REQUIRE(config.has_value());
  CHECK(config->http_addr == "127.0.0.1:6000");
  CHECK(config->upstream_url == "http://registry.internal:5000");
  CHECK(config->upstream_username == "user");
  CHECK(config->upstream_password == "dckr_pat_secret");
  CHECK(config->root_dir == "/var/lib/hubcache");
  CHECK(config->log_level == "debug");
  CHECK(config->tag_freshness == milliseconds(300'000));
  CHECK(config->upstream_connect_timeout == milliseconds(3'000));
  CHECK(config->upstream_stall_timeout == milliseconds(45'000));
  CHECK(config->fill_timeout == milliseconds(7'200'000));
  CHECK(config->max_connections == 64);
  CHECK(config->keepalive_timeout == milliseconds(500));
}

TEST_CASE("LoadConfig: each setting from its flag, in both forms") {
  const Args separate = {"--addr",
                         ":7000",
                         "--upstream",
                         "https://mirror.example.com",
                         "--upstream-username",
                         "u",
                         "--upstream-password",
                         "p",
                         "--root",
                         "/srv/cache",
                         "--log-level",
                         "warn",
                         "--tag-freshness",
                         "0",
                         "--upstream-connect-timeout",
                         "1s",
                         "--upstream-stall-timeout",
                         "2s",
                         "--fill-timeout",
                         "3m",
                         "--max-connections",
                         "8",
                         "--keepalive-timeout",
                         "4s"};
  const Args joined = {"--addr=:7000",
                       "--upstream=https://mirror.example.com",
                       "--upstream-username=u",
                       "--upstream-password=p",
                       "--root=/srv/cache",
                       "--log-level=warn",
                       "--tag-freshness=0",
                       "--upstream-connect-timeout=1s",
                       "--upstream-stall-timeout=2s",
                       "--fill-timeout=3m",
                       "--max-connections=8",
                       "--keepalive-timeout=4s"};
  for (const auto* args : {&separate, &joined}) {
    CAPTURE(args->front());
    auto config = LoadConfig({}, *args);
    REQUIRE(config.has_value());
    CHECK(config->http_addr == ":7000");
    CHECK(config->upstream_url == "https://mirror.example.com");
    CHECK(config->upstream_username == "u");
    CHECK(config->upstream_password == "p");
    CHECK(config->root_dir == "/srv/cache");
    CHECK(config->log_level == "warn");
    CHECK(config->tag_freshness == milliseconds(0));
    CHECK(config->upstream_connect_timeout == milliseconds(1'000));
    CHECK(config->upstream_stall_timeout == milliseconds(2'000));
    CHECK(config->fill_timeout == milliseconds(180'000));
    CHECK(config->max_connections == 8);
    CHECK(config->keepalive_timeout == milliseconds(4'000));
  }
}

TEST_CASE("LoadConfig: flags win over the environment") {
  const Env env = {{"REGISTRY_HTTP_ADDR", ":6000"},
                   {"HUBCACHE_MAX_CONNECTIONS", "16"},
                   {"REGISTRY_LOG_LEVEL", "error"},
                   {"REGISTRY_PROXY_REMOTEURL", "https://env.example.com"}};
  auto config = LoadConfig(env, {"--addr", ":7000", "--max-connections=32"});
  REQUIRE(config.has_value());
  CHECK(config->http_addr == ":7000");
  CHECK(config->max_connections == 32);
  // Not overridden: the environment's value stays.
  CHECK(config->log_level == "error");
  CHECK(config->upstream_url == "https://env.example.com");
}

TEST_CASE("LoadConfig: a later flag wins over an earlier one") {
  auto config = LoadConfig({}, {"--max-connections", "8", "--max-connections=9"});
  REQUIRE(config.has_value());
  CHECK(config->max_connections == 9);
}

TEST_CASE("LoadConfig: a value that contains '='") {
  auto config = LoadConfig({}, {"--upstream-password=abc==", "--root", "/a=b"});
  REQUIRE(config.has_value());
  CHECK(config->upstream_password == "abc==");
  CHECK(config->root_dir == "/a=b");
}

TEST_CASE("LoadConfig: trailing slashes of the upstream URL are dropped") {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"https://registry-1.docker.io/", "https://registry-1.docker.io"},
      {"https://registry-1.docker.io///", "https://registry-1.docker.io"},
      {"http://localhost:5000/", "http://localhost:5000"},
      {"http://localhost:5000", "http://localhost:5000"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    auto config = LoadConfig({}, {"--upstream", c.in});
    REQUIRE(config.has_value());
    CHECK(config->upstream_url == c.out);
  }
}

TEST_CASE("LoadConfig: listen addresses") {
  struct Case {
    std::string addr;
    bool valid;
  };
  const std::vector<Case> cases = {
      {":5000", true},
      {":0", true},  // any free port (tests)
      {":1", true},
      {":65535", true},
      {"0.0.0.0:5000", true},
      {"127.0.0.1:5000", true},
      {"localhost:443", true},
      {"[::1]:5000", true},
      {"[::]:5000", true},
      {"", false},
      {"5000", false},
      {"localhost", false},
      {":", false},
      {"localhost:", false},
      {":65536", false},
      {":99999", false},
      {":-1", false},
      {":+80", false},
      {":abc", false},
      {":50a0", false},
      {":5000 ", false},
      {": 5000", false},
      {":5000/", false},
      {":99999999999999999999", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.addr);
    auto from_flag = LoadConfig({}, {"--addr", c.addr});
    auto from_env = LoadConfig({{"REGISTRY_HTTP_ADDR", c.addr}}, {});
    REQUIRE(from_flag.has_value() == c.valid);
    REQUIRE(from_env.has_value() == c.valid);
    if (c.valid) {
      CHECK(from_flag->http_addr == c.addr);
      CHECK(from_env->http_addr == c.addr);
    } else {
      CHECK(from_flag.error().kind == ErrorKind::kConfigInvalid);
      // The error names the setting, by flag and by environment variable.
      CHECK(from_flag.error().message.find("--addr") != std::string::npos);
      CHECK(from_env.error().message.find("REGISTRY_HTTP_ADDR") != std::string::npos);
    }
  }
}

TEST_CASE("LoadConfig: upstream URLs") {
  struct Case {
    std::string url;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"https://registry-1.docker.io", true},
      {"http://localhost:5000", true},
      {"http://127.0.0.1:5000", true},
      {"https://mirror.gcr.io", true},
      {"http://r1", true},  // a short host (a compose service name) is still a URL
      {"http://r1:80", true},
      {"", false},
      {"registry-1.docker.io", false},
      {"localhost:5000", false},
      {"ftp://example.com", false},
      {"file:///etc/passwd", false},
      {"HTTPS//registry-1.docker.io", false},
      {"http://", false},
      {"https://", false},
      {"https:///", false},
      {"https:///v2", false},        // no host
      {"http:////////////", false},  // no host
      {" https://registry-1.docker.io", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.url);
    auto config = LoadConfig({}, {"--upstream=" + c.url});
    CHECK(config.has_value() == c.valid);
    if (!c.valid && !config.has_value()) {
      CHECK(config.error().kind == ErrorKind::kConfigInvalid);
      CHECK(config.error().message.find("--upstream") != std::string::npos);
    }
  }
}

TEST_CASE("LoadConfig: connection limit bounds") {
  struct Case {
    std::string value;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"4", true},   {"5", true},    {"256", true},  {"65536", true},
      {"3", false},  {"0", false},   {"-4", false},  {"65537", false},
      {"", false},   {"abc", false}, {"8x", false},  {" 8", false},
      {"8 ", false}, {"+8", false},  {"8.0", false}, {"99999999999", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.value);
    auto from_flag = LoadConfig({}, {"--max-connections", c.value});
    auto from_env = LoadConfig({{"HUBCACHE_MAX_CONNECTIONS", c.value}}, {});
    REQUIRE(from_flag.has_value() == c.valid);
    REQUIRE(from_env.has_value() == c.valid);
    if (c.valid) {
      CHECK(std::to_string(from_flag->max_connections) == c.value);
    } else {
      CHECK(from_flag.error().message.find("--max-connections") != std::string::npos);
      CHECK(from_env.error().message.find("HUBCACHE_MAX_CONNECTIONS") != std::string::npos);
    }
  }
}

TEST_CASE("LoadConfig: bad durations name their setting") {
  struct Case {
    std::string flag;
    std::string env;
    bool zero_ok;
  };
  const std::vector<Case> settings = {
      {"--tag-freshness", "HUBCACHE_TAG_FRESHNESS", true},
      {"--upstream-connect-timeout", "HUBCACHE_UPSTREAM_CONNECT_TIMEOUT", false},
      {"--upstream-stall-timeout", "HUBCACHE_UPSTREAM_STALL_TIMEOUT", false},
      {"--fill-timeout", "HUBCACHE_FILL_TIMEOUT", false},
      {"--keepalive-timeout", "HUBCACHE_KEEPALIVE_TIMEOUT", false},
      {"--proxy-ttl", "REGISTRY_PROXY_TTL", true},
  };
  for (const auto& s : settings) {
    for (const std::string bad : {"5x", "-1s", "", "1.5s", "s", "10 s"}) {
      CAPTURE(s.flag);
      CAPTURE(bad);
      auto from_flag = LoadConfig({}, {s.flag, bad});
      auto from_joined = LoadConfig({}, {s.flag + "=" + bad});
      auto from_env = LoadConfig({{s.env, bad}}, {});
      REQUIRE_FALSE(from_flag.has_value());
      REQUIRE_FALSE(from_joined.has_value());
      REQUIRE_FALSE(from_env.has_value());
      CHECK(from_flag.error().kind == ErrorKind::kConfigInvalid);
      CHECK(from_flag.error().message.find(s.flag) != std::string::npos);
      CHECK(from_env.error().message.find(s.env) != std::string::npos);
    }
    for (const std::string zero : {"0", "0s", "0ms"}) {
      CAPTURE(s.flag);
      CAPTURE(zero);
      CHECK(LoadConfig({}, {s.flag, zero}).has_value() == s.zero_ok);
    }
    CHECK(LoadConfig({}, {s.flag, "1ms"}).has_value());
  }
}

TEST_CASE("LoadConfig: log levels") {
  for (const std::string ok : {"error", "warn", "warning", "info", "debug"}) {
    CAPTURE(ok);
    auto config = LoadConfig({}, {"--log-level", ok});
    REQUIRE(config.has_value());
    CHECK(config->log_level == ok);
  }
  for (const std::string bad : {"", "trace", "INFO", "verbose", "info "}) {
    CAPTURE(bad);
    auto config = LoadConfig({{"REGISTRY_LOG_LEVEL", bad}}, {});
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message.find("REGISTRY_LOG_LEVEL") != std::string::npos);
  }
}

TEST_CASE("LoadConfig: an empty root is refused") {
  auto from_flag = LoadConfig({}, {"--root="});
  REQUIRE_FALSE(from_flag.has_value());
  CHECK(from_flag.error().message.find("--root") != std::string::npos);
  auto from_env = LoadConfig({{"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", ""}}, {});
  REQUIRE_FALSE(from_env.has_value());
}

TEST_CASE("LoadConfig: malformed command lines") {
  struct Case {
    Args args;
    std::string mention;  // the error names this
  };
  const std::vector<Case> cases = {
      {{"--nope"}, "--nope"},
      {{"--nope=1"}, "--nope"},
      {{"--addr", ":5000", "--bogus", "x"}, "--bogus"},
      {{"-addr", ":5000"}, "-addr"},
      {{"addr=:5000"}, "addr=:5000"},
      {{"serve"}, "serve"},
      {{"--ADDR", ":5000"}, "--ADDR"},
      {{"--"}, "--"},
      {{""}, "''"},
      {{"--addr"}, "--addr"},
      {{"--max-connections", "8", "--root"}, "--root"},
      {{"--upstream"}, "--upstream"},
      {{"--addr="}, "--addr"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.args.front());
    CAPTURE(c.args.size());
    auto config = LoadConfig({}, c.args);
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().kind == ErrorKind::kConfigInvalid);
    CHECK(config.error().message.find(c.mention) != std::string::npos);
    CHECK(config.error().message.find('\n') == std::string::npos);
  }
}

TEST_CASE("Settings lists every flag with its environment name") {
  const auto& settings = Settings();
  std::set<std::string> flags;
  std::set<std::string> envs;
  for (const auto& s : settings) {
    REQUIRE(s.flag != nullptr);
    REQUIRE(s.env != nullptr);
    REQUIRE(s.help != nullptr);
    const std::string flag = s.flag;
    CAPTURE(flag);
    CHECK(std::string(s.flag).rfind("--", 0) == 0);
    CHECK(std::string(s.help).size() > 0u);
    flags.insert(s.flag);
    envs.insert(s.env);
  }
  CHECK(flags.size() == settings.size());
  CHECK(envs.size() == settings.size());
  for (const char* env :
       {"REGISTRY_HTTP_ADDR", "REGISTRY_PROXY_REMOTEURL", "REGISTRY_PROXY_USERNAME",
        "REGISTRY_PROXY_PASSWORD", "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
        "REGISTRY_LOG_LEVEL", "HUBCACHE_TAG_FRESHNESS", "HUBCACHE_UPSTREAM_CONNECT_TIMEOUT",
        "HUBCACHE_UPSTREAM_STALL_TIMEOUT", "HUBCACHE_FILL_TIMEOUT", "HUBCACHE_MAX_CONNECTIONS",
        "HUBCACHE_KEEPALIVE_TIMEOUT", "HUBCACHE_CACHE_MAX_SIZE", "HUBCACHE_CACHE_LOW_WATERMARK",
        "HUBCACHE_MIN_FREE", "HUBCACHE_ACCESS_FLUSH_INTERVAL", "HUBCACHE_SHUTDOWN_GRACE",
        "HUBCACHE_ADMIN_TOKEN"}) {
    const std::string name = env;
    CAPTURE(name);
    CHECK(envs.count(name) == 1u);
  }
  // Every listed flag is accepted by LoadConfig with a typical value.
  const std::map<std::string, std::string> typical = {
      {"--addr", ":5000"},
      {"--upstream", "https://registry-1.docker.io"},
      {"--upstream-username", "user"},
      {"--upstream-password", "secret"},
      {"--root", "/var/lib/hubcache"},
      {"--log-level", "info"},
      {"--tag-freshness", "60s"},
      {"--upstream-connect-timeout", "10s"},
      {"--upstream-stall-timeout", "30s"},
      {"--fill-timeout", "1h"},
      {"--max-connections", "256"},
      {"--keepalive-timeout", "10s"},
      {"--cache-max-size", "50GiB"},
      {"--cache-low-watermark", "90%"},
      {"--min-free", "5%"},
      {"--access-flush-interval", "5s"},
      {"--shutdown-grace", "30s"},
      {"--admin-token", "0123456789abcdef"},
  };
  for (const auto& s : settings) {
    const std::string flag = s.flag;
    CAPTURE(flag);
    auto it = typical.find(flag);
    if (it == typical.end()) continue;  // a setting newer than this test
    auto config = LoadConfig({}, {flag, it->second});
    CHECK(config.has_value());
  }
}

TEST_CASE("ParseByteSize") {
  constexpr uint64_t kKi = 1024;
  struct Case {
    std::string text;
    bool valid;
    uint64_t bytes = 0;
  };
  const std::vector<Case> cases = {
      {"0", true, 0},
      {"1024", true, 1024},
      {"1024B", true, 1024},
      {"1K", true, kKi},
      {"1KB", true, 1000},
      {"1KiB", true, kKi},
      {"500MB", true, 500'000'000},
      {"1M", true, kKi * kKi},
      {"2MiB", true, 2 * kKi * kKi},
      {"50GiB", true, 50 * kKi * kKi * kKi},
      {"50G", true, 50 * kKi * kKi * kKi},
      {"50GB", true, 50'000'000'000},
      {"1.5G", true, 3 * kKi * kKi * kKi / 2},
      {"0.5KiB", true, 512},
      {"2TB", true, 2'000'000'000'000},
      {"1TiB", true, kKi * kKi * kKi * kKi},
      {"1T", true, kKi * kKi * kKi * kKi},
      {"10 GiB", true, 10 * kKi * kKi * kKi},
      {"", false},
      {"GiB", false},
      {"B", false},
      {".5G", false},
      {"1..5G", false},
      {"1.2.3G", false},
      {"5XB", false},
      {"5gib", false},
      {"5 g", false},
      {"5PB", false},
      {"-1G", false},
      {"+1G", false},
      {"1e9", false},
      {"0x10", false},
      {" 5G", false},
      {"99999999999999999999TB", false},  // does not fit
      {"123456789012345678901", false},   // more than 20 digits
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto got = ParseByteSize(c.text);
    CHECK(got.has_value() == c.valid);
    if (c.valid && got.has_value()) CHECK(*got == c.bytes);
    if (!c.valid && !got.has_value()) CHECK(got.error().kind == ErrorKind::kConfigInvalid);
  }
}

TEST_CASE("ParseFraction") {
  struct Case {
    std::string text;
    bool valid;
    double value = 0;
  };
  const std::vector<Case> cases = {
      {"90%", true, 0.9},     {"0.9", true, 0.9}, {"5%", true, 0.05}, {"0.05", true, 0.05},
      {"0", true, 0},         {"0%", true, 0},    {"1", true, 1},     {"100%", true, 1},
      {"12.5%", true, 0.125}, {"1.0", true, 1},   {"", false},        {"%", false},
      {"101%", false},        {"1.1", false},     {"2", false},       {"-0.1", false},
      {"-5%", false},         {"abc", false},     {"90 %", false},    {" 90%", false},
      {".5", false},          {"5%%", false},     {"1e-1", false},    {"0.5.5", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto got = ParseFraction(c.text);
    CHECK(got.has_value() == c.valid);
    if (c.valid && got.has_value()) CHECK(*got == doctest::Approx(c.value));
  }
}

TEST_CASE("LoadConfig: cache size and eviction settings") {
  struct Case {
    Args args;
    bool valid;
  };
  const std::vector<Case> cases = {
      {{"--cache-max-size", "50GiB"}, true},
      {{"--cache-max-size=0"}, true},
      {{"--cache-max-size", "lots"}, false},
      {{"--cache-low-watermark", "90%"}, true},
      {{"--cache-low-watermark", "1"}, true},
      {{"--cache-low-watermark", "0"}, false},  // evicting to nothing
      {{"--cache-low-watermark", "0%"}, false},
      {{"--cache-low-watermark", "150%"}, false},
      {{"--min-free", "0"}, true},
      {{"--min-free", "5%"}, true},
      {{"--min-free", "100%"}, false},  // could never be met
      {{"--min-free", "1"}, false},
      {{"--access-flush-interval", "1s"}, true},
      {{"--access-flush-interval", "0"}, false},
      {{"--shutdown-grace", "0"}, true},
      {{"--shutdown-grace", "5x"}, false},
      {{"--admin-token", ""}, true},  // admin API off
      {{"--admin-token", "0123456789abcdef"}, true},
      {{"--admin-token", "0123456789abcde"}, false},  // 15 characters: too guessable
  };
  for (const auto& c : cases) {
    CAPTURE(c.args.front());
    CAPTURE(c.args.back());
    auto config = LoadConfig({}, c.args);
    CHECK(config.has_value() == c.valid);
    if (!c.valid && !config.has_value()) {
      std::string flag = c.args.front().substr(0, c.args.front().find('='));
      CHECK(config.error().message.find(flag) != std::string::npos);
    }
  }
  auto config = LoadConfig({{"HUBCACHE_CACHE_MAX_SIZE", "2GiB"},
                            {"HUBCACHE_CACHE_LOW_WATERMARK", "80%"},
                            {"HUBCACHE_MIN_FREE", "0.1"},
                            {"HUBCACHE_ACCESS_FLUSH_INTERVAL", "250ms"},
                            {"HUBCACHE_SHUTDOWN_GRACE", "1m"}},
                           {"--cache-max-size", "3GiB"});
  REQUIRE(config.has_value());
  CHECK(config->cache_max_size_bytes == uint64_t{3} << 30);
  CHECK(config->cache_low_watermark == doctest::Approx(0.8));
  CHECK(config->min_free_fraction == doctest::Approx(0.1));
  CHECK(config->access_flush_interval == milliseconds(250));
  CHECK(config->shutdown_grace == milliseconds(60'000));
}

TEST_CASE("LoadConfig: S3 storage settings") {
  auto defaults = LoadConfig({}, {});
  REQUIRE(defaults.has_value());
  CHECK(defaults->storage == "filesystem");
  CHECK(defaults->s3_region == "us-east-1");
  CHECK(defaults->s3_secure);
  CHECK_FALSE(defaults->s3_force_path_style);
  CHECK(defaults->s3_chunk_size_bytes == uint64_t{10} << 20);
  CHECK(defaults->storage_redirect_disable);

  auto config = LoadConfig({{"REGISTRY_STORAGE", "s3"},
                            {"REGISTRY_STORAGE_S3_BUCKET", "hubcache"},
                            {"REGISTRY_STORAGE_S3_REGION", "eu-west-1"},
                            {"REGISTRY_STORAGE_S3_REGIONENDPOINT", "http://127.0.0.1:9000"},
                            {"REGISTRY_STORAGE_S3_ACCESSKEY", "ak"},
                            {"REGISTRY_STORAGE_S3_SECRETKEY", "sk"},
                            {"REGISTRY_STORAGE_S3_SESSIONTOKEN", "tok"},
                            {"REGISTRY_STORAGE_S3_ROOTDIRECTORY", "/registry/"},
                            {"REGISTRY_STORAGE_S3_SECURE", "false"},
                            {"REGISTRY_STORAGE_S3_CHUNKSIZE", "5MiB"},
                            {"REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "true"},
                            {"REGISTRY_STORAGE_REDIRECT_DISABLE", "false"},
                            {"AWS_ACCESS_KEY_ID", "not-this"},
                            {"AWS_REGION", "not-this-either"}},
                           {});
  REQUIRE(config.has_value());
  CHECK(config->storage == "s3");
  CHECK(config->s3_bucket == "hubcache");
  CHECK(config->s3_region == "eu-west-1");
  CHECK(config->s3_region_endpoint == "http://127.0.0.1:9000");
  CHECK(config->s3_access_key == "ak");
  CHECK(config->s3_secret_key == "sk");
  CHECK(config->s3_session_token == "tok");
  CHECK(config->s3_root_directory == "/registry/");
  CHECK_FALSE(config->s3_secure);
  CHECK(config->s3_chunk_size_bytes == uint64_t{5} << 20);
  CHECK(config->s3_force_path_style);
  CHECK_FALSE(config->storage_redirect_disable);

  auto flags = LoadConfig({{"REGISTRY_STORAGE_S3_BUCKET", "from-env"}},
                          {"--storage", "s3", "--s3-bucket=b2", "--s3-access-key", "a",
                           "--s3-secret-key", "s", "--s3-region", "ap-south-1", "--s3-chunk-size",
                           "64MiB", "--storage-redirect-disable", "false"});
  REQUIRE(flags.has_value());
  CHECK(flags->s3_bucket == "b2");
  CHECK(flags->s3_region == "ap-south-1");
  CHECK(flags->s3_chunk_size_bytes == uint64_t{64} << 20);
  CHECK_FALSE(flags->storage_redirect_disable);
}

TEST_CASE("LoadConfig: S3 settings that are refused name their setting") {
  struct Case {
    Env env;
    std::string named;  // in the one-line error
  };
  const Env s3 = {{"REGISTRY_STORAGE", "s3"},
                  {"REGISTRY_STORAGE_S3_BUCKET", "b"},
                  {"REGISTRY_STORAGE_S3_ACCESSKEY", "ak"},
                  {"REGISTRY_STORAGE_S3_SECRETKEY", "sk"}};
  auto with = [&](Env changes, const std::vector<std::string>& drop = {}) {
    Env env = s3;
    for (const auto& d : drop) env.erase(d);
    for (auto& [k, v] : changes) env[k] = v;
    return env;
  };
  const std::vector<Case> cases = {
      {{{"REGISTRY_STORAGE", "azure"}}, "REGISTRY_STORAGE"},
      {{{"REGISTRY_STORAGE", "S3"}}, "REGISTRY_STORAGE"},
      {{{"REGISTRY_STORAGE", ""}}, "REGISTRY_STORAGE"},
      {with({}, {"REGISTRY_STORAGE_S3_BUCKET"}), "REGISTRY_STORAGE_S3_BUCKET"},
      {with({{"REGISTRY_STORAGE_S3_BUCKET", ""}}), "REGISTRY_STORAGE_S3_BUCKET"},
      {with({{"REGISTRY_STORAGE_S3_BUCKET", "a/b"}}), "REGISTRY_STORAGE_S3_BUCKET"},
      {with({}, {"REGISTRY_STORAGE_S3_SECRETKEY"}), "REGISTRY_STORAGE_S3_SECRETKEY"},
      {with({}, {"REGISTRY_STORAGE_S3_ACCESSKEY", "REGISTRY_STORAGE_S3_SECRETKEY"}),
       "REGISTRY_STORAGE_S3_ACCESSKEY"},
      // A pair is never mixed: the access key set here, the secret in AWS_*.
      {with({{"AWS_SECRET_ACCESS_KEY", "sk"}}, {"REGISTRY_STORAGE_S3_SECRETKEY"}),
       "REGISTRY_STORAGE_S3_SECRETKEY"},
      {{{"REGISTRY_STORAGE_S3_CHUNKSIZE", "4MiB"}}, "REGISTRY_STORAGE_S3_CHUNKSIZE"},
      {{{"REGISTRY_STORAGE_S3_CHUNKSIZE", "5242879"}}, "REGISTRY_STORAGE_S3_CHUNKSIZE"},
      {{{"REGISTRY_STORAGE_S3_CHUNKSIZE", "6GiB"}}, "REGISTRY_STORAGE_S3_CHUNKSIZE"},
      {{{"REGISTRY_STORAGE_S3_CHUNKSIZE", "lots"}}, "REGISTRY_STORAGE_S3_CHUNKSIZE"},
      {{{"REGISTRY_STORAGE_S3_SECURE", "yes"}}, "REGISTRY_STORAGE_S3_SECURE"},
      {{{"REGISTRY_STORAGE_S3_FORCEPATHSTYLE", "1"}}, "REGISTRY_STORAGE_S3_FORCEPATHSTYLE"},
      {{{"REGISTRY_STORAGE_REDIRECT_DISABLE", "no"}}, "REGISTRY_STORAGE_REDIRECT_DISABLE"},
      {{{"REGISTRY_STORAGE_S3_REGION", ""}}, "REGISTRY_STORAGE_S3_REGION"},
      {{{"REGISTRY_STORAGE_S3_REGION", "us:east"}}, "REGISTRY_STORAGE_S3_REGION"},
      {{{"AWS_REGION", "eu west"}}, "AWS_REGION"},
      {{{"REGISTRY_STORAGE_S3_REGIONENDPOINT", "ftp://x"}}, "REGISTRY_STORAGE_S3_REGIONENDPOINT"},
      {{{"REGISTRY_STORAGE_S3_REGIONENDPOINT", "http://"}}, "REGISTRY_STORAGE_S3_REGIONENDPOINT"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.named);
    auto config = LoadConfig(c.env, {});
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message.find(c.named) != std::string::npos);
    CHECK(config.error().message.find('\n') == std::string::npos);
  }
  const std::vector<Env> accepted = {
      with({{"REGISTRY_STORAGE_S3_CHUNKSIZE", "5MiB"}}),
      with({{"REGISTRY_STORAGE_S3_CHUNKSIZE", "5GiB"}}),
      with({{"REGISTRY_STORAGE_S3_REGIONENDPOINT", "minio.internal:9000"}}),
      with({{"REGISTRY_STORAGE_S3_REGIONENDPOINT", "https://s3.example"}}),
      with({{"REGISTRY_STORAGE", "filesystem"}}, {"REGISTRY_STORAGE_S3_BUCKET"}),
      // S3 settings without REGISTRY_STORAGE=s3 are checked but need no bucket.
      {{"REGISTRY_STORAGE_S3_REGION", "eu-west-1"}},
  };
  for (const auto& env : accepted) {
    auto config = LoadConfig(env, {});
    CHECK(config.has_value());
  }
}

TEST_CASE("LoadConfig: S3 keys and region from the AWS variables") {
  struct Case {
    Env env;
    std::string access, secret, token, region;
  };
  const std::vector<Case> cases = {
      {{{"AWS_ACCESS_KEY_ID", "a"}, {"AWS_SECRET_ACCESS_KEY", "s"}, {"AWS_SESSION_TOKEN", "t"}},
       "a",
       "s",
       "t",
       "us-east-1"},
      {{{"AWS_ACCESS_KEY_ID", "a"},
        {"AWS_SECRET_ACCESS_KEY", "s"},
        {"REGISTRY_STORAGE_S3_ACCESSKEY", "ra"},
        {"REGISTRY_STORAGE_S3_SECRETKEY", "rs"}},
       "ra",
       "rs",
       "",
       "us-east-1"},
      // The token set here stays with AWS keys.
      {{{"AWS_ACCESS_KEY_ID", "a"},
        {"AWS_SECRET_ACCESS_KEY", "s"},
        {"AWS_SESSION_TOKEN", "t"},
        {"REGISTRY_STORAGE_S3_SESSIONTOKEN", "rt"}},
       "a",
       "s",
       "rt",
       "us-east-1"},
      {{{"AWS_DEFAULT_REGION", "eu-west-1"}}, "", "", "", "eu-west-1"},
      {{{"AWS_DEFAULT_REGION", "eu-west-1"}, {"AWS_REGION", "eu-central-1"}},
       "",
       "",
       "",
       "eu-central-1"},
      {{{"AWS_REGION", "eu-central-1"}, {"REGISTRY_STORAGE_S3_REGION", "ap-south-1"}},
       "",
       "",
       "",
       "ap-south-1"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.region);
    auto config = LoadConfig(c.env, {});
    REQUIRE(config.has_value());
    CHECK(config->s3_access_key == c.access);
    CHECK(config->s3_secret_key == c.secret);
    CHECK(config->s3_session_token == c.token);
    CHECK(config->s3_region == c.region);
  }
  auto flag = LoadConfig({{"AWS_REGION", "eu-central-1"}}, {"--s3-region", "us-west-2"});
  REQUIRE(flag.has_value());
  CHECK(flag->s3_region == "us-west-2");
}

TEST_CASE("LoadConfig: prefetch settings") {
  auto defaults = LoadConfig({}, {});
  REQUIRE(defaults.has_value());
  CHECK(defaults->prefetch == "auto");
  CHECK(defaults->PrefetchEnabled());  // filesystem storage
  CHECK(defaults->prefetch_max_fills == 6);
  CHECK(defaults->prefetch_max_bytes == uint64_t{512} << 20);

  struct Case {
    std::string storage;
    std::string prefetch;
    bool enabled;
  };
  const std::vector<Case> cases = {
      {"filesystem", "auto", true}, {"filesystem", "false", false}, {"filesystem", "true", true},
      {"s3", "auto", false},        {"s3", "true", true},           {"s3", "false", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.storage);
    CAPTURE(c.prefetch);
    Config config;
    config.storage = c.storage;
    config.prefetch = c.prefetch;
    CHECK(config.PrefetchEnabled() == c.enabled);
  }

  auto set = LoadConfig({{"HUBCACHE_PREFETCH", "false"},
                         {"HUBCACHE_PREFETCH_MAX_FILLS", "2"},
                         {"HUBCACHE_PREFETCH_MAX_BYTES", "64MiB"}},
                        {});
  REQUIRE(set.has_value());
  CHECK_FALSE(set->PrefetchEnabled());
  CHECK(set->prefetch_max_fills == 2);
  CHECK(set->prefetch_max_bytes == uint64_t{64} << 20);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"HUBCACHE_PREFETCH", "yes"},         {"HUBCACHE_PREFETCH", ""},
      {"HUBCACHE_PREFETCH_MAX_FILLS", "0"}, {"HUBCACHE_PREFETCH_MAX_FILLS", "65"},
      {"HUBCACHE_PREFETCH_MAX_BYTES", "0"}, {"HUBCACHE_PREFETCH_MAX_BYTES", "lots"},
  };
  for (const auto& [name, value] : refused) {
    CAPTURE(name);
    CAPTURE(value);
    auto config = LoadConfig({{name, value}}, {});
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message.find(name) != std::string::npos);
    CHECK(config.error().message.find('\n') == std::string::npos);
  }
}

TEST_CASE("LoadConfig: the S3 cache cap") {
  auto defaults = LoadConfig({}, {});
  REQUIRE(defaults.has_value());
  CHECK(defaults->l2_max_size_bytes == 0);  // none: the bucket's lifecycle rules
  CHECK(defaults->l2_trim_interval == milliseconds(600'000));
  auto set =
      LoadConfig({{"HUBCACHE_L2_MAX_SIZE", "2TiB"}, {"HUBCACHE_L2_TRIM_INTERVAL", "1m"}}, {});
  REQUIRE(set.has_value());
  CHECK(set->l2_max_size_bytes == uint64_t{2} << 40);
  CHECK(set->l2_trim_interval == milliseconds(60'000));
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"HUBCACHE_L2_MAX_SIZE", "lots"},
                                                        {"HUBCACHE_L2_MAX_SIZE", "-1GiB"},
                                                        {"HUBCACHE_L2_TRIM_INTERVAL", "0"},
                                                        {"HUBCACHE_L2_TRIM_INTERVAL", "soon"}}) {
    CAPTURE(name);
    CAPTURE(value);
    auto config = LoadConfig({{name, value}}, {});
    REQUIRE_FALSE(config.has_value());
    CHECK(config.error().message.find(name) != std::string::npos);
  }
}

}  // namespace
}  // namespace hubcache
