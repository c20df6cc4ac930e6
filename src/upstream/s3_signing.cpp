#include "upstream/s3_signing.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <ctime>

#include "common/sha256.h"

namespace hubcache {
namespace {

constexpr int64_t kMaxPresignExpiresS = 7 * 24 * 3600;

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

std::string SigV4UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string CanonicalQueryString(std::vector<QueryParam> params) {
  for (auto& p : params) {
    p.name = SigV4UriEncode(p.name, false);
    p.value = SigV4UriEncode(p.value, false);
  }
  std::sort(params.begin(), params.end(), [](const QueryParam& a, const QueryParam& b) {
    return a.name != b.name ? a.name < b.name : a.value < b.value;
  });
  std::string out;
  for (const auto& p : params) {
    if (!out.empty()) out.push_back('&');
    out += p.name;
    out.push_back('=');
    out += p.value;
  }
  return out;
}

std::string AmzDate(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  size_t n = std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf, n);
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string SigV4SigningKey(std::string_view secret_key, std::string_view yyyymmdd,
                            std::string_view region, std::string_view service) {
  std::string k = HmacSha256("AWS4" + std::string(secret_key), yyyymmdd);
  k = HmacSha256(k, region);
  k = HmacSha256(k, service);
  return HmacSha256(k, "aws4_request");
}

Presigned PresignV4(const PresignInput& in) {
  const std::string amz_date = AmzDate(in.now_unix_s);
  const std::string date = amz_date.substr(0, 8);
  const std::string scope = date + "/" + in.region + "/" + in.service + "/aws4_request";
  const int64_t expires = std::clamp<int64_t>(in.expires_s, 1, kMaxPresignExpiresS);

  std::vector<QueryParam> params = in.params;
  params.push_back({"X-Amz-Algorithm", "AWS4-HMAC-SHA256"});
  params.push_back({"X-Amz-Credential", in.access_key + "/" + scope});
  params.push_back({"X-Amz-Date", amz_date});
  params.push_back({"X-Amz-Expires", std::to_string(expires)});
  if (!in.session_token.empty()) params.push_back({"X-Amz-Security-Token", in.session_token});
  params.push_back({"X-Amz-SignedHeaders", "host"});
  const std::string query = CanonicalQueryString(std::move(params));

  Presigned out;
  out.canonical_request = in.method + "\n" + in.canonical_uri + "\n" + query + "\n" +
                          "host:" + in.host + "\n\nhost\nUNSIGNED-PAYLOAD";
  out.string_to_sign =
      "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + Sha256::HexOf(out.canonical_request);
  out.signature = HexEncode(
      HmacSha256(SigV4SigningKey(in.secret_key, date, in.region, in.service), out.string_to_sign));
  out.url = in.scheme + "://" + in.host + in.canonical_uri + "?" + query +
            "&X-Amz-Signature=" + out.signature;
  return out;
}

}  // namespace hubcache
