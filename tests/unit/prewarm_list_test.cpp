// The pure parts of pre-warm: image lists, platforms, manifest walking, report
// formatting.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "prewarm/image_list.h"
#include "prewarm/report.h"
#include "registry/manifest_walk.h"
#include "registry/media_types.h"

namespace hubcache {
namespace {

std::string Hex(char c) { return std::string(64, c); }
std::string D(char c) { return "sha256:" + Hex(c); }

TEST_CASE("ParseImageList keeps good lines, reports bad ones by line number, skips comments") {
  const std::string content =
      "# images for the fleet\n"
      "\n"
      "alpine:3.19\n"
      "   bitnami/redis:7.2   # cache\n"
      "Bad_Image\n"
      "localhost:5000/coreos/etcd:v3.5\n"
      "docker.io/library/alpine:3.19\n"  // the same image again: kept once
      "nginx@" +
      D('a') +
      "\r\n"
      "alpine:\n"
      "  # indented comment\n"
      "busybox";  // no final newline
  ImageList list = ParseImageList(content);
  REQUIRE(list.images.size() == 4);
  CHECK(list.images[0].where == "line 3");
  CHECK(list.images[0].ref.str() == "library/alpine:3.19");
  CHECK(list.images[1].where == "line 4");
  CHECK(list.images[1].text == "bitnami/redis:7.2");
  CHECK(list.images[2].where == "line 8");
  CHECK(list.images[2].ref.str() == "library/nginx@" + D('a'));
  CHECK(list.images[3].where == "line 11");
  CHECK(list.images[3].ref.str() == "library/busybox:latest");

  REQUIRE(list.errors.size() == 3);
  CHECK(list.errors[0].where == "line 5");
  CHECK(list.errors[0].text == "Bad_Image");
  CHECK(list.errors[0].message.find("lower-case") != std::string::npos);
  CHECK(list.errors[1].where == "line 6");
  CHECK(list.errors[1].message.find("cannot be named in a mirror path") != std::string::npos);
  CHECK(list.errors[2].where == "line 9");
  CHECK(ListErrorLine(list.errors[2]).rfind("line 9: 'alpine:': invalid tag", 0) == 0);
}

TEST_CASE("ParseImageList of an empty or comment-only file has nothing") {
  for (std::string content : {"", "\n\n", "# only\n  # comments\n"}) {
    ImageList list = ParseImageList(content);
    CHECK(list.images.empty());
    CHECK(list.errors.empty());
  }
}

TEST_CASE("ParseImageArgs numbers arguments from 1") {
  ImageList list = ParseImageArgs({"alpine", "NOPE", "redis:7"});
  REQUIRE(list.images.size() == 2);
  CHECK(list.images[1].where == "argument 3");
  REQUIRE(list.errors.size() == 1);
  CHECK(list.errors[0].where == "argument 2");
}

TEST_CASE("ReadListFile fails with kIo for a missing file or a directory") {
  auto missing = ReadListFile("/nonexistent/hubcache/list.txt");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().kind == ErrorKind::kIo);
  CHECK(missing.error().message.find("/nonexistent/hubcache/list.txt") != std::string::npos);
  auto dir = ReadListFile("/");
  REQUIRE_FALSE(dir.has_value());
  CHECK(dir.error().kind == ErrorKind::kIo);
}

TEST_CASE("ParsePlatform and PlatformMatches") {
  struct Case {
    std::string text;
    bool ok;
    std::string str;
  };
  const std::vector<Case> cases = {
      {"linux/amd64", true, "linux/amd64"},
      {"linux/arm64/v8", true, "linux/arm64/v8"},
      {"windows/amd64", true, "windows/amd64"},
      {"linux", false, ""},
      {"linux/", false, ""},
      {"/amd64", false, ""},
      {"linux/arm/v7/x", false, ""},
      {"Linux/AMD64", false, ""},
      {"linux/amd 64", false, ""},
      {"", false, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = ParsePlatform(c.text);
    CHECK(p.has_value() == c.ok);
    if (p) CHECK(p->str() == c.str);
  }
  Platform arm64{"linux", "arm64", ""};
  Platform arm64v8{"linux", "arm64", "v8"};
  Platform arm_v7{"linux", "arm", "v7"};
  CHECK(PlatformMatches(arm64, arm64v8));  // no variant asked: any variant
  CHECK(PlatformMatches(arm64v8, arm64v8));
  CHECK_FALSE(PlatformMatches(arm64v8, arm64));
  CHECK_FALSE(PlatformMatches(arm64, arm_v7));
  CHECK_FALSE(PlatformMatches(Platform{"windows", "arm64", ""}, arm64v8));
}

const std::string kIndex = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 500,
     "digest": ")" + D('1') +
                           R"(", "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 501,
     "digest": ")" + D('2') +
                           R"(",
     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 502,
     "digest": ")" + D('3') +
                           R"(", "platform": {"os": "unknown", "architecture": "unknown"},
     "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
  ]
})";

