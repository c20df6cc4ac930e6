#include "registry/media_types.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

const std::string kDl(kDockerManifestList);
const std::string kDm(kDockerManifestV2);
const std::string kOi(kOciIndex);
const std::string kOm(kOciManifest);

// What `docker pull` (moby's distribution client) sends, its values comma-joined.
const std::string kDockerAccept =
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws, "
    "application/json";
// What containerd's resolver sends.
const std::string kContainerdAccept =
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.oci.image.index.v1+json, */*";

const std::string kAllUpstream =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

TEST_CASE("AcceptSet::FromHeader") {
  struct Case {
    std::string header;
    std::string key;
  };
  const std::vector<Case> cases = {
      {kDockerAccept, "dl,dm,oi,om"},
      {kContainerdAccept, "dl,dm,oi,om"},
      // Absent, wildcard or naming no manifest type: everything.
      {"", "dl,dm,oi,om"},
      {"*/*", "dl,dm,oi,om"},
      {"application/*", "dl,dm,oi,om"},
      {"text/html", "dl,dm,oi,om"},
      {"application/json", "dl,dm,oi,om"},
      {"application/vnd.docker.distribution.manifest.v1+prettyjws", "dl,dm,oi,om"},
      {",,,", "dl,dm,oi,om"},
      {"   ", "dl,dm,oi,om"},
      {"garbage;;;q=", "dl,dm,oi,om"},
      // A wildcard next to specific types still means everything.
      {kDm + ", */*", "dl,dm,oi,om"},
      {kDm + ", */*;q=0.1", "dl,dm,oi,om"},
      // Subsets.
      {kDm, "dm"},
      {kDl, "dl"},
      {kOi, "oi"},
      {kOm, "om"},
      {kDm + "," + kDl, "dl,dm"},
      {kOm + "," + kOi, "oi,om"},
      {kDm + ", " + kOm, "dm,om"},
      {kDm + ", application/json, text/plain", "dm"},
      {kDm + ", " + kDm, "dm"},
      // Whitespace and parameters other than q are ignored.
      {"  " + kDm + "  ", "dm"},
      {"\t" + kDm + "\t,\t" + kOi, "dm,oi"},
      {kOm + "; charset=utf-8", "om"},
      {kOm + " ; q=0.5", "om"},
      {kOm + ";q=1", "om"},
      {kOm + ";q=0.001", "om"},
      // q=0 means "not acceptable".
      {kOi + ";q=0, " + kDm + ", " + kDl, "dl,dm"},
      {kOi + "; q=0, " + kDm, "dm"},
      {kOi + ";q=0.0, " + kDm, "dm"},
      {kOi + ";q=0.000, " + kDm, "dm"},
      {kOi + ";Q=0, " + kDm, "dm"},
      {kOi + ";charset=x;q=0, " + kDm, "dm"},
      {"*/*;q=0, " + kDm, "dm"},
      {"application/*;q=0, " + kOm, "om"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    auto set = AcceptSet::FromHeader(c.header);
    CHECK(set.Key() == c.key);
    CHECK(set.IsAll() == (c.key == "dl,dm,oi,om"));
  }
}

TEST_CASE("AcceptSet: reordered headers give the same key") {
  const std::vector<std::vector<std::string>> groups = {
      {kDockerAccept, kContainerdAccept, kOi + ", " + kOm + ", " + kDl + ", " + kDm,
       kDm + "," + kOm + "," + kDl + "," + kOi, "*/*", ""},
      {kDm + ", " + kDl, kDl + ", " + kDm, kDl + ";q=0.5, " + kDm + ";q=0.9",
       " " + kDl + " ,  " + kDm + " ", kDm + ", " + kDl + ", application/json"},
      {kOi + "," + kOm, kOm + "," + kOi, kOm + ";q=0.1," + kOi + ";q=1"},
  };
  for (const auto& group : groups) {
    const std::string want = AcceptSet::FromHeader(group.front()).Key();
    for (const auto& header : group) {
      CAPTURE(header);
      CHECK(AcceptSet::FromHeader(header).Key() == want);
    }
  }
  CHECK(AcceptSet::FromHeader(kDm + ", " + kDl).Key() !=
        AcceptSet::FromHeader(kOi + ", " + kOm).Key());
}

TEST_CASE("AcceptSet: schema2-only client") {
  auto set = AcceptSet::FromHeader(kDm);
  CHECK_FALSE(set.IsAll());
  CHECK(set.Accepts(kDockerManifestV2));
  CHECK_FALSE(set.Accepts(kDockerManifestList));
  CHECK_FALSE(set.Accepts(kOciIndex));
  CHECK_FALSE(set.Accepts(kOciManifest));
  CHECK(set.UpstreamHeader() == kDm);
  CHECK(set.Key() == "dm");
}

