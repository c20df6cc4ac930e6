#include "cache/registry_import.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "common/clock.h"
#include "common/sha256.h"
#include "registry/pushed_manifest.h"

namespace hubcache {
namespace {

namespace fs = std::filesystem;

constexpr size_t kImportBufferSize = 256 * 1024;
constexpr size_t kMaxLinkBytes = 256;  // "sha256:" + 64 hex, and a newline at most
constexpr int kMaxNameDepth = 32;      // path components of one repository name

bool IsDirectory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path, ec));
}

// The names in `dir` that are directories (not symlinks), sorted.
std::vector<std::string> Subdirectories(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code type_ec;
    if (entry.is_directory(type_ec) && !entry.is_symlink(type_ec)) {
      out.push_back(entry.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A link file: nullopt when absent (the entry was deleted), an error when it
// cannot be read or holds no digest.
Result<std::optional<Digest>> ReadLink(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno == ENOENT) return std::optional<Digest>();
    return Fail(ErrorKind::kIo, std::string("cannot read it: ") + std::strerror(errno));
  }
  char buffer[kMaxLinkBytes + 1];
  size_t got = 0;
  while (got < sizeof(buffer)) {
    ssize_t n = ::read(fd.get(), buffer + got, sizeof(buffer) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail(ErrorKind::kIo, std::string("cannot read it: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxLinkBytes) return Fail(ErrorKind::kDigestInvalid, "it is no link file (too long)");
  auto digest = ParseLinkFile(std::string_view(buffer, got));
  if (!digest) return tl::unexpected(digest.error());
  return std::optional<Digest>(std::move(*digest));
}

// The digests linked under `dir`/sha256/<hex>/link, each checked against its
// directory's name.
std::vector<Digest> ReadLinks(const fs::path& dir, const std::string& what,
                              std::vector<std::string>& problems) {
  std::vector<Digest> out;
  for (const auto& hex : Subdirectories(dir / "sha256")) {
    auto named = Digest::Parse("sha256:" + hex);
    auto where = dir / "sha256" / hex / "link";
    if (!named) {
      problems.push_back(what + " " + hex + ": the directory is not named by a sha256 digest");
      continue;
    }
    auto link = ReadLink(where);
    if (!link) {
      problems.push_back(what + " " + named->str() + ": " + where.string() + ": " +
                         link.error().message);
      continue;
    }
    if (!*link) continue;  // deleted
    if (**link != *named) {
      problems.push_back(what + " " + named->str() + ": its link names " + (*link)->str());
      continue;
    }
    out.push_back(*named);
  }
  return out;
}

SourceRepository ReadRepository(const fs::path& dir, const std::string& path,
                                std::vector<std::string>& problems) {
  SourceRepository repo;
  repo.path = path;
  repo.layers = ReadLinks(dir / "_layers", "repository " + path + ": layer", problems);
  repo.revisions =
      ReadLinks(dir / "_manifests" / "revisions", "repository " + path + ": manifest", problems);
  for (const auto& tag : Subdirectories(dir / "_manifests" / "tags")) {
    auto where = dir / "_manifests" / "tags" / tag / "current" / "link";
    auto link = ReadLink(where);
    if (!link) {
      problems.push_back("repository " + path + ": tag " + tag + ": " + where.string() + ": " +
                         link.error().message);
      continue;
    }
    if (*link) repo.tags.emplace_back(tag, **link);
  }
  return repo;
}

void WalkRepositories(const fs::path& dir, const std::string& path, int depth, SourceStore& out) {
  if (!path.empty() && IsDirectory(dir / "_manifests")) {
    out.repositories.push_back(ReadRepository(dir, path, out.problems));
  }
  if (depth >= kMaxNameDepth) return;
  for (const auto& name : Subdirectories(dir)) {
    // `_layers`, `_manifests`, `_uploads`: no name component starts with '_'.
    if (name.front() == '_') continue;
    WalkRepositories(dir / name, path.empty() ? name : path + "/" + name, depth + 1, out);
  }
}

// A staged copy of a source file in the hosted store's tmp/, whose bytes
// hashed to their digest.
struct Staged {
  TempFile temp;
  UniqueFd linked;  // open on temp.path() when it is a hard link of the source
  uint64_t size = 0;
  int fd() const { return linked.valid() ? linked.get() : temp.fd(); }
};

// What reading one source file gave: its content (staged or in memory), or
// why it is skipped.
template <typename T>
struct Outcome {
  std::optional<T> value;
  std::string skip_reason;
};

class Importer {
 public:
  Importer(const SourceStore& source, BlobStore& hosted, IndexDb& index,
           const ImportOptions& options, const SkipNotice& notice)
      : source_(source), hosted_(hosted), index_(index), options_(options), notice_(notice) {}

  Result<ImportReport> Run() {
    for (const auto& problem : source_.problems) Skip("skipped " + problem);
    std::set<std::string> present;
    for (const auto& repo : source_.repositories) {
      auto name = RepoName::Parse(repo.path);
      if (!name) {
        Skip("skipped repository " + repo.path + ": " + name.error().message);
        continue;
      }
      changed_ = false;
      if (auto s = ImportRepository(*name, repo); !s) return tl::unexpected(s.error());
      if (changed_) ++report_.repositories;
      for (const auto& digest : repo.revisions) {
        auto row = index_.GetHostedManifest(name->str(), digest.str());
        if (!row) return tl::unexpected(row.error());
        if (*row) {
          present.insert(name->str());
          break;
        }
      }
    }
    report_.present.assign(present.begin(), present.end());
    return report_;
  }

 private:
  struct Pending {
    Digest digest;
    std::string bytes;
    PushedManifest described;
  };

  void Skip(const std::string& line) {
    ++report_.skipped;
    if (notice_) notice_(line);
  }

  // A blob or manifest of the current repository that is not imported.
  void SkipObject(const std::string& what, const Digest& digest, const std::string& reason) {
    skipped_here_.insert(digest.str());
    Skip("skipped " + what + ": " + reason);
  }

  fs::path SourcePath(const Digest& digest) const {
    return source_.v2 / "blobs" / "sha256" / digest.hex().substr(0, 2) / digest.hex() / "data";
  }

  // Opens a source file for reading: the descriptor, or why it is skipped.
  Outcome<UniqueFd> OpenSource(const Digest& digest, std::optional<uint64_t> max_bytes,
                               uint64_t& size) const {
    auto path = SourcePath(digest);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd.valid()) {
      if (errno == ENOENT) return {std::nullopt, "its content is missing (" + path.string() + ")"};
      return {std::nullopt, "cannot open " + path.string() + ": " + std::strerror(errno)};
    }
    struct stat st;
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return {std::nullopt, path.string() + " is not a regular file"};
    }
    size = static_cast<uint64_t>(st.st_size);
    if (max_bytes && size > *max_bytes) {
      return {std::nullopt, "it is larger than " + std::to_string(*max_bytes) + " bytes"};
    }
    return {std::move(fd), ""};
  }

  static std::string Mismatch(const std::string& hex, const Digest& digest) {
    return "its bytes hash to sha256:" + hex + ", not to " + digest.str();
  }

  // Hard-links (else copies) a blob into the hosted store's tmp/, hashing what
  // is read. Errors are this side's (creating or writing the copy).
  Result<Outcome<Staged>> Stage(const Digest& digest) {
    uint64_t size = 0;
    auto source = OpenSource(digest, std::nullopt, size);
    if (!source.value) return Outcome<Staged>{std::nullopt, source.skip_reason};
    auto temp = hosted_.CreateTemp();
    if (!temp) return tl::unexpected(temp.error());
    Staged staged{std::move(*temp), UniqueFd(), 0};
    ::unlink(staged.temp.path().c_str());
    if (::link(SourcePath(digest).c_str(), staged.temp.path().c_str()) == 0) {
      // Hash the linked file itself: it is what gets committed.
      staged.linked = UniqueFd(::open(staged.temp.path().c_str(), O_RDONLY | O_CLOEXEC));
      if (!staged.linked.valid()) {
        return Fail(ErrorKind::kIo,
                    "cannot open " + staged.temp.path().string() + ": " + std::strerror(errno));
      }
    } else {
      // Another filesystem (or linking is not permitted): copy.
      auto copy = hosted_.CreateTemp();
      if (!copy) return tl::unexpected(copy.error());
      staged.temp = std::move(*copy);
    }
    int from = staged.linked.valid() ? staged.linked.get() : source.value->get();
    Sha256 hash;
    std::vector<char> buffer(kImportBufferSize);
    while (true) {
      ssize_t n = ::read(from, buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return Outcome<Staged>{std::nullopt, "cannot read " + SourcePath(digest).string() + ": " +
                                                 std::strerror(errno)};
      }
      if (n == 0) break;
      hash.Update(buffer.data(), static_cast<size_t>(n));
      if (!staged.linked.valid()) {
        if (auto s = staged.temp.Append(buffer.data(), static_cast<size_t>(n)); !s) {
          return tl::unexpected(s.error());
        }
      }
      staged.size += static_cast<uint64_t>(n);
    }
    if (auto hex = hash.FinishHex(); hex != digest.hex()) {
      return Outcome<Staged>{std::nullopt, Mismatch(hex, digest)};
    }
    return Outcome<Staged>{std::move(staged), ""};
  }

  // A manifest's bytes: from the hosted store when a repository here holds
  // them already (verified when written), else read from the source and
  // verified.
  Result<Outcome<std::string>> LoadManifest(const Digest& digest) {
    if (hosted_.SizeOf(ObjectKind::kManifest, digest)) {
      auto bytes = hosted_.ReadObject(ObjectKind::kManifest, digest, options_.max_manifest_bytes);
      if (bytes && Sha256::HexOf(*bytes) == digest.hex()) {
        return Outcome<std::string>{std::move(*bytes), ""};
      }
      // Unreadable or damaged here: the source's copy replaces it.
    }
    uint64_t size = 0;
    auto source = OpenSource(digest, options_.max_manifest_bytes, size);
    if (!source.value) return Outcome<std::string>{std::nullopt, source.skip_reason};
    std::string bytes;
    std::vector<char> buffer(kImportBufferSize);
    while (bytes.size() <= options_.max_manifest_bytes) {
      ssize_t n = ::read(source.value->get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return Outcome<std::string>{std::nullopt, "cannot read " + SourcePath(digest).string() +
                                                      ": " + std::strerror(errno)};
      }
      if (n == 0) break;
      bytes.append(buffer.data(), static_cast<size_t>(n));
    }
    if (bytes.size() > options_.max_manifest_bytes) {
      return Outcome<std::string>{
          std::nullopt,
          "it is larger than " + std::to_string(options_.max_manifest_bytes) + " bytes"};
    }
    if (auto hex = Sha256::HexOf(bytes); hex != digest.hex()) {
      return Outcome<std::string>{std::nullopt, Mismatch(hex, digest)};
    }
    return Outcome<std::string>{std::move(bytes), ""};
  }

  Status ImportBlob(const RepoName& repo, const Digest& digest) {
    auto what = "blob " + digest.str() + " of " + repo.str();
    if (auto bad = bad_.find(digest.str()); bad != bad_.end()) {
      SkipObject(what, digest, bad->second);
      return {};
    }
    auto linked = index_.HostedBlobSize(repo.str(), digest.str());
    if (!linked) return tl::unexpected(linked.error());
    if (*linked) return {};
    auto hosted = index_.AnyHostedBlobSize(digest.str());
    if (!hosted) return tl::unexpected(hosted.error());
    if (*hosted) {
      // Verified when it was stored: a link is all the repository needs.
      auto link = index_.LinkHostedBlob(repo.str(), digest.str());
      if (!link) return tl::unexpected(link.error());
      changed_ = changed_ || *link;
      return {};
    }
    auto staged = Stage(digest);
    if (!staged) return tl::unexpected(staged.error());
    if (!staged->value) {
      bad_[digest.str()] = staged->skip_reason;
      SkipObject(what, digest, staged->skip_reason);
      return {};
    }
    Staged& blob = *staged->value;
    auto added =
        index_.CommitHostedBlob(repo.str(), digest.str(), blob.size, UnixNowMs(), [&]() -> Status {
          auto s = hosted_.CommitPath(blob.fd(), blob.temp.path(), ObjectKind::kBlob, digest);
          if (s) blob.temp.MarkCommitted();
          return s;
        });
    if (!added) return tl::unexpected(added.error());
    changed_ = true;
    if (*added) {
      ++report_.blobs;
      report_.bytes += blob.size;
    }
    return {};
  }

  // Records one manifest. The digest it misses when a reference is not in
  // the repository (nothing is written then).
  Result<std::optional<std::string>> Record(const RepoName& repo, const Pending& m) {
    HostedManifestRow row{repo.str(),
                          m.digest.str(),
                          m.described.media_type,
                          m.bytes.size(),
                          m.described.artifact_type,
                          m.described.subject,
                          m.described.annotations,
                          UnixNowMs()};
    auto missing = index_.PutHostedManifest(
        row, m.described.blobs, m.described.manifests, "",
        [&]() -> Status {
          auto digest = m.digest;
          if (hosted_.SizeOf(ObjectKind::kManifest, digest) == m.bytes.size()) {
            auto stored = hosted_.ReadObject(ObjectKind::kManifest, digest, m.bytes.size());
            if (stored && *stored == m.bytes) return {};
          }
          return hosted_.WriteObject(ObjectKind::kManifest, digest, m.bytes);
        },
        m.described.blob_sizes);
    if (!missing) return tl::unexpected(missing.error());
    if (!*missing) {
      ++report_.manifests;
      changed_ = true;
    }
    return missing;
  }

  std::string MissingReason(const std::string& digest, const RepoName& repo) const {
    if (skipped_here_.count(digest)) return "it references " + digest + ", which was skipped";
    return "it references " + digest + ", which is not in " + repo.str();
  }

  Status ImportManifests(const RepoName& repo, const std::vector<Digest>& revisions) {
    // Image manifests are recorded as they are read; indexes wait until every
    // image is in, then go in passes (an index may list another index).
    std::vector<Pending> indexes;
    for (const auto& digest : revisions) {
      auto what = "manifest " + digest.str() + " of " + repo.str();
      if (auto bad = bad_.find(digest.str()); bad != bad_.end()) {
        SkipObject(what, digest, bad->second);
        continue;
      }
      auto existing = index_.GetHostedManifest(repo.str(), digest.str());
      if (!existing) return tl::unexpected(existing.error());
      if (*existing) continue;
      auto loaded = LoadManifest(digest);
      if (!loaded) return tl::unexpected(loaded.error());
      if (!loaded->value) {
        bad_[digest.str()] = loaded->skip_reason;
        SkipObject(what, digest, loaded->skip_reason);
        continue;
      }
      auto described = DescribePushedManifest(*loaded->value, "");
      if (!described) {
        auto reason = "not a manifest hubcache hosts: " + described.error().message;
        bad_[digest.str()] = reason;
        SkipObject(what, digest, reason);
        continue;
      }
      Pending pending{digest, std::move(*loaded->value), std::move(*described)};
      if (!pending.described.manifests.empty()) {
        indexes.push_back(std::move(pending));
        continue;
      }
      auto missing = Record(repo, pending);
      if (!missing) return tl::unexpected(missing.error());
      if (*missing) SkipObject(what, digest, MissingReason(**missing, repo));
    }
    bool progress = true;
    while (!indexes.empty() && progress) {
      progress = false;
      std::set<std::string> waiting;
      for (const auto& m : indexes) waiting.insert(m.digest.str());
      std::vector<Pending> next;
      for (auto& m : indexes) {
        auto missing = Record(repo, m);
        if (!missing) return tl::unexpected(missing.error());
        if (!*missing) {
          progress = true;
        } else if (waiting.count(**missing) && **missing != m.digest.str()) {
          next.push_back(std::move(m));
        } else {
          SkipObject("manifest " + m.digest.str() + " of " + repo.str(), m.digest,
                     MissingReason(**missing, repo));
        }
      }
      indexes = std::move(next);
    }
    for (const auto& m : indexes) {
      SkipObject("manifest " + m.digest.str() + " of " + repo.str(), m.digest,
                 "its child manifests could not be imported");
    }
    return {};
  }

  Status ImportTags(const RepoName& repo, const std::vector<std::pair<std::string, Digest>>& tags) {
    for (const auto& [name, digest] : tags) {
      auto what = "tag " + repo.str() + ":" + name;
      auto tag = Tag::Parse(name);
      if (!tag) {
        Skip("skipped " + what + ": " + tag.error().message);
        continue;
      }
      auto row = index_.GetHostedManifest(repo.str(), digest.str());
      if (!row) return tl::unexpected(row.error());
      if (!*row) {
        Skip("skipped " + what + ": its manifest " + digest.str() + " was not imported");
        continue;
      }
      auto current = index_.HostedTag(repo.str(), tag->str());
      if (!current) return tl::unexpected(current.error());
      if (*current == digest.str()) continue;
      if (*current) {
        Skip("skipped " + what + ": it points at " + **current + " here already (kept; " +
             "the store has " + digest.str() + ")");
        continue;
      }
      HostedManifestRow tagged = **row;
      tagged.created_ms = UnixNowMs();  // the tag's update time; the row keeps its own
      auto missing = index_.PutHostedManifest(tagged, {}, {}, tag->str(), [] { return Status{}; });
      if (!missing) return tl::unexpected(missing.error());
      ++report_.tags;
      changed_ = true;
    }
    return {};
  }

  Status ImportRepository(const RepoName& name, const SourceRepository& repo) {
    skipped_here_.clear();
    for (const auto& digest : repo.layers) {
      if (auto s = ImportBlob(name, digest); !s) return s;
    }
    if (auto s = ImportManifests(name, repo.revisions); !s) return s;
    return ImportTags(name, repo.tags);
  }

  const SourceStore& source_;
  BlobStore& hosted_;
  IndexDb& index_;
  const ImportOptions& options_;
  const SkipNotice& notice_;
  ImportReport report_;
  bool changed_ = false;                    // the current repository gained something
  std::map<std::string, std::string> bad_;  // digest -> why its source content is unusable
  std::set<std::string> skipped_here_;      // digests of the current repository not imported
};

}  // namespace

Result<Digest> ParseLinkFile(std::string_view content) {
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r' ||
                              content.back() == ' ' || content.back() == '\t')) {
    content.remove_suffix(1);
  }
  auto digest = Digest::Parse(content);
  if (!digest) {
    return Fail(ErrorKind::kDigestInvalid, "it holds no sha256 digest: " + digest.error().message);
  }
  return digest;
}

Result<SourceStore> ScanRegistryStore(const fs::path& dir) {
  SourceStore out;
  out.v2 = dir / "docker" / "registry" / "v2";
  std::error_code ec;
  if (!fs::is_directory(out.v2, ec)) {
    return Fail(ErrorKind::kConfigInvalid,
                dir.string() + " is not a registry:2 store (no docker/registry/v2 in it)");
  }
  if (fs::is_directory(out.v2 / "repositories", ec)) {
    WalkRepositories(out.v2 / "repositories", "", 0, out);
  }
  std::sort(out.repositories.begin(), out.repositories.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  return out;
}

Result<ImportReport> ImportRegistryStore(const SourceStore& source, BlobStore& hosted,
                                         IndexDb& index, const ImportOptions& options,
                                         const SkipNotice& skipped) {
  Importer importer(source, hosted, index, options, skipped);
  return importer.Run();
}

}  // namespace hubcache
