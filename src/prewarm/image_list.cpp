#include "prewarm/image_list.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "common/strings.h"
#include "common/unique_fd.h"

namespace hubcache {
namespace {

constexpr size_t kMaxListBytes = 16 * 1024 * 1024;

void Add(ImageList& list, std::set<std::string>& seen, std::string where, std::string_view text) {
  auto ref = ParseImageRef(text);
  if (!ref) {
    list.errors.push_back({std::move(where), std::string(text), ref.error().message});
    return;
  }
  if (!seen.insert(ref->str()).second) return;
  list.images.push_back({std::move(where), std::string(text), *ref});
}

}  // namespace

ImageList ParseImageList(std::string_view content) {
  ImageList list;
  std::set<std::string> seen;
  size_t line_number = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    // '#' never occurs in a reference, so it always starts a comment.
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = TrimSpaces(line);
    if (line.empty()) continue;
    Add(list, seen, "line " + std::to_string(line_number), line);
  }
  return list;
}

ImageList ParseImageArgs(const std::vector<std::string>& args) {
  ImageList list;
  std::set<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    Add(list, seen, "argument " + std::to_string(i + 1), TrimSpaces(args[i]));
  }
  return list;
}

Result<std::string> ReadListFile(const std::string& path) {
  int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  const std::string name = path == "-" ? std::string("standard input") : "'" + path + "'";
  if (fd < 0) {
    return Fail(ErrorKind::kIo, "cannot read image list " + name + ": " + std::strerror(errno));
  }
  UniqueFd owned(path == "-" ? -1 : fd);
  std::string content;
  char buffer[64 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Fail(ErrorKind::kIo, "cannot read image list " + name + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
    if (content.size() > kMaxListBytes) {
      return Fail(ErrorKind::kIo, "image list " + name + " is larger than 16 MiB");
    }
  }
  return content;
}

}  // namespace hubcache
