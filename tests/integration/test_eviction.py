#!/usr/bin/env python3
"""A size-capped cache evicts least-recently-used blobs and never loses a blob being read.

One real upstream (docker-registry + token server) holds library/lru1..8:1, eight images of
two distinct layers (7 MiB + 3 MiB) each, about 80 MiB in all. A mirror capped at 25 MiB
(about 3.2 times less) is filled image by image with the tests' own sequential GETs (manifest
by tag, config, layers; after a miss the next request waits until that blob is committed,
accounted for (GET /admin/images: cache_bytes equals the files) and the cache is back under
the cap, so one blob is in flight at a time), with some early images read again in between.
A sampler thread sums ROOT/blobs + ROOT/manifests every few milliseconds throughout.

  LruEviction   the cache never holds more than the cap plus the one blob just committed, the
                evictor does not overshoot below the low watermark by more than a blob, every
                evicted blob was last used before every surviving one (an image read again
                survives images first fetched after it), no manifest goes while blobs remain,
                survivors pull byte-identically with skopeo without touching the upstream,
                and an evicted image pulls byte-identically again (its blobs fetched again).
  PinnedBlob    a raw socket reading a cached 7 MiB layer slowly pins it: while it reads, the
                cache fills far past the cap, the evictor removes other blobs, never that one,
                and the reader gets every byte right; once the reader is done the blob is the
                first to go.

Last-use times are compared at millisecond resolution, so consecutive requests of the tests
are spaced at least MIN_SPACING_S apart (a clock spacing, not a synchronisation).
"""
import hashlib
import os
import re
import socket
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

MiB = 1 << 20
CAP_BYTES = 25 * MiB
WATERMARK = 0.9  # hubcache's default --cache-low-watermark
IMAGES = [f"lru{i}" for i in range(1, 9)]
ADMIN_TOKEN = "eviction-test-admin-token"
# Without prefetch: the pulls fill one blob after another, so each eviction pass ends
# in a state of the cache's own (prefetch fills run beside the passes: test_prefetch.py).
MIRROR_ARGS = ("--cache-max-size", "25MiB", "--access-flush-interval", "200ms",
               "--prefetch", "false",
               "--min-free", "0%",  # no free-disk trigger: only the cap decides here
               "--admin-token", ADMIN_TOKEN)  # /admin/images tells the accounted cache size
MIN_SPACING_S = 0.004
SAMPLE_EVERY_S = 0.005
SAMPLER_MAX_S = 600
SETTLE_S = 10  # for the evictor to bring the cache under the cap after a commit
GET_TIMEOUT_S = 30
SLOW_READ_BYTES = 16 * 1024  # the pinned reader takes this much...
SLOW_READ_EVERY_S = 0.1  # ...this often until released
SLOW_RCVBUF = 32 * 1024
SLOW_READER_MAX_S = 120

_EVICTED_RE = re.compile(r"evicted entries=(\d+) bytes=(\d+) cache_bytes=(\d+)")

_up = None
_work = None
_images = {}


def setUpModule():
    global _up, _work
    _work, _up = started_upstream("eviction", unittest.addModuleCleanup)
    _images.update(fixtures.push_described(_up, _work, IMAGES))


