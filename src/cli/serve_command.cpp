#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "cache/mirror.h"
#include "cli/command.h"
#include "common/log.h"
#include "config/config.h"
#include "http/client_auth.h"
#include "http/http_server.h"
#include "prewarm/keep_warm.h"
#include "server/tls_context.h"

namespace hubcache {
namespace {

// Every connection is a descriptor, and each blob transfer or fill takes more:
// the soft limit (often 1024) goes up to the hard one, as nginx's
// worker_rlimit_nofile or Go's runtime do. A warning if even that is short.
void RaiseOpenFileLimit(int max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  rlim_t needed = static_cast<rlim_t>(max_connections) * 2 + 256;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    Logger("main")->warn(
        "open file limit {} is low for --max-connections {}: raise it (ulimit -n, LimitNOFILE)",
        limit.rlim_cur, max_connections);
  }
}

}  // namespace

int RunServe(const std::vector<std::string>& args) {
  auto config = LoadConfig(ProcessEnvironment(), args);
  if (!config) {
    std::fprintf(stderr, "hubcache: invalid configuration: %s\n", config.error().message.c_str());
    return kExitUsage;
  }
  SetLogLevel(config->log_level);
  auto log = Logger("main");
  if (!config->config_file.empty()) {
    log->info("configuration file {}: {} settings, {} upstreams", config->config_file,
              config->file_values.size(), config->upstreams.size());
    for (const auto& k : config->file_ignored) {
      log->warn("configuration file {}: {} (line {}) is not a hubcache setting: ignored",
                config->config_file, k.key, k.line);
    }
  }

  // Signals are taken by one thread with sigwait, so block them everywhere first.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // The TLS files are checked before anything else starts.
  std::shared_ptr<TlsContext> tls;
  if (!config->tls_certificate.empty()) {
    auto loaded =
        TlsContext::Create(config->tls_certificate, config->tls_key, config->tls_client_cas);
    if (!loaded) {
      std::fprintf(stderr, "hubcache: %s\n", loaded.error().message.c_str());
      return kExitUsage;
    }
    tls = *loaded;
  }

  auto mirror = Mirror::Open(*config);
  if (!mirror) {
    std::fprintf(stderr, "hubcache: cannot open the cache: %s\n", mirror.error().message.c_str());
    return kExitFailure;
  }
  auto auth = ClientAuth::Create(*config, (*mirror)->stats());
  if (!auth) {
    std::fprintf(stderr, "hubcache: %s\n", auth.error().message.c_str());
    return kExitUsage;
  }
  if (config->upstream_insecure) {
    log->warn("upstream TLS verification is OFF (HUBCACHE_UPSTREAM_INSECURE): lab use only");
  }
  // The keep-warm pulls through this server, as the internal user when auth is on.
  const std::string self_user = (*auth)->enabled() ? ClientAuth::kInternalUser : "";
  const std::string self_password = (*auth)->enabled() ? (*auth)->internal_password() : "";
  RaiseOpenFileLimit(config->max_connections);
  ConnectionLimits limits;
  limits.max_connections = config->max_connections;
  limits.max_connections_per_client = config->max_connections_per_client;
  limits.header_timeout = config->header_timeout;
  limits.keepalive_timeout = config->keepalive_timeout;
  std::vector<std::pair<std::string, std::string>> response_headers;
  for (const auto& header : config->http_headers) {
    for (const auto& value : header.values) response_headers.emplace_back(header.name, value);
  }
  HttpServer server(**mirror, HttpOptions{config->http_addr, limits, tls, std::move(*auth),
                                          std::move(response_headers)});
  if (auto s = server.Bind(); !s) {
    std::fprintf(stderr, "hubcache: %s\n", s.error().message.c_str());
    return kExitFailure;
  }
  {
    // The upstream client never connects back to us, whatever it is redirected to.
    std::string host = config->http_addr.substr(0, config->http_addr.rfind(':'));
    if (host.size() > 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    (*mirror)->upstreams().SetOwnListener(host, static_cast<uint16_t>(server.port()));
  }
  log->info("listening addr={} port={} upstream={} root={}", config->http_addr, server.port(),
            config->upstream_url, config->root_dir);
  std::unique_ptr<KeepWarm> keep_warm;  // --prewarm-file, warmed through this server
  if (!config->prewarm_file.empty()) {
    auto options = KeepWarm::OptionsFor(*config, server.port(), self_user, self_password);
    auto created = options ? KeepWarm::Create(*options) : tl::unexpected(options.error());
    if (!created) {
      std::fprintf(stderr, "hubcache: invalid configuration: %s\n",
                   created.error().message.c_str());
      return kExitUsage;
    }
    keep_warm = std::move(*created);
    keep_warm->Start();
    server.AddStatsSection("prewarm", [&keep_warm] { return keep_warm->StatusJson(); });
  }

  // The first signal stops accepting and lets transfers finish within the
  // grace period. When the grace period ends, or on a second signal, the
  // pending last-use times are written and the process exits at once. When
  // Run() returns, main wakes this thread with a signal of its own.
  std::atomic<bool> run_finished{false};
  std::thread signal_watcher([&] {
    int sig = 0;
    // SIGHUP re-reads the TLS certificate and key; connections stay up.
    auto reload = [&] {
      if (!tls) return;
      if (auto s = tls->Reload(); !s) {
        log->error("TLS reload failed, keeping the current certificate: {}", s.error().message);
      } else {
        log->info("TLS certificate and key reloaded");
      }
    };
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP && !run_finished) reload();
    if (run_finished) return;
    log->info("signal {} received: draining connections for up to {} ms", sig,
              config->shutdown_grace.count());
    if (keep_warm) keep_warm->Stop();  // its transfers would hold the drain
    server.StopAccepting();
    auto deadline = std::chrono::steady_clock::now() + config->shutdown_grace;
    while (true) {
      auto left =
          std::max(deadline - std::chrono::steady_clock::now(), std::chrono::nanoseconds(0));
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(left);
      timespec timeout{static_cast<time_t>(secs.count()), static_cast<long>((left - secs).count())};
      int got = sigtimedwait(&signals, nullptr, &timeout);
      if (run_finished) return;
      if (got < 0 && errno == EINTR) continue;
      if (got == SIGHUP) {
        reload();
        continue;
      }
      log->warn("{}: exiting with transfers in flight",
                got > 0 ? "second signal" : "shutdown grace period over");
      (*mirror)->Shutdown();
      std::_Exit(kExitOk);
    }
  });
  server.Run();
  run_finished = true;
  pthread_kill(signal_watcher.native_handle(), SIGTERM);
  signal_watcher.join();
  (*mirror)->Shutdown();
  log->info("stopped");
  return kExitOk;
}

}  // namespace hubcache
