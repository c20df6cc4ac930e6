#!/usr/bin/env python3
"""Pushes that go wrong, against hubcache serving `--hosted 'test/*'`.

Raw HTTP (http.client, or sockets where a request must be cut, overlapped or overlong)
speaking the OCI distribution upload flow: POST an upload, PATCH chunks with Content-Range,
PUT ?digest= to close it, GET the upload URL for its Range. Hosted names need no upstream:
the mirrors point at a closed loopback port, except DiskFull's, whose fake upstream
(fake_upstream.FakeRegistry) provides one cached blob.

  KillMidPush  ten rounds on one root: push a 6.5 MiB blob in 1 MiB chunks and SIGKILL the
               server at a different point each round (after the POST, between chunks, while
               a PATCH body or a closing PUT body is being sent, with the closing PUT sent and
               its answer unread, after the 201). Each restart: the server starts, every file
               under ROOT/hosted/blobs hashes to its name, every blob committed so far is
               still there, the killed blob is visible (HEAD 200) only when it was finished.
               Then the retry: resuming the upload (GET for its Range, which must lie between
               the bytes acknowledged and those sent, then the rest and the PUT) or a fresh
               upload (POST+PUT, or one POST ?digest=, then the old upload DELETEd); the blob
               then hashes right over GET and on disk, and the upload's file is gone. A kill
               inside the commit (renamed into hosted/blobs, index not written) may leave the
               upload gone: the client then starts afresh.
  DiskFull     the root on a 64 MiB tmpfs mounted by the test, filled by a ballast file to
               12 MiB free: a 20 MiB monolithic PUT, the same as one POST ?digest=, and a
               20 MiB push in 4 MiB PATCHes each get a 5xx with a registry error body, no file
               for the blob appears, HEAD is 404, the space comes back, and /v2/, a hosted
               blob and a cached mirror blob are still served. With not a byte free, a 100 kB
               blob and a manifest get a 5xx too. With the ballast gone, the chunked upload
               resumes (or restarts) and every push succeeds; no upload is left.
  Memory       a generated 1 GiB blob (fake_upstream.GeneratedBody: never whole in memory)
               pushed as POST + one monolithic PUT, and as 16 PATCHes of 64 MiB (every other
               one chunked-encoded); read back over GET; the server's VmHWM stays under
               48 MiB throughout.
  Concurrent   the same blob pushed at once into two (then six) repositories, chunked,
               monolithic and mixed, the closing requests released together: all 201, one
               file under ROOT/hosted/blobs, served from every repository.
  Hostile      each gets its spec error and leaves ROOT/hosted as it was: a wrong digest on
               PUT and on POST ?digest= (400 DIGEST_INVALID, the upload open or gone whole);
               Content-Range gaps, overlaps, malformed or disagreeing with Content-Length
               (416 or 400, the upload unharmed); a second PATCH and a PUT while a PATCH is
               mid-body on the same upload (416 at once, the first lands); a chunk, PUT, GET
               or DELETE after the finish (404 BLOB_UPLOAD_UNKNOWN); bodies cut short of
               their Content-Length or chunked framing and then closed (nothing committed
               even when the bytes sent hash to the digest; the upload resumable or cleanly
               gone; POST ?digest= leaves no upload); an upload id used through another
               repository (404 BLOB_UPLOAD_UNKNOWN, the upload unharmed); malformed upload
               ids and digests (400/404); manifests referencing missing blobs (400
               MANIFEST_BLOB_UNKNOWN), over 4 MiB (exactly 4 MiB accepted; 4 MiB + 1,
               chunked, and a 5 GiB Content-Length refused, the last at once), and PUT by a
               digest that is not the body's (400 DIGEST_INVALID); a push to a mirrored name
               (403 DENIED).
~50 s on 2 cores, plus 2 GiB of disk in the temp dir for Memory. DiskFull needs root
(mount); not permitted, it skips (exit 77, which CI counts as a failure).
"""
import hashlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import sys
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from fake_upstream import BytesBody, FakeRegistry, GeneratedBody  # noqa: E402
from mirror import Mirror, free_port, require_hubcache, wait_until  # noqa: E402
from test_disk_full import mount_refused_reason, mounted_tmpfs, umount  # noqa: E402
import test_disk_full  # noqa: E402  (its list of mounts, for an interrupted run)
from test_hostile import Answer, connect  # noqa: E402

MiB = 1 << 20
HOSTED = "test/*"
MIRROR_ARGS = ("--hosted", HOSTED, "--upstream-connect-timeout", "1s")
REQUEST_TIMEOUT_S = 30  # one socket operation; a loaded 2-core machine
ANSWER_DEADLINE_S = 15  # for a raw exchange's answer
OCTET = "application/octet-stream"
OCI_MANIFEST = harness.MEDIA_OCI_MANIFEST
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_MAX_BYTES = 4 * MiB

S = harness.ModuleState()  # work dir, the shared mirror


def setUpModule():
    require_hubcache()
    S.work = harness.cleaned_workdir("pushfaults", unittest.addModuleCleanup)
    # Nothing listens here: a request that went upstream would fail, not hang.
    S.closed_upstream = f"http://127.0.0.1:{free_port()}"
    S.m = new_mirror("shared")
    unittest.addModuleCleanup(S.m.stop)
    S.m.start()


def new_mirror(name, root=None, upstream=None, extra_args=()):
    """A Mirror (not started) hosting test/*, logging into S.work/name."""
    d = os.path.join(S.work, name)
    os.makedirs(d, exist_ok=True)
    return Mirror(d, upstream or S.closed_upstream, extra_args=MIRROR_ARGS + tuple(extra_args),
                  root=root)


# ---- digests, paths, files -------------------------------------------------------------

def digest_of(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_bytes(size, seed):
    return random.Random(seed).randbytes(size)


def hosted_path(root, kind, digest):
    """ROOT/hosted/blobs/sha256/<hh>/<hex> (kind "blobs") or ROOT/hosted/manifests/..."""
    hexd = digest.split(":", 1)[1]
    return os.path.join(root, "hosted", kind, "sha256", hexd[:2], hexd)


def hosted_files(root):
    """{path relative to ROOT/hosted: size} of every file under hosted/blobs and
    hosted/manifests (the committed content; uploads in progress are elsewhere)."""
    top = os.path.join(root, "hosted")
    out = {}
    for kind in ("blobs", "manifests"):
        for dirpath, _, files in os.walk(os.path.join(top, kind)):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    out[os.path.relpath(full, top)] = os.path.getsize(full)
                except OSError:
                    pass
    return out


def files_named(root, hexd):
    """Every file under `root` whose name contains `hexd`."""
    return [os.path.join(dp, n) for dp, _, files in os.walk(root) for n in files if hexd in n]


def upload_paths(root, uuid):
    """Where upload `uuid` may keep its bytes: ROOT/hosted/uploads/<id> (the server), or
    ROOT/uploads/<id> (hosted-interface.md)."""
    return [os.path.join(root, "hosted", "uploads", uuid), os.path.join(root, "uploads", uuid)]


def upload_bytes(root, uuid):
    """Bytes stored for upload `uuid` (a file or a dir); 0 when absent."""
    total = 0
    for path in upload_paths(root, uuid):
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(dp, n))
                         for dp, _, files in os.walk(path) for n in files)
        elif os.path.exists(path):
            total += os.path.getsize(path)
    return total


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


# ---- the upload protocol -----------------------------------------------------------------

def path_of(location):
    """A Location header (absolute or not) as the path+query to request."""
    u = urllib.parse.urlsplit(location)
    return u.path + (f"?{u.query}" if u.query else "")


def with_query(path, query):
    return path + ("&" if "?" in path else "?") + query


def range_end(value):
    """Offset after the bytes a `Range: 0-N` header reports (N+1). `0-0` is read as nothing
    stored: distribution sends it for 0 bytes (and for 1; no test here stores 1 byte)."""
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", (value or "").strip())
    if not m:
        return None
    n = int(m.group(1))
    return 0 if n == 0 else n + 1


def request(url, method, path, headers=None, body=None, timeout=REQUEST_TIMEOUT_S):
    return harness.request(url, method, path, headers=headers, body=body, timeout=timeout)