TEST_CASE("AcceptSet::UpstreamHeader names exactly the accepted types") {
  struct Case {
    std::string header;
    std::string upstream;
  };
  const std::vector<Case> cases = {
      {"", kAllUpstream},
      {"*/*", kAllUpstream},
      {kDockerAccept, kAllUpstream},
      {kContainerdAccept, kAllUpstream},
      {kDm, kDm},
      {kOm, kOm},
      {kDm + ", " + kDl, kDl + ", " + kDm},
      {kDl + ", " + kDm, kDl + ", " + kDm},
      {kOm + ", " + kOi, kOi + ", " + kOm},
      {kDm + ", " + kOm, kOm + ", " + kDm},
      {kOi + ";q=0, " + kDm + ", " + kDl + ", " + kOm, kDl + ", " + kOm + ", " + kDm},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    CHECK(AcceptSet::FromHeader(c.header).UpstreamHeader() == c.upstream);
  }
  CHECK(AcceptSet::All().UpstreamHeader() == kAllUpstream);
}

TEST_CASE("AcceptSet::All and Accepts") {
  auto all = AcceptSet::All();
  CHECK(all.IsAll());
  CHECK(all.Key() == "dl,dm,oi,om");
  for (auto type : {kDockerManifestV2, kDockerManifestList, kOciIndex, kOciManifest}) {
    CAPTURE(type);
    CHECK(all.Accepts(type));
  }
  for (std::string_view other :
       {"application/json", "", "*/*", "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.container.image.v1+json"}) {
    CAPTURE(other);
    CHECK_FALSE(all.Accepts(other));
  }
  CHECK(AcceptSet::FromHeader("").Key() == all.Key());
}

TEST_CASE("DetectManifestMediaType") {
  struct Case {
    const char* name;
    std::string body;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"OCI index without mediaType",
       R"({"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
       R"("digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)"
       R"("size":7,"platform":{"architecture":"amd64","os":"linux"}}]})",
       kOi},
      {"OCI index with mediaType",
       R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]})",
       kOi},
      {"OCI manifest without mediaType",
       R"({"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json",)"
       R"("digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)"
       R"("size":2},"layers":[]})",
       kOm},
      {"OCI manifest with mediaType",
       R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
       R"("config":{},"layers":[]})",
       kOm},
      {"Docker manifest list",
       R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",)"
       R"("manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
       R"("size":528,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",)"
       R"("platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]})",
       kDl},
      {"Docker schema2",
       R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
       R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1472,)"
       R"("digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},)"
       R"("layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",)"
       R"("size":3408729,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]})",
       kDm},
      {"whitespace around JSON", "\n  {\"mediaType\": \"" + kDm + "\"}  \n", kDm},
      {"mediaType wins over structure",
       R"({"mediaType":"application/vnd.docker.distribution.manifest.v2+json","manifests":[]})",
       kDm},
      {"non-string mediaType falls back to structure", R"({"mediaType":5,"manifests":[]})", kOi},
      {"config without layers", R"({"schemaVersion":2,"config":{}})", ""},
      {"schema1 manifest", R"({"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]})", ""},
      {"empty object", "{}", ""},
      {"empty body", "", ""},
      {"garbage", "not json at all", ""},
      {"HTML error page", "<html><body>502 Bad Gateway</body></html>", ""},
      {"truncated", R"({"schemaVersion":2,"mediaType":)", ""},
      {"truncated string", R"({"mediaType":"application/vnd.oci)", ""},
      {"array", R"([{"mediaType":"application/vnd.oci.image.index.v1+json"}])", ""},
      {"null", "null", ""},
      {"number", "42", ""},
      {"string", R"("application/vnd.oci.image.index.v1+json")", ""},
      {"trailing garbage", R"({"mediaType":"x"} trailing)", ""},
      {"invalid UTF-8", "{\"mediaType\":\"\xff\xfe\"}", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(DetectManifestMediaType(c.body) == c.want);
  }
}

