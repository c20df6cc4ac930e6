"""Fault-injection tests: hubcache against a fake upstream that misbehaves on purpose.

Each test starts its own fake upstream (fake_upstream.FakeRegistry, in-process)
and its own hubcache (mirror.Mirror) with a fresh cache root, on free loopback
ports, and stops both by PID/handle even when the test fails. Run directly:
    HUBCACHE_BIN=build/hubcache python3 tests/integration/test_faults.py [-v] [Test.test_name]
Exit status 0 when every test passes.
"""
import hashlib
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from fake_upstream import FakeRegistry, sha256_digest  # noqa: E402
from mirror import Mirror, free_port, require_hubcache, wait_until  # noqa: E402

CLIENT_TIMEOUT_S = 30  # one socket operation
CLIENT_DEADLINE_S = 60  # one whole response
CLEANUP_DEADLINE_S = 10  # for ROOT/tmp to empty after a failed fill
REPO = "faults/app"
BLOB_BYTES = (1 << 20) + 17
TRICKLE_BYTES_PER_S = 1 << 20
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])
# Bounds how long a broken mirror can hang a test, without being tight enough to matter.
COMMON_MIRROR_ARGS = ("--upstream-connect-timeout", "3s")

_workdir = None
_live_mirrors = set()


def setUpModule():
    global _workdir
    require_hubcache()
    _workdir = harness.cleaned_workdir("faults", unittest.addModuleCleanup)


def tearDownModule():
    _stop_live_mirrors()  # before the module cleanup removes the work dir


def _stop_live_mirrors():
    for m in list(_live_mirrors):
        m.stop()
        _live_mirrors.discard(m)


# ---- client side -----------------------------------------------------------------------------
class Response:
    def __init__(self, status, headers, body, error, elapsed_s):
        self.status = status
        self.headers = headers  # lower-case keys
        self.body = bytes(body)
        self.error = error  # exception that ended the body early, or None
        self.elapsed_s = elapsed_s
        cl = headers.get("content-length")
        self.content_length = int(cl) if cl is not None else None

    @property
    def complete(self):
        """The body arrived whole: no transport error and Content-Length bytes (if declared)."""
        return self.error is None and (self.content_length is None or len(self.body) == self.content_length)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Response {self.status} len={len(self.body)} content-length={self.content_length} "
                f"error={self.error!r} headers={self.headers}>")


def fetch(url, method="GET", headers=None, on_chunk=None):
    """One request on a fresh connection; reads the body to its end, or until the peer cuts it.

    A connection closed before any response comes back as status 0 with `error` set.
    """
    u = urllib.parse.urlsplit(url)
    path = u.path + ("?" + u.query if u.query else "")
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=CLIENT_TIMEOUT_S)
    try:
        conn.request(method, path, headers=headers or {})
        try:
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            return Response(0, {}, b"", e, time.monotonic() - t0)
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        body = bytearray()
        error = None
        if method != "HEAD":
            try:
                while True:
                    if time.monotonic() - t0 > CLIENT_DEADLINE_S:
                        raise TimeoutError(f"body not finished after {CLIENT_DEADLINE_S}s")
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    body += chunk
                    if on_chunk:
                        on_chunk(len(body))
            except http.client.IncompleteRead as e:
                body += e.partial
                error = e
            except (OSError, http.client.HTTPException) as e:
                error = e
        return Response(resp.status, hdrs, body, error, time.monotonic() - t0)
    finally:
        conn.close()


def blob_path(root, digest):
    return harness.cache_object_path(root, "blob", digest)


def manifest_path(root, digest):
    return harness.cache_object_path(root, "manifest", digest)


def files_mentioning(directory, digest):
    """Every file under `directory` whose name contains the digest's hex."""
    hexd = digest.split(":", 1)[1]
    found = []
    for dirpath, _, names in os.walk(directory):
        found += [os.path.join(dirpath, n) for n in names if hexd in n]
    return found


def tmp_entries(root):
    return harness.dir_entries(os.path.join(root, "tmp"))


