// The client-facing name grammar: RepoName, Tag, Digest, ParseReference and
// ParseRoute over arbitrary bytes. Besides not crashing, whatever parses must
// re-parse to itself and stay inside the grammar that keeps paths safe.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "registry/reference.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

bool OnlyNameChars(std::string_view s) {
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

void CheckName(std::string_view raw) {
  auto name = RepoName::Parse(raw);
  if (!name) return;
  const std::string& s = name->str();
  FUZZ_CHECK(!s.empty() && s.size() <= 255);
  FUZZ_CHECK(OnlyNameChars(s));
  // At least two components (one-component names gain "library/"), none empty,
  // none starting with '.': no "..", no absolute path, no "//".
  FUZZ_CHECK(s.find('/') != std::string::npos);
  FUZZ_CHECK(s.front() != '/' && s.back() != '/' && s.find("//") == std::string::npos);
  FUZZ_CHECK(s.front() != '.' && s.find("/.") == std::string::npos);
  FUZZ_CHECK(s == raw || s == "library/" + std::string(raw));
  auto again = RepoName::Parse(s);
  FUZZ_CHECK(again && *again == *name);
}

void CheckTag(std::string_view raw) {
  auto tag = Tag::Parse(raw);
  if (!tag) return;
  FUZZ_CHECK(tag->str() == raw);
  FUZZ_CHECK(!raw.empty() && raw.size() <= 128 && raw.front() != '.' && raw.front() != '-');
  FUZZ_CHECK(raw.find('/') == std::string_view::npos && raw.find(':') == std::string_view::npos);
  auto again = Tag::Parse(tag->str());
  FUZZ_CHECK(again && *again == *tag);
}

void CheckDigest(std::string_view raw) {
  auto digest = Digest::Parse(raw);
  if (!digest) return;
  FUZZ_CHECK(digest->str() == raw);
  FUZZ_CHECK(digest->hex().size() == 64);
  for (char c : digest->hex()) FUZZ_CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
  auto again = Digest::Parse(digest->str());
  FUZZ_CHECK(again && *again == *digest);
}

void CheckReference(std::string_view raw) {
  auto ref = ParseReference(raw);
  if (!ref) return;
  FUZZ_CHECK(ReferenceString(*ref) == raw);
  // A reference with ':' can only be a digest; one without only a tag.
  bool is_digest = std::holds_alternative<Digest>(*ref);
  FUZZ_CHECK(is_digest == (raw.find(':') != std::string_view::npos));
}

void CheckRoute(std::string_view path) {
  Route route = ParseRoute(path);
  std::string rebuilt;
  switch (route.kind) {
    case RouteKind::kManifest:
      rebuilt = "/v2/" + route.name + "/manifests/" + route.reference;
      break;
    case RouteKind::kBlob:
      rebuilt = "/v2/" + route.name + "/blobs/" + route.reference;
      break;
    case RouteKind::kTagsList:
      rebuilt = "/v2/" + route.name + "/tags/list";
      break;
    case RouteKind::kReferrers:
      rebuilt = "/v2/" + route.name + "/referrers/" + route.reference;
      break;
    case RouteKind::kBlobUpload:
      FUZZ_CHECK(!route.name.empty());
      FUZZ_CHECK(path.substr(0, 4 + route.name.size() + 14) ==
                 "/v2/" + route.name + "/blobs/uploads");
      return;
    case RouteKind::kPing:
    case RouteKind::kCatalog:
    case RouteKind::kUnknownV2:
    case RouteKind::kOther:
      FUZZ_CHECK(route.name.empty() && route.reference.empty());
      return;
  }
  // The route is an exact split of the path, and both parts are non-empty.
  FUZZ_CHECK(rebuilt == path);
  FUZZ_CHECK(!route.name.empty());
  FUZZ_CHECK(route.kind == RouteKind::kTagsList ||
             (!route.reference.empty() && route.reference.find('/') == std::string::npos));
  // What the handlers do next with the parts.
  CheckName(route.name);
  if (route.kind == RouteKind::kManifest) CheckReference(route.reference);
  if (route.kind == RouteKind::kBlob) CheckDigest(route.reference);
}

}  // namespace
}  // namespace hubcache

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = hubcache::fuzz::AsView(data, size);
  hubcache::CheckName(input);
  hubcache::CheckTag(input);
  hubcache::CheckDigest(input);
  hubcache::CheckReference(input);
  hubcache::CheckRoute(input);
  return 0;
}
