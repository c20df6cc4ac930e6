#pragma once
// Small string helpers shared by the parsers. ASCII only.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hubcache {

std::string ToLower(std::string_view s);
std::string_view TrimSpaces(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);
// Case-insensitive (ASCII) equality, as HTTP field names and tokens compare.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

constexpr char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }
// A non-empty run of decimal digits that fits 64 bits; nullopt otherwise
// (no sign, no spaces).
std::optional<uint64_t> ParseUint(std::string_view s);
constexpr bool IsHexDigit(char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
// The value of a hexadecimal digit (IsHexDigit(c) must hold).
constexpr int HexValue(char c) { return IsDigit(c) ? c - '0' : AsciiLower(c) - 'a' + 10; }
// A tchar of RFC 9110 section 5.6.2: what a method, a field name or a token is made of.
constexpr bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
// A non-empty run of tchars.
constexpr bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

}  // namespace hubcache