# ---- base class ------------------------------------------------------------------------------
class MirrorTestCase(unittest.TestCase):
    """Gives each test a temp dir, a started fake upstream, and a start_mirror() helper."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=_workdir, prefix=self._testMethodName[:40] + "-")
        self.fake = self.start_fake()

    def start_fake(self, **kwargs):
        fake = FakeRegistry(**kwargs).start()
        self.addCleanup(fake.stop)
        return fake

    def start_mirror(self, upstream_url=None, extra_args=()):
        m = Mirror(self.dir, upstream_url or self.fake.url, extra_args=(*COMMON_MIRROR_ARGS, *extra_args))
        _live_mirrors.add(m)
        self.addCleanup(self._stop_mirror, m)
        self.addCleanup(self._dump_log_on_failure, m)
        m.start()
        return m

    def _stop_mirror(self, m):
        m.stop()
        _live_mirrors.discard(m)

    def _dump_log_on_failure(self, m):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not getattr(outcome, "success", True):
            lines = m.log().splitlines()[-60:]
            sys.stderr.write(f"\n--- {self.id()}: last {len(lines)} lines of {m.log_path}\n")
            sys.stderr.write("\n".join(lines) + "\n---\n")

    # -- helpers --
    def get_blob(self, m, digest, method="GET", **kw):
        return fetch(f"{m.url}/v2/{REPO}/blobs/{digest}", method, **kw)

    def get_manifest(self, m, ref, method="GET", repo=REPO):
        return fetch(f"{m.url}/v2/{repo}/manifests/{ref}", method, headers={"Accept": MANIFEST_ACCEPT})

    def upstream_gets(self, digest_or_ref, method="GET", fake=None, status=None):
        return (fake or self.fake).requests(server="main", method=method, path_contains="/" + digest_or_ref,
                                            status=status)

    def assert_tmp_empties(self, root):
        try:
            wait_until(lambda: not tmp_entries(root), CLEANUP_DEADLINE_S, "ROOT/tmp to empty")
        except TimeoutError:
            self.fail(f"ROOT/tmp still holds {tmp_entries(root)} {CLEANUP_DEADLINE_S}s after the fill ended")

    def assert_not_cached(self, root, digest):
        self.assertEqual(files_mentioning(os.path.join(root, "blobs"), digest), [],
                         f"ROOT/blobs holds a file for {digest}")
        self.assertEqual(files_mentioning(os.path.join(root, "manifests"), digest), [],
                         f"ROOT/manifests holds a file for {digest}")

    def assert_registry_error(self, r, statuses, code=None):
        self.assertIn(r.status, statuses, r)
        self.assertTrue(r.complete, r)
        self.assertIn("application/json", r.headers.get("content-type", ""), r)
        try:
            errors = r.json()["errors"]
        except (ValueError, KeyError, TypeError) as e:
            self.fail(f"not a registry error body ({e}): {r.body[:300]!r}")
        self.assertTrue(errors and all("code" in e for e in errors), r.body[:300])
        if code:
            self.assertIn(code, [e["code"] for e in errors], r.body[:300])

    def assert_cut_short_or_error(self, r, digest, what):
        """A bad upstream body: an error status, or a 200 cut before Content-Length; never a whole wrong body."""
        if r.status >= 400:
            return
        self.assertNotEqual(r.status, 0, f"{what}: the mirror closed the connection without any response")
        self.assertIn(r.status, (200, 206), f"{what}: {r}")
        if r.complete:
            self.assertEqual(sha256_digest(r.body), digest,
                             f"{what}: mirror served a complete {r.status} body of the wrong bytes")
        self.assertIsNotNone(r.content_length, f"{what}: {r.status} without Content-Length: {r}")
        self.assertLess(len(r.body), r.content_length,
                        f"{what}: upstream body was bad but the client got all Content-Length bytes")

    def assert_serves(self, r, data, digest=None):
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, r)
        self.assertEqual(sha256_digest(r.body), sha256_digest(data), "body hashes wrong")
        if digest:
            self.assertEqual(r.headers.get("docker-content-digest"), digest, r)


def _random_bytes(seed, n):
    return random.Random(seed).randbytes(n)


# ---- body faults -----------------------------------------------------------------------------
class BodyFaultTest(MirrorTestCase):
    """Upstream bodies that end early or hash wrong: never passed off as whole, never cached."""

    def _check_body_fault(self, mode, extra_args=(), **fault_params):
        data = _random_bytes(mode, BLOB_BYTES)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror(extra_args=extra_args)
        self.fake.set_fault(digest, mode, **fault_params)

        r = self.faulty_response = self.get_blob(m, digest)
        self.assert_cut_short_or_error(r, digest, mode)
        self.assertGreaterEqual(len(self.upstream_gets(digest)), 1, "mirror never asked the upstream")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)

        # Fault cleared: the next GET goes upstream again, serves the right bytes, and caches them.
        self.fake.release_stalls()
        self.fake.clear_fault()
        before = len(self.upstream_gets(digest, status=200))
        r = self.get_blob(m, digest)
        self.assert_serves(r, data, digest)
        self.assertEqual(len(self.upstream_gets(digest, status=200)) - before, 1,
                         "after the fault cleared, expected exactly one new upstream GET answered 200")
        wait_until(lambda: os.path.exists(blob_path(m.root, digest)), CLEANUP_DEADLINE_S,
                   f"{blob_path(m.root, digest)} to appear")
        self.assertEqual(harness.file_sha256(blob_path(m.root, digest)), digest)
        self.assert_tmp_empties(m.root)

        # And the cached copy is served with no upstream request at all.
        self.fake.clear_requests()
        r = self.get_blob(m, digest)
        self.assert_serves(r, data, digest)
        self.assertEqual(self.fake.requests(), [], "a cached blob went upstream")
        return r

    def test_truncated_body(self):
        self._check_body_fault("truncate")

    def test_wrong_bytes(self):
        self._check_body_fault("wrong_bytes")

    def test_error_midstream(self):
        self._check_body_fault("error_midstream")

    # Trickled (~1 s per body), so the mirror is streaming to the client when the fault shows.
    def test_truncated_body_trickled(self):
        self._check_body_fault("truncate", rate=TRICKLE_BYTES_PER_S)

    def test_wrong_bytes_trickled(self):
        self._check_body_fault("wrong_bytes", rate=TRICKLE_BYTES_PER_S)

    def test_error_midstream_trickled(self):
        self._check_body_fault("error_midstream", rate=TRICKLE_BYTES_PER_S)

    def test_stalled_body_hits_stall_timeout(self):
        self._check_body_fault("stall", extra_args=("--upstream-stall-timeout", "2s"), max_s=40)
        # libcurl's low-speed check averages over a ~5 s window, so "idle 2 s" shows after ~8 s.
        # The bound still tells a 2 s setting from the 30 s default and from the fake's 40 s release.
        self.assertLess(self.faulty_response.elapsed_s, 2 + 10,
                        "the mirror did not give up on a stalled upstream near --upstream-stall-timeout")

    def test_joined_clients_all_cut_on_wrong_bytes(self):
        """Clients that join a fill which then fails verification are all cut short too."""
        data = _random_bytes("joined", BLOB_BYTES)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror()
        self.fake.set_fault(digest, "wrong_bytes", rate=TRICKLE_BYTES_PER_S)
        results = [None] * 4

        def client(i):
            try:
                results[i] = self.get_blob(m, digest)
            except Exception as e:  # reported below, by the test thread
                results[i] = e

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=CLIENT_DEADLINE_S + 5)
        self.assertFalse(any(t.is_alive() for t in threads), "a client still reading after the deadline")
        for i, r in enumerate(results):
            if isinstance(r, Exception):
                raise r
            self.assert_cut_short_or_error(r, digest, f"client {i}")
        self.assertEqual(len(self.upstream_gets(digest, status=200)), 1,
                         "concurrent clients of one cold blob did not share one upstream GET")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        self.fake.clear_fault()
        self.assert_serves(self.get_blob(m, digest), data, digest)

    def test_slow_fill_is_published_only_when_complete(self):
        """During a throttled fill, ROOT/tmp holds it and ROOT/blobs does not."""
        data = _random_bytes("slow", 2 * BLOB_BYTES)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror()
        self.fake.set_fault(digest, "slow", rate=1_500_000)  # ~1.4 s for the body
        result = {}
        first_bytes = []  # upstream bytes sent when the client got its first body bytes

        def on_chunk(_received):
            if not first_bytes:
                first_bytes.append(self.fake.bytes_sent(digest))

        client = threading.Thread(target=lambda: result.update(r=self.get_blob(m, digest, on_chunk=on_chunk)),
                                  daemon=True)
        client.start()
        seen_tmp = False
        early_publish = None
        deadline = time.monotonic() + CLIENT_DEADLINE_S
        while client.is_alive() and time.monotonic() < deadline:
            published = os.path.exists(blob_path(m.root, digest))
            busy_tmp = bool(tmp_entries(m.root))
            upstream_done = self.fake.bytes_sent(digest) >= len(data)
            if not upstream_done:
                seen_tmp = seen_tmp or busy_tmp
                if published and early_publish is None:
                    early_publish = self.fake.bytes_sent(digest)
            time.sleep(0.02)
        client.join(timeout=5)
        self.assertFalse(client.is_alive(), "client still reading after the deadline")
        self.assertIsNone(early_publish, f"blob appeared in ROOT/blobs when the upstream had sent only "
                                         f"{early_publish} of {len(data)} bytes")
        self.assertTrue(seen_tmp, "ROOT/tmp stayed empty during an in-flight fill")
        self.assertTrue(first_bytes and first_bytes[0] < len(data),
                        f"the client got no bytes before the upstream had sent all {len(data)} (not streamed)")
        self.assert_serves(result["r"], data, digest)
        wait_until(lambda: os.path.exists(blob_path(m.root, digest)), CLEANUP_DEADLINE_S, "blob file")
        self.assert_tmp_empties(m.root)


def unread_bytes_from(port):
    """Bytes that arrived from 127.0.0.1:`port` and wait unread in the receiving sockets
    (the rx_queue column of /proc/net/tcp, over every socket whose peer is that port)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port:
                total += int(fields[4].split(":")[1], 16)
    return total


