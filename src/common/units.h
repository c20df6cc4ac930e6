#pragma once
// Units, both ways: the one home of sizes and durations for people to read
// (every table and log) and of the parsers of what people write in settings
// ("50GiB", "90%", "1h30m"). Pure functions; thread-safe.

#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"

namespace hubcache {

// "0 B", "512 B", "1.5 KiB", "6.0 MiB" (binary units).
std::string HumanBytes(uint64_t bytes);
// "0.4s", "42s", "3m05s", "2h03m".
std::string HumanDuration(double seconds);

// "50GiB", "500MB", "1.5G", "1024" (bytes). Units: B, K/KB, M/MB, G/GB, T/TB
// (powers of 1000) and KiB, MiB, GiB, TiB (powers of 1024); one-letter units are
// binary, as operators mean them for disk caps.
[[nodiscard]] Result<uint64_t> ParseByteSize(const std::string& text);

// "90%" or a fraction "0.9", within [0, 1].
[[nodiscard]] Result<double> ParseFraction(const std::string& text);

// "90s", "5m", "1h", "250ms", a bare number of seconds, or Go's compound form
// as the CNCF registry's config.yml writes it ("1h30m", "24h0m0s").
[[nodiscard]] Result<std::chrono::milliseconds> ParseDuration(const std::string& text);

}  // namespace hubcache
