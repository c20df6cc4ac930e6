#include "upstream/www_authenticate.h"

#include "common/strings.h"

namespace hubcache {
namespace {

// A tchar, or one of token68's others ("/" and the trailing "="): what a bare
// parameter value or a token68 credential is made of.
bool IsTokenOrToken68Char(char c) { return IsTokenChar(c) || c == '/' || c == '='; }

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[i_]; }
  void Advance() { ++i_; }
  void SkipSpaces() {
    while (!AtEnd() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  void SkipSpacesAndCommas() {
    while (!AtEnd() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == ',')) ++i_;
  }
  // A token without '=' (scheme names and parameter names).
  std::string_view Name() {
    size_t start = i_;
    while (!AtEnd() && IsTokenChar(s_[i_])) ++i_;
    return s_.substr(start, i_ - start);
  }
  std::optional<std::string> Value() {
    if (Peek() == '"') {
      Advance();
      std::string out;
      while (!AtEnd()) {
        char c = s_[i_++];
        if (c == '\\') {
          if (AtEnd()) return std::nullopt;
          out.push_back(s_[i_++]);
        } else if (c == '"') {
          return out;
        } else {
          out.push_back(c);
        }
      }
      return std::nullopt;  // unterminated quote
    }
    size_t start = i_;
    while (!AtEnd() && IsTokenOrToken68Char(s_[i_])) ++i_;
    return std::string(s_.substr(start, i_ - start));
  }
  size_t pos() const { return i_; }
  void set_pos(size_t p) { i_ = p; }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header) {
  std::vector<AuthChallenge> out;
  Cursor cur(header);
  cur.SkipSpacesAndCommas();
  while (!cur.AtEnd()) {
    std::string_view scheme = cur.Name();
    if (scheme.empty()) break;
    AuthChallenge challenge;
    challenge.scheme = ToLower(scheme);
    cur.SkipSpaces();
    // auth-params: name=value pairs separated by commas, until the next scheme.
    while (!cur.AtEnd()) {
      cur.SkipSpacesAndCommas();
      size_t mark = cur.pos();
      std::string_view name = cur.Name();
      cur.SkipSpaces();
      if (name.empty() || cur.Peek() != '=') {
        cur.set_pos(mark);  // the start of the next challenge (or junk)
        break;
      }
      cur.Advance();
      cur.SkipSpaces();
      auto value = cur.Value();
      if (!value) {
        out.push_back(std::move(challenge));
        return out;
      }
      challenge.params[ToLower(name)] = std::move(*value);
      cur.SkipSpaces();
    }
    out.push_back(std::move(challenge));
    size_t before = cur.pos();
    cur.SkipSpacesAndCommas();
    if (cur.pos() == before && !cur.AtEnd() && !IsTokenChar(cur.Peek())) break;
    if (!cur.AtEnd() && !IsTokenChar(cur.Peek())) break;
  }
  return out;
}

std::optional<AuthChallenge> PickChallenge(std::string_view header) {
  auto challenges = ParseWwwAuthenticate(header);
  for (auto& c : challenges) {
    if (c.scheme == "bearer" && !c.Param("realm").empty()) return c;
  }
  for (auto& c : challenges) {
    if (c.scheme == "basic") return c;
  }
  return std::nullopt;
}

}  // namespace hubcache
