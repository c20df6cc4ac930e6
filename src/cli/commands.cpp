#include <cstdio>

#include "cli/command.h"
#include "config/config.h"

namespace hubcache {

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"serve", "run the mirror", &RunServe},
      {"ls", "list cached images: [--root DIR] [--json]", &RunLs},
      {"rm", "remove cached images: [--root DIR] IMAGE... | --blob DIGEST...", &RunRm},
      {"gc", "reconcile index and files: [--root DIR] [--verify] [--dry-run]", &RunGc},
      {"import", "adopt a registry:2 store as hosted repositories: DIR [--root DIR] [--hosted P]",
       &RunImport},
      {"prewarm", "fetch a list of images into a running mirror", &RunPrewarm},
      {"stats", "what a running mirror reports: [--url URL] [--json]", &RunStats},
      {"check-config", "validate settings, print them (secrets masked)", &RunCheckConfig},
  };
  return commands;
}

void PrintSettingsHelp() {
  for (const auto& s : Settings()) std::printf("  %-28s %-42s %s\n", s.flag, s.env, s.help);
}

}  // namespace hubcache
