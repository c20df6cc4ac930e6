#!/usr/bin/env python3
"""One request parser, no smuggling: the exact bytes of the "one request parser" issue,
sent on raw sockets to a real hubcache (with a real docker-registry upstream).

  Framing     each ambiguous head (bare LF after Content-Length or Transfer-Encoding, a
              space before the colon, a NUL or a percent-encoded Content-Length, two Host,
              no Host, obs-fold, absolute-form, HTTP/2.0) followed by a second, smuggled
              request: exactly one answer (4xx/5xx), then the connection closed; the
              smuggled request never reaches the server (no access-log line for it).
  Chunked     malformed chunked bodies on an admin POST that is authorized (zz, an
              overflowing or negative size, data without its CRLF): one 400, closed.
              `Transfer-Encoding: chunked, identity` and a POST without a length: answered
              at once, not after a read timeout.
  Limits      a bare-LF blank line cannot end the head early: 300 fields get one 400 (or
              431) and 20 MiB of header fields are refused at 64 KiB with flat RSS; a single
              8.2 KB field and a 60 KiB one are served; 101 fields and 65 KiB get 431.
  Before body a 48 MiB chunked body and a 48 MiB Content-Length body on POST /admin/ without
              credentials get 401 without being read (RSS flat, the connection closed).
~15 s.
"""
import os
import socket
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from mirror import Mirror  # noqa: E402
from test_hostile import connect, exchange, parse_metrics, read_to_eof, send_quietly  # noqa: E402
from upstream import started_upstream  # noqa: E402

ADMIN_TOKEN = "smuggling-test-admin-token-0123456789"
DEADLINE_S = 10  # for one exchange on a loaded 2-core machine
SMUGGLED_PATH = "/v2/smuggled-request-marker/tags/list"
SMUGGLED = f"GET {SMUGGLED_PATH} HTTP/1.1\r\nHost: m\r\n\r\n".encode()
# Allocator noise (more under ASan's shadow memory); the bodies at stake are 20-48 MiB.
RSS_SLACK_KIB = (24 if "ASAN_OPTIONS" in os.environ else 12) * 1024

S = harness.ModuleState()


def setUpModule():
    harness.require_tools("docker-registry", "openssl")
    S.work, S.up = started_upstream("smuggling", unittest.addModuleCleanup)
    d = os.path.join(S.work, "mirror")
    os.makedirs(d)
    S.m = Mirror(d, S.up.url, extra_args=["--admin-token", ADMIN_TOKEN,
                                           "--header-timeout", "5s",
                                           "--access-log", os.path.join(d, "access.log")])
    unittest.addModuleCleanup(S.m.stop)
    S.m.start()


def access_log():
    return harness.read_text(os.path.join(S.work, "mirror", "access.log"))


def metrics():
    r = harness.request(S.m.url, "GET", "/metrics", timeout=20)
    return parse_metrics(r.body.decode())


class Base(unittest.TestCase):
    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            lines = S.m.log().splitlines()[-40:]
            sys.stderr.write(f"\n--- {self.id()}: last lines of {S.m.log_path}\n")
            sys.stderr.write("\n".join(lines) + "\n---\n")

    def assert_one_answer_then_closed(self, raw, statuses, what):
        a = exchange(S.m.port, raw, DEADLINE_S)
        self.assertIn(a.status, statuses, f"{what}: {a!r}")
        self.assertEqual(a.answers, 1, f"{what}: more than one answer: {a!r}")
        self.assertTrue(a.eof, f"{what}: the connection stayed open: {a!r}")
        self.assertEqual(a.headers.get("connection"), "close", f"{what}: {a!r}")
        self.assertLess(a.elapsed_s, DEADLINE_S, what)
        return a

    def assert_alive(self):
        self.assertIsNone(S.m.proc.poll(), "hubcache exited")
        r = harness.request(S.m.url, "GET", "/v2/", timeout=10)
        self.assertEqual(r.status, 200, r)