class Upload:
    """One blob upload session. Methods send one request each and return harness.Response;
    a 2xx answer updates `location` (the server may move it) and `offset` (from Range)."""

    def __init__(self, url, repo):
        self.url, self.repo = url, repo
        self.location = None  # path (+ query) of the session
        self.uuid = None
        self.offset = 0  # bytes the server has acknowledged

    def _took(self, r):
        if 200 <= r.status < 300:
            loc = r.header("Location")
            if loc and "/blobs/uploads/" in loc:
                self.location = path_of(loc)
            end = range_end(r.header("Range"))
            if end is not None:
                self.offset = end
        return r

    def start(self):
        r = request(self.url, "POST", f"/v2/{self.repo}/blobs/uploads/",
                    {"Content-Length": "0"}, b"")
        if r.status == 202:
            self.location = path_of(r.header("Location") or "")
            self.uuid = (r.header("Docker-Upload-UUID")
                         or self.location.split("?")[0].rsplit("/", 1)[-1])
            self.offset = 0
        return r

    def patch(self, data, start=None, content_range=True, length=None, chunked=False):
        """PATCHes `data` (bytes, or an iterable of bytes with `length`) at `start`
        (default: the acknowledged offset); `chunked`: Transfer-Encoding: chunked (then
        `data` must be an iterable), else a Content-Length."""
        n = len(data) if length is None else length
        start = self.offset if start is None else start
        h = {"Content-Type": OCTET}
        if not chunked:
            h["Content-Length"] = str(n)
        if content_range:
            h["Content-Range"] = f"{start}-{start + n - 1}"
        return self._took(request(self.url, "PATCH", self.location, h, data))

    def status(self):
        return self._took(request(self.url, "GET", self.location))

    def finish(self, digest, data=b"", length=None):
        n = len(data) if length is None else length
        return request(self.url, "PUT", with_query(self.location, "digest=" + digest),
                       {"Content-Type": OCTET, "Content-Length": str(n)}, data)

    def cancel(self):
        return request(self.url, "DELETE", self.location)


def raw_head(method, path, headers):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"User-Agent: {harness.TEST_UA}",
             "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock, started, deadline_s=ANSWER_DEADLINE_S):
    """Reads until one whole response (by Content-Length), EOF, or the deadline."""
    data, eof, error = bytearray(), False, None
    while True:
        a = Answer(data, eof, error, time.monotonic() - started)
        if eof or (a.status is not None and a.complete):
            return a
        left = started + deadline_s - time.monotonic()
        if left <= 0:
            return a
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return a
        except (ConnectionResetError, BrokenPipeError) as e:
            eof, error = True, e
            continue
        if not chunk:
            eof = True
        data += chunk


def pieces(chunks, size=64 * 1024):
    for c in chunks:
        view = memoryview(c)
        for off in range(0, len(view), size):
            yield view[off:off + size]


def send_streaming(port, head, chunks, deadline_s=ANSWER_DEADLINE_S, stall_s=3):
    """Sends `head` and then the body in 64 KiB pieces for as long as the server has not
    answered (checked before each piece) and keeps reading (a piece blocked `stall_s` ends
    the sending); then reads one answer. Returns (Answer, body bytes sent)."""
    with connect(port, timeout=REQUEST_TIMEOUT_S) as s:
        started = time.monotonic()
        sent = 0
        try:
            s.sendall(head)
            for piece in pieces(chunks):
                if select.select([s], [], [], 0)[0]:
                    break
                s.settimeout(stall_s)
                s.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        return read_answer(s, started, deadline_s), sent


def send_then_vanish(port, head, data):
    """Sends `head` and `data`, then closes the connection without reading."""
    with connect(port, timeout=REQUEST_TIMEOUT_S) as s:
        try:
            s.sendall(head + data)
        except (BrokenPipeError, ConnectionResetError):
            pass


# ---- assertions shared by the test classes ----------------------------------------------

class Base(unittest.TestCase):
    mirror = None  # the mirror the failure report shows

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        m = self.mirror or S.m
        if outcome is not None and not getattr(outcome, "success", True):
            sys.stderr.write(f"\n--- {self.id()}: last lines of {m.log_path}\n")
            sys.stderr.write("\n".join(m.log().splitlines()[-60:]) + "\n---\n")

    def assert_error(self, r, status, code, what):
        """`r` (Response or Answer) has `status` (an int or a tuple) and registry error `code`
        (None: any registry error body)."""
        statuses = status if isinstance(status, tuple) else (status,)
        codes = r.error_codes()
        self.assertIn(r.status, statuses, f"{what}: {r!r}")
        if code is None:
            self.assertTrue(codes, f"{what}: no registry error body: {r!r}")
        else:
            self.assertIn(code, codes, f"{what}: {r!r}")

    def push_chunks(self, up, data, chunk, what, start=None):
        """PATCHes data[start:] in `chunk` pieces; each must answer 202 with the new Range."""
        off = up.offset if start is None else start
        while off < len(data):
            piece = data[off:off + chunk]
            r = up.patch(piece, start=off)
            self.assertEqual(r.status, 202, f"{what}: PATCH {off}-{off + len(piece) - 1}: {r!r}")
            self.assertEqual(range_end(r.header("Range")), off + len(piece),
                             f"{what}: Range after PATCH {off}-{off + len(piece) - 1}: {r!r}")
            off += len(piece)

    def start_upload(self, url, repo, what):
        up = Upload(url, repo)
        r = up.start()
        self.assertEqual(r.status, 202, f"{what}: POST: {r!r}")
        self.assertTrue(up.location and "/blobs/uploads/" in up.location, f"{what}: {r!r}")
        self.assertTrue(r.header("Docker-Upload-UUID"), f"{what}: no Docker-Upload-UUID: {r!r}")
        return up

    def assert_committed(self, r, repo, digest, what):
        self.assertEqual(r.status, 201, f"{what}: {r!r}")
        self.assertEqual(r.header("Docker-Content-Digest"), digest, f"{what}: {r!r}")
        self.assertEqual(path_of(r.header("Location") or ""), f"/v2/{repo}/blobs/{digest}",
                         f"{what}: Location: {r!r}")

    def push(self, url, repo, data, what, chunk=None):
        """POST + PATCHes (when `chunk`) + PUT; asserts every step. Returns the digest."""
        digest = digest_of(data)
        up = self.start_upload(url, repo, what)
        if chunk:
            self.push_chunks(up, data, chunk, what)
            r = up.finish(digest)
        else:
            r = up.finish(digest, data)
        self.assert_committed(r, repo, digest, what)
        return digest

    def assert_blob_served(self, m, repo, digest, size, what):
        """HEAD and GET of the blob in `repo` answer it whole; its file hashes right."""
        r = request(m.url, "HEAD", f"/v2/{repo}/blobs/{digest}")
        self.assertEqual((r.status, r.header("Content-Length"), r.header("Docker-Content-Digest")),
                         (200, str(size), digest), f"{what}: HEAD: {r!r}")
        g = harness.stream_get(m.url, f"/v2/{repo}/blobs/{digest}", timeout=REQUEST_TIMEOUT_S)
        self.assertEqual((g.status, g.size, g.digest, g.error), (200, size, digest, None),
                         f"{what}: GET: {g!r}")
        path = hosted_path(m.root, "blobs", digest)
        self.assertTrue(os.path.isfile(path), f"{what}: {path} missing")
        self.assertEqual(harness.file_sha256(path), digest, f"{what}: {path} holds other bytes")

    def assert_blob_absent(self, m, repo, digest, what):
        r = request(m.url, "HEAD", f"/v2/{repo}/blobs/{digest}")
        self.assertEqual(r.status, 404, f"{what}: HEAD of a blob never finished: {r!r}")
        self.assertEqual(files_named(os.path.join(m.root, "hosted", "blobs"), digest[7:]), [],
                         f"{what}: a file for a blob never finished")

    def assert_hosted_blobs_hash_right(self, root, what):
        """Every file under ROOT/hosted/blobs is sha256/<hh>/<hex> and hashes to <hex>."""
        top = os.path.join(root, "hosted", "blobs")
        for dirpath, _, files in os.walk(top):
            for name in files:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, top)
                self.assertRegex(rel, r"^sha256/([0-9a-f]{2})/\1[0-9a-f]{62}$",
                                 f"{what}: stray file under hosted/blobs: {full}")
                self.assertEqual(harness.file_sha256(full), "sha256:" + name,
                                 f"{what}: {full} does not hash to its name")

    def assert_upload_holds(self, up, end, what):
        """A GET of the upload answers 204 with a Range that ends at `end` (bytes held)."""
        r = up.status()
        self.assertEqual((r.status, range_end(r.header("Range"))), (204, end), f"{what}: {r!r}")

    def assert_upload_gone(self, m, up, what):
        r = request(m.url, "GET", up.location)
        self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{what}: GET of a closed upload")
        left = [p for p in upload_paths(m.root, up.uuid) if os.path.exists(p)]
        self.assertEqual(left, [], f"{what}: the closed upload's file is left behind")


