#include "upstream/s3_xml.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace hubcache {
namespace {

TEST_CASE("ParseXml: well-formed documents") {
  struct Case {
    std::string doc;
    std::string root;
    std::string text;  // of the root's first child, or of the root when it has none
  };
  const std::vector<Case> cases = {
      {"<a/>", "a", ""},
      {"<a></a>", "a", ""},
      {"<a>x</a>", "a", "x"},
      {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a><b>1</b></a>\n", "a", "1"},
      {"<a xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><b>1</b></a>", "a", "1"},
      {"<s3:a xmlns:s3=\"urn:x\"><s3:b>v</s3:b></s3:a>", "a", "v"},  // prefixes dropped
      {"<a k='v' j=\"w\" ><b >2</b ></a >", "a", "2"},
      {"<a><b>&amp;&lt;&gt;&quot;&apos;</b></a>", "a", "&<>\"'"},
      {"<a><b>&#65;&#x42;&#x20AC;&#128512;</b></a>", "a", "AB\xe2\x82\xac\xf0\x9f\x98\x80"},
      {"<a><b><![CDATA[<raw> & ]]></b></a>", "a", "<raw> & "},
      {"<a><b>x<!-- c -->y</b></a>", "a", "xy"},
      {"<!-- lead --><a><b> spaced </b></a><!-- trail -->", "a", " spaced "},
      {"<!DOCTYPE a><a>t</a>", "a", "t"},
      {"<a><b>\xc3\xa9</b></a>", "a", "\xc3\xa9"},  // UTF-8 as is
  };
  for (const auto& c : cases) {
    CAPTURE(c.doc);
    auto e = ParseXml(c.doc);
    REQUIRE(e.has_value());
    CHECK(e->name == c.root);
    CHECK((e->children.empty() ? e->text : e->children[0].text) == c.text);
  }
}

TEST_CASE("ParseXml: malformed documents are errors") {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<a>";
  for (int i = 0; i < 40; ++i) deep += "</a>";
  const std::vector<std::string> cases = {
      "",
      "   ",
      "text",
      "<",
      "<a",
      "<a>",
      "<a><b></a>",
      "<a></b>",
      "<a>&bogus;</a>",
      "<a>&amp</a>",
      "<a>&#0;</a>",
      "<a>&#xD800;</a>",
      "<a>&#x110000;</a>",
      "<a>&#xZZ;</a>",
      "<a>&#;</a>",
      "<a/><b/>",
      "<a/>trailing",
      "<a b=c/>",
      "<a b='<'/>",
      "<a b/>",
      "<a b='x/>",
      "<a><!-- open</a>",
      "<a><![CDATA[open</a>",
      "<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>",
      "<a><!ELEMENT x></a>",
      "</a>",
      "<>x</>",
      "<:>x</:>",
      deep,
      std::string("<a>\0</b>", 8),
  };
  for (const auto& doc : cases) {
    CAPTURE(doc);
    auto e = ParseXml(doc);
    CHECK_FALSE(e.has_value());
    if (!e) {
      CHECK(e.error().kind == ErrorKind::kUpstreamInvalid);
    }
  }
}

TEST_CASE("ParseS3Error") {
  struct Case {
    std::string body;
    bool is_error;
    std::string code;
    std::string message;
  };
  const std::vector<Case> cases = {
      // AWS's documented example.
      {"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>NoSuchKey</Code>\n  "
       "<Message>The resource you requested does not exist</Message>\n  "
       "<Resource>/mybucket/myfoto.jpg</Resource>\n  <RequestId>4442587FB7D0A2F9</RequestId>\n"
       "</Error>",
       true, "NoSuchKey", "The resource you requested does not exist"},
      // radosgw: no Message.
      {"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SignatureDoesNotMatch</Code>"
       "<RequestId>tx00000a</RequestId><HostId>1-default</HostId></Error>",
       true, "SignatureDoesNotMatch", ""},
      {"<Error><Code>NoSuchBucket</Code><BucketName>b</BucketName></Error>", true, "NoSuchBucket",
       ""},
      {"<Error><Code></Code></Error>", false, "", ""},
      {"<html><body>502 Bad Gateway</body></html>", false, "", ""},
      {"", false, "", ""},
      {"<ListBucketResult/>", false, "", ""},
      {"not xml", false, "", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    auto e = ParseS3Error(c.body);
    REQUIRE(e.has_value() == c.is_error);
    if (e) {
      CHECK(e->code == c.code);
      CHECK(e->message == c.message);
    }
  }
}

TEST_CASE("ParseListObjectsV2") {
  // After AWS's ListObjectsV2 example, with keys that need entities.
  const std::string body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
      "  <Name>bucket</Name>\n  <Prefix>root/</Prefix>\n  <KeyCount>3</KeyCount>\n"
      "  <MaxKeys>3</MaxKeys>\n  <IsTruncated>true</IsTruncated>\n"
      "  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</"
      "NextContinuationToken>\n"
      "  <Contents>\n    <Key>root/cache/blobs/sha256/ab/abcd</Key>\n"
      "    <LastModified>2009-10-12T17:50:30.000Z</LastModified>\n"
      "    <ETag>\"fba9dede5f27731c9771645a39863328\"</ETag>\n    <Size>434234</Size>\n"
      "    <StorageClass>STANDARD</StorageClass>\n  </Contents>\n"
      "  <Contents><Key>root/a &amp; b&#x20;c:d+e~f</Key><Size>0</Size>"
      "<LastModified>2024-02-29T23:59:59Z</LastModified></Contents>\n"
      "  <Contents><Key> lead space</Key><Size>18446744073709551615</Size></Contents>\n"
      "</ListBucketResult>";
  auto page = ParseListObjectsV2(body);
  REQUIRE(page.has_value());
  REQUIRE(page->objects.size() == 3u);
  CHECK(page->objects[0].key == "root/cache/blobs/sha256/ab/abcd");
  CHECK(page->objects[0].size == 434234u);
  CHECK(page->objects[0].modified_unix_ms == 1255369830000);
  CHECK(page->objects[1].key == "root/a & b c:d+e~f");
  CHECK(page->objects[1].size == 0u);
  CHECK(page->objects[1].modified_unix_ms == 1709251199000);
  CHECK(page->objects[2].key == " lead space");  // keys are never trimmed
  CHECK(page->objects[2].size == 18446744073709551615ull);
  CHECK(page->objects[2].modified_unix_ms == 0);
  CHECK(page->truncated);
  CHECK(page->next_continuation_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  auto last = ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount>"
      "</ListBucketResult>");
  REQUIRE(last.has_value());
  CHECK(last->objects.empty());
  CHECK_FALSE(last->truncated);
  CHECK(last->next_continuation_token.empty());

  const std::vector<std::string> bad = {
      "<Error><Code>AccessDenied</Code></Error>",
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",  // no token
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>1x</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult>",
  };
  for (const auto& b : bad) {
    CAPTURE(b);
    CHECK_FALSE(ParseListObjectsV2(b).has_value());
  }
}

TEST_CASE("ParseInitiateMultipartUpload") {
  auto id = ParseInitiateMultipartUpload(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
      "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
      "</InitiateMultipartUploadResult>");
  REQUIRE(id.has_value());
  CHECK(*id == "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
  CHECK_FALSE(ParseInitiateMultipartUpload("<InitiateMultipartUploadResult><UploadId> </UploadId>"
                                           "</InitiateMultipartUploadResult>")
                  .has_value());
  CHECK_FALSE(ParseInitiateMultipartUpload("<Error><Code>AccessDenied</Code></Error>").has_value());
  CHECK_FALSE(ParseInitiateMultipartUpload("").has_value());
}

TEST_CASE("CheckCompleteMultipartUpload: a 200 may carry an error") {
  CHECK(CheckCompleteMultipartUpload(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<Location>http://b.s3.amazonaws.com/k</Location><Bucket>b</Bucket><Key>k</Key>"
            "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
            "</CompleteMultipartUploadResult>")
            .has_value());
  // AWS's documented "200 with an error" body.
  auto failed = CheckCompleteMultipartUpload(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error>\n<Code>InternalError</Code>\n"
      "<Message>We encountered an internal error. Please try again.</Message>\n"
      "<RequestId>656c76696e6727732072657175657374</RequestId>\n"
      "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId>\n</Error>");
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().kind == ErrorKind::kUpstreamUnavailable);
  CHECK(failed.error().message.find("InternalError") != std::string::npos);
  // Whitespace the store sent to keep the connection alive, then nothing.
  CHECK_FALSE(CheckCompleteMultipartUpload("   \n  ").has_value());
  CHECK_FALSE(CheckCompleteMultipartUpload("<Other/>").has_value());
}

TEST_CASE("ParseListMultipartUploads") {
  auto page = ParseListMultipartUploads(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Bucket>bucket</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
      "<NextKeyMarker>my-movie.m2ts</NextKeyMarker>"
      "<NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>"
      "<MaxUploads>3</MaxUploads><IsTruncated>true</IsTruncated>"
      "<Upload><Key>my-divisor</Key>"
      "<UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>"
      "<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
      "<Upload><Key>my-movie.m2ts</Key><UploadId>VXBsb2FkIElE</UploadId>"
      "<Initiated>bogus</Initiated></Upload>"
      "</ListMultipartUploadsResult>");
  REQUIRE(page.has_value());
  REQUIRE(page->uploads.size() == 2u);
  CHECK(page->uploads[0].key == "my-divisor");
  CHECK(page->uploads[0].upload_id == "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw");
  CHECK(page->uploads[0].initiated_unix_ms == 1289422113000);
  CHECK(page->uploads[1].initiated_unix_ms == 0);
  CHECK(page->truncated);
  CHECK(page->next_key_marker == "my-movie.m2ts");
  CHECK(page->next_upload_id_marker == "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ");

  auto none = ParseListMultipartUploads(
      "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
      "</ListMultipartUploadsResult>");
  REQUIRE(none.has_value());
  CHECK(none->uploads.empty());
  CHECK_FALSE(ParseListMultipartUploads("<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
                                        "</ListMultipartUploadsResult>")
                  .has_value());
}

TEST_CASE("ParseIso8601Ms") {
  struct Case {
    std::string text;
    std::optional<int64_t> ms;
  };
  const std::vector<Case> cases = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00.000Z", 0},
      {"2009-10-12T17:50:30.000Z", 1255369830000},
      {"2009-10-12T17:50:30.5Z", 1255369830500},
      {"2009-10-12T17:50:30.123456Z", 1255369830123},
      {"2024-02-29T23:59:59Z", 1709251199000},
      {"2000-03-01T00:00:00+00:00", 951868800000},
      {"2009-10-12 17:50:30Z", std::nullopt},
      {"2009-10-12T17:50:30", std::nullopt},
      {"2009-10-12T17:50:30+01:00", std::nullopt},
      {"2009-13-12T17:50:30Z", std::nullopt},
      {"2009-10-12T24:50:30Z", std::nullopt},
      {"2009-10-12T17:50:30.Z", std::nullopt},
      {"09-10-12T17:50:30Z", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK(ParseIso8601Ms(c.text) == c.ms);
  }
}

TEST_CASE("XmlEscape") {
  CHECK(XmlEscape("\"3858f62230ac3c915f300c664312c11f-9\"") ==
        "&quot;3858f62230ac3c915f300c664312c11f-9&quot;");
  CHECK(XmlEscape("a<b>&c") == "a&lt;b&gt;&amp;c");
  CHECK(XmlEscape("") == "");
  // What is escaped reads back the same.
  auto e = ParseXml("<a>" + XmlEscape("x<&>\"'y") + "</a>");
  REQUIRE(e.has_value());
  CHECK(e->text == "x<&>\"'y");
}

}  // namespace
}  // namespace hubcache
