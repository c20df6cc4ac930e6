#include "upstream/s3_xml.h"

#include "common/strings.h"

namespace hubcache {
namespace {

constexpr int kMaxDepth = 32;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool IsNameChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == ':' || c == '.' || c == '-' || u >= 0x80;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A recursive-descent reader over one document; the first error stops it.
class XmlReader {
 public:
  explicit XmlReader(std::string_view doc) : s_(doc) {}

  Result<XmlElement> Document() {
    SkipMisc(/*prolog=*/true);
    if (!error_.empty()) return Failure();
    if (!At("<")) return Failure("no root element");
    XmlElement root;
    if (!Element(root, 1)) return Failure();
    SkipMisc(/*prolog=*/false);
    if (!error_.empty()) return Failure();
    if (pos_ != s_.size()) return Failure("content after the root element");
    return root;
  }

 private:
  tl::unexpected<Error> Failure(const std::string& why = "") {
    if (!why.empty()) error_ = why;
    return Fail(ErrorKind::kUpstreamInvalid, "malformed XML from the object store: " + error_ +
                                                 " at byte " + std::to_string(pos_));
  }
  bool Bad(const std::string& why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  bool At(std::string_view lit) const { return s_.substr(pos_, lit.size()) == lit; }
  void SkipSpaces() {
    while (pos_ < s_.size() && IsSpace(s_[pos_])) ++pos_;
  }
  // Moves past the next `end`; false when there is none.
  bool SkipPast(std::string_view end) {
    size_t at = s_.find(end, pos_);
    if (at == std::string_view::npos) return false;
    pos_ = at + end.size();
    return true;
  }

  // Whitespace, comments and processing instructions (the XML declaration
  // among them); in the prolog also a DOCTYPE without an internal subset.
  void SkipMisc(bool prolog) {
    while (true) {
      SkipSpaces();
      if (At("<?")) {
        if (!SkipPast("?>")) return void(Bad("unterminated processing instruction"));
      } else if (At("<!--")) {
        if (!SkipPast("-->")) return void(Bad("unterminated comment"));
      } else if (prolog && At("<!DOCTYPE")) {
        size_t end = s_.find('>', pos_);
        if (end == std::string_view::npos ||
            s_.substr(pos_, end - pos_).find('[') != std::string_view::npos) {
          return void(Bad("unsupported DOCTYPE"));
        }
        pos_ = end + 1;
      } else {
        return;
      }
    }
  }

  bool Name(std::string& out) {
    size_t start = pos_;
    while (pos_ < s_.size() && IsNameChar(s_[pos_])) ++pos_;
    if (pos_ == start) return Bad("expected a name");
    std::string_view name = s_.substr(start, pos_ - start);
    size_t colon = name.rfind(':');
    out = std::string(colon == std::string_view::npos ? name : name.substr(colon + 1));
    if (out.empty()) return Bad("empty local name");
    return true;
  }

  // Character data up to the next '<', entities decoded, appended to out.
  bool Text(std::string& out) {
    while (pos_ < s_.size() && s_[pos_] != '<') {
      char c = s_[pos_];
      if (c != '&') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      size_t semi = s_.find(';', pos_);
      if (semi == std::string_view::npos || semi - pos_ > 12) return Bad("bad entity");
      std::string_view ref = s_.substr(pos_ + 1, semi - pos_ - 1);
      pos_ = semi + 1;
      if (ref == "amp") {
        out.push_back('&');
      } else if (ref == "lt") {
        out.push_back('<');
      } else if (ref == "gt") {
        out.push_back('>');
      } else if (ref == "quot") {
        out.push_back('"');
      } else if (ref == "apos") {
        out.push_back('\'');
      } else if (ref.size() >= 2 && ref[0] == '#') {
        bool hex = ref[1] == 'x';
        std::string_view digits = ref.substr(hex ? 2 : 1);
        if (digits.empty() || digits.size() > 8) return Bad("bad character reference");
        uint32_t cp = 0;
        for (char d : digits) {
          if (hex ? !IsHexDigit(d) : !IsDigit(d)) return Bad("bad character reference");
          cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(hex ? HexValue(d) : d - '0');
        }
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
          return Bad("character reference out of range");
        }
        AppendUtf8(out, cp);
      } else {
        return Bad("unknown entity");
      }
    }
    return true;
  }