TEST_CASE("CheckManifest") {
  const std::string digest =
      R"("digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")";
  const std::string image_fields =
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json",)" + digest +
      R"(,"size":2},"layers":[{"size":1,)" + digest + "}]";
  const std::string list_fields = R"("manifests":[{"size":7,)" + digest + "}]";
  auto with_type = [](const std::string& type, const std::string& fields) {
    return R"({"schemaVersion":2,"mediaType":")" + type + R"(",)" + fields + "}";
  };
  auto without_type = [](const std::string& fields) {
    return R"({"schemaVersion":2,)" + fields + "}";
  };
  struct Case {
    const char* name;
    std::string body;
    std::string content_type;
    std::string want;  // the media type, or "" = refused
  };
  const std::vector<Case> cases = {
      // Each of the four, declared by mediaType and Content-Type alike.
      {"Docker schema2", with_type(kDm, image_fields), kDm, kDm},
      {"Docker list", with_type(kDl, list_fields), kDl, kDl},
      {"OCI manifest", with_type(kOm, image_fields), kOm, kOm},
      {"OCI index", with_type(kOi, list_fields), kOi, kOi},
      {"Content-Type with parameters", with_type(kOi, list_fields), kOi + "; charset=utf-8", kOi},
      {"empty OCI index", with_type(kOi, R"("manifests":[])"), kOi, kOi},
      // A generic Content-Type: the body decides.
      {"application/json", with_type(kDm, image_fields), "application/json", kDm},
      {"no Content-Type", with_type(kDl, list_fields), "", kDl},
      {"text/plain", with_type(kOm, image_fields), "text/plain", kOm},
      {"octet-stream", with_type(kOi, list_fields), "application/octet-stream", kOi},
      // OCI without mediaType: the shape decides, a same-kind Content-Type refines.
      {"OCI index by shape", without_type(list_fields), kOi, kOi},
      {"OCI manifest by shape", without_type(image_fields), kOm, kOm},
      {"index shape, generic type", without_type(list_fields), "application/json", kOi},
      {"manifest shape, generic type", without_type(image_fields), "", kOm},
      {"index shape, Docker list type", without_type(list_fields), kDl, kDl},
      {"manifest shape, Docker v2 type", without_type(image_fields), kDm, kDm},
      {"index shape, manifest type", without_type(list_fields), kOm, ""},
      {"manifest shape, index type", without_type(image_fields), kDl, ""},
      {"both shapes, no mediaType", without_type(list_fields + "," + image_fields), kOi, ""},
      // Content-Type and mediaType disagree.
      {"index served as a manifest", with_type(kOi, list_fields), kOm, ""},
      {"Docker v2 served as OCI", with_type(kDm, image_fields), kOm, ""},
      {"list served as Docker v2", with_type(kDl, list_fields), kDm, ""},
      // Not registry content: the bug this check exists for.
      {"HTML page", "<html><body>Sign in to the Wi-Fi</body></html>", "text/html", ""},
      {"HTML page with a manifest type", "<html><body>oops</body></html>", kDm, ""},
      {"manifest JSON served as text/html", with_type(kDm, image_fields), "text/html", ""},
      {"registry error JSON", R"({"errors":[{"code":"UNKNOWN","message":"try later"}]})",
       "application/json", ""},
      {"empty body", "", kDm, ""},
      {"empty object", "{}", kOi, ""},
      {"array", "[" + with_type(kOi, list_fields) + "]", kOi, ""},
      {"truncated", with_type(kDm, image_fields).substr(0, 60), kDm, ""},
      {"trailing garbage", with_type(kDm, image_fields) + " <html>", kDm, ""},
      // schemaVersion must be the number 2.
      {"schemaVersion 1", R"({"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]})",
       "application/vnd.docker.distribution.manifest.v1+prettyjws", ""},
      {"schemaVersion 1 as JSON", R"({"schemaVersion":1,)" + image_fields + "}", "", ""},
      {"schemaVersion missing", R"({"mediaType":")" + kDm + R"(",)" + image_fields + "}", kDm, ""},
      {"schemaVersion a string", R"({"schemaVersion":"2",)" + list_fields + "}", kOi, ""},
      {"schemaVersion 2.5", R"({"schemaVersion":2.5,)" + list_fields + "}", kOi, ""},
      // mediaType must be a known manifest type that fits the fields.
      {"unknown mediaType", with_type("application/vnd.oci.image.config.v1+json", image_fields),
       "application/json", ""},
      {"mediaType not a string", R"({"schemaVersion":2,"mediaType":5,)" + list_fields + "}", kOi,
       ""},
      {"index without manifests", with_type(kOi, image_fields), kOi, ""},
      {"manifest without layers", with_type(kDm, R"("config":{"size":2,)" + digest + "}"), kDm, ""},
      {"manifest with layers not an array", with_type(kOm, R"("config":{},"layers":{})"), kOm, ""},
      {"manifest with config not an object", with_type(kOm, R"("config":"x","layers":[])"), kOm,
       ""},
      {"index with manifests not an array", with_type(kDl, R"("manifests":{})"), kDl, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto got = CheckManifest(c.body, c.content_type);
    if (c.want.empty()) {
      CHECK_FALSE(got.has_value());
      if (!got) {
        CHECK(got.error().kind == ErrorKind::kManifestInvalid);
        CHECK_FALSE(got.error().message.empty());
      }
    } else {
      REQUIRE(got.has_value());
      CHECK(*got == c.want);
    }
  }
}

TEST_CASE("BareMediaType") {
  struct Case {
    std::string in;
    std::string out;
  };
  const std::vector<Case> cases = {
      {"application/json", "application/json"},
      {"application/json; charset=utf-8", "application/json"},
      {"application/json;charset=utf-8", "application/json"},
      {"  " + kOi + "  ", kOi},
      {kDm + " ; q=1", kDm},
      {"", ""},
      {";", ""},
      {"  ;charset=x", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(BareMediaType(c.in) == c.out);
  }
}

}  // namespace
}  // namespace hubcache
