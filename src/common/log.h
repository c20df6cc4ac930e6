#pragma once
// Named spdlog loggers, one per module, all writing to stderr at the configured
// level. Never log tokens, passwords or Authorization headers.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace hubcache {

// Sets the level of every module logger ("error", "warn", "info", "debug").
// Returns false for an unknown level name.
bool SetLogLevel(const std::string& level);

// The logger for a module ("http", "cache", "upstream", ...), created on first use.
std::shared_ptr<spdlog::logger> Logger(const std::string& module);

}  // namespace hubcache
