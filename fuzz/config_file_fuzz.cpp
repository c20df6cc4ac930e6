// The configuration file edge: ParseConfigText over any bytes (yaml-cpp's
// parser, then the reader that maps keys to settings). Whatever the file, the
// answer is a result or one line of error naming the file; never a crash, a
// throw or a hang.

#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"
#include "config/config_file.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  static const SettingNames names = [] {
    SettingNames n;
    for (const auto& s : Settings()) n.all.insert(s.env);
    n.lists = {"REGISTRY_HTTP_TLS_CLIENTCAS", "HUBCACHE_HOSTED"};
    return n;
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto file = ParseConfigText(text, "fuzz.yml", names);
  if (!file) {
    FUZZ_CHECK(file.error().message.rfind("fuzz.yml", 0) == 0);
    return 0;
  }
  for (const auto& v : file->values) {
    FUZZ_CHECK(!v.env.empty() && !v.key.empty());
    FUZZ_CHECK(v.line >= 1);
    FUZZ_CHECK(names.all.count(v.env) != 0 || v.env.rfind(kHttpHeadersEnvPrefix, 0) == 0);
  }
  for (const auto& k : file->ignored) FUZZ_CHECK(!k.key.empty());
  return 0;
}
