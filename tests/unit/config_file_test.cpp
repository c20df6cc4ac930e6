// The CNCF registry's config.yml: what each key becomes, what is ignored, what
// is refused (with file, line and key), and the precedence file < environment
// < flags that LoadConfig applies.

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/config_file.h"
#include "temp_dir.h"

namespace hubcache {
namespace {

using Env = std::map<std::string, std::string>;

SettingNames Names() {
  SettingNames names;
  for (const auto& s : Settings()) names.all.insert(s.env);
  names.lists = {"REGISTRY_HTTP_TLS_CLIENTCAS", "HUBCACHE_HOSTED"};
  return names;
}

std::map<std::string, std::string> Taken(const ConfigFile& file) {
  std::map<std::string, std::string> out;
  for (const auto& v : file.values) out[v.env] = v.value;
  return out;
}

// The seed's registry:2 configuration, as operators keep it.
const char* kCncfConfig = R"(version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
  tls:
    certificate: /certs/domain.crt
    key: /certs/domain.key
    clientcas:
      - /certs/ca1.pem
      - /certs/ca2.pem
auth:
  htpasswd:
    realm: basic-realm
    path: /auth/htpasswd
proxy:
  remoteurl: https://registry-1.docker.io
  ttl: 168h
health:
  storagedriver:
    enabled: true
)";

TEST_CASE("config.yml: each key becomes the setting its REGISTRY_ variable names") {
  auto file = ParseConfigText(kCncfConfig, "config.yml", Names());
  REQUIRE(file.has_value());
  auto taken = Taken(*file);
  CHECK(taken == std::map<std::string, std::string>{
                     {"REGISTRY_LOG_LEVEL", "info"},
                     {"REGISTRY_STORAGE", "filesystem"},
                     {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/var/lib/registry"},
                     {"REGISTRY_STORAGE_DELETE_ENABLED", "true"},
                     {"REGISTRY_HTTP_ADDR", ":5000"},
                     {"REGISTRY_HTTP_HEADERS_X-Content-Type-Options", "[\"nosniff\"]"},
                     {"REGISTRY_HTTP_TLS_CERTIFICATE", "/certs/domain.crt"},
                     {"REGISTRY_HTTP_TLS_KEY", "/certs/domain.key"},
                     {"REGISTRY_HTTP_TLS_CLIENTCAS", "/certs/ca1.pem,/certs/ca2.pem"},
                     {"REGISTRY_AUTH", "htpasswd"},
                     {"REGISTRY_AUTH_HTPASSWD_REALM", "basic-realm"},
                     {"REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"},
                     {"REGISTRY_PROXY_REMOTEURL", "https://registry-1.docker.io"},
                     {"REGISTRY_PROXY_TTL", "168h"},
                 });
  std::vector<std::string> ignored;
  for (const auto& k : file->ignored) ignored.push_back(k.key + "@" + std::to_string(k.line));
  CHECK(ignored == std::vector<std::string>{"log.fields@4", "storage.cache@7", "health@30"});
  // Lines are the keys' own, 1-based.
  for (const auto& v : file->values) {
    if (v.env == "REGISTRY_HTTP_ADDR") CHECK(v.line == 14);
    if (v.env == "REGISTRY_AUTH") CHECK(v.line == 24);
  }
}

TEST_CASE("config.yml: the hubcache section and its upstreams") {
  auto file = ParseConfigText(R"(
hubcache:
  cache_max_size: 50GiB
  hosted: ["team/*", ci/*]
  no_such_thing: 3
  upstreams:
    - name: ghcr.io
      url: https://ghcr.io
      allow: [owner/*]
      shade: blue
    - name: quay.io
      url: https://quay.io
)",
                              "c.yml", Names());
  REQUIRE(file.has_value());
  auto taken = Taken(*file);
  CHECK(taken["HUBCACHE_CACHE_MAX_SIZE"] == "50GiB");
  CHECK(taken["HUBCACHE_HOSTED"] == "team/*,ci/*");
  REQUIRE(file->upstreams.size() == 2);
  CHECK(file->upstreams[0].line == 7);
  REQUIRE(file->upstreams[0].fields.size() == 3);
  CHECK(file->upstreams[0].fields[2].env == "allow");
  CHECK(file->upstreams[0].fields[2].value == "owner/*");
  REQUIRE(file->ignored.size() == 2);
  CHECK(file->ignored[0].key == "hubcache.no_such_thing");
  CHECK(file->ignored[1].key == "hubcache.upstreams[0].shade");
}

TEST_CASE("config.yml: aliases and the access log switch") {
  auto file = ParseConfigText(
      "http:\n  draintimeout: 45s\nlog:\n  accesslog:\n    disabled: true\n", "c.yml", Names());
  REQUIRE(file.has_value());
  auto taken = Taken(*file);
  CHECK(taken["HUBCACHE_SHUTDOWN_GRACE"] == "45s");
  CHECK(taken["HUBCACHE_ACCESS_LOG"] == "off");
  auto on = ParseConfigText("log:\n  accesslog:\n    disabled: false\n", "c.yml", Names());
  REQUIRE(on.has_value());
  CHECK(on->values.empty());
}

TEST_CASE("config.yml: an empty file or an empty section sets nothing") {
  for (const char* text : {"", "# nothing\n", "storage:\n", "http:\n  addr:\n"}) {
    CAPTURE(text);
    auto file = ParseConfigText(text, "c.yml", Names());
    REQUIRE(file.has_value());
    CHECK(file->values.empty());
  }
}

TEST_CASE("config.yml: what is refused names the file, the line and the key") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"http:\n  addr: [\":5000\"\n", "c.yml:3: not valid YAML"},
      {"http:\n  addr: :5000\n  addr: :6000\n", "c.yml:3: http.addr: duplicate key"},
      {"http:\n  addr: [a, b]\n", "c.yml:2: http.addr: expected one value, not a list"},
      {"http:\n  addr:\n    port: 1\n", "c.yml:2: http.addr: expected a value, not a mapping"},
      {"storage:\n  azure:\n    accountname: x\n", "c.yml:2: storage.azure: storage driver"},
      {"storage:\n  inmemory:\n", "c.yml:2: storage.inmemory: storage driver"},
      {"storage:\n  filesystem:\n    rootdirectory: /a\n  s3:\n    bucket: b\n",
       "c.yml:4: storage.s3: more than one storage driver"},
      {"auth:\n  token:\n    realm: x\n", "c.yml:2: auth.token: auth type 'token'"},
      {"auth:\n  silly:\n", "c.yml:2: auth.silly: auth type 'silly'"},
      {"http:\n  headers:\n    \"Bad Name\": [x]\n", "c.yml:3: http.headers.Bad Name:"},
      {"- a\n- b\n", "c.yml:1: (top): expected a mapping"},
      {"hubcache:\n  upstreams:\n    name: x\n", "c.yml:2: hubcache.upstreams: expected a list"},
      {"hubcache:\n  hosted: [[a]]\n", "c.yml:2: hubcache.hosted: list elements must be values"},
      {"hubcache:\n  hosted: ['a,b']\n", "hubcache.hosted: a list element cannot contain ','"},
      {"log:\n  accesslog:\n    disabled: maybe\n", "c.yml:3: log.accesslog.disabled"},
      {"? [a]\n: 1\n", "c.yml:1: (top): a key must be a plain name"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto file = ParseConfigText(c.text, "c.yml", Names());
    REQUIRE_FALSE(file.has_value());
    CHECK(file.error().message.find(c.message) != std::string::npos);
    CHECK(file.error().message.find('\n') == std::string::npos);
  }
}

// A file written to a fresh directory, named by REGISTRY_CONFIGURATION_PATH or
// given on the command line.
struct ConfigFixture {
  testing::TempDir dir;
  std::string Write(const std::string& text) {
    std::string path = (dir.path() / "config.yml").string();
    std::ofstream(path) << text;
    return path;
  }
};

TEST_CASE_FIXTURE(ConfigFixture, "LoadConfig: the file, then the environment, then flags") {
  std::string path = Write(
      "http:\n  addr: :6000\nlog:\n  level: debug\nproxy:\n  remoteurl: https://file.example\n"
      "storage:\n  filesystem:\n    rootdirectory: /from/file\n");
  auto only_file = LoadConfig({}, {path});
  REQUIRE(only_file.has_value());
  CHECK(only_file->http_addr == ":6000");
  CHECK(only_file->log_level == "debug");
  CHECK(only_file->upstream_url == "https://file.example");
  CHECK(only_file->root_dir == "/from/file");
  CHECK(only_file->config_file == path);

  auto env_wins = LoadConfig({{"REGISTRY_HTTP_ADDR", ":7000"}, {kConfigPathEnv, path}}, {});
  REQUIRE(env_wins.has_value());
  CHECK(env_wins->http_addr == ":7000");
  CHECK(env_wins->log_level == "debug");

  auto flag_wins =
      LoadConfig({{"REGISTRY_HTTP_ADDR", ":7000"}}, {"--addr", ":8000", path, "--log-level=warn"});
  REQUIRE(flag_wins.has_value());
  CHECK(flag_wins->http_addr == ":8000");
  CHECK(flag_wins->log_level == "warn");
  CHECK(flag_wins->root_dir == "/from/file");

  // The command line's file wins over the variable's.
  auto other = Write("http:\n  addr: :6000\n");
  auto arg_file = LoadConfig({{kConfigPathEnv, "/nonexistent.yml"}}, {other});
  REQUIRE(arg_file.has_value());
  CHECK(arg_file->http_addr == ":6000");
}

TEST_CASE_FIXTURE(ConfigFixture, "LoadConfig: a bad value from the file names its line and key") {
  std::string path = Write("http:\n  addr: :6000\n  draintimeout: soon\n");
  auto config = LoadConfig({}, {path});
  REQUIRE_FALSE(config.has_value());
  CHECK(config.error().message.find(path + ":3: http.draintimeout: ") == 0);
  // The environment's value replaces the file's, and with it its error.
  CHECK(LoadConfig({{"HUBCACHE_SHUTDOWN_GRACE", "5s"}}, {path}).has_value());
  CHECK_FALSE(LoadConfig({}, {path, "second.yml"}).has_value());
  auto missing = LoadConfig({}, {(dir.path() / "none.yml").string()});
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().message.find("cannot read") != std::string::npos);
}

TEST_CASE_FIXTURE(ConfigFixture, "LoadConfig: Go durations as the registry's file writes them") {
  std::string path = Write(
      "storage:\n  maintenance:\n    uploadpurging:\n      age: 168h0m0s\n"
      "      interval: 1h30m\n");
  auto config = LoadConfig({}, {path});
  REQUIRE(config.has_value());
  CHECK(config->upload_purge_age == std::chrono::hours(168));
  CHECK(config->upload_purge_interval == std::chrono::minutes(90));
  for (const char* bad : {"1h30", "h", "1x", "1h-5m", "99999999999999h"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseDuration(bad).has_value());
  }
}

TEST_CASE_FIXTURE(ConfigFixture, "LoadConfig: upstreams are checked") {
  struct Case {
    const char* entry;
    const char* message;  // empty: accepted
  };
  const Case cases[] = {
      {"name: ghcr.io\n      url: https://ghcr.io/", ""},
      {"name: registry.k8s.io\n      url: https://registry.k8s.io\n      tag_freshness: 5m", ""},
      {"name: localhost\n      url: http://127.0.0.1:5001", ""},
      {"name: ghcr.io", "needs a name and a url"},
      {"url: https://ghcr.io", "needs a name and a url"},
      {"name: GHCR.io\n      url: https://ghcr.io", "expected a registry name"},
      {"name: host:5000\n      url: https://ghcr.io", "expected a registry name"},
      {"name: team\n      url: https://ghcr.io", "expected a registry name"},
      {"name: docker.io\n      url: https://ghcr.io", "Docker Hub is the default upstream"},
      {"name: ghcr.io\n      url: ftp://ghcr.io", "expected an http:// or https:// URL"},
      {"name: ghcr.io\n      url: https://ghcr.io\n      allow: [\"Bad\"]", "repository pattern"},
      {"name: ghcr.io\n      url: https://ghcr.io\n      username: u", "go together"},
      {"name: ghcr.io\n      url: https://ghcr.io\n      ca: /nonexistent.pem", "cannot read"},
      {"name: ghcr.io\n      url: https://ghcr.io\n      tag_freshness: x", "tag_freshness"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.entry);
    auto config =
        LoadConfig({}, {Write(std::string("hubcache:\n  upstreams:\n    - ") + c.entry + "\n")});
    if (std::string(c.message).empty()) {
      REQUIRE(config.has_value());
      REQUIRE(config->upstreams.size() == 1);
      CHECK(config->upstreams[0].url.back() != '/');
    } else {
      REQUIRE_FALSE(config.has_value());
      CHECK(config.error().message.find(c.message) != std::string::npos);
    }
  }
  auto twice =
      LoadConfig({}, {Write("hubcache:\n  upstreams:\n    - {name: a.io, url: 'https://a.io'}\n"
                            "    - {name: a.io, url: 'https://b.io'}\n")});
  REQUIRE_FALSE(twice.has_value());
  CHECK(twice.error().message.find("listed twice") != std::string::npos);
  // The authority ?ns= may name an upstream by: host[:port] as written, lower-cased.
  struct Authority {
    const char* url;
    const char* authority;
  };
  const Authority authorities[] = {
      {"http://127.0.0.1:5001/", "127.0.0.1:5001"},
      {"https://GHCR.io", "ghcr.io"},
      {"https://puller@registry.example:443/v2-mirror", "registry.example:443"},
  };
  for (const auto& a : authorities) {
    CAPTURE(a.url);
    auto config = LoadConfig(
        {}, {Write(std::string("hubcache:\n  upstreams:\n    - name: a.io\n      url: ") + a.url +
                   "\n")});
    REQUIRE(config.has_value());
    CHECK(config->upstreams[0].authority == a.authority);
  }
  auto freshness =
      LoadConfig({{"HUBCACHE_TAG_FRESHNESS", "10s"}},
                 {Write("hubcache:\n  upstreams:\n    - {name: a.io, url: 'https://a.io'}\n")});
  REQUIRE(freshness.has_value());
  CHECK(freshness->upstreams[0].tag_freshness == std::chrono::seconds(10));
}

}  // namespace
}  // namespace hubcache