# ---- 1. SIGKILL mid-push ------------------------------------------------------------------

KILL_CHUNK = MiB + 4097
KILL_CHUNKS = 7  # six whole chunks and a half one
KILL_REPO = "test/crash/app"
RESUME, FRESH_PUT, FRESH_POST = "resume", "fresh POST+PUT", "fresh POST ?digest="
# (what, chunks acknowledged before the kill, how, how the client retries after the
# restart). The last chunk is index KILL_CHUNKS - 1.
KILL_POINTS = [
    ("after the POST", 0, "idle", RESUME),
    ("after 1 chunk", 1, "idle", RESUME),
    ("mid-body of the first PATCH", 0, "mid-patch", FRESH_PUT),
    ("after 3 chunks", 3, "idle", RESUME),
    ("mid-body of the 5th PATCH", 4, "mid-patch", RESUME),
    ("after every chunk, before the PUT", KILL_CHUNKS, "idle", FRESH_POST),
    ("mid-body of the last PATCH", KILL_CHUNKS - 1, "mid-patch", RESUME),
    ("mid-body of a closing PUT carrying the last chunk", KILL_CHUNKS - 1, "mid-put", RESUME),
    ("the closing PUT sent, its answer not read", KILL_CHUNKS, "put-sent", RESUME),
    ("the closing PUT answered 201", KILL_CHUNKS, "finished", FRESH_PUT),
]
PARTIAL_WAIT_S = 2  # for the server to store some of a half-sent body before the kill


class Killed:
    """What a round's push had done when the server was killed."""

    def __init__(self, rnd, data, up, how, acked, partial):
        self.rnd, self.data, self.up, self.how = rnd, data, up, how
        self.digest = digest_of(data)
        self.acked = acked  # bytes acknowledged by 202 answers
        self.partial = partial  # bytes of an unanswered body sent before the kill


class KillMidPush(Base):
    def test_sigkill_mid_push_ten_times(self):
        root = os.path.join(S.work, "killed", "cache")
        os.makedirs(os.path.dirname(root))
        committed = {}  # digest -> size: every blob whose push was finished
        pending = None
        for rnd in range(len(KILL_POINTS) + 1):
            what = f"round {rnd}"
            m = new_mirror("killed", root=root)
            self.mirror = m
            self.addCleanup(m.stop, signal.SIGKILL)
            t0 = time.monotonic()
            m.start()
            started_s = time.monotonic() - t0
            self.assert_hosted_blobs_hash_right(root, f"{what}: after the restart")
            for digest, size in committed.items():
                r = request(m.url, "HEAD", f"/v2/{KILL_REPO}/blobs/{digest}")
                self.assertEqual((r.status, r.header("Content-Length")), (200, str(size)),
                                 f"{what}: a blob committed before the kill: {r!r}")
            if pending is not None:
                self.check_and_retry(m, pending, KILL_POINTS[pending.rnd][3])
                committed[pending.digest] = len(pending.data)
            if rnd == len(KILL_POINTS):
                self.assertEqual(m.stop(signal.SIGTERM), 0, "SIGTERM did not exit 0")
                break
            pending = self.push_and_kill(m, rnd)
            sys.stderr.write(f"\n[kill] {what}: started in {started_s:.2f}s; killed "
                             f"{KILL_POINTS[rnd][0]} (acked {pending.acked}, partial "
                             f"{pending.partial}, stored {upload_bytes(root, pending.up.uuid)})")
        sys.stderr.write("\n")

    def push_and_kill(self, m, rnd):
        what, chunks_before, how, _ = KILL_POINTS[rnd]
        what = f"round {rnd} ({what})"
        size = (KILL_CHUNKS - 1) * KILL_CHUNK + KILL_CHUNK // 2 + 13 * rnd
        data = blob_bytes(size, seed=9100 + rnd)
        digest = digest_of(data)
        up = self.start_upload(m.url, KILL_REPO, what)
        acked = min(chunks_before * KILL_CHUNK, size)
        self.push_chunks(up, data[:acked], KILL_CHUNK, what)
        partial = 0
        sock = None
        try:
            if how in ("mid-patch", "mid-put"):
                piece = data[acked:acked + KILL_CHUNK]
                if how == "mid-patch":
                    head = raw_head("PATCH", up.location, {
                        "Content-Type": OCTET, "Content-Length": len(piece),
                        "Content-Range": f"{acked}-{acked + len(piece) - 1}"})
                else:
                    head = raw_head("PUT", with_query(up.location, "digest=" + digest),
                                    {"Content-Type": OCTET, "Content-Length": len(piece)})
                partial = len(piece) // 2
                sock = connect(m.port, timeout=REQUEST_TIMEOUT_S)
                sock.sendall(head + piece[:partial])
                try:  # let the server store some of it when it writes as it reads
                    wait_until(lambda: upload_bytes(m.root, up.uuid) > acked, PARTIAL_WAIT_S,
                               "part of the body to be stored")
                except TimeoutError:
                    pass
            elif how == "put-sent":
                sock = connect(m.port, timeout=REQUEST_TIMEOUT_S)
                sock.sendall(raw_head("PUT", with_query(up.location, "digest=" + digest),
                                      {"Content-Length": 0}))
            elif how == "finished":
                self.assert_committed(up.finish(digest), KILL_REPO, digest, what)
        finally:
            m.stop(signal.SIGKILL)
            if sock is not None:
                sock.close()
        self.assertEqual(m.proc.returncode, -signal.SIGKILL, f"{what}: not killed")
        return Killed(rnd, data, up, how, acked, partial)

    def check_and_retry(self, m, k, mode):
        what = f"retry of round {k.rnd} ({KILL_POINTS[k.rnd][0]}, {mode})"
        k.up.url = m.url  # the restarted server listens on another port
        head = request(m.url, "HEAD", f"/v2/{KILL_REPO}/blobs/{k.digest}")
        if k.how == "finished":
            self.assertEqual(head.status, 200, f"{what}: a blob answered 201 is gone: {head!r}")
        elif k.how == "put-sent":  # a file may be left by a kill inside the commit
            self.assertIn(head.status, (200, 404), f"{what}: {head!r}")
        else:
            self.assert_blob_absent(m, KILL_REPO, k.digest, what)
        done = head.status == 200
        if done:  # committed before the kill: it must be whole and right
            self.assert_blob_served(m, KILL_REPO, k.digest, len(k.data), what)

        if mode == RESUME:
            r = k.up.status()
            if done:
                self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{what}: GET of a closed upload")
                return
            if k.how == "put-sent" and r.status == 404:
                # Killed between the upload's rename into hosted/blobs and the index commit:
                # the upload is gone and the file (hashing right, checked at the start) is
                # not served; the client starts afresh.
                self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{what}: GET of the upload")
                kept = os.path.exists(hosted_path(m.root, "blobs", k.digest))
                sys.stderr.write(f"\n[kill] {what}: killed inside the commit: upload gone, "
                                 f"blob file {'kept' if kept else 'absent'}")
                self.push(m.url, KILL_REPO, k.data, f"{what}: afresh")
                self.assert_blob_served(m, KILL_REPO, k.digest, len(k.data), what)
                return
            self.assertEqual(r.status, 204, f"{what}: GET of the upload after the restart "
                             f"(uploads survive a restart): {r!r}")
            offset = range_end(r.header("Range"))
            self.assertIsNotNone(offset, f"{what}: no Range: {r!r}")
            self.assertGreaterEqual(offset, k.acked,
                                    f"{what}: acknowledged bytes lost: Range {r.header('Range')}")
            self.assertLessEqual(offset, k.acked + k.partial,
                                 f"{what}: more stored than sent: Range {r.header('Range')}")
            self.push_chunks(k.up, k.data, KILL_CHUNK, what, start=offset)
            self.assert_committed(k.up.finish(k.digest), KILL_REPO, k.digest, what)
            self.assert_upload_gone(m, k.up, what)
        else:
            if mode == FRESH_PUT:
                self.push(m.url, KILL_REPO, k.data, what)
            else:
                r = request(m.url, "POST",
                            f"/v2/{KILL_REPO}/blobs/uploads/?digest={k.digest}",
                            {"Content-Type": OCTET, "Content-Length": str(len(k.data))}, k.data)
                self.assert_committed(r, KILL_REPO, k.digest, f"{what}: POST ?digest=")
            if not done:  # the abandoned upload can still be cancelled
                r = k.up.cancel()
                self.assertEqual(r.status, 204, f"{what}: DELETE of the old upload: {r!r}")
                self.assert_upload_gone(m, k.up, what)
        self.assert_blob_served(m, KILL_REPO, k.digest, len(k.data), what)


