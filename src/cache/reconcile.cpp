#include "cache/reconcile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "common/clock.h"
#include "common/sha256.h"
#include "registry/media_types.h"

namespace hubcache {
namespace {

namespace fs = std::filesystem;

// SHA-256 of a file's content, or "" when unreadable.
std::string HashFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  Sha256 hasher;
  std::vector<char> buffer(1 << 20);
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) return "";
    if (n == 0) break;
    hasher.Update(buffer.data(), static_cast<size_t>(n));
  }
  return hasher.FinishHex();
}

uint64_t FileSize(const fs::path& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : size;
}

void Remove(const fs::path& path, const ReconcileOptions& options) {
  if (!options.dry_run) {
    std::error_code ec;
    fs::remove(path, ec);
  }
}

}  // namespace

std::string ReconcileReport::Summary() const {
  return "temp_removed=" + std::to_string(temp_removed) +
         " orphans_adopted=" + std::to_string(orphans_adopted) +
         " orphans_removed=" + std::to_string(orphans_removed) +
         " rows_dropped=" + std::to_string(rows_dropped) +
         " corrupt_removed=" + std::to_string(corrupt_removed) +
         " bytes_freed=" + std::to_string(bytes_freed) + " entries=" + std::to_string(entries) +
         " bytes=" + std::to_string(bytes);
}

Result<ReconcileReport> Reconcile(BlobStore& store, IndexDb& index,
                                  const ReconcileOptions& options) {
  ReconcileReport report;
  std::error_code ec;
  if (options.clear_temp) {
    for (const auto& entry : fs::directory_iterator(store.root() / "tmp", ec)) {
      report.bytes_freed += FileSize(entry.path());
      Remove(entry.path(), options);
      ++report.temp_removed;
    }
  }

  auto entries = index.AllEntries();
  if (!entries) return tl::unexpected(entries.error());
  std::map<std::pair<EntryKind, std::string>, uint64_t> indexed;  // -> size the index records
  for (const auto& e : *entries) indexed[{e.kind, e.digest}] = e.size;
  std::set<std::pair<EntryKind, std::string>> seen;
  uint64_t seen_bytes = 0;  // what the index would hold afterwards (a dry run reports it)

  for (auto [kind, object_kind, dir] :
       {std::tuple{EntryKind::kBlob, ObjectKind::kBlob, "blobs"},
        std::tuple{EntryKind::kManifest, ObjectKind::kManifest, "manifests"}}) {
    for (const auto& shard : fs::directory_iterator(store.root() / dir / "sha256", ec)) {
      std::error_code shard_ec;
      for (const auto& file : fs::directory_iterator(shard.path(), shard_ec)) {
        std::string name = file.path().filename().string();
        auto digest = Digest::Parse("sha256:" + name);
        uint64_t size = FileSize(file.path());
        if (!digest || shard.path().filename().string() != name.substr(0, 2)) {
          Remove(file.path(), options);  // junk that cannot be a cache object
          ++report.orphans_removed;
          report.bytes_freed += size;
          continue;
        }
        std::pair<EntryKind, std::string> key{kind, digest->str()};
        auto indexed_it = indexed.find(key);
        bool is_indexed = indexed_it != indexed.end();
        if (is_indexed && !options.verify) {
          if (seen.insert(key).second) seen_bytes += indexed_it->second;
          continue;
        }
        bool intact = HashFile(file.path()) == digest->hex();
        if (is_indexed) {
          if (intact) {
            if (seen.insert(key).second) seen_bytes += indexed_it->second;
          } else {
            Remove(file.path(), options);
            ++report.corrupt_removed;
            report.bytes_freed += size;
          }
          continue;
        }
        // Not indexed: the crash window between rename and index insert.
        std::string media_type;
        if (intact && kind == EntryKind::kManifest) {
          auto bytes = store.ReadObject(object_kind, *digest, 16 * 1024 * 1024);
          if (bytes) media_type = DetectManifestMediaType(*bytes);
          intact = !media_type.empty();
        }
        if (!intact) {
          Remove(file.path(), options);
          ++report.orphans_removed;
          report.bytes_freed += size;
          continue;
        }
        if (!options.dry_run) {
          auto s = kind == EntryKind::kBlob
                       ? index.PutBlob(digest->str(), size, UnixNowMs())
                       : index.PutManifest(digest->str(), media_type, size, "", UnixNowMs());
          if (!s) return tl::unexpected(s.error());
        }
        if (seen.insert(key).second) seen_bytes += size;
        ++report.orphans_adopted;
      }
    }
  }

  // Rows whose file is gone (or was just removed as corrupt).
  for (const auto& e : *entries) {
    if (seen.count({e.kind, e.digest})) continue;
    ++report.rows_dropped;
    if (options.dry_run) continue;
    auto s =
        e.kind == EntryKind::kBlob ? index.DeleteBlob(e.digest) : index.DeleteManifest(e.digest);
    if (!s) return tl::unexpected(s.error());
  }
  if (options.dry_run) {
    report.entries = seen.size();
    report.bytes = seen_bytes;
  } else {
    auto after = index.AllEntries();
    if (!after) return tl::unexpected(after.error());
    report.entries = after->size();
    for (const auto& e : *after) report.bytes += e.size;
  }
  return report;
}

}  // namespace hubcache
