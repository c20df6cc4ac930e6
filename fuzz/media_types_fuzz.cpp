// Accept negotiation and manifest inspection over arbitrary bytes: the input is
// used both as an Accept header and as a manifest body (seeds hold both kinds).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "registry/media_types.h"

namespace hubcache {
namespace {

void CheckAccept(std::string_view header) {
  AcceptSet set = AcceptSet::FromHeader(header);
  std::string key = set.Key();
  FUZZ_CHECK(!key.empty());  // an Accept naming no manifest type gets all four
  // The header sent upstream asks for exactly the set (the tag cache key).
  AcceptSet upstream = AcceptSet::FromHeader(set.UpstreamHeader());
  FUZZ_CHECK(upstream.Key() == key);
  FUZZ_CHECK(set.IsAll() == (key == "dl,dm,oi,om"));
  FUZZ_CHECK(set.Accepts(kDockerManifestList) == (key.find("dl") != std::string::npos));
  FUZZ_CHECK(set.Accepts(kDockerManifestV2) == (key.find("dm") != std::string::npos));
  FUZZ_CHECK(set.Accepts(kOciIndex) == (key.find("oi") != std::string::npos));
  FUZZ_CHECK(set.Accepts(kOciManifest) == (key.find("om") != std::string::npos));
}

void CheckManifestBody(std::string_view body) {
  std::string type = DetectManifestMediaType(body);
  auto digests = ReferencedDigests(body);
  // Bytes that are not a JSON object have no type and reference nothing; a
  // body with references is an object, so at worst it has no recognised type.
  if (!digests.empty()) FUZZ_CHECK(body.find('{') != std::string_view::npos);
  if (!type.empty()) FUZZ_CHECK(body.find('{') != std::string_view::npos);
  // What passes the content check is one of the four manifest types, and a
  // generic Content-Type never changes the verdict.
  for (std::string_view content_type : {"", "application/json"}) {
    auto checked = CheckManifest(body, content_type);
    if (!checked) continue;
    FUZZ_CHECK(*checked == kDockerManifestV2 || *checked == kDockerManifestList ||
               *checked == kOciManifest || *checked == kOciIndex);
    FUZZ_CHECK(body.find('{') != std::string_view::npos);
  }
  FUZZ_CHECK(CheckManifest(body, "").has_value() ==
             CheckManifest(body, "application/json").has_value());
}

void CheckBareType(std::string_view content_type) {
  std::string bare = BareMediaType(content_type);
  FUZZ_CHECK(bare.find(';') == std::string::npos);
  FUZZ_CHECK(bare.empty() || (bare.front() != ' ' && bare.back() != ' '));
  FUZZ_CHECK(content_type.find(bare) != std::string_view::npos);
}

}  // namespace
}  // namespace hubcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = hubcache::fuzz::AsView(data, size);
  hubcache::CheckAccept(input);
  hubcache::CheckManifestBody(input);
  hubcache::CheckBareType(input);
  return 0;
}