class HoldBackTest(MirrorTestCase):
    """No reader gets the last byte of a blob before the fill has verified the whole body.

    The fake upstream (mode `hold`) sends all but the last byte, waits, sends a wrong last
    byte, and waits again before it ends the response: the mirror then holds the whole body,
    unverified, for as long as the test likes, so the hold-back is seen without a race.
    """

    READERS = 4
    SIZE = (1 << 20) + 17
    # hubcache hands new bytes to readers once 20 ms passed since it last did
    # (kAnnounceInterval, blob_fill.cpp); the last byte must arrive later than that.
    QUIET_S = 0.2
    # How long readers get to take a last byte the mirror would wrongly hand out.
    OBSERVE_S = 1.0

    def test_readers_never_get_the_last_byte_before_the_verdict(self):
        data = _random_bytes("hold", self.SIZE)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror()
        self.fake.set_fault(digest, "hold")
        lock = threading.Lock()
        got = [{"bytes": 0} for _ in range(self.READERS)]

        def reader(i):
            u = urllib.parse.urlsplit(m.url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=CLIENT_TIMEOUT_S)
            try:
                conn.request("GET", f"/v2/{REPO}/blobs/{digest}")
                resp = conn.getresponse()
                with lock:
                    got[i].update(status=resp.status, length=resp.getheader("Content-Length"))
                while True:
                    chunk = resp.read1(65536)
                    if not chunk:
                        break
                    with lock:
                        got[i]["bytes"] += len(chunk)
            except Exception as e:  # the expected end: the mirror cuts the body
                with lock:
                    got[i]["error"] = repr(e)
            finally:
                conn.close()
                with lock:
                    got[i]["done"] = True

        def snapshot():
            with lock:
                return [dict(g) for g in got]

        threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(self.READERS)]
        for t in threads:
            t.start()
        self.addCleanup(lambda: [t.join(timeout=CLIENT_DEADLINE_S) for t in threads])
        self.addCleanup(self.fake.release_stalls)

        # All but the last byte sent; every reader joined the fill and streams.
        self.assertTrue(self.fake.wait_held(digest, "last"), "the upstream never got to the last byte")
        wait_until(lambda: all(g.get("status") for g in snapshot()), CLIENT_DEADLINE_S,
                   "every reader to get its response head")
        self.assertEqual([g["status"] for g in snapshot()], [200] * self.READERS, snapshot())
        self.assertEqual([g["length"] for g in snapshot()], [str(self.SIZE)] * self.READERS)
        wait_until(lambda: unread_bytes_from(self.fake.port) == 0, CLIENT_DEADLINE_S,
                   "the mirror to read what the upstream sent")
        time.sleep(self.QUIET_S)
        self.assertTrue(all(g["bytes"] < self.SIZE for g in snapshot()), snapshot())

        # The wrong last byte: the mirror holds the whole body, unverified.
        self.fake.release_stalls()
        self.assertTrue(self.fake.wait_held(digest, "end"), "the upstream never sent the last byte")

        def temp_bytes():
            sizes = [os.path.getsize(os.path.join(m.root, "tmp", e)) for e in tmp_entries(m.root)]
            return max(sizes, default=0)

        wait_until(lambda: temp_bytes() == self.SIZE, CLIENT_DEADLINE_S,
                   f"the fill's temp file to hold all {self.SIZE} bytes")
        wait_until(lambda: all(g["bytes"] >= self.SIZE - 1 for g in snapshot()), CLIENT_DEADLINE_S,
                   "every reader to get all but the last byte")
        deadline = time.monotonic() + self.OBSERVE_S
        while time.monotonic() < deadline and all(g["bytes"] < self.SIZE for g in snapshot()):
            time.sleep(0.02)
        self.assertEqual([g["bytes"] for g in snapshot()], [self.SIZE - 1] * self.READERS,
                         "a reader got the last byte of a body not yet verified")

        # The verdict: every reader is cut short, nothing is kept.
        self.fake.release_stalls()
        for t in threads:
            t.join(timeout=CLIENT_DEADLINE_S)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader still reading after the deadline")
        for i, g in enumerate(snapshot()):
            self.assertEqual(g["bytes"], self.SIZE - 1, f"reader {i}: not cut one byte short: {g}")
        self.assertEqual(len(self.upstream_gets(digest, status=200)), 1,
                         "the readers did not share one upstream GET")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)


