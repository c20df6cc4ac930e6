#include "common/log.h"

#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>

namespace hubcache {
namespace {

std::mutex& LoggerMutex() {
  static std::mutex mutex;
  return mutex;
}

spdlog::level::level_enum& CurrentLevel() {
  static spdlog::level::level_enum level = spdlog::level::info;
  return level;
}

}  // namespace

bool SetLogLevel(const std::string& level) {
  spdlog::level::level_enum parsed;
  if (level == "error") {
    parsed = spdlog::level::err;
  } else if (level == "warn" || level == "warning") {
    parsed = spdlog::level::warn;
  } else if (level == "info") {
    parsed = spdlog::level::info;
  } else if (level == "debug") {
    parsed = spdlog::level::debug;
  } else {
    return false;
  }
  std::lock_guard lock(LoggerMutex());
  CurrentLevel() = parsed;
  spdlog::apply_all([parsed](std::shared_ptr<spdlog::logger> l) { l->set_level(parsed); });
  return true;
}

std::shared_ptr<spdlog::logger> Logger(const std::string& module) {
  std::lock_guard lock(LoggerMutex());
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = spdlog::stderr_logger_mt(module);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %n: %v", spdlog::pattern_time_type::utc);
  logger->set_level(CurrentLevel());
  return logger;
}

}  // namespace hubcache
