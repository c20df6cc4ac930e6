#include "cache/blob_service.h"

#include <charconv>
#include <limits>

#include "cache/hosted_bucket.h"
#include "cache/pass_through.h"
#include "cache/second_tier.h"
#include "cache/upstream_errors.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/mapped_buffer.h"
#include "common/sha256.h"
#include "registry/routes.h"

namespace hubcache {
namespace {

// An upstream that announces an empty body for a blob: only the empty blob's
// digest can be right (nothing else hashes to it), so anything else is refused
// before a complete-looking empty body, digest and all, goes out.
Status CheckEmptyBlob(const Digest& digest, const RepoName& repo) {
  static const std::string kEmptyHex = Sha256::HexOf("");
  if (digest.hex() == kEmptyHex) return {};
  return Fail(ErrorKind::kUpstreamInvalid,
              repo.str() + "@" + digest.str() + ": the upstream announced an empty body");
}

}  // namespace

Result<BlobRead> BlobService::OpenHosted(const RepoName& repo, const Digest& digest, bool open) {
  auto blob = hosted_.Blob(repo, digest, open);
  if (!blob) return tl::unexpected(blob.error());
  if (blob->in_bucket) {
    // Pushed through another node: read from the bucket through a fill (one
    // transfer however many ask), kept in this node's L1 as a cached copy.
    for (int round = 0; round < 2; ++round) {
      if (auto fd = store_.OpenForRead(ObjectKind::kBlob, digest)) {
        BlobRead read{repo,    digest, BlobSource::kHosted, blob->size, std::move(*fd), nullptr,
                      nullptr, {}};
        return read;
      }
      auto fill = fills_.StartOrJoin(repo, digest, HostedBucket::BlobKey(digest));
      if (!fill) return tl::unexpected(fill.error());
      if (!*fill) continue;  // it just landed in L1
      auto total = (*fill)->WaitForHeaders(options_.wait_limit);
      if (!total) return tl::unexpected(total.error());
      BlobRead read{repo, digest, BlobSource::kHosted, blob->size, {}, nullptr, *fill, {}};
      return read;
    }
    return Fail(ErrorKind::kInternal, "blob vanished while being served");
  }
  BlobRead read{repo,    digest, BlobSource::kHosted, blob->size, std::move(blob->file), nullptr,
                nullptr, {}};
  return read;
}

Result<BlobRead> BlobService::Open(const RepoName& repo, const Digest& digest) {
  if (sources_.IsHosted(repo)) return OpenHosted(repo, digest, true);
  // At most two rounds: a fill may finish between our look and our join.
  for (int round = 0; round < 2; ++round) {
    auto pin = pins_.Acquire("b:" + digest.hex());
    if (auto fd = store_.OpenForRead(ObjectKind::kBlob, digest)) {
      auto size = store_.SizeOf(ObjectKind::kBlob, digest);
      if (!size) continue;  // removed between the open and the look: once more
      ++stats_.blob_hits;
      access_.Touch(EntryKind::kBlob, digest.str());
      BlobRead read{repo,           digest,         BlobSource::kHit, size,
                    std::move(*fd), std::move(pin), nullptr,          {}};
      return read;
    }
    if (l2_ && options_.redirect_validity.count() > 0 && !fills_.Find(digest)) {
      if (auto shared = l2_->BlobSize(digest); shared && *shared) {
        BlobRead read{repo, digest, BlobSource::kRedirect, **shared, {}, nullptr, nullptr, {}};
        read.location = l2_->client().PresignGet(SecondTier::BlobKey(digest),
                                                 options_.redirect_validity, UnixNowMs() / 1000);
        l2_->CountRedirect();
        return read;
      }
    }
    auto fill = fills_.StartOrJoin(repo, digest);
    if (!fill && fill.error().kind == ErrorKind::kIo) {
      // The cache cannot take a new file (disk full, read-only): serve through.
      Logger("cache")->warn("cache not writable, serving through blob={}@{} error=\"{}\"",
                            repo.str(), digest.str(), fill.error().message);
      ++stats_.cache_write_errors;
      usage_.WriteFailed();
      auto size = UpstreamSize(repo, digest);
      if (!size) return tl::unexpected(size.error());
      ++stats_.pass_through_serves;
      BlobRead read{repo, digest, BlobSource::kPassThrough, *size, {}, nullptr, nullptr, {}};
      return read;
    }
    if (!fill) return tl::unexpected(fill.error());
    if (!*fill) continue;  // it just landed in the store
    if ((*fill)->prefetched()) ++stats_.prefetch_joined;
    auto total = (*fill)->WaitForHeaders(options_.wait_limit);
    if (!total) {
      ++stats_.blob_misses;
      return tl::unexpected(total.error());
    }
    const bool from_bucket = (*fill)->FromBucket();
    ++(from_bucket ? stats_.blob_hits : stats_.blob_misses);
    if (*total && **total == 0) {
      // The fill fails on its own (and counts it): its bytes cannot match.
      if (auto empty = CheckEmptyBlob(digest, repo); !empty) return tl::unexpected(empty.error());
    }
    if (!*total) {
      // Unknown length: the answer waits for a first byte or the verified end,
      // so a body that fails before its first byte (an empty one among them)
      // is an error response, not a 200 that ends at once.
      char probe = 0;
      if (auto first = (*fill)->ReadAt(0, &probe, 1, options_.wait_limit); !first) {
        return tl::unexpected(first.error());
      }
    }
    BlobRead read{repo,   digest, from_bucket ? BlobSource::kBucket : BlobSource::kMiss,
                  *total, {},     nullptr,
                  *fill,  {}};
    return read;
  }
  return Fail(ErrorKind::kInternal, "blob vanished while being served");
}

Result<BlobRead> BlobService::Stat(const RepoName& repo, const Digest& digest) {
  if (sources_.IsHosted(repo)) return OpenHosted(repo, digest, false);
  BlobRead read{repo, digest,  BlobSource::kHit, store_.SizeOf(ObjectKind::kBlob, digest),
                {},   nullptr, nullptr,          {}};
  if (!read.size) {
    if (auto fill = fills_.Find(digest)) {
      auto total = fill->WaitForHeaders(std::chrono::milliseconds(0));
      if (total && *total) read.size = *total;
    }
  }
  if (!read.size && l2_) {
    if (auto shared = l2_->BlobSize(digest); shared && *shared) read.size = **shared;
  }
  if (!read.size) {
    // A HEAD never downloads the blob: ask the upstream with a HEAD as well.
    read.source = BlobSource::kMiss;
    auto size = UpstreamSize(repo, digest);
    if (!size) return tl::unexpected(size.error());
    read.size = *size;
  }
  if (*read.size == 0) {
    // A fill whose upstream announced nothing for it fails on its own.
    if (auto empty = CheckEmptyBlob(digest, repo); !empty) return tl::unexpected(empty.error());
  }
  return read;
}

Result<uint64_t> BlobService::UpstreamSize(const RepoName& repo, const Digest& digest) {
  auto response = ExpectOk(upstream_.Fetch("HEAD", &repo, BlobPath(repo, digest), {}, 64 * 1024),
                           ErrorKind::kBlobUnknown, repo.str() + "@" + digest.str(), stats_);
  if (!response) return tl::unexpected(response.error());
  const std::string length = response->Header("content-length");
  uint64_t size = 0;
  auto [ptr, ec] = std::from_chars(length.data(), length.data() + length.size(), size);
  if (length.empty() || ec != std::errc() || ptr != length.data() + length.size()) {
    return Fail(ErrorKind::kUpstreamInvalid, "upstream sent no blob size");
  }
  if (size == 0) {
    if (auto empty = CheckEmptyBlob(digest, repo); !empty) {
      ++stats_.upstream_errors;
      return tl::unexpected(empty.error());
    }
  }
  return size;
}

bool BlobService::Stream(const BlobRead& read, uint64_t first, std::optional<uint64_t> length,
                         const Writer& write) {
  switch (read.source) {
    case BlobSource::kMiss:
    case BlobSource::kBucket:
      return read.fill && StreamFill(read, first, length, write);
    case BlobSource::kPassThrough:
      return length && StreamUpstream(read, first, *length, write);
    case BlobSource::kHosted:
      return read.fill && StreamFill(read, first, length, write);  // from the bucket
    case BlobSource::kHit:
    case BlobSource::kRedirect:
      break;
  }
  return false;  // a hit or a hosted blob is sent from its file
}

std::optional<uint64_t> BlobService::FillReadableEnd(const BlobRead& read, uint64_t offset) {
  if (!read.fill) return std::nullopt;
  auto end = read.fill->WaitReadable(offset, options_.wait_limit);
  if (!end || *end <= offset) return std::nullopt;
  return *end;
}

bool BlobService::StreamFill(const BlobRead& read, uint64_t first, std::optional<uint64_t> length,
                             const Writer& write) {
  MappedBuffer buffer(kStreamChunkBytes);
  if (buffer.size() == 0) return false;  // out of memory
  const uint64_t end = length ? first + *length : std::numeric_limits<uint64_t>::max();
  uint64_t offset = first;
  while (offset < end) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(end - offset, buffer.size()));
    auto n = read.fill->ReadAt(offset, buffer.data(), want, options_.wait_limit);
    if (n && *n > 0) {
      if (!write(buffer.data(), *n)) return false;
      offset += *n;
      continue;
    }
    if (n) return !length;  // the verified end: only a body of unknown length ends so
    if (!read.fill->FailedOnWrite() || !length || !read.size) return false;
    if (read.source == BlobSource::kHosted) return false;  // never from the upstream
    // The disk failed, not the upstream: finish from the upstream, verified.
    // What the temp file holds is hashed first.
    uint64_t from = std::min(offset, read.fill->BytesWritten());
    Sha256 hasher;
    if (!read.fill->HashPrefix(from, hasher)) return false;
    PassThroughRequest request{
        &read.repo, &read.digest, *read.size, from, offset, end - 1, options_.transfer_timeout};
    return StreamFromUpstream(upstream_, request, hasher, write).has_value();
  }
  return true;
}

bool BlobService::StreamUpstream(const BlobRead& read, uint64_t first, uint64_t length,
                                 const Writer& write) {
  if (!read.size) return false;
  Sha256 hasher;
  PassThroughRequest request{&read.repo,
                             &read.digest,
                             *read.size,
                             0,
                             first,
                             first + length - 1,
                             options_.transfer_timeout};
  return StreamFromUpstream(upstream_, request, hasher, write).has_value();
}

}  // namespace hubcache
