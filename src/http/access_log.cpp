#include "http/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/log.h"

namespace hubcache {
namespace {

// How often the writer reports records dropped since its last report.
constexpr auto kDropReportInterval = std::chrono::seconds(10);
// While requests come in, the writer wakes this often and writes what queued
// meanwhile; after kIdleRounds rounds with nothing queued it sleeps until the
// next Submit. Waking it on every Submit cost a futex wake, a context switch
// and a write(2) per request: 15 % of the manifest hit rate.
constexpr auto kBatchInterval = std::chrono::milliseconds(10);
constexpr int kIdleRounds = 10;

std::string Rfc3339Ms(int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(unix_ms % 1000));
}

// Bytes that would break a space-separated line become %XX.
std::string TextSafe(const std::string& s) {
  if (s.empty()) return "-";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += fmt::format("%{:02X}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

std::string FormatAccessRecord(const AccessRecord& r, AccessLogFormat format) {
  if (format == AccessLogFormat::kJson) {
    nlohmann::json j = {
        {"time", Rfc3339Ms(r.time_ms)},
        {"client", r.client},
        {"method", r.method},
        {"path", r.target},
        {"status", r.status},
        {"bytes", r.bytes},
        {"duration_ms", std::round(r.duration_ms * 1000.0) / 1000.0},
        {"cache", r.cache.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.cache)},
        {"registry", r.registry.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.registry)}};
    // Paths are client bytes: never let invalid UTF-8 throw.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return fmt::format(
      "{} client={} method={} path={} status={} bytes={} duration_ms={:.3f} cache={} "
      "registry={}",
      Rfc3339Ms(r.time_ms), TextSafe(r.client), TextSafe(r.method), TextSafe(r.target), r.status,
      r.bytes, r.duration_ms, TextSafe(r.cache), TextSafe(r.registry));
}

Result<std::unique_ptr<AccessLog>> AccessLog::Open(const std::string& destination,
                                                   AccessLogFormat format, size_t capacity) {
  FILE* out = nullptr;
  bool owns = false;
  if (destination == "stdout") {
    out = stdout;
  } else if (destination == "stderr") {
    out = stderr;
  } else {
    int fd = ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Fail(ErrorKind::kConfigInvalid,
                  "cannot open the access log " + destination + ": " + std::strerror(errno));
    }
    out = ::fdopen(fd, "a");
    if (out == nullptr) {
      ::close(fd);
      return Fail(ErrorKind::kIo, "cannot open the access log " + destination);
    }
    owns = true;
  }
  size_t size = 2;
  while (size < capacity) size *= 2;
  return std::unique_ptr<AccessLog>(new AccessLog(out, owns, format, size));
}

AccessLog::AccessLog(FILE* out, bool owns_out, AccessLogFormat format, size_t capacity)
    : out_(out),
      owns_out_(owns_out),
      format_(format),
      mask_(capacity - 1),
      cells_(std::make_unique<Cell[]>(capacity)) {
  for (size_t i = 0; i < capacity; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
  writer_ = std::thread(&AccessLog::Run, this);
}

AccessLog::~AccessLog() {
  stopping_.store(true, std::memory_order_release);
  published_.fetch_add(1, std::memory_order_release);
  published_.notify_one();
  writer_.join();
  if (owns_out_) std::fclose(out_);
}

void AccessLog::Submit(AccessRecord&& record) {
  uint64_t pos = enqueue_.load(std::memory_order_relaxed);
  Cell* cell;
  for (;;) {
    cell = &cells_[pos & mask_];
    uint64_t seq = cell->sequence.load(std::memory_order_acquire);
    auto diff = static_cast<int64_t>(seq - pos);
    if (diff == 0) {
      if (enqueue_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) break;
    } else if (diff < 0) {
      dropped_.fetch_add(1, std::memory_order_relaxed);  // full: the writer is behind
      return;
    } else {
      pos = enqueue_.load(std::memory_order_relaxed);
    }
  }
  cell->record = std::move(record);
  cell->sequence.store(pos + 1, std::memory_order_release);
  // With Run()'s sleeping_ store and published_ load, a Dekker pair (all
  // seq_cst): either the writer sees this bump, or this sees it asleep.
  published_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst)) published_.notify_one();
}

bool AccessLog::TryTake(AccessRecord* record) {
  Cell& cell = cells_[dequeue_ & mask_];
  if (cell.sequence.load(std::memory_order_acquire) != dequeue_ + 1) return false;
  *record = std::move(cell.record);
  cell.record = AccessRecord{};
  cell.sequence.store(dequeue_ + mask_ + 1, std::memory_order_release);
  ++dequeue_;
  return true;
}

void AccessLog::Run() {
  std::string batch;
  AccessRecord record;
  uint64_t dropped_reported = 0;
  auto last_report = std::chrono::steady_clock::now() - kDropReportInterval;
  int idle_rounds = 0;
  for (;;) {
    bool stopping = stopping_.load(std::memory_order_acquire);
    bool took = false;
    while (TryTake(&record)) {
      took = true;
      batch += FormatAccessRecord(record, format_);
      batch += '\n';
      written_.fetch_add(1, std::memory_order_relaxed);
      if (batch.size() >= 64 * 1024) {
        std::fwrite(batch.data(), 1, batch.size(), out_);
        batch.clear();
      }
    }
    if (!batch.empty()) {
      std::fwrite(batch.data(), 1, batch.size(), out_);
      batch.clear();
    }
    if (took) std::fflush(out_);
    uint64_t dropped = dropped_.load(std::memory_order_relaxed);
    if (dropped != dropped_reported &&
        std::chrono::steady_clock::now() - last_report >= kDropReportInterval) {
      Logger("http")->warn("access log fell behind dropped={} total_dropped={}",
                           dropped - dropped_reported, dropped);
      dropped_reported = dropped;
      last_report = std::chrono::steady_clock::now();
    }
    if (stopping) return;  // drained after the stop was seen
    idle_rounds = took ? 0 : idle_rounds + 1;
    if (idle_rounds < kIdleRounds) {
      std::this_thread::sleep_for(kBatchInterval);
      continue;
    }
    sleeping_.store(true, std::memory_order_seq_cst);
    uint64_t seen = published_.load(std::memory_order_seq_cst);
    // A record published before `seen` was read is in the queue now.
    if (!stopping_.load(std::memory_order_acquire) &&
        cells_[dequeue_ & mask_].sequence.load(std::memory_order_acquire) != dequeue_ + 1) {
      published_.wait(seen, std::memory_order_acquire);
    }
    sleeping_.store(false, std::memory_order_relaxed);
    idle_rounds = 0;
  }
}

}  // namespace hubcache
