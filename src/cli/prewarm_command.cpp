// hubcache prewarm: fetches a list of images into a running mirror. The work
// is prewarm/'s; this file parses the command line, shows progress and prints
// the closing table.

#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/command.h"
#include "common/clock.h"
#include "common/log.h"
#include "prewarm/image_list.h"
#include "prewarm/prewarm_run.h"
#include "prewarm/report.h"

namespace hubcache {
namespace {

constexpr int kMaxConcurrency = 64;
constexpr auto kRedrawInterval = std::chrono::milliseconds(250);
constexpr auto kPlainProgressInterval = std::chrono::seconds(10);

const char kPrewarmUsage[] =
    "Usage: hubcache prewarm [options] -f FILE\n"
    "       hubcache prewarm [options] IMAGE...\n"
    "\n"
    "Fetches every listed image (manifests, configs and layers) into a running mirror,\n"
    "through the mirror itself, so that the first pull of each is a cache hit.\n"
    "IMAGE is what you would pull: alpine, alpine:3.19, library/alpine:3.19,\n"
    "docker.io/library/alpine:3.19, bitnami/redis:7.2, nginx@sha256:..., nginx:1.25@sha256:...\n"
    "A FILE holds one image per line; blank lines and # comments are ignored; - is stdin.\n"
    "\n"
    "Options:\n"
    "  -f, --file FILE        read the images from FILE\n"
    "  --url URL              the mirror (default http://127.0.0.1:5000)\n"
    "  --platform OS/ARCH[/VARIANT]\n"
    "                         warm only this platform of multi-platform images (repeatable)\n"
    "  --all-platforms        warm every platform of multi-platform images (the default)\n"
    "  --concurrency N        parallel requests to the mirror, 1 to 64 (default 4)\n"
    "  --user USER[:PASSWORD] credentials for a mirror that asks for them; without\n"
    "                         :PASSWORD, the password comes from HUBCACHE_PREWARM_PASSWORD\n"
    "  --cacert FILE          PEM bundle to verify an https:// mirror with\n"
    "  --insecure             do not verify an https:// mirror's certificate (lab use)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit status: 0 every image warmed, 1 some failed or a list entry was malformed,\n"
    "2 bad usage or an unreadable list file.\n";

struct PrewarmArgs {
  std::optional<std::string> file;
  std::vector<std::string> images;
  std::string url = "http://127.0.0.1:5000";
  std::vector<Platform> platforms;
  bool all_platforms = false;
  int concurrency = 4;
  std::string username;
  std::optional<std::string> password;
  std::string ca_file;
  bool insecure = false;
  bool help = false;
};

int UsageError(const std::string& message) {
  std::fprintf(stderr, "hubcache prewarm: %s\n(try hubcache prewarm --help)\n", message.c_str());
  return kExitUsage;
}

Result<std::string> ParseMirrorUrl(const std::string& text) {
  std::string url = text;
  bool http = url.rfind("http://", 0) == 0;
  bool https = url.rfind("https://", 0) == 0;
  if ((!http && !https) || url.size() <= (http ? 7u : 8u)) {
    return Fail(ErrorKind::kConfigInvalid,
                "--url: expected an http:// or https:// URL, got '" + text + "'");
  }
  while (url.back() == '/') url.pop_back();
  return url;
}

Result<PrewarmArgs> ParseArgs(const std::vector<std::string>& args) {
  PrewarmArgs out;
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (options_done || arg == "-" || arg.empty() || arg[0] != '-') {
      out.images.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      out.help = true;
      continue;
    }
    if (arg == "--all-platforms") {
      out.all_platforms = true;
      continue;
    }
    if (arg == "--insecure") {
      out.insecure = true;
      continue;
    }
    std::string value;
    if (size_t eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (arg == "-f" || arg == "--file" || arg == "--url" || arg == "--platform" ||
               arg == "--concurrency" || arg == "--user" || arg == "--cacert") {
      if (i + 1 >= args.size()) return Fail(ErrorKind::kConfigInvalid, arg + " needs a value");
      value = args[++i];
    } else {
      return Fail(ErrorKind::kConfigInvalid, "unknown option '" + arg + "'");
    }
    if (arg == "-f" || arg == "--file") {
      if (out.file) return Fail(ErrorKind::kConfigInvalid, "-f/--file given twice");
      if (value.empty()) return Fail(ErrorKind::kConfigInvalid, "-f/--file needs a file name");
      out.file = value;
    } else if (arg == "--url") {
      auto url = ParseMirrorUrl(value);
      if (!url) return tl::unexpected(url.error());
      out.url = *url;
    } else if (arg == "--platform") {
      auto platform = ParsePlatform(value);
      if (!platform)
        return Fail(ErrorKind::kConfigInvalid, "--platform: " + platform.error().message);
      out.platforms.push_back(*platform);
    } else if (arg == "--concurrency") {
      int n = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || n < 1 ||
          n > kMaxConcurrency) {
        return Fail(ErrorKind::kConfigInvalid,
                    "--concurrency: expected a number from 1 to 64, got '" + value + "'");
      }
      out.concurrency = n;
    } else if (arg == "--user") {
      size_t colon = value.find(':');
      out.username = value.substr(0, colon);
      if (colon != std::string::npos) out.password = value.substr(colon + 1);
      if (out.username.empty()) return Fail(ErrorKind::kConfigInvalid, "--user: no user name");
    } else if (arg == "--cacert") {
      if (value.empty()) return Fail(ErrorKind::kConfigInvalid, "--cacert needs a file name");
      out.ca_file = value;
    } else {
      return Fail(ErrorKind::kConfigInvalid, "unknown option '" + arg + "'");
    }
  }
  if (out.help) return out;
  if (out.all_platforms && !out.platforms.empty()) {
    return Fail(ErrorKind::kConfigInvalid, "--platform and --all-platforms exclude each other");
  }
  if (out.file && !out.images.empty()) {
    return Fail(ErrorKind::kConfigInvalid, "give either -f FILE or IMAGE arguments, not both");
  }
  if (!out.file && out.images.empty()) {
    return Fail(ErrorKind::kConfigInvalid, "no images: give -f FILE or IMAGE arguments");
  }
  if (!out.username.empty() && !out.password) {
    const char* env = std::getenv("HUBCACHE_PREWARM_PASSWORD");
    if (env == nullptr) {
      return Fail(ErrorKind::kConfigInvalid,
                  "--user " + out.username +
                      " without :PASSWORD needs the password in HUBCACHE_PREWARM_PASSWORD");
    }
    out.password = env;
  }
  return out;
}

size_t TerminalWidth() {
  winsize ws{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col - 1;
  return 79;
}

std::string FinishedLine(const ImageProgress& i) {
  if (i.state == ImageState::kDone) {
    return "ok      " + i.image + "  " + std::to_string(i.platforms) + " platform(s), " +
           std::to_string(i.blobs_total) + " blobs, fetched " + HumanBytes(i.bytes_fetched) +
           ", already cached " + HumanBytes(i.bytes_cached);
  }
  return "FAILED  " + i.image + "  " + FailureReasonName(i.reason) + ": " + i.error;
}

// Redraws a block of progress lines at the bottom of a terminal; finished
// images scroll up above it as permanent lines.
class LiveDisplay {
 public:
  void Finished(const ImageProgress& image) {
    std::lock_guard lock(mutex_);
    finished_.push_back(FinishedLine(image));
  }

  void Draw(const RunSnapshot& run, bool final) {
    std::vector<std::string> finished;
    {
      std::lock_guard lock(mutex_);
      finished.swap(finished_);
    }
    std::string out;
    if (drawn_ > 0) out += "\x1b[" + std::to_string(drawn_) + "A\r\x1b[J";
    for (const auto& line : finished) out += line + "\n";
    drawn_ = 0;
    if (!final) {
      double elapsed_s = static_cast<double>(UnixNowMs() - run.started_ms) / 1000.0;
      for (const auto& line : ProgressLines(run, elapsed_s, TerminalWidth())) {
        out += line + "\n";
        ++drawn_;
      }
    }
    std::fputs(out.c_str(), stderr);
    std::fflush(stderr);
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> finished_;  // guarded by mutex_
  size_t drawn_ = 0;                   // lines of the block on screen; drawing thread only
};

// Cancels the run on SIGINT/SIGTERM. Owns the thread that waits for them.
class SignalCanceller {
 public:
  explicit SignalCanceller(PrewarmRun& run) {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGINT);
    sigaddset(&signals_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    thread_ = std::thread([this, &run] {
      int sig = 0;
      sigwait(&signals_, &sig);
      if (!done_.load()) {
        std::fprintf(stderr, "hubcache prewarm: signal %d, canceling\n", sig);
        run.Cancel();
      }
    });
  }
  ~SignalCanceller() {
    done_ = true;
    pthread_kill(thread_.native_handle(), SIGTERM);
    thread_.join();
  }

 private:
  sigset_t signals_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

int RunPrewarm(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args);
  if (!parsed) return UsageError(parsed.error().message);
  if (parsed->help) {
    std::fputs(kPrewarmUsage, stdout);
    return kExitOk;
  }

  ImageList list;
  if (parsed->file) {
    auto content = ReadListFile(*parsed->file);
    if (!content) {
      std::fprintf(stderr, "hubcache prewarm: %s\n", content.error().message.c_str());
      return kExitUsage;
    }
    list = ParseImageList(*content);
  } else {
    list = ParseImageArgs(parsed->images);
  }
  for (const auto& e : list.errors) {
    std::fprintf(stderr, "hubcache prewarm: %s (skipped)\n", ListErrorLine(e).c_str());
  }
  if (list.images.empty()) {
    std::fprintf(stderr, "hubcache prewarm: no valid images to warm\n");
    return list.errors.empty() ? kExitOk : kExitFailure;
  }

  PrewarmOptions options;
  options.session.base_url = parsed->url;
  options.session.username = parsed->username;
  options.session.password = parsed->password.value_or("");
  options.session.ca_file = parsed->ca_file;
  options.session.insecure = parsed->insecure;
  options.platforms = parsed->platforms;
  options.concurrency = parsed->concurrency;
  std::vector<ImageRef> refs;
  for (const auto& image : list.images) refs.push_back(image.ref);

  const char* term = std::getenv("TERM");
  const bool live = isatty(STDERR_FILENO) && !(term != nullptr && std::string(term) == "dumb");
  auto log = Logger("prewarm");
  LiveDisplay display;
  PrewarmRun run(std::move(refs), options);
  run.SetObserver([&](const ImageProgress& image) {
    if (!live) {
      if (image.state == ImageState::kFailed) {
        log->warn("{}", ImageLogLine(image));
      } else {
        log->info("{}", ImageLogLine(image));
      }
    } else if (image.finished()) {
      display.Finished(image);
    }
  });
  if (!live) {
    log->info(
        "prewarm start images={} url={} concurrency={} platforms={}", list.images.size(),
        parsed->url, parsed->concurrency, parsed->platforms.empty() ? std::string("all") : [&] {
          std::string p;
          for (const auto& x : parsed->platforms) p += (p.empty() ? "" : ",") + x.str();
          return p;
        }());
  }

  RunSnapshot result;
  {
    SignalCanceller canceller(run);
    std::mutex mutex;
    std::condition_variable finished_cv;
    bool finished = false;
    std::thread worker([&] {
      result = run.Run();
      std::lock_guard lock(mutex);
      finished = true;
      finished_cv.notify_all();
    });
    auto last_plain = std::chrono::steady_clock::now();
    std::unique_lock lock(mutex);
    while (!finished_cv.wait_for(lock, kRedrawInterval, [&] { return finished; })) {
      lock.unlock();
      RunSnapshot snap = run.Snapshot();
      if (live) {
        display.Draw(snap, false);
      } else if (std::chrono::steady_clock::now() - last_plain >= kPlainProgressInterval) {
        last_plain = std::chrono::steady_clock::now();
        double elapsed_s = static_cast<double>(UnixNowMs() - snap.started_ms) / 1000.0;
        log->info("progress {}", ProgressLines(snap, elapsed_s, 0).back());
      }
      lock.lock();
    }
    lock.unlock();
    worker.join();
  }
  if (live) display.Draw(result, true);

  std::fputs(SummaryTable(result).c_str(), stdout);
  if (!list.errors.empty()) {
    std::string where;
    for (const auto& e : list.errors) where += (where.empty() ? "" : ", ") + e.where;
    std::printf("%zu malformed %s skipped (%s)\n", list.errors.size(),
                list.errors.size() == 1 ? "entry" : "entries", where.c_str());
  }
  std::fflush(stdout);
  bool ok = result.images_failed() == 0 && list.errors.empty() &&
            result.images_ok() == static_cast<int>(result.images.size());
  return ok ? kExitOk : kExitFailure;
}

}  // namespace hubcache
