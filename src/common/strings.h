#pragma once
// Small string helpers shared by the parsers. ASCII only.

#include <string>
#include <string_view>

namespace hubcache {

std::string ToLower(std::string_view s);
std::string_view TrimSpaces(std::string_view s);
bool StartsWith(std::string_view s, std::string_view prefix);

}  // namespace hubcache
