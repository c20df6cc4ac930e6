"""Memory test: a 1 GiB blob through hubcache (miss, then hit) with a bounded peak RSS.

The fake upstream generates the blob on the fly (fake_upstream.GeneratedBody: a
1 MiB random block with a per-block counter, digest precomputed in one pass),
so neither side holds 1 GiB in memory. The client reads and hashes the body in
1 MiB chunks. During the miss the client stops reading for a while so a mirror
that buffers upstream bytes in RAM for a slow client shows it. The check is
the mirror's VmHWM (peak resident set) after each transfer.
Run directly:
    HUBCACHE_BIN=build/hubcache python3 tests/integration/test_memory.py
"""
import hashlib
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fake_upstream import FakeRegistry, GeneratedBody  # noqa: E402
from mirror import Mirror, require_hubcache, wait_until  # noqa: E402

BLOB_BYTES = 1 << 30
RSS_LIMIT_KIB = 64 * 1024
PAUSE_AFTER_BYTES = 16 << 20  # the client reads this much of the miss, then stops reading...
PAUSE_MAX_S = 3  # ...until the upstream has sent half the blob, or this long
CLIENT_TIMEOUT_S = 30
TRANSFER_DEADLINE_S = 60
REPO = "memory/big"

_workdir = None
_mirror = None


def setUpModule():
    global _workdir
    require_hubcache()
    _workdir = harness.cleaned_workdir("memory", unittest.addModuleCleanup)


def tearDownModule():
    if _mirror is not None:
        _mirror.stop()


def stream_blob(url, path, on_progress=None, headers=None):
    """GETs `path`, hashing the body in 1 MiB reads (harness.stream_get); raises when the
    body ends early or overruns TRANSFER_DEADLINE_S. Returns (status, headers, received,
    digest)."""
    r = harness.stream_get(url, path, headers, timeout=CLIENT_TIMEOUT_S,
                           deadline_s=TRANSFER_DEADLINE_S, on_chunk=on_progress)
    if r.error is not None:
        raise r.error
    return r.status, r.headers, r.size, r.digest


class MemoryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        global _mirror
        t0 = time.monotonic()
        cls.body = GeneratedBody(BLOB_BYTES, seed=20240601)
        sys.stderr.write(f"\n[memory] generated+hashed 1 GiB in {time.monotonic() - t0:.1f}s\n")
        cls.fake = FakeRegistry().start()
        cls.digest = cls.fake.add_blob(REPO, cls.body, "application/vnd.docker.image.rootfs.diff.tar.gzip")
        _mirror = cls.mirror = Mirror(_workdir, cls.fake.url)
        try:
            cls.mirror.start()
        except BaseException:
            cls.fake.stop()
            raise
        cls.path = f"/v2/{REPO}/blobs/{cls.digest}"
        cls.start_rss_kib = cls.mirror.peak_rss_kib()

    @classmethod
    def tearDownClass(cls):
        cls.mirror.stop()
        cls.fake.stop()

    def _check(self, status, headers, received, digest):
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-length"), str(BLOB_BYTES), headers)
        self.assertEqual(received, BLOB_BYTES, "body cut short")
        self.assertEqual(digest, self.digest, "body hashes wrong")

    def _assert_rss(self, when):
        peak = self.mirror.peak_rss_kib()
        sys.stderr.write(f"[memory] {when}: mirror VmHWM {peak} KiB (at start {self.start_rss_kib} KiB)\n")
        self.assertLess(peak, RSS_LIMIT_KIB, f"{when}: mirror peak RSS {peak} KiB >= {RSS_LIMIT_KIB} KiB")

    def test_1_miss(self):
        paused = {}

        def pause_once(received):
            if received < PAUSE_AFTER_BYTES or paused:
                return
            t = time.monotonic()
            try:
                wait_until(lambda: self.fake.bytes_sent(self.digest) >= BLOB_BYTES // 2, PAUSE_MAX_S,
                           "upstream to send half the blob while the client is paused")
            except TimeoutError:
                pass  # the mirror applies backpressure to the upstream: fine too
            paused.update(s=time.monotonic() - t, upstream=self.fake.bytes_sent(self.digest))

        # Two clients on the cold blob: one reads at full speed, one stops reading for a while.
        results = {}

        def client(key, on_progress):
            try:
                results[key] = stream_blob(self.mirror.url, self.path, on_progress)
            except Exception as e:  # reported by the main thread
                results[key] = e

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=("paused", pause_once), daemon=True),
                   threading.Thread(target=client, args=("fast", None), daemon=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=TRANSFER_DEADLINE_S + CLIENT_TIMEOUT_S)
        self.assertFalse(any(t.is_alive() for t in threads), "a client is still reading after its deadline")
        sys.stderr.write(f"[memory] miss in {time.monotonic() - t0:.1f}s (client paused {paused.get('s', 0):.1f}s, "
                         f"upstream had sent {paused.get('upstream', 0) >> 20} MiB by then)\n")
        for key in ("fast", "paused"):
            with self.subTest(client=key):
                if isinstance(results.get(key), Exception):
                    raise results[key]
                self._check(*results[key])
        self.assertEqual(len(self.fake.requests(method="GET", path_contains=self.digest, status=200)), 1,
                         "expected the upstream to serve the blob exactly once")
        blob = os.path.join(self.mirror.root, "blobs", "sha256", self.digest[7:9], self.digest[7:])
        wait_until(lambda: os.path.exists(blob), 10, f"{blob} to appear")
        self.assertEqual(os.path.getsize(blob), BLOB_BYTES)
        self._assert_rss("after the miss")

    def test_2_hit(self):
        self.fake.clear_requests()
        t0 = time.monotonic()
        result = stream_blob(self.mirror.url, self.path)
        sys.stderr.write(f"[memory] hit in {time.monotonic() - t0:.1f}s\n")
        self._check(*result)
        self.assertEqual(self.fake.requests(), [], "a cached blob went upstream")
        self._assert_rss("after the hit")

    def test_3_hit_range(self):
        start = BLOB_BYTES // 2 + 12345
        h = hashlib.sha256()
        for chunk in self.body.chunks(start, BLOB_BYTES):
            h.update(chunk)
        self.fake.clear_requests()
        status, headers, received, digest = stream_blob(self.mirror.url, self.path,
                                                        headers={"Range": f"bytes={start}-"})
        self.assertEqual(status, 206, headers)
        self.assertEqual(headers.get("content-range"), f"bytes {start}-{BLOB_BYTES - 1}/{BLOB_BYTES}")
        self.assertEqual(received, BLOB_BYTES - start)
        self.assertEqual(digest, "sha256:" + h.hexdigest(), "range body hashes wrong")
        self.assertEqual(self.fake.requests(), [], "a cached blob went upstream")
        self._assert_rss("after a range hit")


if __name__ == "__main__":
    harness.run_module(__file__, last_resort=[tearDownModule])