class ManifestBodyFaultTest(MirrorTestCase):
    """A manifest body that ends early or does not match its digest is neither served whole nor cached."""

    def _check(self, mode):
        img = self.fake.add_image(REPO)
        digest = img["manifest_digest"]
        m = self.start_mirror(extra_args=("--tag-freshness", "0s"))
        for ref in ("latest", digest):
            self.fake.set_fault(ref, mode)
        for ref in ("latest", digest):
            r = self.get_manifest(m, ref)
            self.assert_cut_short_or_error(r, digest, f"{mode} manifest by {ref[:20]}")
            if r.status >= 400:
                self.assert_registry_error(r, range(400, 600))
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        self.fake.clear_fault()
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], digest)
        self.assert_serves(self.get_manifest(m, digest), img["manifest"], digest)
        self.assertEqual(harness.file_sha256(manifest_path(m.root, digest)), digest)

    def test_truncated_manifest(self):
        self._check("truncate")

    def test_wrong_bytes_manifest(self):
        self._check("wrong_bytes")

    def test_error_midstream_manifest(self):
        self._check("error_midstream")


# ---- upstream error statuses on uncached objects ---------------------------------------------
class StatusFaultTest(MirrorTestCase):
    """5xx/429 on an object the mirror lacks: registry error JSON, nothing cached, not remembered."""

    def _check_status(self, mode, kind, statuses, code):
        img = self.fake.add_image(REPO)
        m = self.start_mirror()
        if kind == "manifest":
            ref, digest, data = "latest", img["manifest_digest"], img["manifest"]
            get = lambda method="GET": self.get_manifest(m, ref, method)  # noqa: E731
        else:
            ref = digest = img["layer_digest"]
            data = img["layer"]
            get = lambda method="GET": self.get_blob(m, ref, method)  # noqa: E731
        self.fake.set_fault(ref, mode, retry_after=7)

        r = get()
        self.assert_registry_error(r, statuses, code)
        self.assertGreaterEqual(len(self.upstream_gets(ref, method=None)), 1, "mirror never asked the upstream")
        if kind == "manifest":
            h = get("HEAD")
            self.assertIn(h.status, statuses, f"HEAD manifest: {h}")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)

        self.fake.clear_fault()
        before = len(self.upstream_gets(ref, method=None))
        r = get()
        self.assert_serves(r, data, digest)
        self.assertGreater(len(self.upstream_gets(ref, method=None)), before,
                           "after the fault cleared the mirror did not ask upstream again")

    def test_500_on_uncached_manifest(self):
        self._check_status("status_500", "manifest", (502, 503), None)

    def test_500_on_uncached_blob(self):
        self._check_status("status_500", "blob", (502, 503), None)

    def test_429_on_uncached_manifest(self):
        self._check_status("status_429", "manifest", (429,), "TOOMANYREQUESTS")

    def test_429_on_uncached_blob(self):
        self._check_status("status_429", "blob", (429,), "TOOMANYREQUESTS")

    def test_token_endpoint_500_on_uncached_manifest(self):
        img = self.fake.add_image(REPO)
        m = self.start_mirror()
        self.fake.set_fault("token", "status_500")
        r = self.get_manifest(m, "latest")
        self.assert_registry_error(r, (502, 503))
        self.assertTrue(self.fake.requests(path_contains="/token"), "the mirror never asked for a token")
        self.assert_not_cached(m.root, img["manifest_digest"])
        self.fake.clear_fault()
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])

    def test_revoked_token_is_renewed(self):
        """A cached token the upstream now refuses (expired early) leads to a new token, not an error."""
        img = self.fake.add_image(REPO)
        # A blob no manifest names: the manifest's own may be prefetched before the revoke.
        other = random.Random("revoked").randbytes(100_000)
        other_digest = self.fake.add_blob(REPO, other)
        m = self.start_mirror()
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])
        tokens_before = len(self.fake.requests(path_contains="/token"))
        self.fake.revoke_tokens()
        self.assert_serves(self.get_blob(m, other_digest), other, other_digest)
        self.assertGreater(len(self.fake.requests(path_contains="/token")), tokens_before,
                           "no new token was fetched")