# ---- 2. full disk ---------------------------------------------------------------------------

DF_FS = "64m"
DF_FREE_BYTES = 12 * MiB  # left free by the ballast
DF_BLOB_BYTES = 20 * MiB + 321
DF_CHUNK = 4 * MiB
DF_REPO = "test/diskfull/app"
DF_SPACE_BACK_S = 10


class DiskFull(Base):
    @classmethod
    def setUpClass(cls):
        reason = mount_refused_reason()
        if reason:
            raise unittest.SkipTest(reason)
        cls.fs = mounted_tmpfs(os.path.join(S.work, "diskfull-fs"), DF_FS, cls.addClassCleanup)
        cls.fake = FakeRegistry().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.cached = BytesBody(blob_bytes(300_000, seed=77))
        cls.fake.add_blob("diskfull/mirrored", cls.cached, OCI_LAYER)
        # --min-free 0%: the evictor must not take the cached blob the test reads back.
        cls.mirror = new_mirror("diskfull", root=os.path.join(cls.fs, "cache"),
                                upstream=cls.fake.url, extra_args=("--min-free", "0%"))
        cls.addClassCleanup(cls.mirror.stop)  # before the unmount
        cls.mirror.start()
        cls.mono = blob_bytes(DF_BLOB_BYTES, seed=31)
        cls.chunked = blob_bytes(DF_BLOB_BYTES + 1000, seed=32)
        cls.ballast = os.path.join(cls.fs, "ballast")

    def test_push_on_a_full_disk(self):
        m = self.mirror
        small = blob_bytes(64 * 1024, seed=30)
        small_digest = self.push(m.url, DF_REPO, small, "small hosted blob")
        g = harness.stream_get(m.url, f"/v2/diskfull/mirrored/blobs/{self.cached.digest}")
        self.assertEqual((g.status, g.digest), (200, self.cached.digest), f"mirror miss: {g!r}")
        cached_path = harness.cache_object_path(m.root, "blob", self.cached.digest)
        wait_until(lambda: os.path.exists(cached_path), 10, "the mirrored blob to be cached")

        with open(self.ballast, "wb") as f:
            left = free_bytes(self.fs) - DF_FREE_BYTES
            block = b"\0" * MiB
            while left > 0:
                left -= f.write(block[:min(left, MiB)])
        free_before = free_bytes(self.fs)
        sys.stderr.write(f"\n[diskfull] {free_before >> 10} KiB free for a "
                         f"{DF_BLOB_BYTES >> 10} KiB push\n")

        def still_serving(what):
            r = request(m.url, "GET", "/v2/")
            self.assertEqual(r.status, 200, f"{what}: /v2/: {r!r}")
            g = harness.stream_get(m.url, f"/v2/{DF_REPO}/blobs/{small_digest}")
            self.assertEqual((g.status, g.digest), (200, small_digest), f"{what}: hosted: {g!r}")
            g = harness.stream_get(m.url, f"/v2/diskfull/mirrored/blobs/{self.cached.digest}")
            self.assertEqual((g.status, g.digest, g.headers.get("x-hubcache-cache")),
                             (200, self.cached.digest, "hit"), f"{what}: cached: {g!r}")

        def space_back(what):
            try:
                wait_until(lambda: free_bytes(self.fs) >= free_before - MiB, DF_SPACE_BACK_S,
                           "the space of the failed push to come back")
            except TimeoutError:
                self.fail(f"{what}: {free_bytes(self.fs)} bytes free, {free_before} before the "
                          f"push: the failed upload's bytes are still held "
                          f"({harness.dir_entries(os.path.join(m.root, 'hosted', 'uploads'))})")

        # A monolithic PUT bigger than the free space.
        what = "monolithic PUT on a full disk"
        digest = digest_of(self.mono)
        up = self.start_upload(m.url, DF_REPO, what)
        head = raw_head("PUT", with_query(up.location, "digest=" + digest),
                        {"Content-Type": OCTET, "Content-Length": len(self.mono)})
        a, sent = send_streaming(m.port, head, [self.mono])
        self.assertTrue(a.status is not None and 500 <= a.status < 600,
                        f"{what}: want a 5xx after {sent} bytes sent: {a!r}")
        self.assert_error(a, a.status, None, what)
        sys.stderr.write(f"[diskfull] {what}: {a.status} {a.body[:200]!r} after {sent} bytes\n")
        self.assert_blob_absent(m, DF_REPO, digest, what)
        r = up.status()
        self.assertIn(r.status, (204, 404), f"{what}: GET of the upload: {r!r}")
        if r.status == 204:
            self.assertEqual(up.cancel().status, 204, f"{what}: DELETE of the upload")
        space_back(what)
        still_serving(what)

        # The same as one POST ?digest=: the server discards what it wrote.
        what = "POST ?digest= on a full disk"
        uploads = harness.dir_entries(os.path.join(m.root, "hosted", "uploads"))
        head = raw_head("POST", f"/v2/{DF_REPO}/blobs/uploads/?digest={digest}",
                        {"Content-Type": OCTET, "Content-Length": len(self.mono)})
        a, sent = send_streaming(m.port, head, [self.mono])
        self.assertTrue(a.status is not None and 500 <= a.status < 600,
                        f"{what}: want a 5xx after {sent} bytes sent: {a!r}")
        self.assert_error(a, a.status, None, what)
        self.assert_blob_absent(m, DF_REPO, digest, what)
        space_back(what)
        self.assertEqual(harness.dir_entries(os.path.join(m.root, "hosted", "uploads")), uploads,
                         f"{what}: an upload was left behind")
        still_serving(what)

        # The same in PATCHes: one of them fails.
        what = "chunked push on a full disk"
        digest2 = digest_of(self.chunked)
        up2 = self.start_upload(m.url, DF_REPO, what)
        failed = None
        for off in range(0, len(self.chunked), DF_CHUNK):
            piece = self.chunked[off:off + DF_CHUNK]
            head = raw_head("PATCH", up2.location, {
                "Content-Type": OCTET, "Content-Length": len(piece),
                "Content-Range": f"{off}-{off + len(piece) - 1}"})
            a, sent = send_streaming(m.port, head, [piece])
            if a.status != 202:
                failed = (off, a, sent)
                break
            self.assertEqual(range_end(a.headers.get("range")), off + len(piece), f"{what}: {a!r}")
            up2.offset = off + len(piece)
            if a.headers.get("location"):
                up2.location = path_of(a.headers["location"])
        self.assertIsNotNone(failed, f"{what}: every PATCH succeeded on a full disk")
        off, a, sent = failed
        self.assertTrue(a.status is not None and 500 <= a.status < 600,
                        f"{what}: the PATCH at {off} ({sent} bytes sent): want a 5xx: {a!r}")
        self.assert_error(a, a.status, None, what)
        sys.stderr.write(f"[diskfull] {what}: {a.status} {a.body[:200]!r} for the PATCH at "
                         f"{off}, after {sent} bytes\n")
        self.assert_blob_absent(m, DF_REPO, digest2, what)
        still_serving(what)

        # Not a byte left: a small blob and a manifest cannot be stored either.
        with open(self.ballast, "ab") as f:
            try:
                for _ in range(64):
                    f.write(b"\0" * MiB)
                    f.flush()
            except OSError:
                pass
        what = "a completely full disk"
        tiny = blob_bytes(100_000, seed=33)
        r = request(m.url, "POST", f"/v2/{DF_REPO}/blobs/uploads/?digest={digest_of(tiny)}",
                    {"Content-Type": OCTET, "Content-Length": str(len(tiny))}, tiny)
        self.assertTrue(500 <= r.status < 600, f"{what}: POST ?digest= of 100 kB: {r!r}")
        self.assert_error(r, r.status, None, what)
        self.assert_blob_absent(m, DF_REPO, digest_of(tiny), what)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": small_digest, "size": len(small)},
            "layers": [{"mediaType": OCI_LAYER, "digest": small_digest, "size": len(small)}],
            "annotations": {"pad": "p" * 200_000}}).encode()
        r = request(m.url, "PUT", f"/v2/{DF_REPO}/manifests/full",
                    {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))},
                    manifest)
        self.assertTrue(500 <= r.status < 600, f"{what}: manifest PUT: {r!r}")
        self.assert_error(r, r.status, None, what)
        r = request(m.url, "GET", f"/v2/{DF_REPO}/manifests/full", {"Accept": OCI_MANIFEST})
        self.assertEqual(r.status, 404, f"{what}: a manifest that failed to store: {r!r}")
        still_serving(what)

        os.unlink(self.ballast)
        what = "after freeing space"
        r = up2.status()
        sys.stderr.write(f"[diskfull] {what}: the chunked upload: {r.status} "
                         f"Range {r.header('Range')}\n")
        if r.status == 204:
            offset = range_end(r.header("Range"))
            self.assertIsNotNone(offset, f"{what}: {r!r}")
            self.assertLessEqual(offset, off + sent, f"{what}: more stored than sent: {r!r}")
            self.push_chunks(up2, self.chunked, DF_CHUNK, f"{what}: resume", start=offset)
            self.assert_committed(up2.finish(digest2), DF_REPO, digest2, f"{what}: resume")
        else:
            self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{what}: GET of the failed upload")
            self.push(m.url, DF_REPO, self.chunked, f"{what}: chunked", chunk=DF_CHUNK)
        self.push(m.url, DF_REPO, self.mono, f"{what}: monolithic")
        self.push(m.url, DF_REPO, tiny, f"{what}: 100 kB")
        self.assert_blob_served(m, DF_REPO, digest, len(self.mono), what)
        self.assert_blob_served(m, DF_REPO, digest2, len(self.chunked), what)
        r = request(m.url, "PUT", f"/v2/{DF_REPO}/manifests/full",
                    {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(manifest))},
                    manifest)
        self.assertEqual((r.status, r.header("Docker-Content-Digest")),
                         (201, digest_of(manifest)), f"{what}: manifest PUT: {r!r}")
        still_serving(what)
        self.assertEqual(harness.dir_entries(os.path.join(m.root, "hosted", "uploads")), [],
                         f"{what}: uploads left behind")


