#!/usr/bin/env python3
"""A thundering herd on one cold 100 MiB blob becomes one upstream GET.

20 threads, each on its own connection, GET the same uncached blob (the single layer of
library/big100:1) through a fresh mirror at the same moment. Every client must receive the
whole blob (its sha256 equals the digest) and the upstream's access log must show the blob
fetched exactly once. Afterwards the blob is in the cache and ROOT/tmp holds no leftovers.
"""
import hashlib
import http.client
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, wait_until  # noqa: E402
from upstream import Upstream  # noqa: E402

CLIENTS = 20
SOCKET_TIMEOUT_S = 60   # longest silence a client accepts from the mirror
HERD_DEADLINE_S = 150   # the whole herd, all bodies read


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
        cls.work, cleanup = harness.module_workdir("herd")
        cls.addClassCleanup(cleanup)
        cls.up = Upstream(cls.work)
        cls.addClassCleanup(cls.up.stop)
        cls.up.start()
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


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    started = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    print(f"{os.path.basename(__file__)}: {time.monotonic() - started:.1f}s", file=sys.stderr)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