# ---- CDN redirects ---------------------------------------------------------------------------
class RedirectTest(MirrorTestCase):
    """307 to another host: followed, Authorization dropped there, bytes cached, redirect not."""

    def _check_redirect(self, cdn_host):
        fake = self.start_fake(cdn_host=cdn_host)
        self.fake = fake
        img = fake.add_image(REPO)
        digest = img["layer_digest"]
        fake.set_fault(digest, "redirect")
        m = self.start_mirror(fake.url)

        r = self.get_blob(m, digest)
        self.assert_serves(r, img["layer"], digest)
        cdn = fake.requests(server="cdn", path_contains=digest[7:])
        self.assertGreaterEqual(len(cdn), 1, "the CDN host was never asked")
        for req in cdn:
            self.assertIsNone(req.authorization, f"Authorization leaked to the CDN host {fake.cdn_url}")
        main = [q for q in self.upstream_gets(digest, fake=fake) if q.authorization]
        self.assertTrue(main, "the blob GET to the registry carried no Authorization")
        for req in main:
            self.assertTrue(req.authorization.startswith("Bearer "), req.authorization)
            self.assertIn(req.authorization[len("Bearer "):], fake.issued_tokens, "not a token we issued")
        wait_until(lambda: os.path.exists(blob_path(m.root, digest)), CLEANUP_DEADLINE_S, "blob file")
        self.assertEqual(harness.file_sha256(blob_path(m.root, digest)), digest)

        # The signed URL expires; a cached redirect would now fail. The bytes must come from cache.
        fake.expire_redirects()
        fake.clear_requests()
        for method in ("GET", "HEAD"):
            r = self.get_blob(m, digest, method)
            self.assertEqual(r.status, 200, f"{method}: {r}")
            if method == "GET":
                self.assert_serves(r, img["layer"], digest)
            else:
                self.assertEqual(r.content_length, len(img["layer"]), r)
        self.assertEqual(fake.requests(), [], "cached blob went upstream (main or CDN)")

    def test_redirect_to_other_ip(self):
        self._check_redirect("127.0.0.2")

    def test_redirect_to_localhost(self):
        self._check_redirect("localhost")

    def test_redirect_to_other_port(self):
        self._check_redirect("127.0.0.1")

    def test_redirect_target_refuses(self):
        """The CDN answers 403 (expired signature): an error for the client, nothing cached."""
        img = self.fake.add_image(REPO)
        digest = img["layer_digest"]
        m = self.start_mirror()
        self.fake.set_fault(digest, "redirect", sign=False)
        r = self.get_blob(m, digest)
        self.assert_cut_short_or_error(r, digest, "CDN 403")
        self.assertGreaterEqual(r.status, 400, r)
        self.assert_registry_error(r, range(400, 600))
        self.assertTrue(self.fake.requests(server="cdn"), "the redirect was not followed")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        self.fake.set_fault(digest, "redirect")
        self.assert_serves(self.get_blob(m, digest), img["layer"], digest)