def interrupted_cleanup():
    """For a run cut short (SIGTERM): unmount DiskFull's tmpfs, then remove the work dir
    (the module cleanup could not remove the mount point)."""
    for path in reversed(test_disk_full._mounts):
        umount(path)
    work = getattr(S, "work", None)
    if work and not os.environ.get("HUBCACHE_KEEP_TMP"):
        shutil.rmtree(work, ignore_errors=True)


# ---- 3. memory ------------------------------------------------------------------------------

# Under ASan (scripts/sanitize.sh) RSS measures the sanitizer's shadow memory, not
# ours (test_memory.py is skipped there for that reason): the same pushes run with
# 64 MiB for the sanitizer's sake, and the RSS bound is checked in the plain run.
SANITIZED = "ASAN_OPTIONS" in os.environ or "UBSAN_OPTIONS" in os.environ
MEM_BYTES = (64 << 20) if SANITIZED else (1 << 30)
MEM_CHUNK = (4 if SANITIZED else 64) * MiB
MEM_RSS_LIMIT_KIB = 48 * 1024
MEM_DEADLINE_S = 120


class Memory(Base):
    @classmethod
    def setUpClass(cls):
        t0 = time.monotonic()
        cls.body = GeneratedBody(MEM_BYTES, seed=20250101)
        sys.stderr.write(f"\n[memory] generated+hashed 1 GiB in {time.monotonic() - t0:.1f}s\n")
        cls.mirror = new_mirror("memory")
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()
        cls.start_kib = cls.mirror.peak_rss_kib()

    def assert_rss(self, when):
        peak = self.mirror.peak_rss_kib()
        sys.stderr.write(f"[memory] {when}: VmHWM {peak} KiB (at start {self.start_kib} KiB)\n")
        if not SANITIZED:
            self.assertLess(peak, MEM_RSS_LIMIT_KIB, f"{when}: peak RSS {peak} KiB")

    def test_1_monolithic_put(self):
        m, what = self.mirror, "1 GiB monolithic PUT"
        up = self.start_upload(m.url, "test/mem/mono", what)
        t0 = time.monotonic()
        r = up.finish(self.body.digest, self.body.chunks(0, MEM_BYTES), length=MEM_BYTES)
        sys.stderr.write(f"[memory] {what} in {time.monotonic() - t0:.1f}s\n")
        self.assert_committed(r, "test/mem/mono", self.body.digest, what)
        self.assert_rss(f"after the {what}")

    def test_2_chunked_patches(self):
        m, what = self.mirror, "1 GiB in 64 MiB PATCHes"
        up = self.start_upload(m.url, "test/mem/chunked", what)
        t0 = time.monotonic()
        for i, off in enumerate(range(0, MEM_BYTES, MEM_CHUNK)):
            # Every other PATCH chunked-encoded (as docker streams), the rest by Content-Length.
            r = up.patch(self.body.chunks(off, off + MEM_CHUNK), start=off, length=MEM_CHUNK,
                         chunked=i % 2 == 1)
            self.assertEqual((r.status, range_end(r.header("Range"))), (202, off + MEM_CHUNK),
                             f"{what}: PATCH at {off}: {r!r}")
        r = up.finish(self.body.digest)
        sys.stderr.write(f"[memory] {what} in {time.monotonic() - t0:.1f}s\n")
        self.assert_committed(r, "test/mem/chunked", self.body.digest, what)
        self.assert_rss(f"after the {what}")

    def test_3_read_back(self):
        m = self.mirror
        g = harness.stream_get(m.url, f"/v2/test/mem/chunked/blobs/{self.body.digest}",
                               timeout=REQUEST_TIMEOUT_S, deadline_s=MEM_DEADLINE_S)
        self.assertEqual((g.status, g.size, g.digest, g.error),
                         (200, MEM_BYTES, self.body.digest, None), f"GET: {g!r}")
        r = request(m.url, "HEAD", f"/v2/test/mem/mono/blobs/{self.body.digest}")
        self.assertEqual((r.status, r.header("Content-Length")), (200, str(MEM_BYTES)), r)
        self.assertEqual(len(files_named(os.path.join(m.root, "hosted", "blobs"),
                                         self.body.digest[7:])), 1, "stored more than once")
        self.assert_rss("after reading it back")


# ---- 4. concurrent pushes of one blob -------------------------------------------------------

