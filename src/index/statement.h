#pragma once
// Internal to index/: the prepared-statement wrapper and error helpers the
// IndexDb's translation units share. Not thread-safe by itself: used only
// under IndexDb's mutex.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "common/result.h"

namespace hubcache {

// The prepared statements of one connection, kept for reuse by SQL text:
// preparing is most of the cost of a small query. Owned by the IndexDb and
// finalized before its connection closes; used under its mutex only.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, stmt] : cached_) sqlite3_finalize(stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  sqlite3* db() const { return db_; }
  // A prepared statement for `sql`, taken out of the cache while in use (a
  // statement nested in another of the same text gets its own); null on error.
  sqlite3_stmt* Take(const std::string& sql) {
    if (auto it = cached_.find(sql); it != cached_.end()) {
      sqlite3_stmt* stmt = it->second;
      cached_.erase(it);
      return stmt;
    }
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return nullptr;
    return stmt;
  }
  // Gives a statement back, reset, for the next use of its text.
  void Give(std::string sql, sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    if (cached_.size() >= kMaxStatements || !cached_.emplace(std::move(sql), stmt).second) {
      sqlite3_finalize(stmt);
    }
  }

 private:
  static constexpr size_t kMaxStatements = 256;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> cached_;
};

// A prepared statement, finalized (or given back to its cache) on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) stmt_ = nullptr;
  }
  Statement(StatementCache& cache, const char* sql)
      : db_(cache.db()), cache_(&cache), sql_(sql), stmt_(cache.Take(sql_)) {}
  ~Statement() {
    if (cache_ != nullptr && stmt_ != nullptr) {
      cache_->Give(std::move(sql_), stmt_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }
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
  StatementCache* cache_ = nullptr;
  std::string sql_;
  sqlite3_stmt* stmt_ = nullptr;
};

inline Error DbError(sqlite3* db, const std::string& what) {
  // A full disk is the operator's to fix, not a fault of ours: its own kind (507).
  ErrorKind kind =
      sqlite3_errcode(db) == SQLITE_FULL ? ErrorKind::kInsufficientStorage : ErrorKind::kIo;
  return Error{kind, "index " + what + ": " + sqlite3_errmsg(db)};
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
