// hubcache: a pull-through caching mirror for Docker Hub. main() only
// dispatches to the subcommands in cli/.

#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"

namespace {

void PrintHelp() {
  std::printf("hubcache %s - a pull-through caching mirror for Docker Hub\n\nUsage:\n",
              HUBCACHE_VERSION);
  for (const auto& c : hubcache::Commands())
    std::printf("  hubcache %-10s %s\n", c.name, c.summary);
  std::printf(
      "  hubcache --help     this text\n"
      "  hubcache --version  the version\n\n"
      "hubcache serve [CONFIG.yml] [FLAGS...]: CONFIG.yml (else $REGISTRY_CONFIGURATION_PATH)\n"
      "is the CNCF registry's config.yml, hubcache's own settings under `hubcache:`.\n\n"
      "Settings of serve (flags win over the environment variables, which win over\n"
      "the configuration file):\n");
  hubcache::PrintSettingsHelp();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    PrintHelp();
    return hubcache::kExitUsage;
  }
  if (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintHelp();
    return hubcache::kExitOk;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("hubcache %s\n", HUBCACHE_VERSION);
    return hubcache::kExitOk;
  }
  for (const auto& c : hubcache::Commands()) {
    if (args[0] != c.name) continue;
    std::vector<std::string> rest(args.begin() + 1, args.end());
    if (std::string(c.name) == "serve") {
      for (const auto& a : rest) {
        if (a == "--help" || a == "-h") {
          PrintHelp();
          return hubcache::kExitOk;
        }
      }
    }
    return c.run(rest);
  }
  std::fprintf(stderr, "hubcache: unknown command '%s' (try hubcache --help)\n", args[0].c_str());
  return hubcache::kExitUsage;
}
