// The configuration edge: LoadConfig over an environment and a command line
// taken from the input, and the value parsers it uses. Invalid settings must
// come back as errors (the server then exits 2), never as a crash or a throw.
//
// Input: lines. Up to the first empty line, "NAME=value" environment entries;
// after it, one argument per line. Every value and argument is also fed to
// ParseDuration, ParseByteSize and ParseFraction.

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "fuzz_check.h"

namespace hubcache {
namespace {

void CheckValueParsers(const std::string& text) {
  if (auto d = ParseDuration(text)) FUZZ_CHECK(d->count() >= 0);
  if (auto f = ParseFraction(text)) FUZZ_CHECK(*f >= 0.0 && *f <= 1.0);
  if (auto b = ParseByteSize(text)) FUZZ_CHECK(*b <= 9'000'000'000'000'000'000ULL);
}

}  // namespace
}  // namespace hubcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  std::map<std::string, std::string> env;
  std::vector<std::string> args;
  bool in_env = true;
  for (std::string_view line : fuzz::SplitLines(fuzz::AsView(data, size))) {
    if (in_env && line.empty()) {
      in_env = false;
      continue;
    }
    if (in_env) {
      size_t eq = line.find('=');
      std::string name(line.substr(0, eq));
      std::string value(eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1));
      CheckValueParsers(value);
      env[name] = value;
    } else {
      args.emplace_back(line);
      CheckValueParsers(args.back());
    }
  }

  auto config = LoadConfig(env, args);
  if (!config) {
    // One line naming the setting (the input's lines hold no '\n' to echo).
    FUZZ_CHECK(!config.error().message.empty());
    FUZZ_CHECK(config.error().message.find('\n') == std::string::npos);
    return 0;
  }
  FUZZ_CHECK(config->max_connections >= 4 && config->max_connections <= 65536);
  FUZZ_CHECK(config->max_connections_per_client >= 1 &&
             config->max_connections_per_client <= 65536);
  FUZZ_CHECK(config->max_requests_per_client >= 1);
  FUZZ_CHECK(config->header_timeout.count() > 0);
  FUZZ_CHECK(config->cache_low_watermark > 0.0 && config->cache_low_watermark <= 1.0);
  FUZZ_CHECK(config->min_free_fraction >= 0.0 && config->min_free_fraction < 1.0);
  FUZZ_CHECK(config->upstream_connect_timeout.count() > 0);
  FUZZ_CHECK(config->upstream_stall_timeout.count() > 0);
  FUZZ_CHECK(config->fill_timeout.count() > 0);
  FUZZ_CHECK(config->keepalive_timeout.count() > 0);
  FUZZ_CHECK(config->tag_freshness.count() >= 0);
  FUZZ_CHECK(!config->root_dir.empty());
  FUZZ_CHECK(config->upstream_url.rfind("http://", 0) == 0 ||
             config->upstream_url.rfind("https://", 0) == 0);
  return 0;
}
