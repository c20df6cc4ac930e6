"""hubcache on S3 (issue 14): the local disk as L1 in front of a real bucket (L2).

Imported by test_s3.py, which starts one Ceph S3 gateway (radosgw, checks SigV4
signatures) for the module and hands it over with `setup(ceph)`; the bucket is read
and written directly with the gateway's own signed client (ceph_rgw.CephRgw.request).

  MirrorOnS3      one real upstream (docker-registry + token server) holding
                  library/multi:1 (OCI index) and library/docker2:1 (schema2); a hubcache
                  with REGISTRY_STORAGE=s3 on the bucket:
    1 cold pull through it is byte-identical to a direct one, each blob fetched from
      the upstream once, and every blob and manifest lands in the bucket (the /stats
      copies count, and a listing of the bucket);
    2 a second hubcache on the same bucket with an EMPTY L1 pulls both images again
      byte-identical with ZERO upstream requests (manifests, tags, blobs all from L2),
      and its L1 fills from L2 (the files are there afterwards);
    3 an object in the bucket with the wrong bytes: a fresh L1's first GET of that blob
      fails before its last byte (never a complete wrong body), the object is removed,
      the retry is fetched from the upstream and right, and the bucket holds the right
      bytes again;
    4 the bucket unreachable at run time (the mirror reaches it through a TCP relay the
      test cuts): L1 hits still served, a blob only the upstream has is served from it,
      /readyz stays 200 with s3.available false and the error, /metrics counts S3 errors;
      the relay restored, /readyz reports the bucket available again;
    5 REGISTRY_STORAGE_REDIRECT_DISABLE=false: an L1 miss the bucket has is a 307 to a
      presigned URL a client without credentials can GET (and only for that key);
    6 multipart copies a crash left (older than twice the fill timeout) are aborted at
      start, younger ones left alone;
    7 HUBCACHE_L2_MAX_SIZE: a node started on a bucket whose cache/ holds more trims it,
      oldest written first, to the low watermark; hosted/ objects and tag records are
      untouched; the trimmed images pull again byte-identical (from the upstream);
    8 the admin API's removal of an image takes its manifest, its blobs and its tag
      records from the bucket too (a fresh L1 then fetches them from the upstream, once
      each), and of a blob this node never held, from the bucket alone.
  StartChecks     a wrong secret key, an unknown bucket, an unreachable endpoint: `hubcache
                  serve` exits non-zero within seconds with ONE line naming the problem.
"""
import os
import re
import socket
import subprocess
import threading
import time
import unittest

import fixtures
import harness
from mirror import Mirror, hubcache_bin, clean_env, free_port, wait_until
from upstream import started_upstream

CEPH = None  # set by setup(): the module's running gateway
IMAGES = ("multi", "docker2")
BLOB_GET = r"/v2/library/[a-z0-9]+/blobs/sha256:[0-9a-f]{64}"


def setup(ceph):
    global CEPH
    CEPH = ceph


def s3_env(endpoint=None, secret=None, bucket=None, root="/mirror-tests"):
    return CEPH.storage_env(root, secret=secret, endpoint=endpoint, bucket=bucket)


def s3_get(key):
    """(status, body) of the object, read with the test's own signed client."""
    r = CEPH.request("GET", f"/{CEPH.bucket}/{key}")
    return r.status, r.body


def s3_put(key, body):
    return CEPH.request("PUT", f"/{CEPH.bucket}/{key}", body=body).status


def bucket_objects(prefix):
    """{key: (size, LastModified text)} of every object under prefix (all pages)."""
    out, token = {}, None
    for _ in range(100):
        query = {"list-type": "2", "prefix": prefix}
        if token:
            query["continuation-token"] = token
        r = CEPH.request("GET", f"/{CEPH.bucket}", query)
        if r.status != 200:
            raise RuntimeError(f"listing {prefix}: {r!r}")
        body = r.body.decode()
        for c in re.findall(r"<Contents>(.*?)</Contents>", body, re.S):
            key = re.search(r"<Key>([^<]+)</Key>", c).group(1)
            out[key] = (int(re.search(r"<Size>(\d+)</Size>", c).group(1)),
                        re.search(r"<LastModified>([^<]+)</LastModified>", c).group(1))
        m = re.search(r"<NextContinuationToken>([^<]+)</NextContinuationToken>", body)
        if not m:
            return out
        token = m.group(1)
    raise RuntimeError("more than 100 pages")


def bucket_keys(prefix):
    """Every key under prefix, in key order."""
    return list(bucket_objects(prefix))


def stats(mirror):
    return harness.request(mirror.url, "GET", "/stats", timeout=10).json()


