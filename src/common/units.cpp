#include "common/units.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <map>

#include "common/strings.h"

namespace hubcache {

std::string HumanBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string HumanDuration(double seconds) {
  char buf[32];
  if (seconds < 0) seconds = 0;
  if (seconds < 10) {
    std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
    return buf;
  }
  auto s = static_cast<uint64_t>(seconds + 0.5);
  if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llus", static_cast<unsigned long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%llum%02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s % 3600 / 60));
  }
  return buf;
}

Result<uint64_t> ParseByteSize(const std::string& text) {
  size_t end = 0;
  while (end < text.size() && ((text[end] >= '0' && text[end] <= '9') || text[end] == '.')) ++end;
  std::string number = text.substr(0, end);
  std::string unit = text.substr(end);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  double value = 0;
  if (number.empty() || number.size() > 20 || number.front() == '.' ||
      std::count(number.begin(), number.end(), '.') > 1) {
    return Fail(ErrorKind::kConfigInvalid,
                "expected a size like 50GiB or 500MB, got '" + text + "'");
  }
  value = std::stod(number);
  static const std::map<std::string, double> kUnits = {{"", 1},
                                                       {"B", 1},
                                                       {"K", 1024.0},
                                                       {"KB", 1e3},
                                                       {"KiB", 1024.0},
                                                       {"M", 1048576.0},
                                                       {"MB", 1e6},
                                                       {"MiB", 1048576.0},
                                                       {"G", 1073741824.0},
                                                       {"GB", 1e9},
                                                       {"GiB", 1073741824.0},
                                                       {"T", 1099511627776.0},
                                                       {"TB", 1e12},
                                                       {"TiB", 1099511627776.0}};
  auto it = kUnits.find(unit);
  if (it == kUnits.end()) {
    return Fail(ErrorKind::kConfigInvalid,
                "unknown size unit in '" + text + "' (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  }
  double bytes = value * it->second;
  if (bytes > 9.0e18) return Fail(ErrorKind::kConfigInvalid, "size too large: '" + text + "'");
  return static_cast<uint64_t>(bytes);
}

Result<double> ParseFraction(const std::string& text) {
  std::string number = text;
  bool percent = !number.empty() && number.back() == '%';
  if (percent) number.pop_back();
  // The length bound keeps std::stod from throwing out_of_range on a value too
  // large or too small for a double (hundreds of digits).
  if (number.empty() || number.size() > 20 ||
      number.find_first_not_of("0123456789.") != std::string::npos ||
      std::count(number.begin(), number.end(), '.') > 1 || number.front() == '.') {
    return Fail(ErrorKind::kConfigInvalid, "expected a share like 90% or 0.9, got '" + text + "'");
  }
  double value = std::stod(number);
  if (percent) value /= 100.0;
  if (value < 0 || value > 1) {
    return Fail(ErrorKind::kConfigInvalid, "share must be between 0% and 100%, got '" + text + "'");
  }
  return value;
}

Result<std::chrono::milliseconds> ParseDuration(const std::string& text) {
  // One number and unit ("90s"), a bare number of seconds, or Go's compound
  // form as the CNCF registry's config.yml writes it ("1h30m", "24h0m0s").
  auto bad = [&] {
    return Fail(ErrorKind::kConfigInvalid,
                "expected a duration like 30s, 5m, 1h or 250ms, got '" + text + "'");
  };
  if (text.empty() || text.size() > 40) return bad();
  int64_t total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t digits = 0;
    while (pos + digits < text.size() && IsDigit(text[pos + digits])) ++digits;
    if (digits == 0 || digits > 12) return bad();
    int64_t n = std::stoll(text.substr(pos, digits));
    pos += digits;
    size_t unit_end = pos;
    while (unit_end < text.size() && !IsDigit(text[unit_end])) ++unit_end;
    std::string unit = text.substr(pos, unit_end - pos);
    pos = unit_end;
    int64_t ms_per_unit;
    if (unit.empty()) {
      if (digits != text.size()) return bad();  // only alone: "1h30" is a mistake
      ms_per_unit = 1000;
    } else if (unit == "s") {
      ms_per_unit = 1000;
    } else if (unit == "ms") {
      ms_per_unit = 1;
    } else if (unit == "m") {
      ms_per_unit = 60'000;
    } else if (unit == "h") {
      ms_per_unit = 3'600'000;
    } else {
      return Fail(ErrorKind::kConfigInvalid,
                  "unknown duration unit in '" + text + "' (use ms, s, m or h)");
    }
    if (n > (int64_t{1} << 50) / ms_per_unit) return bad();
    total += n * ms_per_unit;
  }
  return std::chrono::milliseconds(total);
}

}  // namespace hubcache
