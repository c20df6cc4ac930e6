#include "http/htpasswd.h"

#include <crypt.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "common/sha256.h"

namespace hubcache {
namespace {

bool IsBcrypt(std::string_view hash) {
  return hash.size() == 60 && (hash.substr(0, 4) == "$2y$" || hash.substr(0, 4) == "$2b$" ||
                               hash.substr(0, 4) == "$2a$");
}

// The cost of "$2y$05$...": 5; 0 when the field is not two digits.
int BcryptCost(std::string_view hash) {
  if (hash.size() < 7 || hash[6] != '$') return 0;
  char tens = hash[4], ones = hash[5];
  if (tens < '0' || tens > '9' || ones < '0' || ones > '9') return 0;
  return (tens - '0') * 10 + (ones - '0');
}

// A bcrypt hash of a random password at `cost`; empty if the crypt library
// cannot make one.
std::string MakeDummyHash(int cost) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  // No random bytes given: libxcrypt draws them from the system.
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, setting,
                       sizeof(setting)) == nullptr) {
    return {};
  }
  crypt_data data{};
  const char* hash = crypt_r(setting + 7, setting, &data);  // the salt text as the password
  if (hash == nullptr || hash[0] == '*') return {};
  return hash;
}

}  // namespace

HtpasswdParse ParseHtpasswd(std::string_view content) {
  HtpasswdParse out;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    std::string_view line = content.substr(pos, end == std::string_view::npos ? end : end - pos);
    pos = end == std::string_view::npos ? content.size() : end + 1;
    ++line_no;
    // Whitespace around an entry is not part of it (the CNCF registry trims each
    // line too): an indented line or a trailing blank still names its user.
    constexpr std::string_view kSpace = " \t\r\v\f";
    size_t first = line.find_first_not_of(kSpace);
    if (first == std::string_view::npos || line[first] == '#') continue;
    line = line.substr(first, line.find_last_not_of(kSpace) - first + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      out.problems.push_back("line " + std::to_string(line_no) + ": expected user:hash");
      continue;
    }
    std::string_view hash = line.substr(colon + 1);
    if (!IsBcrypt(hash)) {
      out.problems.push_back("line " + std::to_string(line_no) +
                             ": not a bcrypt hash (create entries with htpasswd -B)");
      continue;
    }
    out.entries.push_back(HtpasswdEntry{std::string(line.substr(0, colon)), std::string(hash)});
  }
  return out;
}

Result<std::unique_ptr<HtpasswdFile>> HtpasswdFile::Load(const std::string& path) {
  std::unique_ptr<HtpasswdFile> file(new HtpasswdFile(path));
  std::lock_guard lock(file->mutex_);
  if (auto s = file->ReadNow(); !s) return tl::unexpected(s.error());
  return file;
}

Status HtpasswdFile::ReadNow() {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) {
    return Fail(ErrorKind::kConfigInvalid, "htpasswd file " + path_ + " cannot be read");
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in) return Fail(ErrorKind::kConfigInvalid, "htpasswd file " + path_ + " cannot be read");
  std::ostringstream content;
  content << in.rdbuf();
  auto parsed = ParseHtpasswd(content.str());
  for (const auto& p : parsed.problems) Logger("auth")->warn("htpasswd {}: {}", path_, p);
  if (parsed.entries.empty()) {
    return Fail(ErrorKind::kConfigInvalid, "htpasswd file " + path_ + " has no bcrypt entries");
  }
  int cost = 0;
  for (const auto& e : parsed.entries) cost = std::max(cost, BcryptCost(e.hash));
  if (cost < 4 || cost > 31) cost = 10;  // no entry names a usable cost: bcrypt's usual one
  if (dummy_hash_.empty() || BcryptCost(dummy_hash_) != cost) {
    std::string dummy = MakeDummyHash(cost);
    if (dummy.empty()) {
      return Fail(ErrorKind::kConfigInvalid,
                  "the crypt library cannot make bcrypt hashes of cost " + std::to_string(cost));
    }
    dummy_hash_ = std::move(dummy);
  }
  hashes_.clear();
  for (auto& e : parsed.entries) hashes_[e.user] = e.hash;
  verified_.clear();
  mtime_ns_ = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  size_ = static_cast<int64_t>(st.st_size);
  return {};
}

void HtpasswdFile::MaybeReload() {
  auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return;
  next_check_ = now + std::chrono::seconds(1);
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return;
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  if (mtime == mtime_ns_ && static_cast<int64_t>(st.st_size) == size_) return;
  if (auto s = ReadNow(); !s) {
    Logger("auth")->warn("htpasswd reload failed, keeping the previous users: {}",
                         s.error().message);
    return;
  }
  Logger("auth")->info("htpasswd reloaded users={}", hashes_.size());
}

bool HtpasswdFile::Verify(const std::string& user, const std::string& password) {
  std::string hash;
  bool known = false;
  Sha256 key_hasher;
  key_hasher.Update(user);
  key_hasher.Update("\0", 1);
  key_hasher.Update(password);
  const std::string key = key_hasher.FinishHex();
  {
    std::lock_guard lock(mutex_);
    MaybeReload();
    auto it = hashes_.find(user);
    known = it != hashes_.end();
    if (known && verified_.count(key)) return true;
    // An unknown user costs the same bcrypt as a known one with a wrong password.
    hash = known ? it->second : dummy_hash_;
  }
  // bcrypt is slow on purpose: run it outside the lock.
  crypt_data data{};
  const char* result = crypt_r(password.c_str(), hash.c_str(), &data);
  const bool no_nul = password.find('\0') == std::string::npos;
  bool ok = known && no_nul && result != nullptr && result[0] != '*' && hash == result;
  if (ok) {
    std::lock_guard lock(mutex_);
    auto it = hashes_.find(user);
    if (it != hashes_.end() && it->second == hash) verified_.insert(key);
  }
  return ok;
}

}  // namespace hubcache
