// hubcache: a pull-through caching mirror for Docker Hub. This file only parses
// the command line and wires the pieces together.

#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cache/mirror.h"
#include "common/log.h"
#include "config/config.h"
#include "http/http_server.h"

namespace {

constexpr int kExitUsage = 2;

void PrintHelp() {
  std::printf(
      "hubcache %s - a pull-through caching mirror for Docker Hub\n\n"
      "Usage:\n"
      "  hubcache serve [options]   run the mirror\n"
      "  hubcache --help            this text\n"
      "  hubcache --version         the version\n\n"
      "Options of serve (flags win over the environment variables):\n",
      HUBCACHE_VERSION);
  for (const auto& s : hubcache::Settings()) {
    std::printf("  %-28s %-42s %s\n", s.flag, s.env, s.help);
  }
}

int Serve(const std::vector<std::string>& args) {
  auto config = hubcache::LoadConfig(hubcache::ProcessEnvironment(), args);
  if (!config) {
    std::fprintf(stderr, "hubcache: invalid configuration: %s\n", config.error().message.c_str());
    return kExitUsage;
  }
  hubcache::SetLogLevel(config->log_level);
  auto log = hubcache::Logger("main");

  // Signals are taken by one thread with sigwait, so block them everywhere first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto mirror = hubcache::Mirror::Open(*config);
  if (!mirror) {
    std::fprintf(stderr, "hubcache: cannot open the cache: %s\n", mirror.error().message.c_str());
    return 1;
  }
  hubcache::HttpServer server(**mirror, hubcache::HttpOptions{config->http_addr, config->workers,
                                                              config->keepalive_timeout});
  if (auto s = server.Bind(); !s) {
    std::fprintf(stderr, "hubcache: %s\n", s.error().message.c_str());
    return 1;
  }
  log->info("listening addr={} port={} upstream={} root={}", config->http_addr, server.port(),
            config->upstream_url, config->root_dir);

  std::thread signal_watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    log->info("signal {} received, shutting down", sig);
    server.Stop();
  });
  server.Run();
  // Run returned without a signal (listen failure): wake the watcher.
  pthread_kill(signal_watcher.native_handle(), SIGTERM);
  signal_watcher.join();
  log->info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    PrintHelp();
    return args.empty() ? kExitUsage : 0;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::printf("hubcache %s\n", HUBCACHE_VERSION);
    return 0;
  }
  if (args[0] == "serve") {
    std::vector<std::string> rest(args.begin() + 1, args.end());
    for (const auto& a : rest) {
      if (a == "--help" || a == "-h") {
        PrintHelp();
        return 0;
      }
    }
    return Serve(rest);
  }
  std::fprintf(stderr, "hubcache: unknown command '%s' (try hubcache --help)\n", args[0].c_str());
  return kExitUsage;
}