def wait_in_bucket(mirror, blobs, what="every blob copied into the bucket"):
    """Waits until the mirror copied `blobs` blobs into the bucket and wrote every manifest
    and tag record it queued (those go behind the answers)."""
    def done():
        s3 = stats(mirror)["s3"]
        return s3 if s3["copies"] >= blobs and s3["writes_pending"] == 0 else None
    return wait_until(done, 60, what)


class Relay:
    """A TCP relay 127.0.0.1:port -> target that the test can cut and restore, or slow
    down: with `rate_bytes_s` set, each connection carries at most that many bytes per
    second each way (read again for every 64 KiB, so it applies at once)."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.up = True
        self.rate_bytes_s = None
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", self.port))
        self._sock.listen(64)
        self._conns = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                rate = self.rate_bytes_s
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:  # its pump ended it already
                pass
            c.close()

    def restore(self):
        self.up = True

    def close(self):
        self._stop = True
        self.cut()
        self._sock.close()


def skopeo_copy_all(workdir, host, image, dest):
    """library/IMAGE:1, every platform, into dir:DEST (harness.skopeo_copy, 120 s bound)."""
    harness.skopeo_copy(workdir, host, f"library/{image}:1", dest, timeout=120)


class MirrorOnS3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("s3-mirror", cls.addClassCleanup)
        cls.images = fixtures.push_described(cls.up, cls.work, IMAGES)
        for name in IMAGES:
            skopeo_copy_all(cls.work, cls.up.host, name, cls.out("direct", name))
        cls.relay = Relay(CEPH.port)
        cls.addClassCleanup(cls.relay.close)

    @classmethod
    def out(cls, phase, label):
        return harness.copy_dest(cls.work, phase, label)

    def start_mirror(self, name, endpoint=None):
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, self.up.url, extra_args=("--tag-freshness", "1h"), env=s3_env(endpoint))
        self.addCleanup(m.stop)
        m.start()
        return m

    def pull_all(self, mirror, phase):
        for name in IMAGES:
            dest = self.out(phase, name)
            try:
                skopeo_copy_all(self.work, f"127.0.0.1:{mirror.port}", name, dest)
            except harness.SkopeoError as e:
                self.fail(f"{phase} pull of {name} failed: {e}\n{mirror.log()[-3000:]}")
            self.assertEqual(harness.compare_dirs(self.out("direct", name), dest), [],
                             f"{phase} pull of {name} differs from the direct pull")

    def all_blobs(self):
        blobs = {}
        for img in self.images.values():
            blobs.update(img.blobs)
        return blobs

    def all_manifests(self):
        out = set()
        for img in self.images.values():
            out.update(img.manifests)
        return out

    def test_1_cold_pull_lands_in_the_bucket(self):
        self.up.sync_log()
        mark = self.up.mark()
        m = self.start_mirror("cold")
        self.pull_all(m, "cold")
        self.up.sync_log()
        for digest in self.all_blobs():
            n = self.up.count_requests("GET", rf"/v2/library/[a-z0-9]+/blobs/{digest}",
                                       status=200, since=mark)
            self.assertEqual(n, 1, f"{digest} fetched from the upstream {n} times")
        blobs = self.all_blobs()
        wait_in_bucket(m, len(blobs))
        keys = set(bucket_keys("mirror-tests/cache/"))
        for digest in blobs:
            hexd = digest.split(":")[1]
            self.assertIn(f"mirror-tests/cache/blobs/sha256/{hexd[:2]}/{hexd}", keys)
        for digest in self.all_manifests():
            hexd = digest.split(":")[1]
            self.assertIn(f"mirror-tests/cache/manifests/sha256/{hexd[:2]}/{hexd}", keys)
        s = stats(m)["s3"]
        self.assertEqual(s["copy_failures"], 0, s)
        self.assertGreater(s["bytes_sent"], sum(blobs.values()) - 1, s)
        type(self).cold_done = True

    def test_2_empty_l1_pulls_from_the_bucket_only(self):
        self.assertTrue(getattr(type(self), "cold_done", False), "the cold pull did not complete")
        self.up.sync_log()
        mark = self.up.mark()
        m = self.start_mirror("fresh-l1")
        self.pull_all(m, "fresh-l1")
        self.up.sync_log()
        upstream_requests = self.up.requests(path_regex=r"/v2/.*", since=mark)
        self.assertEqual(upstream_requests, [],
                         "a pull through an empty L1 on a filled bucket asked the upstream")
        full = stats(m)
        s = full["s3"]
        self.assertGreaterEqual(s["blob_hits"], len(self.all_blobs()), s)
        # Served from the cache's second tier: hits, not misses, in the figures.
        blob = full["requests"]["blob"]
        self.assertEqual(blob["misses"], 0, blob)
        self.assertGreaterEqual(blob["hits"], len(self.all_blobs()), blob)
        # L1 filled from L2: the blobs are local files now (each committed just
        # after its last byte went out).
        for digest in self.all_blobs():
            path = harness.cache_object_path(m.root, "blob", digest)
            wait_until(lambda: os.path.exists(path), 10, f"{digest} in L1 after a pull from L2")

    def test_3_corrupt_object_is_never_served(self):
        self.assertTrue(getattr(type(self), "cold_done", False), "the cold pull did not complete")
        img = self.images["docker2"]
        digest = img.layers[0]
        hexd = digest.split(":")[1]
        key = f"mirror-tests/cache/blobs/sha256/{hexd[:2]}/{hexd}"
        size = img.blobs[digest]
        self.assertEqual(s3_put(key, b"\0" * size), 200)
        m = self.start_mirror("corrupt")
        path = f"/v2/library/docker2/blobs/{digest}"
        first = harness.stream_get(m.url, path, timeout=30)
        self.assertFalse(first.complete and first.status == 200,
                         f"a blob with wrong bytes in the bucket was answered whole: {first!r}")
        second = harness.stream_get(m.url, path, timeout=30)
        self.assertEqual(second.status, 200, second)
        self.assertTrue(second.complete, second)
        self.assertEqual(second.digest, digest)
        def right_again():
            status, body = s3_get(key)
            return status == 200 and "sha256:" + harness.sha256_hex(body) == digest

        wait_until(right_again, 30, "the bucket to hold the right bytes again")
        self.assertGreaterEqual(stats(m)["s3"]["corrupt_objects"], 1)

    def test_4_bucket_unreachable_degrades(self):
        self.assertTrue(getattr(type(self), "cold_done", False), "the cold pull did not complete")
        m = self.start_mirror("relay", endpoint=f"http://127.0.0.1:{self.relay.port}")
        # Warm L1 with docker2 while the bucket is there.
        skopeo_copy_all(self.work, f"127.0.0.1:{m.port}", "docker2", self.out("relay", "warm"))
        self.relay.cut()
        try:
            skopeo_copy_all(self.work, f"127.0.0.1:{m.port}", "docker2",
                            self.out("relay", "l1-hit"))
            self.assertEqual(harness.compare_dirs(self.out("direct", "docker2"),
                                                  self.out("relay", "l1-hit")), [])
            # multi: not in this L1; the bucket has it but is unreachable: from the upstream.
            skopeo_copy_all(self.work, f"127.0.0.1:{m.port}", "multi",
                            self.out("relay", "upstream"))
            self.assertEqual(harness.compare_dirs(self.out("direct", "multi"),
                                                  self.out("relay", "upstream")), [])
            r = harness.request(m.url, "GET", "/readyz", timeout=15)
            self.assertEqual(r.status, 200, r.body[:500])
            ready = r.json()
            self.assertFalse(ready["s3"]["available"], ready)
            self.assertTrue(ready["s3"]["detail"], ready)
            metrics = harness.request(m.url, "GET", "/metrics", timeout=10).body.decode()
            errors = [l for l in metrics.splitlines() if l.startswith("hubcache_s3_errors_total")]
            self.assertTrue(errors and float(errors[0].split()[-1]) >= 1, errors)
        finally:
            self.relay.restore()

        def back():
            r = harness.request(m.url, "GET", "/readyz", timeout=15)
            return r.status == 200 and r.json()["s3"]["available"]

        wait_until(back, 30, "/readyz to report the bucket available again")


    def test_5_redirect_to_the_bucket(self):
        """REGISTRY_STORAGE_REDIRECT_DISABLE=false: an L1 miss the bucket has is a 307 to a
        presigned URL that a client without credentials can GET; a HEAD still answers the
        size; a blob the bucket lacks is served as before."""
        self.assertTrue(getattr(type(self), "cold_done", False), "the cold pull did not complete")
        d = os.path.join(self.work, "redirect")
        os.makedirs(d, exist_ok=True)
        env = s3_env()
        env["REGISTRY_STORAGE_REDIRECT_DISABLE"] = "false"
        m = Mirror(d, self.up.url, extra_args=("--tag-freshness", "1h"), env=env)
        self.addCleanup(m.stop)
        m.start()
        img = self.images["multi"]
        digest = img.layers[0]
        path = f"/v2/library/multi/blobs/{digest}"
        head = harness.request(m.url, "HEAD", path, timeout=30)
        self.assertEqual(head.status, 200, head)
        self.assertEqual(int(head.header("Content-Length")), img.blobs[digest])
        r = harness.request(m.url, "GET", path, timeout=30)
        self.assertEqual(r.status, 307, r)
        location = r.header("Location")
        self.assertTrue(location.startswith(CEPH.endpoint + "/"), location)
        self.assertIn("X-Amz-Signature=", location)
        fetched = subprocess.run(["curl", "-sS", "--fail", location], capture_output=True,
                                 timeout=60)
        self.assertEqual(fetched.returncode, 0, fetched.stderr)
        self.assertEqual("sha256:" + harness.sha256_hex(fetched.stdout), digest)
        self.assertGreaterEqual(stats(m)["s3"]["redirects"], 1)
        # Not a URL for any other key: tampering with the key is refused by the store.
        other = location.replace(digest.split(":")[1], img.layers[1].split(":")[1])
        refused = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", other],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(refused.stdout, "403", refused)

    def test_6_abandoned_copies_are_aborted(self):
        """A multipart upload under cache/ older than twice the fill timeout (what a crash
        mid-copy leaves, invisible but stored) is aborted by the next start; a younger one
        is left alone."""
        key_old = "mirror-tests/cache/blobs/sha256/00/" + "0" * 64
        key_new = "mirror-tests/cache/blobs/sha256/11/" + "1" * 64

        def create(key):
            r = CEPH.request("POST", f"/{CEPH.bucket}/{key}", {"uploads": ""})
            self.assertEqual(r.status, 200, r)
            return re.search(r"<UploadId>([^<]+)</UploadId>", r.body.decode()).group(1)

        def pending():
            r = CEPH.request("GET", f"/{CEPH.bucket}", {"uploads": "", "prefix": "mirror-tests/"})
            self.assertEqual(r.status, 200, r)
            return re.findall(r"<UploadId>([^<]+)</UploadId>", r.body.decode())

        old = create(key_old)
        time.sleep(2.5)  # the upload's age is the point: no condition to wait on
        new = create(key_new)
        d = os.path.join(self.work, "sweep")
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, self.up.url, extra_args=("--fill-timeout", "1s"), env=s3_env())
        self.addCleanup(m.stop)
        m.start()
        wait_until(lambda: old not in pending(), 20, "the abandoned upload to be aborted")
        self.assertIn(new, pending())
        # The gateway forgets the upload before the sweep counts the abort it answered.
        wait_until(lambda: stats(m)["s3"]["stale_copies_aborted"] >= 1, 10,
                   "/stats to count the aborted upload")
        CEPH.request("DELETE", f"/{CEPH.bucket}/{key_new}", {"uploadId": new})


    def test_7_cap_trims_the_oldest_cached_objects_only(self):
        root = "/cap-tests"
        cap = 4 * 1024 * 1024
        d = os.path.join(self.work, "cap-fill")
        os.makedirs(d)
        filler = Mirror(d, self.up.url, env=s3_env(root=root))
        filler.start()
        try:
            self.pull_all(filler, "cap-fill")
            want = len(self.all_blobs())
            wait_in_bucket(filler, want)
        finally:
            filler.stop()
        # Pushed content (the only copy) and tag records share the root: never trimmed.
        hosted_key = "cap-tests/hosted/blobs/sha256/ab/" + "ab" * 32
        hosted_body = os.urandom(3 * 1024 * 1024)
        self.assertEqual(s3_put(hosted_key, hosted_body), 200)
        tags_before = bucket_keys("cap-tests/cache/tags/")
        self.assertTrue(tags_before)
        cached = {}
        for kind in ("blobs", "manifests"):
            cached.update(bucket_objects(f"cap-tests/cache/{kind}/"))
        total = sum(size for size, _ in cached.values())
        self.assertGreater(total, cap, "the images must not fit under the cap")

        d = os.path.join(self.work, "cap-trim")
        os.makedirs(d)
        env = dict(s3_env(root=root), HUBCACHE_L2_MAX_SIZE="4MiB", HUBCACHE_L2_TRIM_INTERVAL="1h")
        m = Mirror(d, self.up.url, env=env)
        self.addCleanup(m.stop)
        m.start()  # the first check runs at start
        s3 = wait_until(lambda: (lambda s: s if s["trimmed_objects"] else None)(stats(m)["s3"]),
                        30, "the bucket to be trimmed")
        after = {}
        for kind in ("blobs", "manifests"):
            after.update(bucket_objects(f"cap-tests/cache/{kind}/"))
        held = sum(size for size, _ in after.values())
        self.assertLessEqual(held, cap * 0.9)
        self.assertEqual(s3["max_bytes"], cap)
        self.assertEqual(s3["cache_bytes"], held)
        removed = set(cached) - set(after)
        self.assertEqual(len(removed), s3["trimmed_objects"])
        self.assertEqual(sum(cached[k][0] for k in removed), s3["trimmed_bytes"])
        # Oldest written first: nothing kept is older than anything removed (ISO 8601
        # times of one clock compare as text).
        self.assertLessEqual(max(cached[k][1] for k in removed),
                             min(cached[k][1] for k in after), (removed, after))
        self.assertEqual(s3_get(hosted_key), (200, hosted_body))
        self.assertEqual(bucket_keys("cap-tests/cache/tags/"), tags_before)
        # What was trimmed is fetched again: both images still pull byte-identical.
        self.pull_all(m, "cap-after")


    def test_8_admin_removal_reaches_the_bucket(self):
        token = "s3-admin-token-0123456789"
        root = "/rm-tests"

        def node(name):
            d = os.path.join(self.work, name)
            os.makedirs(d)
            m = Mirror(d, self.up.url, extra_args=("--admin-token", token), env=s3_env(root=root))
            self.addCleanup(m.stop)
            m.start()
            return m

        def admin_delete(m, path):
            return harness.request(m.url, "DELETE", path, {"Authorization": f"Bearer {token}"})

        a = node("rm-a")
        self.pull_all(a, "rm-a")
        wait_in_bucket(a, len(self.all_blobs()))
        d2 = self.images["docker2"]
        blob_key = lambda d: "rm-tests/cache/blobs/sha256/" + d[7:9] + "/" + d[7:]  # noqa: E731
        man_key = lambda d: "rm-tests/cache/manifests/sha256/" + d[7:9] + "/" + d[7:]  # noqa: E731
        tags = "rm-tests/cache/tags/library/docker2/_tags/1/"
        self.assertTrue(bucket_keys(tags))
        for digest in d2.blobs:
            self.assertEqual(s3_get(blob_key(digest))[0], 200)

        r = admin_delete(a, "/admin/images/library/docker2:1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["blobs_removed"], len(d2.blobs), r.json())
        for digest in d2.blobs:
            self.assertEqual(s3_get(blob_key(digest))[0], 404, digest)
        for digest in d2.manifests:
            self.assertEqual(s3_get(man_key(digest))[0], 404, digest)
        self.assertEqual(bucket_keys(tags), [])

        # A blob node b never held: removed from the bucket alone.
        b = node("rm-b")
        multi_blob = next(iter(self.images["multi"].blobs))
        self.assertEqual(s3_get(blob_key(multi_blob))[0], 200)
        r = admin_delete(b, f"/admin/blobs/{multi_blob}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(s3_get(blob_key(multi_blob))[0], 404)

        # What was removed comes from the upstream again, once per blob.
        self.up.sync_log()
        mark = self.up.mark()
        c = node("rm-c")
        dest = self.out("rm-c", "docker2")
        skopeo_copy_all(self.work, f"127.0.0.1:{c.port}", "docker2", dest)
        self.assertEqual(harness.compare_dirs(self.out("direct", "docker2"), dest), [])
        self.up.sync_log()
        for digest in d2.blobs:
            self.assertEqual(self.up.count_requests(
                "GET", rf"/v2/library/docker2/blobs/{digest}", status="2xx", since=mark), 1, digest)


class StartChecks(unittest.TestCase):
    def serve_fails(self, env, expect):
        work, cleanup = harness.module_workdir("s3-start")
        self.addCleanup(cleanup)
        port = free_port()
        args = [hubcache_bin(), "serve", "--addr", f"127.0.0.1:{port}",
                "--root", os.path.join(work, "cache"), "--upstream", "http://127.0.0.1:9"]
        t0 = time.monotonic()
        out = subprocess.run(args, env=clean_env(env), capture_output=True, text=True,
                             timeout=60)
        took = time.monotonic() - t0
        self.assertNotEqual(out.returncode, 0, out.stderr)
        self.assertLess(took, 30)
        lines = [l for l in out.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if expect.lower() in l.lower()]
        self.assertEqual(len(errors), 1, f"expected one line naming '{expect}':\n{out.stderr}")

    def test_wrong_secret(self):
        self.serve_fails(s3_env(secret="not-the-secret-key-at-all"), "signature")

    def test_unknown_bucket(self):
        self.serve_fails(s3_env(bucket="no-such-bucket-here"), "no such bucket")

    def test_unreachable_endpoint(self):
        self.serve_fails(s3_env(endpoint=f"http://127.0.0.1:{free_port()}"), "unreachable")
