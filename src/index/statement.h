#pragma once
// Internal to index/: the prepared-statement wrapper and error helpers the
// IndexDb's translation units share. Not thread-safe by itself: used only
// under IndexDb's mutex.

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "common/result.h"

namespace hubcache {

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return stmt_ != nullptr; }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::string Text(int col) const {
    auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Error() const { return sqlite3_errmsg(db_); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

inline Error DbError(sqlite3* db, const std::string& what) {
  return Error{ErrorKind::kIo, "index " + what + ": " + sqlite3_errmsg(db)};
}

// Runs a write statement to completion.
inline Status RunWrite(sqlite3* db, Statement& s, const char* what) {
  if (!s.ok()) return tl::unexpected(DbError(db, what));
  if (s.Step() != SQLITE_DONE) return tl::unexpected(DbError(db, what));
  return {};
}

// BEGIN IMMEDIATE (the write lock, also against other processes on the same
// file) on construction; ROLLBACK on destruction unless Commit() succeeded.
class WriteTransaction {
 public:
  explicit WriteTransaction(sqlite3* db) : db_(db) {
    ok_ = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  ~WriteTransaction() {
    if (ok_ && !done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  WriteTransaction(const WriteTransaction&) = delete;
  WriteTransaction& operator=(const WriteTransaction&) = delete;
  bool ok() const { return ok_; }
  [[nodiscard]] Status Commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return tl::unexpected(DbError(db_, "commit"));
    }
    done_ = true;
    return {};
  }

 private:
  sqlite3* db_;
  bool ok_ = false;
  bool done_ = false;
};

}  // namespace hubcache
