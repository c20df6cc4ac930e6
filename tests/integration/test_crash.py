#!/usr/bin/env python3
"""kill -9 at any moment leaves a cache that the next start reconciles cleanly.

A fake upstream (fake_upstream.FakeRegistry) serves ten generated blobs (3-8 MiB, odd sizes)
throttled to FILL_RATE bytes/s, so fills are always in flight, plus two manifests that use
them (about 55 MiB in all). The mirror is capped at 16 MiB, so the evictor runs in the later
rounds, and it flushes last-use times every 100 ms.

  KillDuringFills  ROUNDS times: start on the same root, check the start (one `cache opened:`
                   line whose temp_removed counts the temp files the kill left, tmp/ empty,
                   every file in blobs/ and manifests/ hashing to its name, entries= and bytes=
                   matching the files, `hubcache gc --verify --dry-run` finding nothing to do),
                   then run CLIENTS concurrent clients (misses, joins and hits on blobs and
                   manifests; every complete body must be right) and SIGKILL the mirror once
                   fills are in flight, at a different moment each round. Finally every
                   manifest and blob pulls right and SIGTERM exits 0.
  PlantedFiles     on a stopped cache: a wrong-content file with no row and a junk name are
                   removed, a row whose file is gone is dropped, correct orphan files (a blob,
                   a manifest) are adopted and served as hits, a temp file is removed; the
                   `cache opened:` line counts exactly that.
  SecondServer     a second server on the same root exits 1 ("in use by another hubcache")
                   and the first keeps serving.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from fake_upstream import BytesBody, FakeRegistry, GeneratedBody  # noqa: E402
from mirror import Mirror, free_port, hubcache_bin, parse_gc, run_cli, wait_until  # noqa: E402

MiB = 1 << 20
REPO = "crash/app"
BLOB_SIZES = [3, 4, 5, 6, 7, 8, 3, 4, 5, 6]  # MiB, each plus a few odd bytes
FILL_RATE = 8 * MiB  # bytes/s per upstream transfer
ROUNDS = 4
CLIENTS = 6
MIRROR_ARGS = ("--cache-max-size", "16MiB", "--access-flush-interval", "100ms",
               "--min-free", "0%", "--upstream-connect-timeout", "3s")
KILL_WHEN_TEMP_FILES = 2  # SIGKILL once this many fills are in flight...
KILL_DELAY_MAX_S = 2.0  # ...plus a random delay up to this
CLIENT_TIMEOUT_S = 10
CLIENT_MAX_REQUESTS = 500
JOIN_S = 30
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_work = None


def setUpModule():
    global _work
    if not os.access(hubcache_bin(), os.X_OK):
        raise RuntimeError(f"hubcache binary not found or not executable: {hubcache_bin()}")
    _work, cleanup = harness.module_workdir("crash")
    unittest.addModuleCleanup(cleanup)


class Content:
    """The blobs and manifests the fake upstream serves, and what a client fetches."""

    def __init__(self, fake, slow=True):
        self.blobs = {}  # digest -> size
        self.bodies = {}  # digest -> body object (has .chunks())
        for i, mib in enumerate(BLOB_SIZES):
            body = GeneratedBody(mib * MiB + 4099 * (i + 1), seed=7000 + i)
            self._add_blob(fake, body, DOCKER_LAYER)
        self.manifests = {}  # digest -> raw bytes
        self.tags = {}  # tag -> digest
        layers = list(self.blobs)
        for n, tag in enumerate(("v1", "v2")):
            config = BytesBody(json.dumps({"architecture": "amd64", "os": "linux", "n": n,
                                           "rootfs": {"type": "layers", "diff_ids": []}}).encode())
            self._add_blob(fake, config, DOCKER_CONFIG)
            mine = layers[n * 3:n * 3 + 4]  # v1 and v2 share one layer
            raw = json.dumps({
                "schemaVersion": 2, "mediaType": DOCKER_V2,
                "config": {"mediaType": DOCKER_CONFIG, "size": config.size,
                           "digest": config.digest},
                "layers": [{"mediaType": DOCKER_LAYER, "size": self.blobs[d], "digest": d}
                           for d in mine]}, indent=2).encode()
            digest = fake.add_manifest(REPO, raw, DOCKER_V2, tags=(tag,))
            self.manifests[digest] = raw
            self.tags[tag] = digest
        if slow:
            for d in self.blobs:
                fake.set_fault(d, "slow", rate=FILL_RATE)

    def _add_blob(self, fake, body, media_type):
        fake.add_blob(REPO, body, media_type)
        self.blobs[body.digest] = body.size
        self.bodies[body.digest] = body

    def targets(self):
        """(path, headers, expected digest, expected size) of everything a client may GET."""
        out = [(f"/v2/{REPO}/blobs/{d}", None, d, s) for d, s in self.blobs.items()]
        accept = {"Accept": DOCKER_V2}
        out += [(f"/v2/{REPO}/manifests/{t}", accept, d, len(self.manifests[d]))
                for t, d in self.tags.items()]
        out += [(f"/v2/{REPO}/manifests/{d}", accept, d, len(raw))
                for d, raw in self.manifests.items()]
        return out

    def bytes_of(self, digest):
        if digest in self.manifests:
            return self.manifests[digest]
        body = self.bodies[digest]
        return b"".join(bytes(c) for c in body.chunks(0, body.size))


def check_consistent(test, root, report, what):
    """Every cached file hashes to its name, the start report matches the files, and
    `hubcache gc --verify --dry-run` has nothing to do."""
    objects = harness.cache_objects(root)
    for (kind, digest) in objects:
        path = harness.cache_object_path(root, kind, digest)
        test.assertEqual(harness.file_sha256(path), digest, f"{what}: {path} holds other bytes")
    test.assertEqual(harness.dir_entries(os.path.join(root, "tmp")), [],
                     f"{what}: tmp/ not empty after start")
    test.assertEqual((report["entries"], report["bytes"]),
                     (len(objects), sum(objects.values())),
                     f"{what}: `cache opened:` entries/bytes do not match the files {report}")
    gc = run_cli("gc", "--root", root, "--verify", "--dry-run")
    test.assertEqual(gc.returncode, 0, f"{what}: gc: {gc.stderr}")
    r = parse_gc(gc.stdout)
    test.assertEqual({k: r[k] for k in ("temp", "orphans_removed", "corrupt", "rows", "adopted")},
                     dict(temp=0, orphans_removed=0, corrupt=0, rows=0, adopted=0),
                     f"{what}: index and files disagree after start:\n{gc.stdout}")
    test.assertEqual(r["cache_entries"], len(objects), f"{what}: {gc.stdout}")


class Clients:
    """CLIENTS threads GETting random targets until stopped; a complete body must be right."""

    def __init__(self, url, targets, seed):
        self.url, self.targets, self.seed = url, targets, seed
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.wrong = []  # complete responses with a wrong status or body
        self.attempts = 0
        self.complete = 0
        self.cut = 0
        self.cut_examples = []  # the first few cut responses or errors
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                         name=f"client-{i}") for i in range(CLIENTS)]

    def _run(self, i):
        rng = random.Random(self.seed * 100 + i)
        for _ in range(CLIENT_MAX_REQUESTS):
            if self.stop.is_set():
                return
            path, headers, digest, size = rng.choice(self.targets)
            with self.lock:
                self.attempts += 1
            try:
                r = harness.stream_get(self.url, path, headers, timeout=CLIENT_TIMEOUT_S,
                                       deadline_s=JOIN_S)
            except Exception as e:  # refused, reset or timed out once the mirror is killed
                if self.stop.is_set():
                    return
                with self.lock:
                    self.cut += 1
                    if len(self.cut_examples) < 3:
                        self.cut_examples.append((path, repr(e)))
                continue
            with self.lock:
                if not r.complete:
                    self.cut += 1
                    if len(self.cut_examples) < 3:
                        self.cut_examples.append((path, r))
                elif (r.status, r.size, r.digest) != (200, size, digest):
                    self.wrong.append((path, r))
                else:
                    self.complete += 1

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        deadline = time.monotonic() + JOIN_S
        for t in self.threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]


class KillDuringFills(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeRegistry().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.content = Content(cls.fake)
        cls.root = os.path.join(_work, "killed", "cache")
        os.makedirs(os.path.dirname(cls.root))

    def _start(self, what, leftovers):
        m = Mirror(os.path.dirname(self.root), self.fake.url, extra_args=MIRROR_ARGS,
                   root=self.root)
        self.addCleanup(m.stop, signal.SIGKILL)
        m.start()
        report = m.reconcile_report()
        self.assertIsNotNone(report, f"{what}: no `cache opened:` line\n{m.log()[-2000:]}")
        self.assertEqual(report["temp_removed"], len(leftovers),
                         f"{what}: {len(leftovers)} temp files were left, report {report}")
        check_consistent(self, self.root, report, what)
        return m, report

    def test_sigkill_during_fills(self):
        leftovers = []
        evicting_rounds = 0
        targets = self.content.targets()
        for rnd in range(ROUNDS):
            what = f"round {rnd}"
            m, report = self._start(what, leftovers)
            clients = Clients(m.url, targets, seed=rnd)
            clients.start()
            try:
                wait_until(lambda: len(harness.dir_entries(os.path.join(self.root, "tmp")))
                           >= KILL_WHEN_TEMP_FILES, 20, f"{what}: fills to be in flight")
                time.sleep(random.Random(rnd).uniform(0, KILL_DELAY_MAX_S) if rnd else 0)
            finally:
                m.stop(signal.SIGKILL)
                stuck = clients.finish()
            self.assertEqual(stuck, [], f"{what}: clients hang after the kill")
            self.assertEqual(clients.wrong, [], f"{what}: complete responses with wrong bytes")
            leftovers = harness.dir_entries(os.path.join(self.root, "tmp"))
            offline = run_cli("gc", "--root", self.root, "--verify", "--dry-run")
            print(f"\n[crash] {what}: start {report}; {clients.attempts} requests, "
                  f"{clients.complete} complete, {clients.cut} cut; after the kill "
                  f"{len(leftovers)} temp files, "
                  f"{len(harness.cache_objects(self.root))} objects; "
                  f"offline gc: {offline.stdout.splitlines()[:1]}; cut e.g. "
                  f"{clients.cut_examples[:2]}", file=sys.stderr)
            self.assertEqual(offline.returncode, 0, offline.stderr)
            self.assertGreater(clients.attempts, 0, f"{what}: no request ran")
            evicting_rounds += "evicted entries=" in m.log()
        self.assertGreater(evicting_rounds, 0, "no round was killed with eviction running")

        m, _ = self._start("after the last kill", leftovers)
        for path, headers, digest, size in targets:
            r = harness.stream_get(m.url, path, headers, timeout=CLIENT_TIMEOUT_S, deadline_s=60)
            self.assertEqual((r.status, r.size, r.digest, r.error), (200, size, digest, None),
                             f"GET {path} after the crashes: {r}")
        wait_until(lambda: not harness.dir_entries(os.path.join(self.root, "tmp")), 10,
                   "tmp/ to empty")
        self.assertEqual(m.stop(signal.SIGTERM), 0, "SIGTERM did not exit 0")


class PlantedFiles(unittest.TestCase):
    def test_start_reconciles_planted_files(self):
        fake = FakeRegistry().start()
        self.addCleanup(fake.stop)
        content = Content(fake, slow=False)
        d = os.path.join(_work, "planted")
        os.makedirs(d)
        m = Mirror(d, fake.url, extra_args=MIRROR_ARGS)
        self.addCleanup(m.stop)
        m.start()
        root = m.root
        b = sorted(content.blobs)[:4]
        for digest in b[:2]:
            r = harness.stream_get(m.url, f"/v2/{REPO}/blobs/{digest}")
            self.assertEqual((r.status, r.digest), (200, digest), r)
        wait_until(lambda: {("blob", x) for x in b[:2]} <= set(harness.cache_objects(root)), 10,
                   "the two blobs to be cached")
        self.assertEqual(m.stop(signal.SIGTERM), 0)

        def write(path, data):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)

        tmp_leftover = os.path.join(root, "tmp", "leftover-of-a-crash")
        write(tmp_leftover, b"t" * 12345)
        wrong = harness.cache_object_path(root, "blob", b[2])  # never fetched, wrong bytes
        write(wrong, b"not the blob" * 100)
        junk = os.path.join(root, "blobs", "sha256", "zz", "not-a-digest")
        write(junk, b"junk" * 10)
        os.unlink(harness.cache_object_path(root, "blob", b[1]))  # its row stays
        adopted_blob = harness.cache_object_path(root, "blob", b[3])
        write(adopted_blob, content.bytes_of(b[3]))
        manifest = content.tags["v1"]
        adopted_manifest = harness.cache_object_path(root, "manifest", manifest)
        write(adopted_manifest, content.manifests[manifest])

        m2 = Mirror(d, fake.url, extra_args=MIRROR_ARGS, root=root)
        self.addCleanup(m2.stop)
        m2.start()
        objects = harness.cache_objects(root)
        expected = dict(temp_removed=1, orphans_adopted=2, orphans_removed=2, rows_dropped=1,
                        corrupt_removed=0, bytes_freed=12345 + 1200 + 40,
                        entries=len(objects), bytes=sum(objects.values()))
        self.assertEqual(m2.reconcile_report(), expected, m2.log()[-2000:])
        for path in (tmp_leftover, wrong, junk):
            self.assertFalse(os.path.exists(path), f"{path} survived the start")
        self.assertEqual(harness.file_sha256(adopted_blob), b[3])
        self.assertEqual(set(objects), {("blob", b[0]), ("blob", b[3]), ("manifest", manifest)})

        fake.clear_requests()
        r = harness.stream_get(m2.url, f"/v2/{REPO}/blobs/{b[3]}")
        self.assertEqual((r.status, r.digest, r.headers.get("x-hubcache-cache")),
                         (200, b[3], "hit"), f"adopted blob: {r}")
        r = harness.stream_get(m2.url, f"/v2/{REPO}/manifests/{manifest}",
                               {"Accept": DOCKER_V2})
        self.assertEqual((r.status, r.digest), (200, manifest), f"adopted manifest: {r}")
        self.assertEqual(fake.requests(server="main", path_contains="/v2/" + REPO), [],
                         "an adopted object was fetched from the upstream")
        for digest in (b[1], b[2]):  # dropped row, removed wrong file: fetched again
            r = harness.stream_get(m2.url, f"/v2/{REPO}/blobs/{digest}")
            self.assertEqual((r.status, r.digest, r.headers.get("x-hubcache-cache")),
                             (200, digest, "miss"), r)
            path = harness.cache_object_path(root, "blob", digest)
            wait_until(lambda: os.path.exists(path), 10, f"{digest} to be cached again")
            self.assertEqual(harness.file_sha256(path), digest)


class SecondServer(unittest.TestCase):
    def test_second_server_on_the_same_root_refuses(self):
        fake = FakeRegistry().start()
        self.addCleanup(fake.stop)
        d = os.path.join(_work, "second")
        os.makedirs(d)
        first = Mirror(d, fake.url)
        self.addCleanup(first.stop)
        first.start()
        argv = [hubcache_bin(), "serve", "--addr", f"127.0.0.1:{free_port()}",
                "--upstream", fake.url, "--root", first.root]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                               start_new_session=True)
        except subprocess.TimeoutExpired:
            self.fail("a second server on the same root kept running (killed after 20s)")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("in use by another hubcache", p.stdout + p.stderr)
        self.assertEqual(harness.request(first.url, "GET", "/v2/").status, 200,
                         "the first server stopped answering")
        self.assertEqual(first.stop(signal.SIGTERM), 0)


if __name__ == "__main__":
    harness.run_module(__file__)
