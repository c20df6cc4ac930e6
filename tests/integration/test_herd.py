#!/usr/bin/env python3
"""A thundering herd on one cold object becomes one upstream request.

Blobs: 20 threads, each on its own connection, GET the same uncached blob (the single layer
of library/big100:1) through a fresh mirror at the same moment. Every client must receive the
whole blob (its sha256 equals the digest) and the upstream's access log must show the blob
fetched exactly once. Afterwards the blob is in the cache and ROOT/tmp holds no leftovers.

Manifests (by tag, by digest) and tags/list: 16 threads GET the same cold object through a
fresh mirror whose upstream is the real registry behind GateProxy, which holds the first
upstream request for it until every client has asked, so all of them arrive while the first
is in flight. The registry's access log must show one GET answered 2xx, and every client the
same bytes.
"""
import hashlib
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, wait_until  # noqa: E402
from upstream import started_upstream  # noqa: E402

CLIENTS = 20
SOCKET_TIMEOUT_S = 60   # longest silence a client accepts from the mirror
HERD_DEADLINE_S = 150   # the whole herd, all bodies read
SMALL_CLIENTS = 16      # the manifest and tags/list herds
# After every client of a small herd has sent its request, how long the held upstream request
# waits for the mirror to take them all in (it lets go at once when the herd reaches the
# upstream itself, which is the failure).
SETTLE_S = 1.5
GATE_MAX_S = 60         # a held request goes on after this, whatever the test does


