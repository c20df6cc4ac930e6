#pragma once
// The subcommands of the hubcache binary. Each lives in its own file and is
// listed once in commands.cpp; main() only dispatches.

#include <string>
#include <vector>

namespace hubcache {

// Exit codes shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and failed
inline constexpr int kExitUsage = 2;    // bad usage, bad configuration, unreadable input

struct Command {
  const char* name;                                  // "serve"
  const char* summary;                               // one line for --help
  int (*run)(const std::vector<std::string>& args);  // args after the name
};

const std::vector<Command>& Commands();

// Prints the settings of `serve` (flags and environment names) for --help.
void PrintSettingsHelp();

int RunServe(const std::vector<std::string>& args);
int RunGc(const std::vector<std::string>& args);
int RunImport(const std::vector<std::string>& args);
int RunLs(const std::vector<std::string>& args);
int RunRm(const std::vector<std::string>& args);
int RunPrewarm(const std::vector<std::string>& args);
int RunStats(const std::vector<std::string>& args);
int RunCheckConfig(const std::vector<std::string>& args);

}  // namespace hubcache
