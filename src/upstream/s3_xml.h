#pragma once
// The XML that S3 answers with, read into plain structs: error bodies
// (<Error><Code>..), ListObjectsV2 pages (<ListBucketResult>), the upload id of
// a new multipart upload, the reply of CompleteMultipartUpload and the list of
// multipart uploads in progress.
//
// A small, careful reader, not a general XML parser: elements, attributes
// (skipped), character data with the five named entities and numeric character
// references, CDATA sections, comments, processing instructions and a DOCTYPE
// without an internal subset. Namespace prefixes are dropped from names. Input
// is untrusted (any store, or anything between): malformed XML is an error,
// never a crash, and nesting is bounded.
//
// Thread-safe: pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hubcache {

struct XmlElement {
  std::string name;  // local name, namespace prefix dropped
  std::string text;  // character data directly inside, entities decoded
  std::vector<XmlElement> children;

  // The first child named `child`, or nullptr.
  const XmlElement* Child(std::string_view child) const;
  // Its text, or "" when there is no such child.
  std::string ChildText(std::string_view child) const;
};

// The document's root element. Errors are kUpstreamInvalid.
[[nodiscard]] Result<XmlElement> ParseXml(std::string_view document);

// <Error><Code>NoSuchKey</Code><Message>..</Message></Error>; nullopt when the
// body is not such a document (empty, HTML from a proxy, another root).
struct S3ErrorReply {
  std::string code;
  std::string message;
};
std::optional<S3ErrorReply> ParseS3Error(std::string_view body);

// One page of ListObjectsV2. Keys are full keys, as the store has them.
struct S3ListPage {
  struct Object {
    std::string key;
    uint64_t size = 0;
    int64_t modified_unix_ms = 0;
  };
  std::vector<Object> objects;
  bool truncated = false;
  std::string next_continuation_token;  // set when truncated
};
[[nodiscard]] Result<S3ListPage> ParseListObjectsV2(std::string_view body);

// <InitiateMultipartUploadResult><UploadId>..</UploadId>: the upload id.
[[nodiscard]] Result<std::string> ParseInitiateMultipartUpload(std::string_view body);

// CompleteMultipartUpload answers 200 and then either its result or, when the
// store failed while assembling the parts, an <Error> document. Ok only for
// <CompleteMultipartUploadResult>; an <Error> comes back as its code and
// message (kUpstreamUnavailable), anything else as kUpstreamInvalid.
[[nodiscard]] Status CheckCompleteMultipartUpload(std::string_view body);

// One page of ListMultipartUploads.
struct S3UploadsPage {
  struct Upload {
    std::string key;
    std::string upload_id;
    int64_t initiated_unix_ms = 0;
  };
  std::vector<Upload> uploads;
  bool truncated = false;
  std::string next_key_marker;
  std::string next_upload_id_marker;
};
[[nodiscard]] Result<S3UploadsPage> ParseListMultipartUploads(std::string_view body);

// "2009-10-12T17:50:30.000Z" (ISO 8601 in UTC, fraction optional, as S3
// writes LastModified and Initiated) in unix milliseconds.
std::optional<int64_t> ParseIso8601Ms(std::string_view text);

// Text as XML character data: & < > escaped (and " for attribute safety).
std::string XmlEscape(std::string_view text);

}  // namespace hubcache
