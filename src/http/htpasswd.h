#pragma once
// htpasswd files as the CNCF registry reads them: "user:hash" lines, bcrypt
// hashes ($2y$, $2b$, $2a$, as `htpasswd -B` writes), verified by the system's
// crypt library (libxcrypt), never by hand-written hashing.
//
// HtpasswdFile re-reads the file when it changes (checked at most once a
// second) and remembers verified credentials by a hash of user and password,
// so a client sending Basic auth on every request costs one bcrypt, not one
// per request. A user name not in the file costs the same bcrypt as a wrong
// password (against a dummy hash of the file's highest cost, made at load),
// so the answer time does not tell which users exist. Thread-safe; owns
// nothing but its copy of the file's entries.

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace hubcache {

struct HtpasswdEntry {
  std::string user;
  std::string hash;
};

struct HtpasswdParse {
  std::vector<HtpasswdEntry> entries;
  std::vector<std::string> problems;  // "line 3: ..." for lines that were skipped
};

// Untrusted input: never throws. Blank lines and # comments are skipped.
HtpasswdParse ParseHtpasswd(std::string_view content);

class HtpasswdFile {
 public:
  // Fails when the file is missing, unreadable or holds no usable entry.
  [[nodiscard]] static Result<std::unique_ptr<HtpasswdFile>> Load(const std::string& path);

  // False for an unknown user, a wrong password, or a password holding a NUL
  // (crypt would read only up to it). Spends one bcrypt unless the pair was
  // verified before.
  bool Verify(const std::string& user, const std::string& password);

 private:
  explicit HtpasswdFile(std::string path) : path_(std::move(path)) {}
  // Re-reads the file if its mtime or size changed; keeps the old entries if
  // the new content is unreadable.
  void MaybeReload();
  Status ReadNow();

  const std::string path_;
  std::mutex mutex_;
  std::map<std::string, std::string> hashes_;  // user -> hash; guarded by mutex_
  std::set<std::string> verified_;             // sha256(user \0 password); guarded
  // A bcrypt hash of a random password at the highest cost in the file: what
  // an unknown user's password is checked against. Guarded.
  std::string dummy_hash_;
  int64_t mtime_ns_ = 0;                              // guarded
  int64_t size_ = -1;                                 // guarded
  std::chrono::steady_clock::time_point next_check_;  // guarded
};

}  // namespace hubcache
