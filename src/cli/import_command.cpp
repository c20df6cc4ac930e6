// hubcache import DIR [--root ROOT] [--hosted PATTERNS]: adopts a registry:2
// filesystem store as hosted repositories (cache/registry_import.h). Runs
// only while no server does: it takes the cache lock for its whole run.

#include <cstdio>
#include <optional>

#include "cache/cache_lock.h"
#include "cache/registry_import.h"
#include "cli/cache_args.h"
#include "cli/command.h"
#include "common/strings.h"
#include "common/units.h"
#include "config/config.h"
#include "registry/repo_sources.h"

namespace hubcache {
namespace {

constexpr const char* kImportUsage = "usage: hubcache import DIR [--root ROOT] [--hosted PATTERNS]";

std::vector<std::string> SplitPatterns(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item(TrimSpaces(std::string_view(text).substr(start, comma - start)));
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

int Refuse(int code, const std::string& message) {
  std::fprintf(stderr, "hubcache import: %s\n", message.c_str());
  return code;
}

}  // namespace

int RunImport(const std::vector<std::string>& raw_args) {
  // --hosted takes a value; ParseCacheArgs handles --root and the rest.
  std::optional<std::string> hosted_text;
  std::vector<std::string> args;
  for (size_t i = 0; i < raw_args.size(); ++i) {
    const std::string& a = raw_args[i];
    if (a == "--hosted") {
      if (i + 1 >= raw_args.size()) return Refuse(kExitUsage, "option --hosted needs a value");
      hosted_text = raw_args[++i];
    } else if (a.rfind("--hosted=", 0) == 0) {
      hosted_text = a.substr(9);
    } else {
      args.push_back(a);
    }
  }
  auto parsed = ParseCacheArgs(args, {});
  if (!parsed) return Refuse(kExitUsage, parsed.error().message + " (" + kImportUsage + ")");
  if (parsed->positional.size() != 1) return Refuse(kExitUsage, kImportUsage);
  if (!hosted_text) {
    auto env = ProcessEnvironment();
    if (auto it = env.find("HUBCACHE_HOSTED"); it != env.end()) hosted_text = it->second;
  }
  std::vector<std::string> patterns;
  if (hosted_text) {
    patterns = SplitPatterns(*hosted_text);
    for (const auto& p : patterns) {
      if (auto s = CheckRepoPattern(p); !s)
        return Refuse(kExitUsage, "--hosted: " + s.error().message);
    }
  }

  auto source = ScanRegistryStore(parsed->positional[0]);
  if (!source) return Refuse(kExitUsage, source.error().message);

  std::filesystem::path root = parsed->root;
  const std::string busy = "a server is running on " + root.string() +
                           "; stop it first (import writes its index and hosted store)";
  if (CacheLock::IsHeld(root)) return Refuse(kExitFailure, busy);
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Refuse(kExitFailure, "cannot create " + root.string() + ": " + ec.message());
  auto lock = CacheLock::TryAcquire(root);
  if (!lock) return Refuse(kExitFailure, busy);
  auto store = BlobStore::Open(root);
  if (!store) return Refuse(kExitFailure, store.error().message);
  auto index = IndexDb::Open(root / "index.db");
  if (!index) return Refuse(kExitFailure, index.error().message);
  auto hosted = BlobStore::Open(root / "hosted");
  if (!hosted) return Refuse(kExitFailure, hosted.error().message);

  auto report = ImportRegistryStore(
      *source, **hosted, **index, ImportOptions{},
      [](const std::string& line) { std::fprintf(stderr, "hubcache import: %s\n", line.c_str()); });
  if (!report) return Refuse(kExitFailure, report.error().message);
  std::printf(
      "imported: repositories %llu, tags %llu, manifests %llu, blobs %llu, bytes %llu (%s), "
      "skipped %llu\n",
      static_cast<unsigned long long>(report->repositories),
      static_cast<unsigned long long>(report->tags),
      static_cast<unsigned long long>(report->manifests),
      static_cast<unsigned long long>(report->blobs),
      static_cast<unsigned long long>(report->bytes), HumanBytes(report->bytes).c_str(),
      static_cast<unsigned long long>(report->skipped));

  // Hosted content is served only under HUBCACHE_HOSTED's patterns.
  if (!hosted_text && !report->present.empty()) {
    std::string names;
    for (const auto& name : report->present) names += (names.empty() ? "" : ", ") + name;
    std::fprintf(stderr,
                 "hubcache import: note: serve with HUBCACHE_HOSTED (--hosted) covering %s\n",
                 names.c_str());
  } else if (hosted_text && !report->present.empty()) {
    RepoSources sources(patterns);
    std::string uncovered;
    for (const auto& name : report->present) {
      auto repo = RepoName::Parse(name);
      if (repo && sources.IsHosted(*repo)) continue;
      uncovered += (uncovered.empty() ? "" : ", ") + name;
    }
    if (!uncovered.empty()) {
      std::fprintf(stderr,
                   "hubcache import: warning: no --hosted pattern covers %s: they are not served "
                   "until HUBCACHE_HOSTED does\n",
                   uncovered.c_str());
    }
  }
  return kExitOk;
}

}  // namespace hubcache
