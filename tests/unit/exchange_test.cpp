#include "server/exchange.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "joining_thread.h"
#include "server/response_writer.h"
#include "temp_dir.h"
#include "test_support.h"

namespace hubcache {
namespace {

using testing::CountOccurrences;
using testing::TempDir;
using testing::WithoutDate;
using testing::WriteFile;

using namespace std::chrono_literals;

// A router that records what it saw; answers 200 with the path (and body).
struct RecordingRouter : RequestRouter {
  Admission admission{Admission::Kind::kHandle};
  std::vector<std::string> admitted;  // method + path
  std::vector<httplib::Request> handled;
  int finished = 0;
  std::vector<uint64_t> body_bytes;  // each finished request's, from its context
  bool provider_overruns = false;
  int file_fd = -1;  // >= 0: answer "/file" with bytes [2, 7) of this file
  // "/growing" (with file_fd): bytes [2, 12) of the file as a growing FileBody
  // whose file is readable up to each of growing_ends in turn, then no further
  // (nullopt); the fallback writes the rest from the file and records where
  // it was asked to start.
  std::vector<uint64_t> growing_ends;
  std::vector<size_t> fallback_offsets;

  Admission Admit(RequestContext& context, httplib::Request& req, HttpResponse& res) override {
    CHECK(context.body_bytes == 0);
    admitted.push_back(req.method + " " + req.path);
    if (admission.kind == Admission::Kind::kAnswered) {
      res.status = 401;
      res.set_content("{}", "application/json");
    }
    return admission;
  }
  void Handle(httplib::Request& req, HttpResponse& res, RequestBody&) override {
    handled.push_back(req);
    res.status = 200;
    if (req.path == "/file" && file_fd >= 0) {
      SetFileBody(res, 5, "application/octet-stream", FileBody(file_fd, 2, nullptr));
      return;
    }
    if (req.path == "/growing" && file_fd >= 0) {
      auto next = std::make_shared<size_t>(0);
      auto ready = [this, next](uint64_t offset) -> std::optional<uint64_t> {
        while (*next < growing_ends.size() && growing_ends[*next] <= offset) ++*next;
        if (*next == growing_ends.size()) return std::nullopt;
        return growing_ends[(*next)++];
      };
      auto fallback = [this](size_t offset, size_t length, httplib::DataSink& sink) {
        fallback_offsets.push_back(offset);
        char buffer[16];
        ssize_t n = ::pread(file_fd, buffer, length, static_cast<off_t>(2 + offset));
        return n == static_cast<ssize_t>(length) && sink.write(buffer, length);
      };
      SetFileBody(res, 10, "application/octet-stream",
                  FileBody(file_fd, 2, nullptr, std::move(ready), std::move(fallback)));
      return;
    }
    if (req.path == "/chunked") {
      res.set_chunked_content_provider("text/plain", [](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) return sink.write("abc", 3);
        if (offset == 3) return sink.write("defg", 4);
        sink.done();
        return true;
      });
      return;
    }
    if (provider_overruns) {
      res.set_content_provider(4, "text/plain", [](size_t, size_t, httplib::DataSink& sink) {
        return sink.write("0123456789", 10);  // more than announced
      });
      return;
    }
    res.set_content(req.path + "|" + req.body, "text/plain");
  }
  void Finish(const RequestContext& context, const httplib::Request&,
              const HttpResponse&) override {
    ++finished;
    body_bytes.push_back(context.body_bytes);
  }
};

struct ExchangeFixture {
  UniqueFd server;
  UniqueFd client;
  ConnectionCounters stats;
  ConnectionLimits limits;
  RecordingRouter router;
  ExchangeFixture() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    server = UniqueFd(fds[0]);
    client = UniqueFd(fds[1]);
    ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    int size = 4 << 20;
    ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  // Sends `bytes` from a thread (they may exceed the socket buffer), closes
  // the sending side, and serves requests until the connection ends; returns
  // how each exchange ended.
  std::vector<ExchangeEnd> Serve(const std::string& bytes, int max_requests = 10) {
    JoiningThread sender(
        [&] {
          size_t at = 0;
          while (at < bytes.size()) {
            ssize_t n = ::send(client.get(), bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
            if (n <= 0) break;
            at += static_cast<size_t>(n);
          }
          ::shutdown(client.get(), SHUT_WR);
        },
        [&] { ::shutdown(client.get(), SHUT_RDWR); });
    std::vector<ExchangeEnd> ends;
    {
      ConnectionStream stream(server.get(), nullptr, "10.0.0.1", 1, limits, stats);
      for (int i = 0; i < max_requests; ++i) {
        stream.BeginRequest();
        ends.push_back(ServeExchange(stream, limits, nullptr, false, router, stats));
        if (ends.back() != ExchangeEnd::kKeepAlive) break;
      }
      (void)stream.Flush();
    }
    ::shutdown(server.get(), SHUT_WR);
    sender.join();
    return ends;
  }
  std::string Received() {
    std::string out;
    char buffer[65536];
    for (;;) {
      ssize_t n = ::recv(client.get(), buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      out.append(buffer, static_cast<size_t>(n));
    }
    return out;
  }
};

TEST_CASE("ServeExchange: keep-alive requests are answered in order, path and query decoded") {
  ExchangeFixture f;
  auto ends = f.Serve(
      "GET /v2/a%2Fb/tags/list?n=2&last=x+y&flag HTTP/1.1\r\nHost: m\r\nX-V: %41\r\n\r\n"
      "HEAD /v2/ HTTP/1.1\r\nHost: m\r\n\r\n");
  REQUIRE(ends.size() == 3);  // two requests, then the client's close
  CHECK(ends[0] == ExchangeEnd::kKeepAlive);
  CHECK(ends[1] == ExchangeEnd::kKeepAlive);
  CHECK(ends[2] == ExchangeEnd::kBroken);
  REQUIRE(f.router.handled.size() == 2);
  const httplib::Request& req = f.router.handled[0];
  CHECK(req.path == "/v2/a/b/tags/list");
  CHECK(req.get_param_value("n") == "2");
  CHECK(req.get_param_value("last") == "x y");
  CHECK(req.has_param("flag"));
  CHECK(req.get_header_value("x-v") == "%41");  // never decoded
  CHECK(req.remote_addr == "10.0.0.1");
  std::string got = f.Received();
  CHECK(CountOccurrences(got, "\r\nDate: ") == 2);  // one each, well formed (WithoutDate)
  CHECK(WithoutDate(got) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\n"
        "/v2/a/b/tags/list|"
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
  CHECK(f.router.finished == 2);
}

TEST_CASE("ServeExchange: a framing error is answered once and ends the connection") {
  struct Case {
    std::string name;
    std::string bytes;
    const char* status_line;
    std::atomic<uint64_t> ConnectionCounters::*counter;
  };
  const std::string smuggled = "GET /smuggled HTTP/1.1\r\nHost: m\r\n\r\n";
  const Case cases[] = {
      {"bare LF Content-Length",
       "POST /a HTTP/1.1\r\nHost: m\r\nContent-Length: 38\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"bare LF Transfer-Encoding",
       "POST /a HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\n\r\n0\r\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"space before the colon",
       "POST /a HTTP/1.1\r\nHost: m\r\nContent-Length : 38\r\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"percent-encoded length",
       "POST /a HTTP/1.1\r\nHost: m\r\nContent-Length: %32\r\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"bad escape in the path", "GET /v2/a%0 HTTP/1.1\r\nHost: m\r\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"bad escape in the query", "GET /v2/?n=%zz HTTP/1.1\r\nHost: m\r\n\r\n" + smuggled,
       "HTTP/1.1 400 Bad Request", &ConnectionCounters::rejected_malformed_request},
      {"request line over 8 KiB", "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\n\r\n",
       "HTTP/1.1 414 URI Too Long", &ConnectionCounters::rejected_request_line_too_long},
      {"head over 64 KiB", "GET / HTTP/1.1\r\nX-Big: " + std::string(70 * 1024, 'b') + "\r\n\r\n",
       "HTTP/1.1 431 Request Header Fields Too Large",
       &ConnectionCounters::rejected_headers_too_large},
      {"unknown coding", "POST /a HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
       "HTTP/1.1 501 Not Implemented", &ConnectionCounters::rejected_unsupported},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    ExchangeFixture f;
    auto ends = f.Serve(c.bytes);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0] == ExchangeEnd::kBroken);
    CHECK(f.router.admitted.empty());  // no handler saw it
    CHECK((f.stats.*(c.counter)).load() == 1);
    std::string got = f.Received();
    CHECK(got.substr(0, got.find("\r\n")) == c.status_line);
    CHECK(CountOccurrences(got, "HTTP/1.1 ") == 1);  // exactly one answer
    CHECK(got.find("Connection: close") != std::string::npos);
  }
}

TEST_CASE("ServeExchange: a body is read only for a route that asks, after admission") {
  SUBCASE("refused from the head: the declared body is never read") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kAnswered};
    auto ends =
        f.Serve("POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nContent-Length: 50331648\r\n\r\n" +
                std::string(1 << 20, 'x'));
    REQUIRE(ends.size() == 1);
    CHECK(ends[0] == ExchangeEnd::kClose);
    CHECK(f.router.handled.empty());
    CHECK(f.Received().find("HTTP/1.1 401 Unauthorized\r\n") == 0);
  }
  SUBCASE("a route that reads no body: answered, then closed") {
    ExchangeFixture f;
    auto ends = f.Serve("GET /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: 5\r\n\r\nGET /x");
    REQUIRE(ends.size() == 1);
    CHECK(ends[0] == ExchangeEnd::kClose);
    CHECK(f.router.handled.size() == 1);
    std::string got = f.Received();
    CHECK(CountOccurrences(got, "HTTP/1.1 ") == 1);
    CHECK(got.find("Connection: close") != std::string::npos);
  }
  SUBCASE("Content-Length body read whole") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 100};
    auto ends = f.Serve("POST /p HTTP/1.1\r\nHost: m\r\nContent-Length: 5\r\n\r\nhello");
    REQUIRE(f.router.handled.size() == 1);
    CHECK(f.router.handled[0].body == "hello");
    CHECK(ends[0] == ExchangeEnd::kKeepAlive);
  }
  SUBCASE("chunked body decoded, then the next request") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 100};
    f.Serve(
        "POST /p HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nPOST /q HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n");
    REQUIRE(f.router.handled.size() == 2);
    CHECK(f.router.handled[0].body == "abcde");
    CHECK(f.router.handled[1].path == "/q");
  }
  SUBCASE("a body over the route's limit: 413, closed, not read") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 4};
    auto ends = f.Serve("POST /p HTTP/1.1\r\nHost: m\r\nContent-Length: 5\r\n\r\nhello");
    CHECK(ends[0] == ExchangeEnd::kBroken);
    CHECK(f.router.handled.empty());
    CHECK(f.stats.rejected_body_too_large.load() == 1);
    CHECK(f.Received().find("HTTP/1.1 413 ") == 0);
  }
  SUBCASE("a chunked body over the limit: 413") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 4};
    f.Serve(
        "POST /p HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    CHECK(f.router.handled.empty());
    CHECK(f.Received().find("HTTP/1.1 413 ") == 0);
  }
  SUBCASE("malformed chunks: one 400, the rest never parsed as a request") {
    for (const char* chunks : {"zz\r\n", "-1\r\nab\r\n0\r\n\r\n", "ffffffffffffffffff\r\n",
                               "2\r\nabcGET /smuggled HTTP/1.1\r\nHost: m\r\n\r\n"}) {
      CAPTURE(chunks);
      ExchangeFixture f;
      f.router.admission = {Admission::Kind::kReadBody, 1 << 20};
      auto ends =
          f.Serve(std::string("POST /p HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n") +
                  chunks + "GET /smuggled HTTP/1.1\r\nHost: m\r\n\r\n");
      CHECK(ends.back() == ExchangeEnd::kBroken);
      CHECK(f.router.handled.empty());
      std::string got = f.Received();
      CHECK(CountOccurrences(got, "HTTP/1.1 ") == 1);
      CHECK(got.find("HTTP/1.1 400 ") == 0);
    }
  }
  SUBCASE("a POST with no length has no body: answered at once") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 100};
    auto start = std::chrono::steady_clock::now();
    f.Serve("POST /p HTTP/1.1\r\nHost: m\r\n\r\n");
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    REQUIRE(f.router.handled.size() == 1);
    CHECK(f.router.handled[0].body.empty());
  }
  SUBCASE("Expect: 100-continue gets its interim answer before the body is read") {
    ExchangeFixture f;
    f.router.admission = {Admission::Kind::kReadBody, 100};
    f.Serve("POST /p HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok");
    CHECK(f.Received().find("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n") == 0);
  }
}

