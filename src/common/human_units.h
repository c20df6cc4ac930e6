#pragma once
// Sizes for people to read: "0 B", "512 B", "1.5 KiB", "6.0 MiB" (binary units).
// The one formatter every table and log in the project uses.

#include <cstdint>
#include <string>

namespace hubcache {

std::string HumanBytes(uint64_t bytes);

}  // namespace hubcache