class Framing(Base):
    def test_ambiguous_heads_get_one_answer_and_a_close(self):
        body = SMUGGLED  # what a lenient parser would take as the next request
        n = str(len(body)).encode()
        cases = {
            "bare LF after Content-Length":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: " + n + b"\n\r\n" + body,
            "bare LF after Transfer-Encoding":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\n\r\n0\r\n\r\n" + body,
            "space before the colon":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length : " + n + b"\r\n\r\n" + body,
            "NUL in Content-Length":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: 3\x00" + n + b"\r\n\r\n" + body,
            "percent-encoded Content-Length":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: %3" + n[-1:] + b"\r\n\r\n" + body,
            "Content-Length and Transfer-Encoding":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: " + n +
                b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body,
            "two Content-Length":
                b"POST /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\nContent-Length: " + n +
                b"\r\n\r\n" + body,
            "obs-fold": b"GET /v2/ HTTP/1.1\r\nHost: m\r\nX-A: b\r\n Content-Length: 5\r\n\r\n" + body,
            "two Host": b"GET /v2/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + body,
            "no Host": b"GET /v2/ HTTP/1.1\r\nAccept: */*\r\n\r\n" + body,
            "absolute-form": b"GET http://evil.example/v2/ HTTP/1.1\r\nHost: m\r\n\r\n" + body,
            "HTTP/2.0": b"GET /v2/ HTTP/2.0\r\nHost: m\r\n\r\n" + body,
            "GET with a body": b"GET /v2/ HTTP/1.1\r\nHost: m\r\nContent-Length: " + n +
                               b"\r\n\r\n" + body,
        }
        for what, raw in cases.items():
            with self.subTest(what):
                statuses = (200,) if what == "GET with a body" else (400, 505)
                self.assert_one_answer_then_closed(raw, statuses, what)
        time.sleep(0.5)  # the access log writer batches
        self.assertNotIn("smuggled-request-marker", access_log(),
                         "a smuggled request reached the handlers")
        self.assert_alive()

    def test_rejections_are_counted(self):
        before = metrics().get(("hubcache_http_rejected_total", 'reason="malformed_request"'), 0)
        exchange(S.m.port, b"GET /v2/ HTTP/1.1\nHost: m\r\n\r\n", DEADLINE_S)
        after = metrics().get(("hubcache_http_rejected_total", 'reason="malformed_request"'), 0)
        self.assertEqual(after, before + 1)


