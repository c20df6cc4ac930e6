// Authorization field values as any client may send them. Besides not
// crashing: whatever parses holds no control byte (a NUL would cut the
// password short for crypt) and no ':' in the user, and the canonical form
// "Basic " + base64(user ":" password) parses back to the same pair.

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

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

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
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
  auto again = ParseBasicAuthorization("Basic " + Base64(parsed->user + ":" + parsed->password));
  FUZZ_CHECK(again && again->user == parsed->user && again->password == parsed->password);
  return 0;
}