# ---- answers that are not registry content ---------------------------------------------------
def cached_objects(root):
    """Every file under ROOT/blobs and ROOT/manifests."""
    found = []
    for sub in ("blobs", "manifests"):
        for dirpath, _, names in os.walk(os.path.join(root, sub)):
            found += [os.path.join(dirpath, n) for n in names]
    return found


class NotRegistryContentTest(MirrorTestCase):
    """A 200 that is no manifest, or an empty body for a non-empty blob: an error, nothing kept."""

    def test_html_page_for_a_tag_is_not_served_or_kept(self):
        img = self.fake.add_image(REPO)
        m = self.start_mirror()
        self.fake.set_fault("latest", "html")
        for method in ("GET", "HEAD"):
            r = self.get_manifest(m, "latest", method)
            if method == "GET":
                self.assert_registry_error(r, (502, 503))
                self.assertNotIn(b"<html", r.body, r)
            else:
                self.assertIn(r.status, (502, 503), f"HEAD: {r}")
            self.assertNotEqual(r.headers.get("cache-control"), "max-age=31536000", r)
        self.assertTrue(self.upstream_gets("latest", status=200), "the upstream never served the page")
        self.assertEqual(cached_objects(m.root), [], "the HTML page was stored")

        # The upstream recovers: the tag's real manifest is served (it would be the HTML
        # page, as a cache hit, had the page been kept under the tag).
        self.fake.clear_fault()
        r = self.get_manifest(m, "latest")
        self.assert_serves(r, img["manifest"], img["manifest_digest"])
        self.assertEqual(r.headers.get("content-type"),
                         "application/vnd.docker.distribution.manifest.v2+json", r)
        self.assertEqual(r.headers.get("x-hubcache-cache"), "miss", r)
        self.assertEqual(harness.file_sha256(manifest_path(m.root, img["manifest_digest"])),
                         img["manifest_digest"])

    def test_html_page_on_revalidation_keeps_the_cached_tag(self):
        img = self.fake.add_image(REPO)
        m = self.start_mirror(extra_args=("--tag-freshness", "0s"))
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])
        self.fake.set_fault("latest", "html")
        since = time.monotonic()
        r = self.get_manifest(m, "latest")
        self.assert_serves(r, img["manifest"], img["manifest_digest"])
        self.assertEqual(r.headers.get("x-hubcache-cache"), "stale", r)
        self.assertTrue(self.fake.requests(path_contains="/manifests/latest", since=since, status=200),
                        "the tag was not revalidated against the upstream")
        # The real manifest and (prefetched after the first GET) its blobs, nothing else.
        real = manifest_path(m.root, img["manifest_digest"])
        allowed = {real, blob_path(m.root, img["config_digest"]),
                   blob_path(m.root, img["layer_digest"])}
        stored = set(cached_objects(m.root))
        self.assertIn(real, stored)
        self.assertLessEqual(stored, allowed, "something besides the real image was stored")
        self.fake.clear_fault()
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])

    def test_json_that_is_no_manifest_is_not_served(self):
        """A JSON body under a manifest Content-Type, but no manifest: same as the HTML page."""
        bogus = json.dumps({"schemaVersion": 2, "hello": "world"}).encode()
        self.fake.add_manifest(REPO, bogus, "application/vnd.oci.image.manifest.v1+json", tags=("bogus",))
        m = self.start_mirror()
        r = self.get_manifest(m, "bogus")
        self.assert_registry_error(r, (502, 503))
        self.assert_not_cached(m.root, sha256_digest(bogus))

    def _empty_body_case(self, m, digest, data):
        for method in ("GET", "HEAD"):
            r = self.get_blob(m, digest, method)
            looks_complete = r.status == 200 and r.complete and (method == "HEAD" or r.body == b"")
            self.assertFalse(looks_complete and r.content_length == 0,
                             f"{method}: an empty 200 for a non-empty blob: {r}")
            self.assertGreaterEqual(r.status, 400, f"{method}: {r}")
            if method == "GET":
                self.assert_registry_error(r, (502, 503))
            self.assertIsNone(r.headers.get("docker-content-digest"), f"{method}: {r}")
            self.assertNotEqual(r.headers.get("cache-control"), "max-age=31536000", f"{method}: {r}")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        self.fake.clear_fault()
        self.assert_serves(self.get_blob(m, digest), data, digest)
        wait_until(lambda: os.path.exists(blob_path(m.root, digest)), CLEANUP_DEADLINE_S, "blob file")

    def test_empty_body_for_a_blob_is_an_error(self):
        data = _random_bytes("empty", 4096)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror()
        self.fake.set_fault(digest, "empty_body")
        self._empty_body_case(m, digest, data)
        self.assertTrue(self.upstream_gets(digest, status=200), "the upstream never sent the empty body")

    def test_empty_body_after_a_redirect_is_an_error(self):
        """The CDN a blob redirects to answers 200 with no bytes."""
        data = _random_bytes("empty-cdn", 4096)
        digest = self.fake.add_blob(REPO, data)
        m = self.start_mirror()
        self.fake.set_fault(digest, "redirect")
        self.fake.set_fault("cdn:" + digest[7:], "empty_body")
        r = self.get_blob(m, digest)
        self.assert_registry_error(r, (502, 503))
        self.assertTrue(self.fake.requests(server="cdn", status=200), "the CDN never sent the empty body")
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        self.fake.clear_fault("cdn:" + digest[7:])
        self.assert_serves(self.get_blob(m, digest), data, digest)

    def test_the_empty_blob_is_served(self):
        """The one blob that is empty: 200, no bytes, its digest; and cached."""
        digest = self.fake.add_blob(REPO, b"")
        self.assertEqual(digest, "sha256:" + hashlib.sha256(b"").hexdigest())
        m = self.start_mirror()
        for _ in range(2):  # a miss, then a hit
            r = self.get_blob(m, digest)
            self.assert_serves(r, b"", digest)
            self.assertEqual(r.content_length, 0, r)
            h = self.get_blob(m, digest, "HEAD")
            self.assertEqual((h.status, h.headers.get("docker-content-digest")), (200, digest), h)
            wait_until(lambda: os.path.exists(blob_path(m.root, digest)), CLEANUP_DEADLINE_S, "blob file")