  // Attributes are read past, their values unused.
  bool SkipAttributes() {
    while (true) {
      SkipSpaces();
      if (pos_ >= s_.size()) return Bad("unterminated tag");
      if (s_[pos_] == '>' || At("/>")) return true;
      std::string ignored;
      if (!Name(ignored)) return false;
      SkipSpaces();
      if (!At("=")) return Bad("attribute without a value");
      ++pos_;
      SkipSpaces();
      if (pos_ >= s_.size() || (s_[pos_] != '"' && s_[pos_] != '\'')) {
        return Bad("unquoted attribute value");
      }
      char quote = s_[pos_++];
      size_t end = s_.find(quote, pos_);
      if (end == std::string_view::npos) return Bad("unterminated attribute value");
      if (s_.substr(pos_, end - pos_).find('<') != std::string_view::npos) {
        return Bad("'<' in an attribute value");
      }
      pos_ = end + 1;
    }
  }

  bool Element(XmlElement& out, int depth) {
    if (depth > kMaxDepth) return Bad("nested too deep");
    ++pos_;  // '<'
    if (!Name(out.name)) return false;
    if (!SkipAttributes()) return false;
    if (At("/>")) {
      pos_ += 2;
      return true;
    }
    ++pos_;  // '>'
    while (true) {
      if (pos_ >= s_.size()) return Bad("unterminated element <" + out.name + ">");
      if (At("</")) {
        pos_ += 2;
        std::string closing;
        if (!Name(closing)) return false;
        if (closing != out.name) return Bad("</" + closing + "> closes <" + out.name + ">");
        SkipSpaces();
        if (!At(">")) return Bad("bad closing tag");
        ++pos_;
        return true;
      }
      if (At("<!--")) {
        if (!SkipPast("-->")) return Bad("unterminated comment");
      } else if (At("<![CDATA[")) {
        size_t start = pos_ + 9;
        size_t end = s_.find("]]>", start);
        if (end == std::string_view::npos) return Bad("unterminated CDATA");
        out.text.append(s_.substr(start, end - start));
        pos_ = end + 3;
      } else if (At("<?")) {
        if (!SkipPast("?>")) return Bad("unterminated processing instruction");
      } else if (At("<!")) {
        return Bad("unexpected declaration");
      } else if (At("<")) {
        out.children.emplace_back();
        if (!Element(out.children.back(), depth + 1)) return false;
      } else if (!Text(out.text)) {
        return false;
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

// The value of a numeric child, trimmed; nullopt when absent or not a number.
std::optional<uint64_t> ChildNumber(const XmlElement& e, std::string_view name) {
  const XmlElement* c = e.Child(name);
  if (c == nullptr) return std::nullopt;
  return ParseUint(TrimSpaces(c->text));
}

bool ChildTrue(const XmlElement& e, std::string_view name) {
  return TrimSpaces(e.ChildText(name)) == "true";
}

tl::unexpected<Error> Unexpected(std::string_view what, const XmlElement& root) {
  return Fail(ErrorKind::kUpstreamInvalid, "the object store answered <" + root.name + "> where " +
                                               std::string(what) + " was expected");
}

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child) const {
  for (const auto& c : children) {
    if (c.name == child) return &c;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child) const {
  const XmlElement* c = Child(child);
  return c == nullptr ? std::string() : c->text;
}

Result<XmlElement> ParseXml(std::string_view document) { return XmlReader(document).Document(); }

std::optional<S3ErrorReply> ParseS3Error(std::string_view body) {
  auto doc = ParseXml(body);
  if (!doc || doc->name != "Error") return std::nullopt;
  S3ErrorReply out;
  out.code = std::string(TrimSpaces(doc->ChildText("Code")));
  out.message = std::string(TrimSpaces(doc->ChildText("Message")));
  if (out.code.empty()) return std::nullopt;
  return out;
}

Result<S3ListPage> ParseListObjectsV2(std::string_view body) {
  auto doc = ParseXml(body);
  if (!doc) return tl::unexpected(doc.error());
  if (doc->name != "ListBucketResult") return Unexpected("<ListBucketResult>", *doc);
  S3ListPage page;
  for (const auto& c : doc->children) {
    if (c.name != "Contents") continue;
    S3ListPage::Object object;
    const XmlElement* key = c.Child("Key");
    auto size = ChildNumber(c, "Size");
    if (key == nullptr || key->text.empty() || !size) {
      return Fail(ErrorKind::kUpstreamInvalid, "a listed object without a key or size");
    }
    object.key = key->text;
    object.size = *size;
    object.modified_unix_ms = ParseIso8601Ms(TrimSpaces(c.ChildText("LastModified"))).value_or(0);
    page.objects.push_back(std::move(object));
  }
  page.truncated = ChildTrue(*doc, "IsTruncated");
  if (page.truncated) {
    page.next_continuation_token = std::string(TrimSpaces(doc->ChildText("NextContinuationToken")));
    if (page.next_continuation_token.empty()) {
      return Fail(ErrorKind::kUpstreamInvalid, "a truncated listing without a continuation token");
    }
  }
  return page;
}

Result<std::string> ParseInitiateMultipartUpload(std::string_view body) {
  auto doc = ParseXml(body);
  if (!doc) return tl::unexpected(doc.error());
  if (doc->name != "InitiateMultipartUploadResult") {
    return Unexpected("<InitiateMultipartUploadResult>", *doc);
  }
  std::string id(TrimSpaces(doc->ChildText("UploadId")));
  if (id.empty()) return Fail(ErrorKind::kUpstreamInvalid, "a new multipart upload without an id");
  return id;
}

Status CheckCompleteMultipartUpload(std::string_view body) {
  auto doc = ParseXml(body);
  if (!doc) return tl::unexpected(doc.error());
  if (doc->name == "CompleteMultipartUploadResult") return {};
  if (doc->name == "Error") {
    return Fail(ErrorKind::kUpstreamUnavailable,
                "completing the multipart upload failed: " +
                    std::string(TrimSpaces(doc->ChildText("Code"))) + ": " +
                    std::string(TrimSpaces(doc->ChildText("Message"))));
  }
  return Unexpected("<CompleteMultipartUploadResult>", *doc);
}

Result<S3UploadsPage> ParseListMultipartUploads(std::string_view body) {
  auto doc = ParseXml(body);
  if (!doc) return tl::unexpected(doc.error());
  if (doc->name != "ListMultipartUploadsResult") {
    return Unexpected("<ListMultipartUploadsResult>", *doc);
  }
  S3UploadsPage page;
  for (const auto& c : doc->children) {
    if (c.name != "Upload") continue;
    S3UploadsPage::Upload upload;
    upload.key = c.ChildText("Key");
    upload.upload_id = std::string(TrimSpaces(c.ChildText("UploadId")));
    if (upload.key.empty() || upload.upload_id.empty()) {
      return Fail(ErrorKind::kUpstreamInvalid, "a listed upload without a key or id");
    }
    upload.initiated_unix_ms = ParseIso8601Ms(TrimSpaces(c.ChildText("Initiated"))).value_or(0);
    page.uploads.push_back(std::move(upload));
  }
  page.truncated = ChildTrue(*doc, "IsTruncated");
  page.next_key_marker = doc->ChildText("NextKeyMarker");
  page.next_upload_id_marker = std::string(TrimSpaces(doc->ChildText("NextUploadIdMarker")));
  return page;
}

std::optional<int64_t> ParseIso8601Ms(std::string_view t) {
  // YYYY-MM-DDTHH:MM:SS[.f+](Z|+00:00)
  auto num = [&](size_t at, size_t n) -> std::optional<unsigned> {
    if (at + n > t.size()) return std::nullopt;
    unsigned v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (!IsDigit(t[i])) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(t[i] - '0');
    }
    return v;
  };
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
      t[13] != ':' || t[16] != ':') {
    return std::nullopt;
  }
  auto year = num(0, 4), month = num(5, 2), day = num(8, 2);
  auto hour = num(11, 2), minute = num(14, 2), second = num(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || *month < 1 || *month > 12 ||
      *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t ms = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    size_t start = pos;
    int64_t scale = 100;
    while (pos < t.size() && IsDigit(t[pos])) {
      ms += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  std::string_view zone = t.substr(pos);
  if (zone != "Z" && zone != "z" && zone != "+00:00") return std::nullopt;
  int64_t days = DaysFromCivil(*year, *month, *day);
  return ((days * 24 + *hour) * 60 + *minute) * 60'000 + int64_t{*second} * 1000 + ms;
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

}  // namespace hubcache
