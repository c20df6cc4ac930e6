#pragma once
// The content-addressed files of the cache. On-disk layout under the root:
//
//   <root>/blobs/sha256/<hh>/<64 hex>      verified layer and config blobs
//   <root>/manifests/sha256/<hh>/<64 hex>  verified manifests (exact upstream bytes)
//   <root>/tmp/<random>                    fills in progress; removed at start
//   <root>/index.db                        the SQLite index (index/index_db.h)
//
// A file appears under blobs/ or manifests/ only by rename from tmp/ after its
// bytes hashed to its name and were synced, so a file there is always whole and
// correct. Thread-safe: it holds no mutable state besides the filesystem.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include "common/result.h"
#include "common/unique_fd.h"
#include "registry/reference.h"

namespace hubcache {

enum class ObjectKind { kBlob, kManifest };

// kInsufficientStorage for a full disk or quota (ENOSPC, EDQUOT), else kIo.
ErrorKind WriteErrorKind(int error_number);

// A temp file being written; removed on destruction unless committed.
class TempFile {
 public:
  TempFile(UniqueFd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  ~TempFile();
  TempFile(TempFile&& other) noexcept
      : fd_(std::move(other.fd_)),
        path_(std::move(other.path_)),
        committed_(std::exchange(other.committed_, true)) {}
  TempFile& operator=(TempFile&& other) noexcept;

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  // Writes all of data at the current end. Errors carry errno's text (ENOSPC...).
  [[nodiscard]] Status Append(const char* data, size_t size);
  void MarkCommitted() { committed_ = true; }

 private:
  UniqueFd fd_;
  std::filesystem::path path_;
  bool committed_ = false;
};

class BlobStore {
 public:
  // Creates the directory layout if needed. Leftovers in tmp/ are for
  // cache/reconcile.h to clear.
  [[nodiscard]] static Result<std::unique_ptr<BlobStore>> Open(const std::filesystem::path& root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path PathOf(ObjectKind kind, const Digest& digest) const;

  // Size of a stored object, or nullopt when absent.
  std::optional<uint64_t> SizeOf(ObjectKind kind, const Digest& digest) const;
  [[nodiscard]] Result<UniqueFd> OpenForRead(ObjectKind kind, const Digest& digest) const;

  [[nodiscard]] Result<TempFile> CreateTemp() const;
  // fsync, rename into place, fsync the directory. The temp file is consumed.
  [[nodiscard]] Status Commit(TempFile& temp, ObjectKind kind, const Digest& digest) const;
  // The same for a file written elsewhere under the root (an upload): `fd` is
  // open on `from`, which is renamed into place. `synced`: the caller already
  // fsynced the file (so that the rename, done under a lock, is quick).
  [[nodiscard]] Status CommitPath(int fd, const std::filesystem::path& from, ObjectKind kind,
                                  const Digest& digest, bool synced = false) const;
  // Hard-links an already synced, verified file under the root into place
  // (renames it when the filesystem has no hard links); an object already
  // there is kept (same name, same bytes). `from` stays for the caller.
  [[nodiscard]] Status LinkPath(const std::filesystem::path& from, ObjectKind kind,
                                const Digest& digest) const;
  // Removes a stored object (hosted garbage collection); absent is fine.
  [[nodiscard]] Status Remove(ObjectKind kind, const Digest& digest) const;

  // Small objects (manifests): write atomically, read whole.
  [[nodiscard]] Status WriteObject(ObjectKind kind, const Digest& digest,
                                   const std::string& bytes) const;
  [[nodiscard]] Result<std::string> ReadObject(ObjectKind kind, const Digest& digest,
                                               size_t max_bytes) const;

 private:
  explicit BlobStore(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

}  // namespace hubcache