# ---- redirects to internal addresses ---------------------------------------------------------
class InternalRedirectTest(MirrorTestCase):
    """A blob redirect to hubcache itself or to a reserved address is refused before connecting.

    The upstream runs on 127.0.0.1, so loopback redirects are allowed in general (RedirectTest);
    hubcache's own listening address:port and reserved addresses (0.0.0.0, which Linux connects
    to this host) never are. Public-upstream cases (loopback, private, link-local refused) are
    in tests/unit/connect_guard_test.cpp: a test here that failed would send packets off-host.
    """

    def _check_refused(self, location_for, witness):
        img = self.fake.add_image(REPO)
        digest = img["layer_digest"]
        m = self.start_mirror()
        location = location_for(m, digest)
        self.fake.set_fault(digest, "redirect", location=location)
        r = self.get_blob(m, digest)
        self.assert_registry_error(r, (502,))
        self.assertIsNone(r.headers.get("docker-content-digest"), r)
        self.assertTrue(self.upstream_gets(digest, status=307), "the upstream never redirected")
        self.assertEqual(witness(m), [], f"the mirror connected to {location}")
        self.assertIn("connection refused url=", m.log(), "the refusal was not logged")
        stats = fetch(m.url + "/stats")  # after the witness: this request is in the access log
        self.assertGreaterEqual(stats.json()["upstream"]["connections_refused"], 1, stats)
        self.assert_tmp_empties(m.root)
        self.assert_not_cached(m.root, digest)
        # Nothing of the refusal is remembered: a proper redirect afterwards works.
        self.fake.set_fault(digest, "redirect")
        self.assert_serves(self.get_blob(m, digest), img["layer"], digest)

    @staticmethod
    def _own_stats_requests(m):
        return [line for line in m.log().splitlines() if "path=/stats" in line]

    def test_redirect_to_own_address_is_refused(self):
        self._check_refused(lambda m, d: f"http://127.0.0.1:{m.port}/stats", self._own_stats_requests)

    def test_redirect_to_own_port_by_name_is_refused(self):
        """`localhost` is no IP literal: only the address libcurl connects to shows it is us."""
        self._check_refused(lambda m, d: f"http://localhost:{m.port}/stats", self._own_stats_requests)

    def test_redirect_to_own_port_ipv4_mapped_is_refused(self):
        self._check_refused(lambda m, d: f"http://[::ffff:127.0.0.1]:{m.port}/stats",
                            self._own_stats_requests)

    def test_redirect_to_unspecified_address_is_refused(self):
        """0.0.0.0 reaches this host: here the fake CDN on 127.0.0.1, which must not be asked."""
        self.fake = self.start_fake(cdn_host="localhost")  # its CDN listens on 127.0.0.1
        self._check_refused(
            lambda m, d: f"http://0.0.0.0:{self.fake.cdn_port}/cdn/sha256/{d[7:]}/data?verify=x",
            lambda m: self.fake.requests(server="cdn"))


