#include "store/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace hubcache {
namespace {

std::string ErrnoText(const std::string& what, const std::filesystem::path& path) {
  return what + " " + path.string() + ": " + std::strerror(errno);
}

Status SyncDirectory(const std::filesystem::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0) return Fail(ErrorKind::kIo, ErrnoText("fsync", dir));
  return {};
}

}  // namespace

ErrorKind WriteErrorKind(int error_number) {
  return error_number == ENOSPC || error_number == EDQUOT ? ErrorKind::kInsufficientStorage
                                                          : ErrorKind::kIo;
}

TempFile::~TempFile() {
  if (!committed_ && !path_.empty()) ::unlink(path_.c_str());
}

TempFile& TempFile::operator=(TempFile&& other) noexcept {
  if (this != &other) {
    if (!committed_ && !path_.empty()) ::unlink(path_.c_str());
    fd_ = std::move(other.fd_);
    path_ = std::move(other.path_);
    committed_ = std::exchange(other.committed_, true);
  }
  return *this;
}

Status TempFile::Append(const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd_.get(), data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(WriteErrorKind(errno), ErrnoText("write", path_));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

Result<std::unique_ptr<BlobStore>> BlobStore::Open(const std::filesystem::path& root) {
  std::error_code ec;
  for (const char* sub : {"blobs/sha256", "manifests/sha256", "tmp"}) {
    std::filesystem::create_directories(root / sub, ec);
    if (ec) {
      return Fail(ErrorKind::kIo, "cannot create " + (root / sub).string() + ": " + ec.message());
    }
  }
  return std::unique_ptr<BlobStore>(new BlobStore(root));
}

std::filesystem::path BlobStore::PathOf(ObjectKind kind, const Digest& digest) const {
  const char* dir = kind == ObjectKind::kBlob ? "blobs" : "manifests";
  return root_ / dir / "sha256" / digest.sharded();
}

std::optional<uint64_t> BlobStore::SizeOf(ObjectKind kind, const Digest& digest) const {
  struct stat st;
  if (::stat(PathOf(kind, digest).c_str(), &st) != 0) return std::nullopt;
  return static_cast<uint64_t>(st.st_size);
}

Result<UniqueFd> BlobStore::OpenForRead(ObjectKind kind, const Digest& digest) const {
  auto path = PathOf(kind, digest);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return Fail(kind == ObjectKind::kBlob ? ErrorKind::kBlobUnknown : ErrorKind::kManifestUnknown,
                  "not in cache");
    }
    return Fail(ErrorKind::kIo, ErrnoText("open", path));
  }
  return fd;
}

Result<TempFile> BlobStore::CreateTemp() const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (int attempt = 0; attempt < 8; ++attempt) {
    char name[32];
    std::snprintf(name, sizeof(name), "fill-%016llx", static_cast<unsigned long long>(rng()));
    auto path = root_ / "tmp" / name;
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return TempFile(UniqueFd(fd), path);
    if (errno != EEXIST) return Fail(ErrorKind::kIo, ErrnoText("create", path));
  }
  return Fail(ErrorKind::kIo, "cannot create a temp file in " + (root_ / "tmp").string());
}

Status BlobStore::Commit(TempFile& temp, ObjectKind kind, const Digest& digest) const {
  if (auto s = CommitPath(temp.fd(), temp.path(), kind, digest); !s) return s;
  temp.MarkCommitted();
  return {};
}

Status BlobStore::CommitPath(int fd, const std::filesystem::path& from, ObjectKind kind,
                             const Digest& digest, bool synced) const {
  if (!synced && ::fsync(fd) != 0) return Fail(WriteErrorKind(errno), ErrnoText("fsync", from));
  auto final_path = PathOf(kind, digest);
  std::error_code ec;
  std::filesystem::create_directories(final_path.parent_path(), ec);
  if (ec)
    return Fail(ErrorKind::kIo, "mkdir " + final_path.parent_path().string() + ": " + ec.message());
  if (::rename(from.c_str(), final_path.c_str()) != 0) {
    return Fail(ErrorKind::kIo, ErrnoText("rename to", final_path));
  }
  return SyncDirectory(final_path.parent_path());
}

Status BlobStore::WriteObject(ObjectKind kind, const Digest& digest,
                              const std::string& bytes) const {
  auto temp = CreateTemp();
  if (!temp) return tl::unexpected(temp.error());
  if (auto s = temp->Append(bytes.data(), bytes.size()); !s) return s;
  return Commit(*temp, kind, digest);
}

Result<std::string> BlobStore::ReadObject(ObjectKind kind, const Digest& digest,
                                          size_t max_bytes) const {
  auto fd = OpenForRead(kind, digest);
  if (!fd) return tl::unexpected(fd.error());
  std::string out;
  char buffer[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd->get(), buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(ErrorKind::kIo, ErrnoText("read", PathOf(kind, digest)));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    if (out.size() > max_bytes) return Fail(ErrorKind::kIo, "stored object larger than expected");
  }
  return out;
}

Status BlobStore::LinkPath(const std::filesystem::path& from, ObjectKind kind,
                           const Digest& digest) const {
  auto final_path = PathOf(kind, digest);
  std::error_code ec;
  std::filesystem::create_directories(final_path.parent_path(), ec);
  if (ec) {
    return Fail(ErrorKind::kIo, "mkdir " + final_path.parent_path().string() + ": " + ec.message());
  }
  if (::link(from.c_str(), final_path.c_str()) != 0 && errno != EEXIST) {
    if (errno != EPERM && errno != EXDEV && errno != ENOTSUP) {
      return Fail(WriteErrorKind(errno), ErrnoText("link to", final_path));
    }
    if (::rename(from.c_str(), final_path.c_str()) != 0) {
      return Fail(ErrorKind::kIo, ErrnoText("rename to", final_path));
    }
  }
  return SyncDirectory(final_path.parent_path());
}

Status BlobStore::Remove(ObjectKind kind, const Digest& digest) const {
  auto path = PathOf(kind, digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Fail(ErrorKind::kIo, ErrnoText("unlink", path));
  }
  return {};
}

}  // namespace hubcache
