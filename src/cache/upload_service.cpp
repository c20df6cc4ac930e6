#include "cache/upload_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "common/sha256.h"
#include "store/sync_behind.h"

namespace hubcache {
namespace {

constexpr size_t kUploadBufferSize = 256 * 1024;

// 32 hex characters from the OS's randomness: unguessable, so an upload id
// is a capability of the client that started it.
std::string NewUploadId() {
  static std::mutex mutex;
  static std::random_device device;
  std::lock_guard lock(mutex);
  std::string id;
  static const char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    uint32_t word = device();
    for (int j = 0; j < 4; ++j) {
      id.push_back(kHex[(word >> (j * 8)) & 0xf]);
      id.push_back(kHex[(word >> (j * 8 + 4)) & 0xf]);
    }
  }
  return id;
}

bool ValidUploadId(const std::string& id) {
  if (id.size() != 64 && id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Error UnknownUpload(const std::string& id) {
  return Error{ErrorKind::kBlobUploadUnknown, "upload " + id + " is not known"};
}

Status WriteAll(int fd, const char* data, size_t size, const std::filesystem::path& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Fail(WriteErrorKind(errno),
                  "write " + path.filename().string() + ": " + std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

struct UploadService::Live {
  std::mutex busy;               // held by the one request working on the upload
  std::unique_ptr<Sha256> hash;  // over [0, hashed); null once lost (rebuilt from the file)
  uint64_t hashed = 0;
};

struct UploadService::Writing {
  std::shared_ptr<Live> live;
  std::unique_lock<std::mutex> busy;
  UploadRow row;
};

Result<UploadService::Writing> UploadService::TakeForWriting(const RepoName& repo,
                                                             const std::string& id) {
  auto row = Lookup(repo, id);
  if (!row) return tl::unexpected(row.error());
  auto live = LiveOf(id);
  std::unique_lock busy(live->busy, std::try_to_lock);
  if (!busy.owns_lock()) {
    return Fail(ErrorKind::kUploadOutOfOrder, "another request is writing to this upload");
  }
  row = Lookup(repo, id);
  if (!row) return tl::unexpected(row.error());
  return Writing{std::move(live), std::move(busy), std::move(*row)};
}

UploadService::UploadService(BlobStore& hosted, BlobStore& cache, IndexDb& index, CacheStats& stats,
                             HostedBucket* bucket)
    : hosted_(hosted), cache_(cache), index_(index), stats_(stats), bucket_(bucket) {}

std::filesystem::path UploadService::PathOf(const std::string& id) const {
  return hosted_.root() / "uploads" / id;
}

Status UploadService::Recover() {
  std::error_code ec;
  std::filesystem::create_directories(hosted_.root() / "uploads", ec);
  if (ec) return Fail(ErrorKind::kIo, "cannot create " + (hosted_.root() / "uploads").string());
  size_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(hosted_.root() / "uploads", ec)) {
    std::string id = entry.path().filename().string();
    auto row = index_.GetUpload(id);
    if (!row) return tl::unexpected(row.error());
    if (!*row) {
      std::filesystem::remove(entry.path(), ec);
      ++removed;
    }
  }
  // Rows whose file is gone (the whole tree was restored without uploads).
  auto rows = index_.StaleUploads(INT64_MAX);
  if (!rows) return tl::unexpected(rows.error());
  for (const auto& row : *rows) {
    if (!std::filesystem::exists(PathOf(row.id), ec)) {
      if (auto s = index_.DeleteUpload(row.id); !s) return s;
      ++removed;
    }
  }
  // Leftovers of manifest writes.
  for (const auto& entry : std::filesystem::directory_iterator(hosted_.root() / "tmp", ec)) {
    std::filesystem::remove(entry.path(), ec);
  }
  if (removed > 0) Logger("hosted")->info("uploads: cleared {} left by a crash", removed);
  return {};
}

std::shared_ptr<UploadService::Live> UploadService::LiveOf(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto& live = live_[id];
  if (!live) live = std::make_shared<Live>();
  return live;
}

void UploadService::Forget(const std::string& id) {
  std::lock_guard lock(mutex_);
  live_.erase(id);
}

Result<UploadRow> UploadService::Lookup(const RepoName& repo, const std::string& id) {
  if (!ValidUploadId(id)) return tl::unexpected(UnknownUpload(id));
  auto row = index_.GetUpload(id);
  if (!row) return tl::unexpected(row.error());
  // Another repository's upload is unknown here, not forbidden: ids are not
  // to be probed across repositories.
  if (!*row || (*row)->repo != repo.str()) return tl::unexpected(UnknownUpload(id));
  return **row;
}

Result<UploadStatus> UploadService::Start(const RepoName& repo) {
  std::string id = NewUploadId();
  auto path = PathOf(id);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) {
    return Fail(WriteErrorKind(errno), "cannot create an upload: " + std::string(strerror(errno)));
  }
  int64_t now = UnixNowMs();
  if (auto s = index_.PutUpload(UploadRow{id, repo.str(), 0, now, now}); !s) {
    ::unlink(path.c_str());
    return tl::unexpected(s.error());
  }
  auto live = LiveOf(id);
  live->hash = std::make_unique<Sha256>();
  stats_.uploads_started.fetch_add(1, std::memory_order_relaxed);
  return UploadStatus{id, 0};
}

Result<UploadStatus> UploadService::Query(const RepoName& repo, const std::string& id) {
  auto row = Lookup(repo, id);
  if (!row) return tl::unexpected(row.error());
  return UploadStatus{id, row->offset};
}

Result<uint64_t> UploadService::Receive(Live& live, const UploadRow& row, ByteSource& body) {
  auto path = PathOf(row.id);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return tl::unexpected(UnknownUpload(row.id));
  // Bytes past the recorded offset are from a request that failed before its
  // end was recorded (a crash): the offset is the truth the client was told.
  if (::ftruncate(fd.get(), static_cast<off_t>(row.offset)) != 0 ||
      ::lseek(fd.get(), static_cast<off_t>(row.offset), SEEK_SET) < 0) {
    return Fail(ErrorKind::kIo, "upload file: " + std::string(strerror(errno)));
  }
  if (live.hash && live.hashed != row.offset) live.hash.reset();
  std::vector<char> buffer(kUploadBufferSize);
  uint64_t offset = row.offset;
  SyncBehind sync(fd.get(), row.offset);
  std::optional<Error> failure;
  while (true) {
    auto n = body.Read(buffer.data(), buffer.size());
    if (!n) {
      failure = Error{ErrorKind::kBlobUploadInvalid,
                      "the upload body was cut short: " + n.error().message};
      break;
    }
    if (*n == 0) break;
    if (auto s = WriteAll(fd.get(), buffer.data(), *n, path); !s) {
      failure = s.error();
      // Part of the chunk may be on disk: cut back to what was recorded.
      (void)::ftruncate(fd.get(), static_cast<off_t>(offset));
      break;
    }
    if (live.hash) live.hash->Update(buffer.data(), *n);
    offset += *n;
    stats_.push_bytes.fetch_add(*n, std::memory_order_relaxed);
    // What arrived goes on to the disk while the rest arrives, so the fsync
    // at the finish has little left to wait for.
    sync.Wrote(*n);
  }
  if (live.hash) live.hashed = offset;
  if (offset != row.offset) {
    if (auto s = index_.SetUploadOffset(row.id, offset, UnixNowMs()); !s) {
      // The bytes past the recorded offset are cut at the next append; the
      // first failure (often the same full disk) is what the client hears.
      if (!failure) failure = s.error();
    }
  }
  if (failure) return tl::unexpected(*failure);
  return offset;
}

Result<UploadStatus> UploadService::Append(const RepoName& repo, const std::string& id,
                                           std::optional<uint64_t> start, ByteSource& body) {
  auto writing = TakeForWriting(repo, id);
  if (!writing) return tl::unexpected(writing.error());
  if (start && *start != writing->row.offset) {
    return Fail(ErrorKind::kUploadOutOfOrder, "the chunk starts at " + std::to_string(*start) +
                                                  " but the upload is at " +
                                                  std::to_string(writing->row.offset));
  }
  auto offset = Receive(*writing->live, writing->row, body);
  if (!offset) return tl::unexpected(offset.error());
  return UploadStatus{id, *offset};
}

Result<StoredBlob> UploadService::Complete(Live& live, const UploadRow& row, const Digest& digest) {
  auto path = PathOf(row.id);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return tl::unexpected(UnknownUpload(row.id));
  std::string hex;
  if (live.hash && live.hashed == row.offset) {
    hex = live.hash->FinishHex();
    live.hash.reset();
  } else {
    // The running hash was lost (a restart): hash the file once.
    Sha256 hash;
    std::vector<char> buffer(kUploadBufferSize);
    uint64_t left = row.offset;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buffer.data(), std::min<uint64_t>(left, buffer.size()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Fail(ErrorKind::kIo, "cannot re-read the upload");
      hash.Update(buffer.data(), static_cast<size_t>(n));
      left -= static_cast<uint64_t>(n);
    }
    hex = hash.FinishHex();
  }
  if (hex != digest.hex()) {
    stats_.push_digest_mismatches.fetch_add(1, std::memory_order_relaxed);
    (void)Discard(row.id);
    return Fail(ErrorKind::kDigestInvalid,
                "the uploaded content has digest sha256:" + hex + ", not " + digest.str());
  }
  // The bytes reach the disk before the index's write lock is taken: under
  // it, only the rename (every index user waits meanwhile).
  if (::fsync(fd.get()) != 0) {
    return Fail(WriteErrorKind(errno), "fsync of the upload: " + std::string(strerror(errno)));
  }
  // The bucket before the index: a blob the index records is in the bucket,
  // so every node can serve it. A failure leaves the upload for a retry.
  if (bucket_) {
    auto repo = RepoName::Parse(row.repo);
    if (!repo) return tl::unexpected(repo.error());
    if (auto s = bucket_->PutBlob(*repo, digest, fd.get(), row.offset); !s) {
      return Fail(ErrorKind::kUpstreamUnavailable,
                  "the blob could not be stored in the S3 bucket: " + s.error().message);
    }
  }
  // Linked, not renamed, under the index's lock: a crash before the commit
  // leaves the upload whole (the client's retry finishes it) beside a
  // verified file that the retry's link finds in place.
  auto added = index_.CommitHostedBlob(row.repo, digest.str(), row.offset, UnixNowMs(), [&] {
    return hosted_.LinkPath(path, ObjectKind::kBlob, digest);
  });
  if (!added) return tl::unexpected(added.error());
  ::unlink(path.c_str());
  if (auto s = index_.DeleteUpload(row.id); !s) return tl::unexpected(s.error());
  stats_.push_blobs.fetch_add(1, std::memory_order_relaxed);
  return StoredBlob{digest, row.offset};
}

Result<StoredBlob> UploadService::Finish(const RepoName& repo, const std::string& id,
                                         const Digest& digest, ByteSource& body) {
  auto writing = TakeForWriting(repo, id);
  if (!writing) return tl::unexpected(writing.error());
  auto offset = Receive(*writing->live, writing->row, body);
  if (!offset) return tl::unexpected(offset.error());
  writing->row.offset = *offset;
  auto stored = Complete(*writing->live, writing->row, digest);
  writing->busy.unlock();
  if (stored || stored.error().kind == ErrorKind::kDigestInvalid) Forget(id);
  return stored;
}

Status UploadService::Discard(const std::string& id) {
  ::unlink(PathOf(id).c_str());
  return index_.DeleteUpload(id);
}

Status UploadService::Cancel(const RepoName& repo, const std::string& id) {
  auto writing = TakeForWriting(repo, id);
  if (!writing) return tl::unexpected(writing.error());
  auto s = Discard(id);
  writing->busy.unlock();
  Forget(id);
  return s;
}

Result<StoredBlob> UploadService::PutWhole(const RepoName& repo, const Digest& digest,
                                           ByteSource& body) {
  auto started = Start(repo);
  if (!started) return tl::unexpected(started.error());
  auto stored = Finish(repo, started->id, digest, body);
  if (!stored) {
    (void)Discard(started->id);
    Forget(started->id);
  }
  return stored;
}

Result<std::optional<StoredBlob>> UploadService::Mount(const RepoName& repo, const Digest& digest,
                                                       const std::optional<RepoName>& from,
                                                       bool from_mirror) {
  if (!from_mirror) {
    // From a hosted repository, or (no `from`) any: the blob is linked only.
    auto size = from ? index_.HostedBlobSize(from->str(), digest.str())
                     : index_.AnyHostedBlobSize(digest.str());
    if (!size) return tl::unexpected(size.error());
    if (!*size) return std::optional<StoredBlob>();
    if (bucket_) {
      auto in_bucket = bucket_->LinkExisting(repo, digest);
      if (!in_bucket) {
        return Fail(
            ErrorKind::kUpstreamUnavailable,
            "the mount could not be recorded in the S3 bucket: " + in_bucket.error().message);
      }
      if (!*in_bucket) return std::optional<StoredBlob>();
    }
    auto linked = index_.LinkHostedBlob(repo.str(), digest.str());
    if (!linked) return tl::unexpected(linked.error());
    if (!*linked) return std::optional<StoredBlob>();
    return std::optional<StoredBlob>(StoredBlob{digest, **size});
  }
  // From the mirror's cache: its file was verified when it was filled. It is
  // hard-linked (else copied) into the hosted store, so that eviction of the
  // cached copy leaves the hosted one.
  auto source = cache_.OpenForRead(ObjectKind::kBlob, digest);
  if (!source) {
    if (source.error().kind == ErrorKind::kBlobUnknown) return std::optional<StoredBlob>();
    return tl::unexpected(source.error());
  }
  struct stat st;
  if (::fstat(source->get(), &st) != 0) return Fail(ErrorKind::kIo, "stat of a cached blob");
  auto temp = hosted_.CreateTemp();
  if (!temp) return tl::unexpected(temp.error());
  ::unlink(temp->path().c_str());
  if (::link(cache_.PathOf(ObjectKind::kBlob, digest).c_str(), temp->path().c_str()) != 0) {
    // Another filesystem: copy the bytes.
    auto copy = hosted_.CreateTemp();
    if (!copy) return tl::unexpected(copy.error());
    std::vector<char> buffer(kUploadBufferSize);
    while (true) {
      ssize_t n = ::read(source->get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Fail(ErrorKind::kIo, "read of a cached blob");
      if (n == 0) break;
      if (auto s = copy->Append(buffer.data(), static_cast<size_t>(n)); !s) {
        return tl::unexpected(s.error());
      }
    }
    *temp = std::move(*copy);
  }
  UniqueFd fd(::open(temp->path().c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Fail(ErrorKind::kIo, "open of a mounted blob");
  if (::fsync(fd.get()) != 0) return Fail(WriteErrorKind(errno), "fsync of a mounted blob");
  if (bucket_) {
    if (auto s = bucket_->PutBlob(repo, digest, fd.get(), static_cast<uint64_t>(st.st_size)); !s) {
      return Fail(ErrorKind::kUpstreamUnavailable,
                  "the mounted blob could not be stored in the S3 bucket: " + s.error().message);
    }
  }
  auto added = index_.CommitHostedBlob(
      repo.str(), digest.str(), static_cast<uint64_t>(st.st_size), UnixNowMs(),
      [&] { return hosted_.CommitPath(fd.get(), temp->path(), ObjectKind::kBlob, digest); });
  if (!added) return tl::unexpected(added.error());
  if (*added) temp->MarkCommitted();
  return std::optional<StoredBlob>(StoredBlob{digest, static_cast<uint64_t>(st.st_size)});
}

size_t UploadService::PurgeStale(std::chrono::milliseconds age, bool dry_run) {
  auto rows = index_.StaleUploads(UnixNowMs() - age.count());
  if (!rows) {
    Logger("hosted")->warn("upload purge: {}", rows.error().message);
    return 0;
  }
  size_t purged = 0;
  for (const auto& row : *rows) {
    if (dry_run) {
      Logger("hosted")->info("upload purge (dry run): would remove upload {} of {} ({} bytes)",
                             row.id, row.repo, row.offset);
      continue;
    }
    auto live = LiveOf(row.id);
    std::unique_lock busy(live->busy, std::try_to_lock);
    if (!busy.owns_lock()) continue;  // in use right now: not abandoned
    if (Discard(row.id)) ++purged;
    busy.unlock();
    Forget(row.id);
  }
  if (purged > 0) {
    Logger("hosted")->info("upload purge: removed {} abandoned uploads", purged);
    stats_.uploads_purged.fetch_add(purged, std::memory_order_relaxed);
  }
  return purged;
}

}  // namespace hubcache