const std::string kImage = R"({
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
  "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
             "digest": ")" +
                           D('c') + R"("},
  "layers": [
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 3000000,
     "digest": ")" + D('a') +
                           R"("},
    {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 9,
     "digest": ")" + D('f') +
                           R"(", "urls": ["https://example.invalid/layer"]},
    {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 42,
     "digest": ")" + D('b') +
                           R"("}
  ]
})";

TEST_CASE("ParseManifest reads an index's entries and platforms") {
  auto m = ParseManifest(kOciIndex, kIndex);
  REQUIRE(m.has_value());
  CHECK(m->is_index);
  REQUIRE(m->children.size() == 3);
  CHECK(m->children[1].digest.str() == D('2'));
  CHECK(m->children[1].size == 501);
  REQUIRE(m->children[1].platform.has_value());
  CHECK(m->children[1].platform->str() == "linux/arm64/v8");

  CHECK(SelectChildren(*m, {}).size() == 3);  // default: everything, as skopeo copy --all
  auto arm = SelectChildren(*m, {Platform{"linux", "arm64", ""}});
  REQUIRE(arm.size() == 1);
  CHECK(arm[0].digest.str() == D('2'));
  CHECK(SelectChildren(*m, {Platform{"linux", "amd64", ""}, Platform{"linux", "arm64", "v8"}})
            .size() == 2);
  CHECK(SelectChildren(*m, {Platform{"linux", "s390x", ""}}).empty());
}

TEST_CASE("ParseManifest lists config then layers, leaving out foreign layers") {
  // The Content-Type may carry parameters or be generic: the body decides then.
  for (std::string type : {std::string(kDockerManifestV2), std::string("application/json"),
                           std::string(kDockerManifestV2) + "; charset=utf-8", std::string()}) {
    CAPTURE(type);
    auto m = ParseManifest(type, kImage);
    REQUIRE(m.has_value());
    CHECK_FALSE(m->is_index);
    REQUIRE(m->blobs.size() == 3);
    CHECK(m->blobs[0].digest.str() == D('c'));
    CHECK(m->blobs[0].size == 1469);
    CHECK(m->blobs[1].digest.str() == D('a'));
    CHECK(m->blobs[2].digest.str() == D('b'));
  }
}

