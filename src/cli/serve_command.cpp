#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <thread>

#include "cache/mirror.h"
#include "cli/command.h"
#include "common/log.h"
#include "config/config.h"
#include "http/http_server.h"
#include "prewarm/keep_warm.h"

namespace hubcache {

int RunServe(const std::vector<std::string>& args) {
  auto config = LoadConfig(ProcessEnvironment(), args);
  if (!config) {
    std::fprintf(stderr, "hubcache: invalid configuration: %s\n", config.error().message.c_str());
    return kExitUsage;
  }
  SetLogLevel(config->log_level);
  auto log = Logger("main");

  // Signals are taken by one thread with sigwait, so block them everywhere first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto mirror = Mirror::Open(*config);
  if (!mirror) {
    std::fprintf(stderr, "hubcache: cannot open the cache: %s\n", mirror.error().message.c_str());
    return kExitFailure;
  }
  HttpServer server(**mirror,
                    HttpOptions{config->http_addr, config->workers, config->keepalive_timeout});
  if (auto s = server.Bind(); !s) {
    std::fprintf(stderr, "hubcache: %s\n", s.error().message.c_str());
    return kExitFailure;
  }
  log->info("listening addr={} port={} upstream={} root={}", config->http_addr, server.port(),
            config->upstream_url, config->root_dir);
  std::unique_ptr<KeepWarm> keep_warm;  // --prewarm-file, warmed through this server
  if (!config->prewarm_file.empty()) {
    auto created = KeepWarm::Create(KeepWarm::OptionsFor(*config, server.port()));
    if (!created) {
      std::fprintf(stderr, "hubcache: invalid configuration: %s\n",
                   created.error().message.c_str());
      return kExitUsage;
    }
    keep_warm = std::move(*created);
    keep_warm->Start();
  }

  std::thread signal_watcher([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    log->info("signal {} received, shutting down", sig);
    if (keep_warm) keep_warm->Stop();  // its transfers would hold the drain
    server.Stop();
  });
  server.Run();
  // Run returned without a signal (listen failure): wake the watcher.
  pthread_kill(signal_watcher.native_handle(), SIGTERM);
  signal_watcher.join();
  log->info("stopped");
  return kExitOk;
}

}  // namespace hubcache
