#!/usr/bin/env python3
"""A cache on a full disk still serves complete, correct bytes and keeps nothing partial.

The cache root lives on a tmpfs of FS_SIZE made by the test (mount -t tmpfs -o size=..; the
module exits 77 when it may not mount). A fake upstream (fake_upstream.FakeRegistry) serves a
generated blob of BIG_BYTES, more than twice the filesystem, and a few small blobs.

  test_1  one GET of the big blob: the fill runs out of space mid-way, the client still gets
          every byte (hashed), the mirror continues from the upstream with a Range request,
          tmp/ empties, no file for the blob remains, the space is free again, the failure is
          logged and counted, and the mirror keeps serving.
  test_2  again, with two clients and a Range request joined on one fill: all correct.
  test_3  with no temp file possible at all (a tmpfs with a single inode mounted over
          ROOT/tmp), a miss is served straight from the upstream (`X-Hubcache-Cache:
          pass-through`) and not cached; once tmp/ works again the blob is cached.
  test_4  small blobs are cached (and then hit) once there is space again.
"""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from fake_upstream import BytesBody, FakeRegistry, GeneratedBody  # noqa: E402
from mirror import Mirror, require_hubcache, wait_until  # noqa: E402

MiB = 1 << 20
FS_SIZE = "24m"
FS_BYTES = 24 * MiB
BIG_BYTES = 60 * MiB + 4321
REPO = "diskfull/app"
SMALL_BYTES = 512 * 1024
SMALL_COUNT = 6
GET_TIMEOUT_S = 30
GET_DEADLINE_S = 120
CLEANUP_S = 10  # for tmp/ to empty after a failed fill
JOIN_RATE = 64 * MiB  # bytes/s of the throttled fill in test_2: fails after ~0.35 s
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


_mounts = []  # every tmpfs mounted here, unmounted again if a run is interrupted


def mount_tmpfs(path, options):
    """Mounts a tmpfs; returns None, or the error text when mounting is not possible."""
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if p.returncode != 0:
        return p.stderr.strip() or f"mount exited {p.returncode}"
    _mounts.append(path)
    return None


def umount(path):
    """Unmounts `path` (lazily when it is still busy); a no-op when nothing is mounted."""
    if not os.path.ismount(path):
        return
    if subprocess.run(["umount", path], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=30)


def mounted_tmpfs(path, size, add_cleanup):
    """Makes the directory `path` and mounts a tmpfs of `size` (e.g. "24m") on it, unmounted
    by `add_cleanup` (a class's addClassCleanup); raises when it cannot mount. Returns path."""
    os.makedirs(path)
    err = mount_tmpfs(path, f"size={size}")
    if err:
        raise RuntimeError(f"mount tmpfs on {path}: {err}")
    add_cleanup(umount, path)
    return path


def mount_refused_reason():
    """Why this environment cannot run the module, or None."""
    if os.geteuid() != 0:
        return "not root: cannot mount a size-limited tmpfs"
    probe = tempfile.mkdtemp(prefix="hubcache-mount-probe-")
    try:
        err = mount_tmpfs(probe, "size=1m")
        return f"cannot mount a tmpfs: {err}" if err else None
    finally:
        umount(probe)
        os.rmdir(probe)


def interrupted_cleanup():
    """What the class cleanups would have done, for a run cut short by SIGTERM."""
    for path in reversed(_mounts):
        umount(path)
    work = getattr(DiskFull, "work", None)
    if work and not os.environ.get("HUBCACHE_KEEP_TMP"):
        shutil.rmtree(work, ignore_errors=True)


def range_digest(body, first, last):
    h = hashlib.sha256()
    for chunk in body.chunks(first, last + 1):
        h.update(chunk)
    return "sha256:" + h.hexdigest()


