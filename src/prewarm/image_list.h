#pragma once
// The list of images to pre-warm, from a file (one reference per line; blank
// lines and '#' comments, also after a reference, are allowed) or from
// command-line arguments. A malformed entry does not stop the rest: it is
// returned as a ListError naming where it was ("line 3", "argument 2"), and the
// caller reports it and carries on. Duplicates (same canonical reference) are
// kept once. Pure functions.

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "registry/image_ref.h"

namespace hubcache {

struct ListedImage {
  std::string where;  // "line 3" / "argument 2"
  std::string text;   // as written, trimmed
  ImageRef ref;
};

struct ListError {
  std::string where;
  std::string text;
  std::string message;
};

struct ImageList {
  std::vector<ListedImage> images;  // in list order, duplicates dropped
  std::vector<ListError> errors;    // in list order
};

ImageList ParseImageList(std::string_view content);
ImageList ParseImageArgs(const std::vector<std::string>& args);

// Reads a list file ("-" = standard input). Fails with kIo when it cannot be read.
[[nodiscard]] Result<std::string> ReadListFile(const std::string& path);

}  // namespace hubcache