class GateProxy:
    """A counting, gating reverse proxy on 127.0.0.1 in front of the real registry.

    Requests whose path matches `hold(regex)` wait at the gate until `release()` (or
    GATE_MAX_S); everything else passes straight through. Bodies are buffered whole, so it
    is for small objects only. `held` counts the requests that reached the gate.
    """

    def __init__(self, upstream_url):
        self.target = upstream_url.split("://", 1)[1]
        self._lock = threading.Condition()
        self._pattern = None
        self._open = threading.Event()
        self.held = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                proxy._forward(self)

            do_HEAD = do_GET

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self):
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def hold(self, path_regex):
        with self._lock:
            self._pattern = re.compile(path_regex)
            self._open = threading.Event()
            self.held = 0

    def release(self):
        with self._lock:
            self._pattern = None
            self._open.set()

    def wait_held(self, n, timeout_s):
        with self._lock:
            return self._lock.wait_for(lambda: self.held >= n, timeout=timeout_s)

    def _forward(self, h):
        with self._lock:
            gate = self._open if self._pattern and self._pattern.fullmatch(h.path) else None
            if gate is not None:
                self.held += 1
                self._lock.notify_all()
        if gate is not None:
            gate.wait(timeout=GATE_MAX_S)
        conn = http.client.HTTPConnection(self.target, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(h.command, h.path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            h.send_response(r.status, r.reason)
            for k, v in r.getheaders():
                if k.lower() not in ("connection", "transfer-encoding", "keep-alive", "content-length"):
                    h.send_header(k, v)
            h.send_header("Content-Length", r.getheader("Content-Length", str(len(body)))
                          if h.command == "HEAD" else str(len(body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
        finally:
            conn.close()


def fetch(port, path, barrier, result):
    """One herd member: its own connection, the body streamed through sha256."""
    conn = None
    try:
        barrier.wait()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCKET_TIMEOUT_S)
        conn.request("GET", path, headers={"User-Agent": harness.TEST_UA})
        r = conn.getresponse()
        result["status"] = r.status
        result["content_length"] = r.getheader("Content-Length")
        h, n = hashlib.sha256(), 0
        for _ in range(1 << 20):  # bounded: far more 64 KiB reads than 100 MiB needs
            chunk = r.read(1 << 16)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        result["bytes"] = n
        result["digest"] = "sha256:" + h.hexdigest()
    except Exception as e:  # reported per client by the test
        result["error"] = repr(e)
    finally:
        if conn is not None:
            conn.close()


class Herd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("herd", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, "big100")
        img = fixtures.describe(cls.up, "big100")
        (cls.digest,) = img.layers
        cls.size = img.blobs[cls.digest]
        cls.path = f"/v2/library/big100/blobs/{cls.digest}"
        cls.path_rx = rf"/v2/library/big100/blobs/{cls.digest}(\?.*)?"
        os.makedirs(os.path.join(cls.work, "mirror"))
        cls.mirror = Mirror(os.path.join(cls.work, "mirror"), cls.up.url)
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()

    def test_concurrent_cold_gets_make_one_upstream_get(self):
        self.up.sync_log()
        mark = self.up.mark()
        barrier = threading.Barrier(CLIENTS, timeout=30)
        results = [{} for _ in range(CLIENTS)]
        threads = [threading.Thread(target=fetch, args=(self.mirror.port, self.path, barrier, r),
                                    name=f"herd-{i}", daemon=True)
                   for i, r in enumerate(results)]
        started = time.monotonic()
        for t in threads:
            t.start()
        deadline = started + HERD_DEADLINE_S
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        wall = time.monotonic() - started
        stuck = [t.name for t in threads if t.is_alive()]
        self.assertEqual(stuck, [], f"clients still running after {HERD_DEADLINE_S}s")
        print(f"herd: {CLIENTS} x {self.size} bytes in {wall:.1f}s", file=sys.stderr)

        for i, r in enumerate(results):
            with self.subTest(client=i):
                self.assertNotIn("error", r, f"client {i}: {r}\n{self.mirror.log()[-2000:]}")
                self.assertEqual(r.get("status"), 200, r)
                self.assertEqual(r.get("content_length"), str(self.size), r)
                self.assertEqual(r.get("bytes"), self.size, r)
                self.assertEqual(r.get("digest"), self.digest, r)

        self.up.sync_log()
        gets_ok = self.up.requests("GET", self.path_rx, "2xx", since=mark)
        gets_all = self.up.requests("GET", self.path_rx, since=mark)
        self.assertEqual(len(gets_ok), 1,
                         f"upstream GETs that returned the blob: {len(gets_ok)}, "
                         f"e.g. {gets_ok[:2]}")
        # One more is the most a first-time auth dance (401, token, retry) can explain.
        self.assertLessEqual(len(gets_all), 2, f"all upstream GETs of the blob: {gets_all}")

        hexd = self.digest.split(":", 1)[1]
        cached = os.path.join(self.mirror.root, "blobs", "sha256", hexd[:2], hexd)
        tmp = os.path.join(self.mirror.root, "tmp")
        wait_until(lambda: os.path.exists(cached), 20, f"{cached} to exist")
        self.assertEqual(harness.file_sha256(cached), self.digest)
        wait_until(lambda: not os.path.isdir(tmp) or not os.listdir(tmp), 20,
                   f"{tmp} to be empty after the fill")

        # A late client is served from the cache: no new upstream request for the blob.
        before = self.up.count_requests(None, self.path_rx, since=mark)
        late = {}
        fetch(self.mirror.port, self.path, threading.Barrier(1), late)
        self.assertEqual((late.get("status"), late.get("digest")), (200, self.digest), late)
        self.up.sync_log()
        self.assertEqual(self.up.count_requests(None, self.path_rx, since=mark), before,
                         "the late GET went upstream")


class SmallHerd(unittest.TestCase):
    """Manifests by tag and by digest, and tags/list: one upstream GET per cold herd."""

    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("herd-small", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, "multi", tags=("1", "2"))
        cls.multi = fixtures.describe(cls.up, "multi")
        cls.proxy = GateProxy(cls.up.url)
        cls.addClassCleanup(cls.proxy.stop)
        cls.mirrors = 0

    def new_mirror(self):
        type(self).mirrors += 1
        d = os.path.join(self.work, f"mirror-{self.mirrors}")
        os.makedirs(d)
        m = Mirror(d, self.proxy.url)
        self.addCleanup(m.stop)
        return m.start()

    def herd(self, path, want_body):
        """SMALL_CLIENTS cold GETs of `path` at once; the upstream GETs of it that answered."""
        m = self.new_mirror()
        self.up.sync_log()
        mark = self.up.mark()
        path_rx = re.escape(path) + r"(\?.*)?"
        barrier = threading.Barrier(SMALL_CLIENTS, timeout=30)
        sent = threading.Semaphore(0)
        results = [{} for _ in range(SMALL_CLIENTS)]

        def client(result):
            conn = None
            try:
                barrier.wait()
                conn = http.client.HTTPConnection("127.0.0.1", m.port, timeout=SOCKET_TIMEOUT_S)
                conn.request("GET", path, headers={"User-Agent": harness.TEST_UA,
                                                   "Accept": harness.ACCEPT_ALL})
                sent.release()
                r = conn.getresponse()
                result.update(status=r.status, digest=r.getheader("Docker-Content-Digest"),
                              body=r.read())
            except Exception as e:  # reported per client by the test
                result["error"] = repr(e)
                sent.release()
            finally:
                if conn is not None:
                    conn.close()

        threads = [threading.Thread(target=client, args=(r,), name=f"small-herd-{i}", daemon=True)
                   for i, r in enumerate(results)]
        self.addCleanup(lambda: [t.join(timeout=SOCKET_TIMEOUT_S) for t in threads])
        self.proxy.hold(path_rx)
        self.addCleanup(self.proxy.release)  # runs first: no client waits on the gate
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for _ in threads:
            self.assertTrue(sent.acquire(timeout=max(0.0, deadline - time.monotonic())),
                            "a client never sent its request")
        self.assertTrue(self.proxy.wait_held(1, 60), "the mirror never asked the upstream")
        self.proxy.wait_held(SMALL_CLIENTS, SETTLE_S)
        self.proxy.release()
        for t in threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        self.assertEqual([t.name for t in threads if t.is_alive()], [], "clients still waiting")

        for i, r in enumerate(results):
            with self.subTest(client=i):
                self.assertNotIn("error", r, f"client {i}: {r}\n{m.log()[-2000:]}")
                self.assertEqual(r.get("status"), 200, r)
        bodies = {r.get("body") for r in results}
        self.assertEqual(len(bodies), 1, "the clients got different bodies")
        if want_body is not None:
            self.assertEqual(bodies, {want_body})
        self.assertEqual(len({r.get("digest") for r in results}), 1, "different digests")

        self.up.sync_log()
        gets_ok = self.up.requests("GET", path_rx, "2xx", since=mark)
        gets_all = self.up.requests("GET", path_rx, since=mark)
        self.assertEqual(len(gets_ok), 1, f"{len(gets_ok)} upstream GETs of {path} answered: "
                                          f"{gets_ok[:3]}")
        # One more is the most a first-time auth dance (401, token, retry) can explain.
        self.assertLessEqual(len(gets_all), 2, f"all upstream GETs of {path}: {gets_all}")
        return results

    def test_manifest_by_tag(self):
        results = self.herd("/v2/library/multi/manifests/1", self.multi.raw)
        self.assertEqual(results[0]["digest"], self.multi.digest)

    def test_manifest_by_digest(self):
        child = self.multi.children[0][1]
        self.herd(f"/v2/library/multi/manifests/{child}", self.multi.manifests[child][1])

    def test_tags_list(self):
        results = self.herd("/v2/library/multi/tags/list", None)
        self.assertEqual(json.loads(results[0]["body"]), {"name": "library/multi", "tags": ["1", "2"]})


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