class Concurrent(Base):
    def run_pushes(self, data, repos, kinds, what):
        """One thread per repo pushes `data` (kind "chunked" or "monolithic"); every thread
        holds its closing request until all are ready. Returns {repo: Response}."""
        digest = digest_of(data)
        barrier = threading.Barrier(len(repos), timeout=REQUEST_TIMEOUT_S)
        results = {}

        def one(repo, kind):
            try:
                if kind == "chunked":
                    up = Upload(S.m.url, repo)
                    r = up.start()
                    if r.status != 202:
                        results[repo] = r
                        barrier.abort()
                        return
                    for off in range(0, len(data), MiB):
                        r = up.patch(data[off:off + MiB], start=off)
                        if r.status != 202:
                            results[repo] = r
                            barrier.abort()
                            return
                    barrier.wait()
                    results[repo] = (up.finish(digest), up)
                else:
                    barrier.wait()
                    results[repo] = (request(S.m.url, "POST",
                                             f"/v2/{repo}/blobs/uploads/?digest={digest}",
                                             {"Content-Type": OCTET,
                                              "Content-Length": str(len(data))}, data), None)
            except BaseException as e:  # reported by the main thread
                results[repo] = e
                barrier.abort()

        threads = [threading.Thread(target=one, args=(repo, kind), daemon=True)
                   for repo, kind in zip(repos, kinds)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=3 * REQUEST_TIMEOUT_S)
        self.assertFalse(any(t.is_alive() for t in threads), f"{what}: a push hangs")
        for repo in repos:
            got = results.get(repo)
            if isinstance(got, BaseException):
                raise AssertionError(f"{what}: push to {repo} raised") from got
            self.assertIsInstance(got, tuple, f"{what}: push to {repo} failed: {got!r}")
            r, up = got
            self.assert_committed(r, repo, digest, f"{what}: push to {repo}")
            if up is not None:
                self.assert_upload_gone(S.m, up, f"{what}: {repo}")
        blobs = files_named(os.path.join(S.m.root, "hosted", "blobs"), digest[7:])
        self.assertEqual(len(blobs), 1, f"{what}: want one file for the blob: {blobs}")
        for repo in repos:
            self.assert_blob_served(S.m, repo, digest, len(data), f"{what}: {repo}")

    def test_two_chunked(self):
        self.run_pushes(blob_bytes(5 * MiB + 11, 41), ["test/conc/a", "test/conc/b"],
                        ["chunked", "chunked"], "two chunked pushes")

    def test_two_monolithic(self):
        self.run_pushes(blob_bytes(5 * MiB + 12, 42), ["test/conc/a", "test/conc/b"],
                        ["monolithic", "monolithic"], "two monolithic pushes")

    def test_chunked_and_monolithic(self):
        self.run_pushes(blob_bytes(5 * MiB + 13, 43), ["test/conc/a", "test/conc/b"],
                        ["chunked", "monolithic"], "a chunked and a monolithic push")

    def test_six_repositories(self):
        repos = [f"test/conc/six{i}" for i in range(6)]
        self.run_pushes(blob_bytes(3 * MiB + 14, 44), repos,
                        ["chunked", "monolithic"] * 3, "six pushes")


# ---- 5. hostile uploads ---------------------------------------------------------------------

H_REPO = "test/hostile/app"
H_OTHER = "test/hostile/other"