class CacheSampler:
    """Sums ROOT/blobs + ROOT/manifests every SAMPLE_EVERY_S on its own thread."""

    def __init__(self, root):
        self.root = root
        self.max_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-sampler", daemon=True)

    def _run(self):
        deadline = time.monotonic() + SAMPLER_MAX_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.max_bytes = max(self.max_bytes, harness.cache_bytes(self.root))
            self.samples += 1
            self._stop.wait(SAMPLE_EVERY_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


class Puller:
    """Fetches images through a mirror one request at a time and remembers, per digest, the
    sequence number of the last request that used it (its expected LRU rank)."""

    def __init__(self, test, mirror):
        self.test, self.mirror = test, mirror
        self.seq = 0
        self.last_use = {}  # digest -> seq of the last request that read it
        self.sources = {}  # digest -> X-Hubcache-Cache of the last read
        self._last_end = 0.0

    def _space(self):
        wait = self._last_end + MIN_SPACING_S - time.time()
        if wait > 0:
            time.sleep(min(wait, MIN_SPACING_S))

    def get(self, path, digest, size, headers=None, blob=True):
        self._space()
        r = harness.stream_get(self.mirror.url, path, headers, timeout=GET_TIMEOUT_S,
                               deadline_s=GET_TIMEOUT_S * 2)
        self._last_end = time.time()
        self.test.assertEqual((r.status, r.size, r.digest, r.error), (200, size, digest, None),
                              f"GET {path}: {r}\n{self.mirror.log()[-3000:]}")
        self.seq += 1
        self.last_use[digest] = self.seq
        self.sources[digest] = r.headers.get("x-hubcache-cache")
        if blob and self.sources[digest] == "miss":
            # A client gets the last byte once the blob is verified, before it is committed,
            # indexed (its last-use time is the commit's) and accounted. Wait for all of it
            # and for the evictor, so that one blob is in flight at a time, the size bound
            # below is exact and the next request's time is later than this blob's.
            path = harness.cache_object_path(self.mirror.root, "blob", digest)

            def settled():
                if not os.path.exists(path):
                    return False
                files = harness.cache_bytes(self.mirror.root)
                return files <= CAP_BYTES and files == accounted_bytes(self.mirror)
            wait_until(settled, SETTLE_S, f"{digest} to be committed and accounted, and the "
                       f"cache to be under the cap")
        return r

    def image(self, name, expect=None):
        """Manifest by tag, then config and layers in manifest order. `expect`: the
        X-Hubcache-Cache every blob must carry ("hit" when re-reading a cached image)."""
        img = _images[name]
        self.get(f"/v2/{img.repo}/manifests/{img.tag}", img.digest, img.size,
                 {"Accept": harness.ACCEPT_ALL}, blob=False)
        for digest, size in img.blobs.items():  # config first, then the layers
            r = self.get(f"/v2/{img.repo}/blobs/{digest}", digest, size)
            if expect:
                self.test.assertEqual(r.headers.get("x-hubcache-cache"), expect,
                                      f"{name} blob {digest}")


def accounted_bytes(mirror):
    """The cache size the mirror accounts for (blobs + manifests it has indexed)."""
    r = harness.request(mirror.url, "GET", "/admin/images",
                        {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    if r.status != 200:
        raise AssertionError(f"GET /admin/images: {r!r}")
    return r.json()["cache_bytes"]


def blobs_present(root):
    return {d for (kind, d) in harness.cache_objects(root) if kind == "blob"}


def manifests_present(root):
    return {d for (kind, d) in harness.cache_objects(root) if kind == "manifest"}


def eviction_lines(log):
    return [tuple(int(x) for x in m.groups()) for m in _EVICTED_RE.finditer(log)]


def settle(root, what):
    wait_until(lambda: harness.cache_bytes(root) <= CAP_BYTES, SETTLE_S,
               f"the cache to come under the cap ({what})")


class LruEviction(unittest.TestCase):
    """Steps build on each other, hence the numbers."""

    @classmethod
    def setUpClass(cls):
        d = os.path.join(_work, "lru")
        os.makedirs(d)
        cls.mirror = Mirror(d, _up.url, extra_args=MIRROR_ARGS)
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()
        cls.root = cls.mirror.root
        cls.max_blob = max(s for img in _images.values() for s in img.blobs.values())
        cls.total = sum(sum(img.blobs.values()) + img.size for img in _images.values())
        cls.puller = None

    def setUp(self):
        if LruEviction.puller is None:
            LruEviction.puller = Puller(self, self.mirror)
        self.puller.test = self

    def test_1_fill_three_times_the_cap(self):
        p, root = self.puller, self.root
        self.assertGreaterEqual(self.total, 3 * CAP_BYTES, "fixtures too small for the test")
        with CacheSampler(root) as sampler:
            p.image("lru1")
            p.image("lru2")
            self.assertEqual(len(eviction_lines(self.mirror.log())), 0,
                             "evicted while under the cap")
            p.image("lru1", expect="hit")  # lru1 is now more recent than lru2
            p.image("lru3")
            settle(root, "after lru3")
            present = blobs_present(root)
            self.assertTrue(set(_images["lru1"].blobs) <= present,
                            "lru1 was read after lru2 was fetched, yet lost blobs to eviction")
            self.assertFalse(set(_images["lru2"].blobs) <= present,
                             "lru2 (least recently used) kept all its blobs over the cap")
            p.image("lru4")
            p.image("lru3", expect="hit")
            p.image("lru5")
            p.image("lru6")
            p.image("lru5", expect="hit")
            p.image("lru7")
            p.image("lru8")
            settle(root, "after lru8")
        final = harness.cache_bytes(root)
        print(f"\n[eviction] fetched {self.total} bytes through a {CAP_BYTES}-byte cap; "
              f"max sampled {sampler.max_bytes} ({sampler.samples} samples), final {final}",
              file=sys.stderr)

        # Never more than the cap plus the one blob just committed (requests were sequential).
        self.assertLessEqual(sampler.max_bytes, CAP_BYTES + self.max_blob,
                             f"cache reached {sampler.max_bytes} bytes: cap {CAP_BYTES} + "
                             f"largest blob {self.max_blob}")
        # Eviction stops at the watermark: not far below it.
        self.assertGreaterEqual(final, CAP_BYTES * WATERMARK - self.max_blob,
                                "the evictor removed far more than needed")
        lines = eviction_lines(self.mirror.log())
        self.assertTrue(lines, "no `evicted entries=` log line")
        # One blob in flight at a time: every pass ends at or below the low watermark.
        for entries, freed, cache_bytes in lines:
            self.assertLessEqual(cache_bytes, CAP_BYTES * WATERMARK,
                                 f"an eviction pass ended above the low watermark: {lines}")

        # LRU: every evicted blob was last used before every surviving blob.
        present = blobs_present(root)
        evicted = set(p.last_use) - present - {img.digest for img in _images.values()}
        self.assertTrue(evicted, "nothing was evicted")
        survivors = present & set(p.last_use)
        self.assertEqual(present, survivors, "the cache holds blobs nobody fetched")
        newest_evicted = max(evicted, key=p.last_use.get)
        oldest_survivor = min(survivors, key=p.last_use.get)
        self.assertLess(p.last_use[newest_evicted], p.last_use[oldest_survivor],
                        f"evicted {newest_evicted} (last used at request "
                        f"#{p.last_use[newest_evicted]}) while keeping {oldest_survivor} "
                        f"(last used at #{p.last_use[oldest_survivor]})")
        # Manifests go only after blobs: with blobs still cached, every manifest stays.
        self.assertEqual(manifests_present(root), {img.digest for img in _images.values()},
                         "a manifest was evicted while blobs remained")

    def _fully_cached(self):
        present = blobs_present(self.root)
        return [n for n in IMAGES if set(_images[n].blobs) <= present]

    @staticmethod
    def _direct(name):
        """A copy straight from the upstream (made before any access-log mark is taken)."""
        direct = os.path.join(_work, f"direct-{name}")
        if not os.path.isdir(direct):
            harness.skopeo_copy(_work, _up.host, f"library/{name}:1", direct)
        return direct

    def _pull_and_compare(self, name, label):
        direct = self._direct(name)
        through = os.path.join(_work, f"{label}-{name}")
        harness.skopeo_copy(_work, f"127.0.0.1:{self.mirror.port}", f"library/{name}:1", through)
        self.assertEqual(harness.compare_dirs(direct, through), [], f"{name} through the mirror")

    def test_2_survivors_pull_from_the_cache(self):
        survivors = self._fully_cached()
        self.assertTrue(survivors, "no image survived whole")
        self.assertIn("lru8", survivors, "the most recently fetched image did not survive")
        for name in survivors:
            self._direct(name)
        before = harness.cache_objects(self.root)
        _up.sync_log()
        mark = _up.mark()
        with CacheSampler(self.root) as sampler:
            for name in survivors:
                with self.subTest(image=name):
                    self._pull_and_compare(name, "survivor")
        _up.sync_log()
        fetched = _up.requests("GET", r"/v2/library/lru\d/blobs/.*", since=mark)
        self.assertEqual(fetched, [], "a surviving blob was fetched from the upstream again")
        self.assertEqual(harness.cache_objects(self.root), before,
                         "pulling cached images changed the cache")
        self.assertLessEqual(sampler.max_bytes, CAP_BYTES)

    def test_3_evicted_image_pulls_again(self):
        name = "lru2"
        img = _images[name]
        missing = set(img.blobs) - blobs_present(self.root)
        self.assertTrue(missing, f"{name} was expected to be evicted")
        self._direct(name)
        _up.sync_log()
        mark = _up.mark()
        # skopeo fetches the layers in parallel: allow one in-flight blob per layer.
        with CacheSampler(self.root) as sampler:
            self._pull_and_compare(name, "again")
            settle(self.root, f"after pulling {name} again")
        _up.sync_log()
        for digest in missing:
            self.assertEqual(_up.count_requests("GET", rf"/v2/{img.repo}/blobs/{digest}",
                                                "2xx", since=mark), 1,
                             f"evicted blob {digest} was not fetched again exactly once")
        self.assertTrue(set(img.blobs) <= blobs_present(self.root),
                        f"{name}, the most recently used image, is not cached after the pull")
        self.assertLessEqual(sampler.max_bytes, CAP_BYTES + sum(img.blobs.values()))


class SlowReader(threading.Thread):
    """A raw-socket GET that reads SLOW_READ_BYTES every SLOW_READ_EVERY_S until released,
    then the rest at full speed, hashing the body. Its receive buffer is small, so the mirror
    cannot push the whole blob into socket buffers and stays busy serving it."""

    def __init__(self, port, path):
        super().__init__(name="slow-reader", daemon=True)
        self.port, self.path = port, path
        self.release = threading.Event()
        self.started_body = threading.Event()
        self.received = 0
        self.headers = b""
        self.digest = None
        self.error = None

    def run(self):
        deadline = time.monotonic() + SLOW_READER_MAX_S
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
                s.settimeout(GET_TIMEOUT_S)
                s.connect(("127.0.0.1", self.port))
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"User-Agent: {harness.TEST_UA}\r\nConnection: close\r\n\r\n".encode())
                buf = b""
                while b"\r\n\r\n" not in buf and len(buf) < 65536:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed before the headers ended")
                    buf += chunk
                self.headers, body = buf.split(b"\r\n\r\n", 1)
                length = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.headers)[1])
                sha = hashlib.sha256(body)
                self.received = len(body)
                self.started_body.set()
                while self.received < length:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"slow reader not done after {SLOW_READER_MAX_S}s")
                    if not self.release.is_set():
                        self.release.wait(SLOW_READ_EVERY_S)
                        want = SLOW_READ_BYTES
                    else:
                        want = 1 << 20
                    chunk = s.recv(min(want, length - self.received))
                    if not chunk:
                        raise ConnectionError(f"closed after {self.received} of {length} bytes")
                    sha.update(chunk)
                    self.received += len(chunk)
                self.digest = "sha256:" + sha.hexdigest()
        except Exception as e:  # reported by the test
            self.error = e
        finally:
            self.started_body.set()