TEST_CASE("ServeExchange: a provider writing past its length is cut off") {
  ExchangeFixture f;
  f.router.provider_overruns = true;
  auto ends = f.Serve("GET /x HTTP/1.1\r\nHost: m\r\n\r\n");
  CHECK(ends[0] == ExchangeEnd::kBroken);
  std::string got = f.Received();
  CHECK(got.find("Content-Length: 4\r\n") != std::string::npos);
  CHECK(got.find("0123") == std::string::npos);  // nothing of the overrun went out
}

TEST_CASE("ServeExchange: each request's context counts the body bytes that went out") {
  TempDir dir;
  WriteFile(dir.path() / "blob", "0123456789");
  UniqueFd file(::open((dir.path() / "blob").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(file.valid());
  ExchangeFixture f;
  f.router.file_fd = file.get();
  auto ends = f.Serve(
      "GET /ab HTTP/1.1\r\nHost: m\r\n\r\n"
      "HEAD /ab HTTP/1.1\r\nHost: m\r\n\r\n"
      "GET /file HTTP/1.1\r\nHost: m\r\n\r\n"
      "GET /chunked HTTP/1.1\r\nHost: m\r\n\r\n");
  REQUIRE(ends.size() == 5);
  // A fixed body ("/ab|"), none for HEAD, the file's 5 bytes (sendfile on this
  // plain connection), the chunks' 7 bytes without their framing.
  CHECK(f.router.body_bytes == std::vector<uint64_t>{4, 0, 5, 7});
  std::string got = f.Received();
  CHECK(got.find("Content-Length: 5\r\n\r\n23456HTTP/1.1 200") != std::string::npos);
  CHECK(got.find("3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n") != std::string::npos);
}

TEST_CASE("ServeExchange: a growing file goes out as it becomes readable, then its fallback") {
  TempDir dir;
  WriteFile(dir.path() / "blob", "0123456789ABCDEF");
  UniqueFd file(::open((dir.path() / "blob").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(file.valid());
  SUBCASE("readable to the end: sendfile only") {
    ExchangeFixture f;
    f.router.file_fd = file.get();
    f.router.growing_ends = {4, 7, 12};
    auto ends = f.Serve("GET /growing HTTP/1.1\r\nHost: m\r\n\r\n");
    CHECK(ends[0] == ExchangeEnd::kKeepAlive);
    CHECK(f.Received().find("Content-Length: 10\r\n\r\n23456789AB") != std::string::npos);
    CHECK(f.router.fallback_offsets.empty());
    CHECK(f.router.body_bytes == std::vector<uint64_t>{10});
  }
  SUBCASE("the file stops growing at 7: the fallback writes the rest from there") {
    ExchangeFixture f;
    f.router.file_fd = file.get();
    f.router.growing_ends = {4, 7};
    auto ends = f.Serve("GET /growing HTTP/1.1\r\nHost: m\r\n\r\n");
    CHECK(ends[0] == ExchangeEnd::kKeepAlive);
    CHECK(f.Received().find("Content-Length: 10\r\n\r\n23456789AB") != std::string::npos);
    CHECK(f.router.fallback_offsets == std::vector<size_t>{5});  // file offset 7, body offset 5
    CHECK(f.router.body_bytes == std::vector<uint64_t>{10});
  }
  SUBCASE("not readable at all: the fallback writes everything") {
    ExchangeFixture f;
    f.router.file_fd = file.get();
    auto ends = f.Serve("GET /growing HTTP/1.1\r\nHost: m\r\n\r\n");
    CHECK(ends[0] == ExchangeEnd::kKeepAlive);
    CHECK(f.Received().find("Content-Length: 10\r\n\r\n23456789AB") != std::string::npos);
    CHECK(f.router.fallback_offsets == std::vector<size_t>{0});
  }
}

TEST_CASE("FileBody reads its range through a buffer where sendfile cannot go (TLS)") {
  TempDir dir;
  WriteFile(dir.path() / "blob", "0123456789");
  UniqueFd file(::open((dir.path() / "blob").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(file.valid());
  FileBody body(file.get(), 2, nullptr);
  std::string out;
  httplib::DataSink sink;
  sink.write = [&](const char* data, size_t size) {
    out.append(data, size);
    return true;
  };
  REQUIRE(body(0, 5, sink));
  CHECK(out.substr(0, 5) == "23456");  // a read may give more than asked; the writer cuts it
  out.clear();
  REQUIRE(body(3, 2, sink));
  CHECK(out.substr(0, 2) == "56");
  CHECK_FALSE(body(8, 5, sink));  // past the end of the file: the response is cut short
}

TEST_CASE("DecodeTarget: strict percent-decoding") {
  std::string path;
  httplib::Params params;
  CHECK(DecodeTarget("/v2/a%2fb?x=%41%2B+", path, params));
  CHECK(path == "/v2/a/b");
  CHECK(params.find("x")->second == "A+ ");
  CHECK(DecodeTarget("/v2/a%00b", path, params));  // the routes refuse the name
  CHECK(path == std::string("/v2/a\0b", 7));
  for (const char* bad : {"/a%", "/a%4", "/a%zz", "/a%g0", "/?a=%0", "/?%z0=1"}) {
    CAPTURE(bad);
    CHECK_FALSE(DecodeTarget(bad, path, params));
  }
}

}  // namespace
}  // namespace hubcache