class Hostile(Base):
    def setUp(self):
        self.before = hosted_files(S.m.root)

    def assert_nothing_left(self, what, *digests):
        self.assertEqual(hosted_files(S.m.root), self.before,
                         f"{what}: ROOT/hosted changed")
        for d in digests:
            self.assert_blob_absent(S.m, H_REPO, d, what)

    def uploads(self):
        return harness.dir_entries(os.path.join(S.m.root, "hosted", "uploads"))

    def assert_open_or_gone(self, up, what):
        """The upload still answers 204, or it is gone whole: 404 and no file."""
        r = up.status()
        self.assertIn(r.status, (204, 404), f"{what}: GET of the upload: {r!r}")
        if r.status == 404:
            self.assert_upload_gone(S.m, up, what)

    def test_wrong_digest_on_put(self):
        data, other = blob_bytes(300_000, 51), blob_bytes(300_000, 52)
        up = self.start_upload(S.m.url, H_REPO, "wrong digest")
        self.push_chunks(up, data, 100_000, "wrong digest")
        r = up.finish(digest_of(other))
        self.assert_error(r, 400, "DIGEST_INVALID", "PUT with the digest of other bytes")
        self.assert_open_or_gone(up, "after DIGEST_INVALID")
        r = up.finish(digest_of(other), data)  # if still open: the bytes then do not match
        self.assertIn(r.status, (400, 404), f"second PUT: {r!r}")
        self.assert_nothing_left("wrong digest on PUT", digest_of(data), digest_of(other))

        uploads = self.uploads()
        r = request(S.m.url, "POST", f"/v2/{H_REPO}/blobs/uploads/?digest={digest_of(other)}",
                    {"Content-Type": OCTET, "Content-Length": str(len(data))}, data)
        self.assert_error(r, 400, "DIGEST_INVALID", "POST ?digest= with other bytes")
        self.assert_nothing_left("wrong digest on POST", digest_of(data), digest_of(other))
        self.assertEqual(self.uploads(), uploads, "POST ?digest= left an upload behind")

    def test_content_range_gaps_and_overlaps(self):
        data = blob_bytes(3000, 53)
        what = "Content-Range"
        up = self.start_upload(S.m.url, H_REPO, what)
        r = up.patch(data[1:1001], start=1)
        self.assert_error(r, 416, None, "first chunk starting at 1")
        self.assert_upload_holds(up, 0, "after the 416: it stored something")
        self.push_chunks(up, data[:1000], 1000, what)
        for start, name in ((1100, "gap"), (500, "overlap"), (0, "overlap from 0"),
                            (999, "overlap by one byte")):
            r = up.patch(data[start:start + 1000], start=start)
            self.assert_error(r, 416, None, f"{name}: PATCH {start}-{start + 999} at 1000")
            self.assert_upload_holds(up, 1000, f"{name}: the upload after the 416")
        self.assert_nothing_left(what, digest_of(data))
        self.push_chunks(up, data, 1000, what)
        self.assert_committed(up.finish(digest_of(data)), H_REPO, digest_of(data), what)
        self.assert_blob_served(S.m, H_REPO, digest_of(data), len(data), what)

    def test_malformed_and_inconsistent_content_range(self):
        data = blob_bytes(3000, 65)
        what = "bad Content-Range"
        up = self.start_upload(S.m.url, H_REPO, what)
        self.push_chunks(up, data[:1000], 1000, what)
        base = {"Content-Type": OCTET, "Content-Length": "1000"}
        for value in ("abc", "1999-1000", "-1000", "1000-", "1000-1998", "1000-2000"):
            r = request(S.m.url, "PATCH", up.location, dict(base, **{"Content-Range": value}),
                        data[1000:2000])
            self.assert_error(r, (400, 416), None, f"Content-Range {value!r} on 1000 bytes")
            self.assert_upload_holds(up, 1000,
                                     f"Content-Range {value!r}: the upload after the refusal")
        self.assert_nothing_left(what, digest_of(data))
        self.push_chunks(up, data, 1000, what)
        self.assert_committed(up.finish(digest_of(data)), H_REPO, digest_of(data), what)

    def test_two_requests_on_one_upload_at_once(self):
        # A PATCH is mid-body when a second PATCH (same offset), and then a closing PUT,
        # arrive on the same upload: both are refused (416) at once; the first chunk lands.
        data = blob_bytes(2 * MiB, 66)
        digest = digest_of(data)
        what = "two requests on one upload"
        up = self.start_upload(S.m.url, H_REPO, what)
        first = data[:MiB]
        head = raw_head("PATCH", up.location, {"Content-Type": OCTET, "Content-Length": MiB,
                                               "Content-Range": f"0-{MiB - 1}"})
        with connect(S.m.port, timeout=REQUEST_TIMEOUT_S) as a:
            a.sendall(head + first[:MiB // 2])
            wait_until(lambda: upload_bytes(S.m.root, up.uuid) > 0, 10,
                       "the first PATCH to be writing")
            r = up.patch(data[:1000], start=0)
            self.assert_error(r, 416, None, f"{what}: a second PATCH at 0")
            r = up.finish(digest, data)
            self.assert_error(r, 416, None, f"{what}: a closing PUT with the whole blob")
            self.assert_nothing_left(what, digest)
            started = time.monotonic()
            a.sendall(first[MiB // 2:])
            answer = read_answer(a, started)
        self.assertEqual((answer.status, range_end(answer.headers.get("range"))), (202, MiB),
                         f"{what}: the first PATCH: {answer!r}")
        self.push_chunks(up, data, MiB, what, start=MiB)
        self.assert_committed(up.finish(digest), H_REPO, digest, what)
        self.assert_blob_served(S.m, H_REPO, digest, len(data), what)

    def test_requests_after_the_finish(self):
        data = blob_bytes(200_000, 54)
        what = "after the finish"
        up = self.start_upload(S.m.url, H_REPO, what)
        self.push_chunks(up, data, 100_000, what)
        self.assert_committed(up.finish(digest_of(data)), H_REPO, digest_of(data), what)
        self.before = hosted_files(S.m.root)
        more = blob_bytes(1000, 55)
        r = up.patch(more, start=len(data))
        self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", "PATCH after the finish")
        r = up.patch(more, content_range=False)
        self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", "PATCH without Content-Range")
        r = up.finish(digest_of(data + more), more)
        self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", "PUT after the finish")
        self.assert_error(up.status(), 404, "BLOB_UPLOAD_UNKNOWN", "GET after the finish")
        self.assert_error(up.cancel(), 404, "BLOB_UPLOAD_UNKNOWN", "DELETE after the finish")
        self.assert_nothing_left(what, digest_of(data + more))
        self.assert_blob_served(S.m, H_REPO, digest_of(data), len(data), what)

    def test_bodies_cut_short_then_closed(self):
        half = MiB
        # A PATCH announcing 64 MiB (or chunked) that sends 1 MiB, then the client vanishes.
        for seed, framing in ((60, "content-length"), (61, "chunked")):
            data = blob_bytes(2 * MiB + 5, seed)
            what = f"PATCH cut short ({framing})"
            up = self.start_upload(S.m.url, H_REPO, what)
            self.push_chunks(up, data[:half], half, what)
            piece = data[half:2 * half]
            if framing == "content-length":
                head = raw_head("PATCH", up.location, {
                    "Content-Type": OCTET, "Content-Length": 64 * MiB,
                    "Content-Range": f"{half}-{half + 64 * MiB - 1}"})
                send_then_vanish(S.m.port, head, piece)
            else:
                head = raw_head("PATCH", up.location, {"Content-Type": OCTET,
                                                       "Transfer-Encoding": "chunked"})
                send_then_vanish(S.m.port, head, b"%x\r\n" % (64 * MiB) + piece)
            self.resume_or_gone(up, data, half, len(piece), what)

        # A closing PUT carrying every byte of the blob (they hash to the digest) under a
        # Content-Length 1 MiB larger, or chunked without its last chunk: the body never
        # ended, so nothing may be committed.
        for seed, framing in ((62, "content-length"), (63, "chunked")):
            data = blob_bytes(2 * MiB + 5, seed)
            digest = digest_of(data)
            what = f"PUT cut short ({framing})"
            up = self.start_upload(S.m.url, H_REPO, what)
            path = with_query(up.location, "digest=" + digest)
            if framing == "content-length":
                head = raw_head("PUT", path, {"Content-Type": OCTET,
                                              "Content-Length": len(data) + MiB})
                send_then_vanish(S.m.port, head, data)
            else:
                head = raw_head("PUT", path, {"Content-Type": OCTET,
                                              "Transfer-Encoding": "chunked"})
                send_then_vanish(S.m.port, head, b"%x\r\n" % len(data) + data + b"\r\n")
            self.resume_or_gone(up, data, 0, len(data), what)

        # The same for a monolithic POST ?digest=.
        uploads = self.uploads()
        data = blob_bytes(2 * MiB + 5, 64)
        what = "POST ?digest= cut short"
        head = raw_head("POST", f"/v2/{H_REPO}/blobs/uploads/?digest={digest_of(data)}",
                        {"Content-Type": OCTET, "Content-Length": len(data) + MiB})
        send_then_vanish(S.m.port, head, data)
        self.settle()
        self.assert_nothing_left(what, digest_of(data))
        self.assertEqual(self.uploads(), uploads, f"{what}: an upload was left behind")

    def settle(self):
        """A bounded pause for the server to see the closed connection (there is no event
        to wait for: nothing may change), then it must still serve."""
        time.sleep(0.5)
        self.assertEqual(request(S.m.url, "GET", "/v2/").status, 200)

    def resume_or_gone(self, up, data, acked, sent, what):
        """After a body cut short: nothing committed; the upload is either gone (404
        BLOB_UPLOAD_UNKNOWN) or resumable from a Range within what was sent, and then
        finishes right."""
        digest = digest_of(data)
        self.settle()
        self.assert_nothing_left(what, digest)
        r = up.status()
        if r.status == 404:
            self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{what}: upload gone")
            self.assert_upload_gone(S.m, up, what)
            return
        self.assertEqual(r.status, 204, f"{what}: GET of the upload: {r!r}")
        offset = range_end(r.header("Range"))
        self.assertIsNotNone(offset, f"{what}: {r!r}")
        self.assertTrue(acked <= offset <= acked + sent,
                        f"{what}: Range {r.header('Range')} outside {acked}..{acked + sent}")
        self.push_chunks(up, data, MiB, f"{what}: resume", start=offset)
        self.assert_committed(up.finish(digest), H_REPO, digest, f"{what}: resume")
        self.assert_blob_served(S.m, H_REPO, digest, len(data), what)
        self.before = hosted_files(S.m.root)

    def test_upload_id_of_another_repository(self):
        data = blob_bytes(5000, 57)
        what = "another repository's upload"
        up = self.start_upload(S.m.url, H_REPO, what)
        self.push_chunks(up, data[:1000], 1000, what)
        foreign = up.location.replace(f"/v2/{H_REPO}/", f"/v2/{H_OTHER}/", 1)
        self.assertNotEqual(foreign, up.location)
        h = {"Content-Type": OCTET, "Content-Length": "1000", "Content-Range": "1000-1999"}
        for method, path, headers, body in (
                ("GET", foreign, {}, None),
                ("PATCH", foreign, h, data[1000:2000]),
                ("PUT", with_query(foreign, "digest=" + digest_of(data[:1000])),
                 {"Content-Length": "0"}, b""),
                ("DELETE", foreign, {}, None)):
            r = request(S.m.url, method, path, headers, body)
            self.assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN", f"{method} through {H_OTHER}")
        self.assert_upload_holds(up, 1000, "the upload after the foreign requests")
        self.assert_nothing_left(what, digest_of(data[:1000]))
        self.assertEqual(request(S.m.url, "HEAD",
                                 f"/v2/{H_OTHER}/blobs/{digest_of(data[:1000])}").status, 404)
        self.push_chunks(up, data, 1000, what)
        self.assert_committed(up.finish(digest_of(data)), H_REPO, digest_of(data), what)

    def test_malformed_upload_ids(self):
        outside = os.listdir(S.work)
        for bad in ("not-a-uuid", "..", "..%2F..%2F..%2Fetc", "%2e%2e", "x" * 300,
                    "00000000-0000-0000-0000-000000000000", "%00", "a%2Fb"):
            path = f"/v2/{H_REPO}/blobs/uploads/{bad}"
            for method, headers, body in (
                    ("GET", {}, None),
                    ("PATCH", {"Content-Type": OCTET, "Content-Length": "3",
                               "Content-Range": "0-2"}, b"abc"),
                    ("PUT", {"Content-Length": "3"}, b"abc"),
                    ("DELETE", {}, None)):
                p = with_query(path, "digest=" + digest_of(b"abc")) if method == "PUT" else path
                r = request(S.m.url, method, p, headers, body)
                self.assertIn(r.status, (400, 404), f"{method} {p}: {r!r}")
                self.assertTrue(set(r.error_codes()) & {"BLOB_UPLOAD_UNKNOWN",
                                                         "BLOB_UPLOAD_INVALID", "NAME_INVALID"},
                                f"{method} {p}: {r!r}")
        self.assertEqual(sorted(os.listdir(S.work)), sorted(outside), "a file was created")
        self.assert_nothing_left("malformed upload ids", digest_of(b"abc"))

    def test_refused_large_body_sent_whole_still_gets_its_answer(self):
        # A client that writes its whole body before reading (http.client, curl without
        # Expect) still reads the refusal: the server drains what it sends after the answer
        # instead of resetting the connection under it.
        body = b"\0" * (8 * MiB)
        path = f"/v2/{H_REPO}/blobs/uploads/00000000-0000-0000-0000-000000000000"
        for attempt in range(3):
            with connect(S.m.port, timeout=REQUEST_TIMEOUT_S) as s:
                started = time.monotonic()
                s.sendall(raw_head("PATCH", path, {"Content-Type": OCTET,
                                                   "Content-Length": len(body)}) + body)
                a = read_answer(s, started)
            self.assert_error(a, 404, "BLOB_UPLOAD_UNKNOWN",
                              f"an 8 MiB PATCH to an unknown upload, attempt {attempt}")
        self.assert_nothing_left("refused 8 MiB PATCHes")

    def test_malformed_digests(self):
        data = blob_bytes(1000, 58)
        hexd = digest_of(data)[7:]
        for bad in ("sha256:abc", "sha256:" + hexd.upper(), "sha256:" + hexd + "0",
                    "md5:0123456789abcdef0123456789abcdef", "sha256", hexd,
                    "sha256:" + hexd[:-2] + "%2F..", "sha256:" + "g" * 64, ""):
            what = f"PUT ?digest={bad!r}"
            up = self.start_upload(S.m.url, H_REPO, what)
            self.push_chunks(up, data, 1000, what)
            r = request(S.m.url, "PUT", with_query(up.location, "digest=" + bad),
                        {"Content-Length": "0"}, b"")
            self.assert_error(r, 400, "DIGEST_INVALID", what)
            up.cancel()
        up = self.start_upload(S.m.url, H_REPO, "PUT without ?digest=")
        self.push_chunks(up, data, 1000, "PUT without ?digest=")
        r = request(S.m.url, "PUT", up.location, {"Content-Length": "0"}, b"")
        self.assert_error(r, 400, "DIGEST_INVALID", "PUT without ?digest=")
        up.cancel()
        for bad in ("sha256:abc", "sha256:" + hexd.upper(), "md5:" + hexd[:32]):
            r = request(S.m.url, "GET", f"/v2/{H_REPO}/blobs/{bad}")
            self.assertIn(r.status, (400, 404), f"GET blob {bad}: {r!r}")
            r = request(S.m.url, "POST", f"/v2/{H_REPO}/blobs/uploads/?digest={bad}",
                        {"Content-Type": OCTET, "Content-Length": str(len(data))}, data)
            self.assert_error(r, 400, "DIGEST_INVALID", f"POST ?digest={bad}")
        self.assert_nothing_left("malformed digests", digest_of(data))

    # -- manifests --

    def pushed_image(self):
        """A config and a layer pushed into H_REPO; returns their descriptors."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        layer = blob_bytes(20_000, 59)
        for b in (config, layer):
            self.push(S.m.url, H_REPO, b, "image blob")
        self.before = hosted_files(S.m.root)
        return ({"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                {"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)})

    @staticmethod
    def manifest(config, layers, pad_to=None):
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
        raw = json.dumps(m).encode()
        if pad_to is not None:
            m["annotations"] = {"pad": ""}
            base = len(json.dumps(m).encode())
            m["annotations"]["pad"] = "x" * (pad_to - base)
            raw = json.dumps(m).encode()
            assert len(raw) == pad_to, (len(raw), pad_to)
        return raw

    def put_manifest(self, ref, raw, repo=H_REPO):
        return request(S.m.url, "PUT", f"/v2/{repo}/manifests/{ref}",
                       {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(raw))}, raw)

    def assert_no_manifest(self, ref, what):
        r = request(S.m.url, "GET", f"/v2/{H_REPO}/manifests/{ref}",
                    {"Accept": harness.ACCEPT_ALL})
        self.assert_error(r, 404, "MANIFEST_UNKNOWN", f"{what}: GET {ref}")

    def test_manifest_referencing_missing_blobs(self):
        config, layer = self.pushed_image()
        missing = {"mediaType": OCI_LAYER, "digest": digest_of(b"never pushed"), "size": 12}
        missing_config = dict(config, digest=digest_of(b"no such config"))
        for name, raw in (("missing layer", self.manifest(config, [layer, missing])),
                          ("missing config", self.manifest(missing_config, [layer]))):
            r = self.put_manifest("missing", raw)
            self.assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN", name)
            r = self.put_manifest(digest_of(raw), raw)
            self.assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN", f"{name} by digest")
            self.assert_no_manifest("missing", name)
            self.assert_no_manifest(digest_of(raw), name)
            self.assert_nothing_left(name)
        raw = self.manifest(config, [layer])
        r = self.put_manifest("complete", raw)
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (201, digest_of(raw)),
                         f"the same image with every blob: {r!r}")

    def test_manifest_size_limit(self):
        config, layer = self.pushed_image()
        raw = self.manifest(config, [layer], pad_to=MANIFEST_MAX_BYTES)
        r = self.put_manifest("max", raw)
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (201, digest_of(raw)),
                         f"a manifest of exactly 4 MiB: {r!r}")
        self.before = hosted_files(S.m.root)

        over = self.manifest(config, [layer], pad_to=MANIFEST_MAX_BYTES + 1)
        path = f"/v2/{H_REPO}/manifests/over"
        a, _ = send_streaming(S.m.port, raw_head("PUT", path, {
            "Content-Type": OCI_MANIFEST, "Content-Length": len(over)}), [over])
        self.assert_error(a, (400, 413), None, "a manifest of 4 MiB + 1")
        a, _ = send_streaming(S.m.port, raw_head("PUT", path, {
            "Content-Type": OCI_MANIFEST, "Transfer-Encoding": "chunked"}),
            [b"%x\r\n" % len(over) + over + b"\r\n0\r\n\r\n"])
        self.assert_error(a, (400, 413), None, "a chunked manifest of 4 MiB + 1")
        t0 = time.monotonic()
        a, sent = send_streaming(S.m.port, raw_head("PUT", path, {
            "Content-Type": OCI_MANIFEST, "Content-Length": 5 << 30}),
            [over[:MiB]] + [b" " * MiB] * 63)
        self.assert_error(a, (400, 413), None, "a manifest announcing 5 GiB")
        self.assertLess(time.monotonic() - t0, 8, f"answered only after {sent} bytes")
        self.assert_no_manifest("over", "oversized manifests")
        self.assert_nothing_left("oversized manifests")

    def test_manifest_put_by_wrong_digest(self):
        config, layer = self.pushed_image()
        raw = self.manifest(config, [layer])
        other = digest_of(raw + b"\n")
        r = self.put_manifest(other, raw)
        self.assert_error(r, 400, "DIGEST_INVALID", "manifest PUT by another digest")
        self.assert_no_manifest(other, "wrong digest")
        self.assert_no_manifest(digest_of(raw), "wrong digest")
        self.assert_nothing_left("manifest by wrong digest")
        r = self.put_manifest(digest_of(raw), raw)
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (201, digest_of(raw)),
                         f"the same manifest by its own digest: {r!r}")

    def test_manifest_put_under_a_malformed_tag(self):
        config, layer = self.pushed_image()
        # Padded: a manifest no other test of this class pushes.
        raw = self.manifest(config, [layer], pad_to=len(self.manifest(config, [layer])) + 64)
        for tag in ("-x", ".hidden", "t" * 129, "a%20b", "%2e%2e"):
            r = self.put_manifest(tag, raw)
            self.assert_error(r, 400, "TAG_INVALID", f"manifest PUT under tag {tag!r}")
        self.assert_no_manifest(digest_of(raw), "malformed tags")
        self.assert_nothing_left("manifest PUT under malformed tags")
        r = self.put_manifest("t" * 128, raw)
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (201, digest_of(raw)),
                         f"the same manifest under a 128-character tag: {r!r}")

    def test_push_to_a_mirrored_name_is_denied(self):
        r = request(S.m.url, "POST", "/v2/library/alpine/blobs/uploads/",
                    {"Content-Length": "0"}, b"")
        self.assert_error(r, 403, "DENIED", "POST to a mirrored repository")
        self.assertIn("HUBCACHE_HOSTED", r.body.decode(errors="replace"), r)
        self.assert_nothing_left("push to a mirrored name")


if __name__ == "__main__":
    harness.run_module(__file__, last_resort=[interrupted_cleanup])