class TtlExpiry(unittest.TestCase):
    def test_content_unused_for_the_ttl_goes_and_used_content_stays(self):
        """REGISTRY_PROXY_TTL (proxy.ttl): the two images fit under the cap, so only the
        age limit removes."""
        d = os.path.join(_work, "ttl")
        os.makedirs(d)
        mirror = Mirror(d, _up.url, extra_args=MIRROR_ARGS, env={"REGISTRY_PROXY_TTL": "3s"})
        self.addCleanup(mirror.stop)
        mirror.start()
        p = Puller(self, mirror)
        old, kept = _images["lru1"], _images["lru2"]
        p.image("lru1")
        p.image("lru2")
        self.assertTrue(set(old.blobs) <= blobs_present(mirror.root))
        # lru2 is read every half second, lru1 never again: after the limit and an
        # expiry round (at most a quarter of the limit later), lru1 alone is gone.
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and set(old.blobs) & blobs_present(mirror.root):
            p.image("lru2", expect="hit")
            time.sleep(0.5)
        present = blobs_present(mirror.root)
        self.assertEqual(set(old.blobs) & present, set(), "unused blobs outlived the TTL")
        self.assertNotIn(old.digest, manifests_present(mirror.root))
        self.assertTrue(set(kept.blobs) <= present, "blobs in use were expired")
        self.assertIn(kept.digest, manifests_present(mirror.root))
        self.assertRegex(mirror.log(), r"evicted entries=\d+ bytes=\d+ cache_bytes=\d+ reason=ttl")
        # What went pulls again, from the upstream.
        p.image("lru1", expect="miss")