# ---- stale tags while the upstream fails -----------------------------------------------------
class StaleTagTest(MirrorTestCase):
    """--tag-freshness 0s: every tag read revalidates; an upstream failure serves the cached tag."""

    def _check_stale(self, mode):
        img = self.fake.add_image(REPO)
        m = self.start_mirror(extra_args=("--tag-freshness", "0s"))
        # A docker pull: resolve the tag, fetch by digest, then config and layer.
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])
        self.assert_serves(self.get_manifest(m, img["manifest_digest"]), img["manifest"])
        self.assert_serves(self.get_blob(m, img["config_digest"]), img["config"])
        self.assert_serves(self.get_blob(m, img["layer_digest"]), img["layer"])

        switched = time.monotonic()
        if mode == "unreachable":
            self.fake.stop()
        else:
            self.fake.set_fault("*", mode)
        for method in ("HEAD", "GET"):
            r = self.get_manifest(m, "latest", method)
            self.assertEqual(r.status, 200, f"stale {method} of the tag with upstream {mode}: {r}")
            self.assertEqual(r.headers.get("docker-content-digest"), img["manifest_digest"], r)
            self.assertLess(r.elapsed_s, 10, f"stale {method} took {r.elapsed_s:.1f}s")
            if method == "GET":
                self.assert_serves(r, img["manifest"], img["manifest_digest"])
        if mode != "unreachable":
            asked = self.fake.requests(server="main", path_contains="/manifests/latest", since=switched)
            self.assertTrue(asked, "with --tag-freshness 0s the mirror did not revalidate the tag upstream")
        self.assert_serves(self.get_manifest(m, img["manifest_digest"]), img["manifest"])
        self.assert_serves(self.get_blob(m, img["config_digest"]), img["config"])
        self.assert_serves(self.get_blob(m, img["layer_digest"]), img["layer"])
        if mode != "unreachable":
            by_digest = [q for q in self.fake.requests(since=switched)
                         if "/manifests/sha256:" in q.path or "/blobs/" in q.path]
            self.assertEqual(by_digest, [], "cached digests were asked upstream")

    def test_stale_on_500(self):
        self._check_stale("status_500")

    def test_stale_on_429(self):
        self._check_stale("status_429")

    def test_stale_on_401(self):
        self._check_stale("status_401")

    def test_stale_on_unreachable(self):
        self._check_stale("unreachable")


# ---- startup without an upstream -------------------------------------------------------------
class LazyUpstreamTest(MirrorTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=_workdir, prefix=self._testMethodName[:40] + "-")

    def test_starts_with_upstream_down_then_pulls_when_it_appears(self):
        port = free_port()
        m = self.start_mirror(f"http://127.0.0.1:{port}")
        r = fetch(m.url + "/v2/")
        self.assertEqual(r.status, 200, f"/v2/ with the upstream down: {r}")
        self.assertEqual(r.headers.get("docker-distribution-api-version"), "registry/2.0", r)
        r = self.get_manifest(m, "latest")
        self.assert_registry_error(r, (502, 503))

        self.fake = self.start_fake(port=port)
        img = self.fake.add_image(REPO)
        self.assert_serves(self.get_manifest(m, "latest"), img["manifest"], img["manifest_digest"])
        self.assert_serves(self.get_manifest(m, img["manifest_digest"]), img["manifest"])
        self.assert_serves(self.get_blob(m, img["config_digest"]), img["config"])
        self.assert_serves(self.get_blob(m, img["layer_digest"]), img["layer"])
        self.assertTrue(self.fake.requests(path_contains="/token"), "the mirror never fetched a token")


if __name__ == "__main__":
    harness.run_module(__file__, last_resort=[tearDownModule])
