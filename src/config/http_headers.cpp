#include "config/http_headers.h"

#include <string_view>

#include "common/strings.h"

namespace hubcache {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// A field value as it may go on the wire: visible text, spaces and tabs inside,
// no control byte (CR, LF and NUL among them), nothing blank at either end.
Status CheckValue(const std::string& value) {
  if (value.empty()) return Fail(ErrorKind::kConfigInvalid, "empty value");
  for (char c : value) {
    auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
      return Fail(ErrorKind::kConfigInvalid, "control character in value");
    }
  }
  if (IsBlank(value.front()) || IsBlank(value.back())) {
    return Fail(ErrorKind::kConfigInvalid, "value begins or ends with a blank");
  }
  return {};
}

// Reads a quoted scalar starting at text[pos] (the quote) into `out`; `pos`
// ends past the closing quote.
Status ReadQuoted(std::string_view text, size_t& pos, std::string& out) {
  const char quote = text[pos++];
  while (pos < text.size()) {
    char c = text[pos++];
    if (c == quote) {
      // In single quotes, '' is one quote.
      if (quote == '\'' && pos < text.size() && text[pos] == '\'') {
        out += '\'';
        ++pos;
        continue;
      }
      return {};
    }
    if (quote == '"' && c == '\\') {
      if (pos >= text.size()) break;
      char e = text[pos++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 't':
          out += '\t';
          break;
        default:
          return Fail(ErrorKind::kConfigInvalid,
                      std::string("unsupported escape \\") + e + " in a double-quoted value");
      }
      continue;
    }
    out += c;
  }
  return Fail(ErrorKind::kConfigInvalid, std::string("unterminated ") + quote + " quote");
}

Result<std::vector<std::string>> ParseList(std::string_view text) {
  std::vector<std::string> values;
  size_t pos = 1;  // past '['
  auto skip_blanks = [&] {
    while (pos < text.size() && IsBlank(text[pos])) ++pos;
  };
  while (true) {
    skip_blanks();
    if (pos >= text.size()) break;
    char c = text[pos];
    if (c == ']') {
      if (values.empty()) return Fail(ErrorKind::kConfigInvalid, "empty list");
      ++pos;
      skip_blanks();
      if (pos != text.size()) return Fail(ErrorKind::kConfigInvalid, "text after the closing ]");
      return values;
    }
    if (c == ',') return Fail(ErrorKind::kConfigInvalid, "empty list element");
    if (c == '[' || c == '{') {
      return Fail(ErrorKind::kConfigInvalid, "nested lists and maps are not header values");
    }
    std::string value;
    if (c == '"' || c == '\'') {
      if (auto s = ReadQuoted(text, pos, value); !s) return tl::unexpected(s.error());
    } else {
      size_t end = text.find_first_of(",]", pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view bare = TrimBlanks(text.substr(pos, end - pos));
      if (auto s = CheckValue(std::string(bare)); !s) return tl::unexpected(s.error());
      if (bare.find_first_of("\"'[]{}") != std::string_view::npos) {
        return Fail(ErrorKind::kConfigInvalid,
                    "stray quote or bracket in element '" + std::string(bare) + "'");
      }
      value = bare;
      pos = end;
    }
    if (auto s = CheckValue(value); !s) return tl::unexpected(s.error());
    values.push_back(std::move(value));
    skip_blanks();
    if (pos >= text.size()) break;
    if (text[pos] == ',') {
      ++pos;  // a trailing comma before ']' is allowed, as in YAML
    } else if (text[pos] != ']') {
      return Fail(ErrorKind::kConfigInvalid,
                  "expected , or ] after element '" + values.back() + "'");
    }
  }
  return Fail(ErrorKind::kConfigInvalid, "unterminated list: missing ]");
}

}  // namespace

Result<std::vector<std::string>> ParseHeaderValues(const std::string& raw) {
  std::string_view text = TrimBlanks(raw);
  if (text.empty()) return Fail(ErrorKind::kConfigInvalid, "empty value");
  const char first = text.front();
  if (first == '[') return ParseList(text);
  if (first == '{' || first == ']' || first == '}') {
    return Fail(ErrorKind::kConfigInvalid, "expected a list like [\"a\", \"b\"] or a plain value");
  }
  std::string value;
  if (first == '"' || first == '\'') {
    size_t pos = 0;
    if (auto s = ReadQuoted(text, pos, value); !s) return tl::unexpected(s.error());
    if (pos != text.size()) {
      return Fail(ErrorKind::kConfigInvalid, "text after the closing quote");
    }
  } else {
    value = text;
  }
  if (auto s = CheckValue(value); !s) return tl::unexpected(s.error());
  return std::vector<std::string>{std::move(value)};
}

Status CheckHeaderName(const std::string& name) {
  if (name.empty()) return Fail(ErrorKind::kConfigInvalid, "missing header name");
  for (char c : name) {
    if (!IsTokenChar(c)) {
      return Fail(ErrorKind::kConfigInvalid, "'" + name + "' is not a valid header name");
    }
  }
  for (const char* framing : {"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive"}) {
    if (EqualsIgnoreCase(name, framing)) {
      return Fail(ErrorKind::kConfigInvalid,
                  name + " frames the response and cannot be configured");
    }
  }
  return {};
}

Result<std::vector<ConfiguredHeader>> LoadConfiguredHeaders(
    const std::map<std::string, std::string>& env) {
  std::vector<ConfiguredHeader> headers;
  const std::string_view prefix = kHttpHeadersEnvPrefix;
  for (auto it = env.lower_bound(std::string(prefix)); it != env.end(); ++it) {
    const auto& [variable, text] = *it;
    if (!StartsWith(variable, prefix)) break;
    std::string name = variable.substr(prefix.size());
    if (auto s = CheckHeaderName(name); !s) {
      return Fail(ErrorKind::kConfigInvalid, variable + ": " + s.error().message);
    }
    auto values = ParseHeaderValues(text);
    if (!values) return Fail(ErrorKind::kConfigInvalid, variable + ": " + values.error().message);
    headers.push_back(ConfiguredHeader{std::move(name), std::move(*values)});
  }
  return headers;
}

std::string ShowHeaderValues(const std::vector<std::string>& values) {
  std::string out = "[";
  for (const auto& value : values) {
    if (out.size() > 1) out += ", ";
    out += '"';
    for (char c : value) {
      if (c == '"' || c == '\\') out += '\\';
      out += c == '\t' ? std::string("\\t") : std::string(1, c);
    }
    out += '"';
  }
  return out + "]";
}

}  // namespace hubcache
