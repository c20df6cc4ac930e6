// hubcache stats: what a running mirror reports at /stats, as a table or JSON.

#include <curl/curl.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "common/units.h"
#include "config/config.h"
#include "stats/stats_table.h"
#include "upstream/curl_easy.h"

namespace hubcache {
namespace {

constexpr size_t kMaxStatsBodyBytes = 64 * 1024 * 1024;

void PrintStatsUsage(FILE* out) {
  std::fprintf(out,
               "Usage: hubcache stats [--url URL] [--json] [--timeout DURATION]\n"
               "  --url URL       the mirror (default http://127.0.0.1:PORT, PORT from\n"
               "                  REGISTRY_HTTP_ADDR, else 5000)\n"
               "  --json          print the /stats document as it is\n"
               "  --timeout D     give up after D (default 10s)\n");
}

// The local mirror's URL from REGISTRY_HTTP_ADDR (":5000", "0.0.0.0:5000",
// "[::1]:5000").
std::string DefaultUrl(const std::map<std::string, std::string>& env) {
  std::string addr = ":5000";
  if (auto it = env.find("REGISTRY_HTTP_ADDR"); it != env.end() && !it->second.empty())
    addr = it->second;
  size_t colon = addr.rfind(':');
  std::string host = colon == std::string::npos ? addr : addr.substr(0, colon);
  std::string port = colon == std::string::npos ? "5000" : addr.substr(colon + 1);
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return "http://" + host + ":" + port;
}

size_t Append(char* data, size_t size, size_t n, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * n > kMaxStatsBodyBytes) return 0;
  body->append(data, size * n);
  return size * n;
}

}  // namespace

int RunStats(const std::vector<std::string>& args) {
  std::string url = DefaultUrl(ProcessEnvironment());
  bool as_json = false;
  std::chrono::milliseconds timeout{10'000};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      std::string prefix = std::string(name) + "=";
      if (a.rfind(prefix, 0) == 0) return a.substr(prefix.size());
      if (a == name && i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    if (a == "--help" || a == "-h") {
      PrintStatsUsage(stdout);
      return kExitOk;
    } else if (a == "--json") {
      as_json = true;
    } else if (a.rfind("--url", 0) == 0) {
      auto v = value("--url");
      if (!v || v->empty()) {
        std::fprintf(stderr, "hubcache stats: --url needs a value\n");
        return kExitUsage;
      }
      url = *v;
    } else if (a.rfind("--timeout", 0) == 0) {
      auto v = value("--timeout");
      auto d =
          v ? ParseDuration(*v)
            : Result<std::chrono::milliseconds>(Fail(ErrorKind::kConfigInvalid, "needs a value"));
      if (!d || d->count() == 0) {
        std::fprintf(stderr, "hubcache stats: --timeout: %s\n",
                     d ? "must be greater than zero" : d.error().message.c_str());
        return kExitUsage;
      }
      timeout = *d;
    } else {
      std::fprintf(stderr, "hubcache stats: unknown option '%s'\n", a.c_str());
      PrintStatsUsage(stderr);
      return kExitUsage;
    }
  }
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) url = "http://" + url;
  while (url.size() > 8 && url.back() == '/') url.pop_back();

  CurlEasy easy = NewCurlEasy();
  CURL* h = easy.get();
  if (h == nullptr) {
    std::fprintf(stderr, "hubcache stats: cannot initialise libcurl\n");
    return kExitFailure;
  }
  std::string body;
  char error[CURL_ERROR_SIZE] = {0};
  const std::string target = url + "/stats?repositories=0";
  SetTransferBasics(h, target,
                    {.user_agent = "hubcache-stats/" HUBCACHE_VERSION, .error_buffer = error});
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Append);
  CURLcode rc = curl_easy_perform(h);
  const long status = ResponseStatus(h);
  if (rc != CURLE_OK) {
    std::fprintf(stderr, "hubcache stats: cannot reach %s: %s\n", target.c_str(),
                 error[0] ? error : curl_easy_strerror(rc));
    return kExitFailure;
  }
  if (status != 200) {
    std::fprintf(stderr, "hubcache stats: %s answered HTTP %ld\n", target.c_str(), status);
    return kExitFailure;
  }
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    std::fprintf(stderr, "hubcache stats: %s did not answer with a JSON object\n", target.c_str());
    return kExitFailure;
  }
  std::string out;
  try {
    out = as_json ? doc.dump(2) + "\n" : StatsTable(doc, url);
  } catch (const nlohmann::json::exception& e) {
    std::fprintf(stderr, "hubcache stats: unexpected /stats document: %s\n", e.what());
    return kExitFailure;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return kExitOk;
}

}  // namespace hubcache
