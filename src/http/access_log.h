#pragma once
// The access log: one line per request (time, client address, method, path,
// status, body bytes, duration, cache result), as text or JSON lines, written
// to stdout, stderr or a file.
//
// Off the hot path: Submit() only moves the record into a bounded lock-free
// queue (a CAS and a release store; never a lock, never I/O, and no wake-up
// while the writer is awake) and returns; one writer thread, owned by the
// AccessLog and joined by its destructor, formats and writes the lines in
// batches, at most kBatchInterval apart while requests come in, and sleeps until
// the next Submit once the server is idle. When the writer falls behind and the
// queue is full, records are dropped, counted, and a warning is logged.
//
// Also here: the per-request trace that the response writers feed with the
// body bytes they send.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"

namespace hubcache {

enum class AccessLogFormat { kText, kJson };

struct AccessRecord {
  int64_t time_ms = 0;  // unix ms when the response was complete
  std::string client;   // remote address
  std::string method;
  std::string target;  // path and query as the client sent them
  int status = 0;
  uint64_t bytes = 0;  // body bytes sent
  double duration_ms = 0;
  std::string cache;  // "hit", "miss", "stale" or "" (not a cacheable object)
  // Where the repository's content comes from: "docker.io", "ghcr.io", ...,
  // "hosted"; "" for a request that names no repository.
  std::string registry;
};

// One line, without the trailing newline. Text:
//   2026-01-02T15:04:05.123Z client=127.0.0.1 method=GET path=/v2/ status=200 bytes=2
//   duration_ms=0.41 cache=- registry=-
// JSON: {"time":"...","client":"...","method":"GET","path":"/v2/","status":200,
//   "bytes":2,"duration_ms":0.41,"cache":null,"registry":null}
// Text fields never contain a space, quote or control byte: such bytes in the
// path are percent-encoded, so one line is always one record.
std::string FormatAccessRecord(const AccessRecord& record, AccessLogFormat format);

class AccessLog {
 public:
  // destination: "stdout", "stderr" or a file path (appended to, created 0644).
  // capacity: queued records before Submit drops (rounded up to a power of 2).
  [[nodiscard]] static Result<std::unique_ptr<AccessLog>> Open(const std::string& destination,
                                                               AccessLogFormat format,
                                                               size_t capacity = 8192);
  ~AccessLog();  // writes what is queued, then stops and joins the writer
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Lock-free and non-blocking; drops the record when the queue is full.
  void Submit(AccessRecord&& record);

  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  AccessLogFormat format() const { return format_; }

 private:
  struct Cell {
    std::atomic<uint64_t> sequence;
    AccessRecord record;
  };
  AccessLog(FILE* out, bool owns_out, AccessLogFormat format, size_t capacity);
  bool TryTake(AccessRecord* record);
  void Run();

  FILE* const out_;
  const bool owns_out_;
  const AccessLogFormat format_;
  const size_t mask_;
  std::unique_ptr<Cell[]> cells_;
  // Producers claim positions here (Vyukov's bounded queue); the one consumer
  // reads at dequeue_ (writer thread only).
  alignas(64) std::atomic<uint64_t> enqueue_{0};
  alignas(64) uint64_t dequeue_ = 0;
  // Bumped after every publish; the writer waits on it when it went to sleep
  // (sleeping_), and only then does Submit wake it.
  alignas(64) std::atomic<uint64_t> published_{0};
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> dropped_{0};
  std::thread writer_;
};

}  // namespace hubcache