class Chunked(Base):
    HEAD = (b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer " +
            ADMIN_TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")

    def test_malformed_chunked_bodies(self):
        for what, chunks in {"not hex": b"zz\r\n",
                             "overflowing size": b"fffffffffffffffffffff\r\n",
                             "negative size": b"-1\r\nab\r\n0\r\n\r\n",
                             "data without its CRLF": b"2\r\nabcd\r\n0\r\n\r\n"}.items():
            with self.subTest(what):
                a = self.assert_one_answer_then_closed(self.HEAD + chunks + SMUGGLED, (400,), what)
                self.assertIn(b"errors", a.body)
        self.assert_alive()

    def test_no_hang_without_a_usable_length(self):
        cases = {
            "chunked, identity": b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\n"
                                 b"Transfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n",
            "identity": b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\n"
                        b"Transfer-Encoding: identity\r\n\r\nabc",
        }
        for what, raw in cases.items():
            with self.subTest(what):
                a = self.assert_one_answer_then_closed(raw, (400, 501), what)
                self.assertLess(a.answered_s, 3, f"{what}: answered late: {a!r}")
        # A POST with neither length header has no body: answered at once, kept alive.
        with connect(S.m.port) as s:
            started = time.monotonic()
            s.sendall(b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer " +
                      ADMIN_TOKEN.encode() + b"\r\n\r\n")
            s.settimeout(5)
            data = s.recv(65536)
            self.assertLess(time.monotonic() - started, 3)
            self.assertRegex(data, rb"^HTTP/1\.1 400 ")  # an empty list is no JSON array

    def test_a_valid_chunked_prewarm_body_is_read(self):
        body = b'["library/does-not-exist:1"]'
        raw = (self.HEAD + f"{len(body) - 5:x}\r\n".encode() + body[:-5] + b"\r\n" +
               b"5;ext=1\r\n" + body[-5:] + b"\r\n0\r\n\r\n")
        with connect(S.m.port) as s:
            s.sendall(raw)
            a = read_to_eof(s, time.monotonic(), 3)
        self.assertEqual(a.status, 202, a)


class Limits(Base):
    def test_bare_lf_blank_line_cannot_end_the_head_early(self):
        fields = b"".join(b"X-F%d: v\r\n" % i for i in range(300))
        self.assert_one_answer_then_closed(
            b"GET /v2/ HTTP/1.1\r\nHost: m\r\n\n" + fields + b"\r\n", (400, 431), "bare LF blank")

    def test_twenty_mib_of_fields_refused_at_the_limit_with_flat_rss(self):
        rss_before = S.m.peak_rss_kib()
        with connect(S.m.port) as s:
            started = time.monotonic()
            line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
            error = send_quietly(s, b"GET /v2/ HTTP/1.1\r\nHost: m\r\n" + line * 20 * 1024)
            a = read_to_eof(s, started, DEADLINE_S)
        self.assertEqual(a.status, 431, f"{a!r} (send: {error!r})")
        self.assertEqual(a.answers, 1)
        grew = S.m.peak_rss_kib() - rss_before
        self.assertLess(grew, RSS_SLACK_KIB, f"peak RSS grew {grew} KiB")

    def test_field_sizes_within_the_head_limit_are_served(self):
        for size in (8300, 60 * 1024):
            with self.subTest(size=size):
                r = harness.request(S.m.url, "GET", "/v2/", {"X-Big": "b" * size})
                self.assertEqual(r.status, 200, r)

    def test_over_the_limits_431(self):
        many = b"".join(b"X-F%d: v\r\n" % i for i in range(101))
        self.assert_one_answer_then_closed(b"GET /v2/ HTTP/1.1\r\nHost: m\r\n" + many + b"\r\n",
                                           (431,), "101 fields")
        self.assert_one_answer_then_closed(
            b"GET /v2/ HTTP/1.1\r\nHost: m\r\nX-Big: " + b"b" * (65 * 1024) + b"\r\n\r\n",
            (431,), "65 KiB field")


class BeforeBody(Base):
    def test_unauthenticated_bodies_are_never_read(self):
        big = 48 * 1024 * 1024
        heads = {
            "chunked": b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n",
            "length": b"POST /admin/prewarm HTTP/1.1\r\nHost: m\r\nContent-Length: %d\r\n\r\n" % big,
        }
        for what, head in heads.items():
            with self.subTest(what):
                rss_before = S.m.peak_rss_kib()
                with connect(S.m.port) as s:
                    started = time.monotonic()
                    s.sendall(head)
                    sent = [0]
                    stop = threading.Event()

                    def pump():
                        chunk = (b"100000\r\n" + b"x" * 0x100000 + b"\r\n") if what == "chunked" \
                            else b"x" * 0x100000
                        while not stop.is_set() and sent[0] < big:
                            if send_quietly(s, chunk):
                                return
                            sent[0] += len(chunk)

                    t = threading.Thread(target=pump)
                    t.start()
                    try:
                        a = read_to_eof(s, started, DEADLINE_S)
                    finally:
                        stop.set()
                        try:
                            s.shutdown(socket.SHUT_RDWR)  # unblocks the pump's send
                        except OSError:
                            pass  # the server's reset got there first
                        t.join(timeout=DEADLINE_S)
                self.assertEqual(a.status, 401, a)
                self.assertTrue(a.eof, f"the connection stayed open: {a!r}")
                self.assertEqual(a.answers, 1)
                grew = S.m.peak_rss_kib() - rss_before
                self.assertLess(grew, RSS_SLACK_KIB, f"peak RSS grew {grew} KiB reading {what}")
        self.assert_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
