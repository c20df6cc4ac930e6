#include "store/sync_behind.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/unique_fd.h"
#include "temp_dir.h"
#include "wait_for.h"

namespace hubcache {
namespace {

using testing::TempDir;

void WriteChunks(int fd, SyncBehind& sync, size_t chunks, size_t size) {
  std::string chunk(size, 'x');
  for (size_t i = 0; i < chunks; ++i) {
    chunk[0] = static_cast<char>('a' + i % 26);
    REQUIRE(::write(fd, chunk.data(), chunk.size()) == static_cast<ssize_t>(chunk.size()));
    sync.Wrote(chunk.size());
  }
}

TEST_CASE("SyncBehind flushes behind the writer once a period has been written") {
  TempDir dir;
  auto path = dir.path() / "file";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd.valid());
  SyncBehind sync(fd.get(), 0, 1 << 20);
  WriteChunks(fd.get(), sync, 12, 256 * 1024);  // 3 MiB: three periods
  CHECK(WaitFor([&] { return sync.flushes() >= 1; }));
  struct stat st {};
  REQUIRE(::fstat(fd.get(), &st) == 0);
  CHECK(st.st_size == 3 << 20);
}

TEST_CASE("SyncBehind starts no flush below one period, and an appended file keeps its bytes") {
  TempDir dir;
  auto path = dir.path() / "file";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd.valid());
  REQUIRE(::write(fd.get(), "head", 4) == 4);
  {
    // Starting at an offset (an upload resumed by a PATCH): the period counts
    // from there.
    SyncBehind sync(fd.get(), 4, 1 << 20);
    WriteChunks(fd.get(), sync, 3, 256 * 1024);
    CHECK(sync.flushes() == 0);
  }
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  char head[5] = {};
  REQUIRE(::read(in.get(), head, 5) == 5);
  CHECK(std::string(head, 5) == "heada");
}

TEST_CASE("SyncBehind's destructor returns with a flush due, and survives a closed descriptor") {
  TempDir dir;
  auto path = dir.path() / "file";
  int raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(raw >= 0);
  {
    SyncBehind sync(raw, 0, 64 * 1024);
    WriteChunks(raw, sync, 4, 64 * 1024);
  }
  ::close(raw);
  // Writes reported after the caller's descriptor closed: nothing to flush,
  // nothing that throws or crashes (the final fsync is the caller's check).
  SyncBehind orphan(raw, 0, 1);
  orphan.Wrote(10);
  CHECK(orphan.flushes() == 0);
}

}  // namespace
}  // namespace hubcache