TEST_CASE("ParseManifest refuses what it cannot walk") {
  struct Case {
    std::string type;
    std::string body;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"application/vnd.docker.distribution.manifest.v1+prettyjws", R"({"schemaVersion":1})",
       "unsupported manifest type"},
      {"", "not json", "unsupported manifest type"},
      {std::string(kOciManifest), "[1,2]", "not a JSON object"},
      {std::string(kOciManifest), R"({"layers": []})", "no config"},
      {std::string(kOciManifest), R"({"config": {"digest": ")" + D('c') + R"("}})", "no layers"},
      {std::string(kOciManifest), R"({"config": {"digest": "sha512:abc"}, "layers": []})",
       "config digest"},
      {std::string(kOciManifest),
       R"({"config": {"digest": ")" + D('c') + R"("}, "layers": [{"size": 1}]})",
       "layer has no digest"},
      {std::string(kOciIndex), R"({"manifests": {}})", "no manifests array"},
      {std::string(kOciIndex), R"({"manifests": [{"digest": "sha256:XYZ"}]})",
       "index entry digest"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto m = ParseManifest(c.type, c.body);
    REQUIRE_FALSE(m.has_value());
    CHECK(m.error().kind == ErrorKind::kManifestInvalid);
    CAPTURE(m.error().message);
    CHECK(m.error().message.find(c.message_part) != std::string::npos);
  }
}

TEST_CASE("HumanBytes and HumanDuration") {
  CHECK(HumanBytes(0) == "0 B");
  CHECK(HumanBytes(1023) == "1023 B");
  CHECK(HumanBytes(1024) == "1.0 KiB");
  CHECK(HumanBytes(1536) == "1.5 KiB");
  CHECK(HumanBytes(6 * 1024 * 1024) == "6.0 MiB");
  CHECK(HumanBytes(uint64_t{3} << 40) == "3.0 TiB");
  CHECK(HumanDuration(0.42) == "0.4s");
  CHECK(HumanDuration(42) == "42s");
  CHECK(HumanDuration(185) == "3m05s");
  CHECK(HumanDuration(7380) == "2h03m");
  CHECK(HumanDuration(-1) == "0.0s");
}

TEST_CASE("SummaryTable has a row per image with its result, then the totals") {
  RunSnapshot run;
  run.started_ms = 1000;
  run.finished_ms = 3500;
  ImageProgress ok;
  ok.image = "library/multi:1";
  ok.state = ImageState::kDone;
  ok.platforms = 2;
  ok.blobs_total = 5;
  ok.bytes_fetched = 6 * 1024 * 1024;
  ImageProgress failed;
  failed.image = "library/nope:1";
  failed.state = ImageState::kFailed;
  failed.reason = FailureReason::kUnknownTag;
  failed.error = "library/nope:1: the mirror answered HTTP 404 MANIFEST_UNKNOWN";
  run.images = {ok, failed};
  run.bytes_fetched = ok.bytes_fetched;
  std::string table = SummaryTable(run);
  CAPTURE(table);
  CHECK(table.rfind("IMAGE", 0) == 0);
  CHECK(table.find("PLATFORMS") != std::string::npos);
  CHECK(table.find("library/multi:1  2          5      6.0 MiB  0 B     ok\n") !=
        std::string::npos);
  CHECK(table.find("library/nope:1   -          -      0 B      0 B     failed: unknown tag: ") !=
        std::string::npos);
  CHECK(table.find("2 images: 1 ok, 1 failed; fetched 6.0 MiB, already cached 0 B, in 2.5s") !=
        std::string::npos);
}

TEST_CASE("ProgressLines shows images in flight and a totals line cut to the width") {
  RunSnapshot run;
  run.started_ms = 1;
  ImageProgress a;
  a.image = "library/a:1";
  a.state = ImageState::kFetching;
  a.blobs_total = 4;
  a.blobs_done = 1;
  a.bytes_total = 4096;
  a.bytes_fetched = 1024;
  ImageProgress b;
  b.image = "library/b:1";
  b.state = ImageState::kDone;
  run.images = {a, b};
  run.bytes_total = 4096;
  run.bytes_fetched = 1024;
  auto lines = ProgressLines(run, 2.0, 200);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "library/a:1  25%  1/4 blobs  1.0 KiB / 4.0 KiB");
  CHECK(lines[1] == "total  1/2 images  1.0 KiB / 4.0 KiB  512 B/s  ETA 6.0s");
  for (const auto& line : ProgressLines(run, 2.0, 20)) CHECK(line.size() <= 20);
}

}  // namespace
}  // namespace hubcache