class DiskFull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_hubcache()
        cls.work = harness.cleaned_workdir("diskfull", cls.addClassCleanup)
        cls.fs = mounted_tmpfs(os.path.join(cls.work, "fs"), FS_SIZE, cls.addClassCleanup)
        cls.big = GeneratedBody(BIG_BYTES, seed=424242)
        cls.fake = FakeRegistry().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.fake.add_blob(REPO, cls.big, LAYER)
        cls.small = [BytesBody(os.urandom(SMALL_BYTES)) for _ in range(SMALL_COUNT)]
        for b in cls.small:
            cls.fake.add_blob(REPO, b, LAYER)
        cls.mirror = Mirror(cls.work, cls.fake.url, root=os.path.join(cls.fs, "cache"),
                            extra_args=("--upstream-connect-timeout", "3s"))
        cls.addClassCleanup(cls.mirror.stop)  # runs before the unmount
        cls.mirror.start()
        cls.root = cls.mirror.root
        cls.tmp = os.path.join(cls.root, "tmp")

    def tearDown(self):
        self.assertIsNone(self.mirror.proc.poll(),
                          f"the mirror exited:\n{self.mirror.log()[-3000:]}")

    def get(self, body, headers=None, expect_status=200, first=0, last=None):
        last = body.size - 1 if last is None else last
        r = harness.stream_get(self.mirror.url, f"/v2/{REPO}/blobs/{body.digest}", headers,
                               timeout=GET_TIMEOUT_S, deadline_s=GET_DEADLINE_S)
        want = body.digest if (first, last) == (0, body.size - 1) else range_digest(body, first,
                                                                                     last)
        self.assertEqual((r.status, r.size, r.digest, r.error),
                         (expect_status, last - first + 1, want, None),
                         f"GET {body.digest} {headers or ''}: {r}\n{self.mirror.log()[-3000:]}")
        return r

    def stats(self):
        return harness.request(self.mirror.url, "GET", "/stats").json()

    def assert_nothing_kept(self, body):
        wait_until(lambda: not harness.dir_entries(self.tmp), CLEANUP_S, "tmp/ to empty")
        hexd = body.digest[7:]
        kept = [os.path.join(dp, n) for dp, _, files in os.walk(self.root) for n in files
                if hexd in n]
        self.assertEqual(kept, [], "a partial or whole copy of the big blob was kept")
        def free_bytes():
            st = os.statvfs(self.fs)
            return st.f_bavail * st.f_frsize
        # The space returns once the last descriptor of the removed temp file is closed.
        try:
            wait_until(lambda: free_bytes() > FS_BYTES - 8 * MiB, CLEANUP_S,
                       "the space of the failed fill to be given back")
        except TimeoutError:
            self.fail(f"{free_bytes()} bytes free of {FS_BYTES} {CLEANUP_S}s after the failed "
                      f"fill, with tmp/ empty: a descriptor of the removed temp file is "
                      f"still open\n{self.mirror.log()[-2000:]}")
        self.assertEqual(harness.request(self.mirror.url, "GET", "/v2/").status, 200)

    def test_1_blob_larger_than_the_disk(self):
        since = time.monotonic()
        self.get(self.big)
        self.assert_nothing_kept(self.big)
        self.assertIn("cache write failed", self.mirror.log(), "the write failure was not logged")
        self.assertGreaterEqual(self.stats()["cache"]["write_errors"], 1, "not counted")
        gets = self.fake.requests(method="GET", path_contains=self.big.digest, since=since)
        self.assertTrue(any("range" in g.headers for g in gets),
                        f"no Range request to continue from the upstream: "
                        f"{[(g.path, g.headers.get('range'), g.status) for g in gets]}")

    def test_2_joined_clients_and_a_range(self):
        first, last = 40_000_000, 50_000_000
        results = {}
        # The fill's upstream GET is throttled, so all three clients join it before it fails.
        self.fake.set_fault(self.big.digest, "slow", times=1, rate=JOIN_RATE)
        since = time.monotonic()

        def client(key, headers, f, l, status):
            try:
                results[key] = self.get(self.big, headers, status, f, l)
            except BaseException as e:  # re-raised below
                results[key] = e

        threads = [threading.Thread(target=client, args=("a", None, 0, None, 200), daemon=True),
                   threading.Thread(target=client, args=("b", None, 0, None, 200), daemon=True),
                   threading.Thread(target=client, daemon=True, args=(
                       "range", {"Range": f"bytes={first}-{last}"}, first, last, 206))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=GET_DEADLINE_S + GET_TIMEOUT_S)
        self.assertFalse(any(t.is_alive() for t in threads), "a client is still reading")
        for key in ("a", "b", "range"):
            with self.subTest(client=key):
                if isinstance(results.get(key), BaseException):
                    raise results[key]
        self.assertEqual(results["range"].headers.get("content-range"),
                         f"bytes {first}-{last}/{BIG_BYTES}")
        gets = self.fake.requests(method="GET", path_contains=self.big.digest, since=since)
        whole = [g for g in gets if "range" not in g.headers]
        self.assertEqual(len(whole), 1, "the clients did not share one fill: "
                         f"{[(g.headers.get('range'), g.status) for g in gets]}")
        self.assert_nothing_kept(self.big)

    def test_3_pass_through_when_no_temp_file_can_be_made(self):
        body = self.small[0]
        err = mount_tmpfs(self.tmp, "size=1m,nr_inodes=1")
        self.assertIsNone(err, f"mount over {self.tmp}: {err}")
        self.addCleanup(umount, self.tmp)
        r = self.get(body)
        self.assertEqual(r.headers.get("x-hubcache-cache"), "pass-through", r)
        self.assertFalse(os.path.exists(harness.cache_object_path(self.root, "blob", body.digest)))
        umount(self.tmp)
        self.assertFalse(os.path.ismount(self.tmp))
        r = self.get(body)
        self.assertEqual(r.headers.get("x-hubcache-cache"), "miss", r)
        path = harness.cache_object_path(self.root, "blob", body.digest)
        wait_until(lambda: os.path.exists(path), 10, "the blob to be cached")
        self.assertEqual(harness.file_sha256(path), body.digest)
        self.assertEqual(self.get(body).headers.get("x-hubcache-cache"), "hit")

    def test_4_small_blobs_cached_when_space_is_back(self):
        for body in self.small[1:]:
            self.get(body)
        for body in self.small[1:]:
            path = harness.cache_object_path(self.root, "blob", body.digest)
            wait_until(lambda: os.path.exists(path), 10, f"{body.digest} to be cached")
            self.assertEqual(harness.file_sha256(path), body.digest)
            self.assertEqual(self.get(body).headers.get("x-hubcache-cache"), "hit")
        self.assertEqual(harness.dir_entries(self.tmp), [])


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # the probe unmounts on SIGTERM
    reason = mount_refused_reason()
    if reason:
        print(f"SKIP: {reason}", file=sys.stderr)
        sys.exit(77)
    harness.run_module(__file__, last_resort=[interrupted_cleanup])
