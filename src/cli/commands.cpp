#include <cstdio>

#include "cli/command.h"
#include "config/config.h"

namespace hubcache {

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"serve", "run the mirror", &RunServe},
      {"prewarm", "fetch a list of images into a running mirror", &RunPrewarm},
      {"stats", "what a running mirror reports: [--url URL] [--json]", &RunStats},
  };
  return commands;
}

void PrintSettingsHelp() {
  for (const auto& s : Settings()) std::printf("  %-28s %-42s %s\n", s.flag, s.env, s.help);
}

}  // namespace hubcache
