// Authorization field values as any client may send them. Besides not
// crashing: whatever parses holds no control byte (a NUL would cut the
// password short for crypt) and no ':' in the user, and the canonical form
// "Basic " + base64(user ":" password) parses back to the same pair.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base64.h"
#include "fuzz_check.h"
#include "http/basic_credentials.h"

namespace {

bool HasControl(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hubcache;
  std::string_view value = fuzz::AsView(data, size);
  auto parsed = ParseBasicAuthorization(value);
  if (!parsed) return 0;
  FUZZ_CHECK(value.size() > 6);
  FUZZ_CHECK(parsed->user.find(':') == std::string::npos);
  FUZZ_CHECK(!HasControl(parsed->user) && !HasControl(parsed->password));
  auto again = ParseBasicAuthorization(
      "Basic " + hubcache::Base64Encode(parsed->user + ":" + parsed->password));
  FUZZ_CHECK(again && again->user == parsed->user && again->password == parsed->password);
  return 0;
}