class PinnedBlob(unittest.TestCase):
    def test_slow_reader_pins_its_blob(self):
        d = os.path.join(_work, "pinned")
        os.makedirs(d)
        mirror = Mirror(d, _up.url, extra_args=MIRROR_ARGS)
        self.addCleanup(mirror.stop)
        mirror.start()
        p = Puller(self, mirror)
        a = _images["lru1"]
        pinned, pinned_size = a.layers[0], a.blobs[a.layers[0]]
        self.assertGreater(pinned_size, 4 * MiB + 2 * SLOW_RCVBUF,
                           "the pinned layer must not fit into socket buffers")
        p.image("lru1")
        reader = SlowReader(mirror.port, f"/v2/{a.repo}/blobs/{pinned}")
        reader.start()
        self.addCleanup(reader.release.set)
        self.assertTrue(reader.started_body.wait(GET_TIMEOUT_S), "slow reader got no headers")
        self.assertIsNone(reader.error, f"slow reader: {reader.error!r}")
        self.assertIn(b"200", reader.headers.split(b"\r\n", 1)[0])
        # Read lru1's other blobs after the pinned one, so that it is the least recently used.
        time.sleep(MIN_SPACING_S)
        for digest, size in a.blobs.items():
            if digest != pinned:
                p.get(f"/v2/{a.repo}/blobs/{digest}", digest, size)

        for name in ("lru2", "lru3", "lru4"):  # 30 MiB more: the cap is passed twice
            p.image(name)
        settle(mirror.root, "with the pinned blob")
        self.assertTrue(reader.is_alive(), "the slow reader finished before the evictions")
        present = blobs_present(mirror.root)
        self.assertIn(pinned, present, "a blob being read was evicted from under its reader")
        evicted = set(p.last_use) - present - {img.digest for img in _images.values()}
        self.assertTrue(evicted, "nothing was evicted, so the pin was not put to the test")
        self.assertTrue(eviction_lines(mirror.log()), "no `evicted entries=` log line")
        print(f"\n[eviction] pinned reader at {reader.received} of {pinned_size} bytes while "
              f"{len(evicted)} other blobs were evicted", file=sys.stderr)

        reader.release.set()
        reader.join(timeout=SLOW_READER_MAX_S)
        self.assertFalse(reader.is_alive(), "slow reader still running")
        self.assertIsNone(reader.error, f"slow reader: {reader.error!r}")
        self.assertEqual((reader.received, reader.digest), (pinned_size, pinned),
                         "the slow reader got wrong bytes")

        # Unpinned, it is the least recently used blob: the next evictions take it first. The
        # pin drops when the mirror finishes the response, a moment after the last byte left,
        # so allow a second image before calling it a failure.
        for name in ("lru5", "lru6"):
            p.image(name)
            settle(mirror.root, f"after {name}")
            if pinned not in blobs_present(mirror.root):
                break
        self.assertNotIn(pinned, blobs_present(mirror.root),
                         "the formerly pinned, least recently used blob was never evicted")


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
