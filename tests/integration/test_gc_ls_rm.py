#!/usr/bin/env python3
"""Inspecting and trimming the cache: `hubcache ls`, `rm`, `gc`, the admin API, and SIGTERM.

A real upstream (docker-registry + token server) holds library/multi:1 (OCI index, two
platforms), library/docker2:1 (Docker schema2) and library/sharea:1 / library/shareb:1, two
images with one layer in common. Each test that changes a cache pulls what it needs with
skopeo through its own mirror on a fresh root first.

  LsRmGc          ls as a table and as JSON; rm by tag (the shared layer stays), by digest,
                  of an index (its children go too), --blob; usage errors exit 2, objects
                  that are not cached exit 1; gc --dry-run changes nothing and gc then fixes
                  planted problems; gc --verify removes a corrupted blob; after each removal
                  the next pull is byte-identical and fetches exactly what was removed.
  GcBesideServer  gc beside a running server leaves tmp/ (a fill in flight) alone.
  Admin           /admin/ is 404 without a token; 401 + `WWW-Authenticate: Bearer
                  realm="hubcache-admin"` for a missing or wrong one; with it, GET
                  /admin/images matches `ls --json`, and DELETE of an image (by tag or digest)
                  and of a blob removes exactly what rm would; errors in registry JSON.
  Shutdown        SIGTERM during a slow transfer: no new connections, the transfer completes,
                  exit 0; a stalled transfer does not hold the exit past --shutdown-grace; a
                  hit's last-use time is not written before the flush, and is at shutdown.
GcBesideServer and Shutdown use the in-process fake upstream (fake_upstream.py) for slow and
stalled bodies.
"""
import base64
import json
import os
import re
import signal
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from fake_upstream import GeneratedBody, FakeRegistry  # noqa: E402
from mirror import Mirror, parse_gc, run_cli, wait_until  # noqa: E402
from upstream import started_upstream  # noqa: E402

MiB = 1 << 20
IMAGES = ("multi", "docker2", "sharea", "shareb")
ADMIN_TOKEN = "hubcache-admin-token-0123456789abcdef"
FLUSH_ARGS = ("--access-flush-interval", "200ms")
INDEX_WAIT_S = 15  # for a pulled image's objects to be files and index rows
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

_up = None
_work = None
_img = {}
_direct = {}


def setUpModule():
    global _up, _work
    _work, _up = started_upstream("gclsrm", unittest.addModuleCleanup)
    _img.update(fixtures.push_described(_up, _work, IMAGES))
    for name in IMAGES:
        _direct[name] = os.path.join(_work, f"direct-{name}")
        harness.skopeo_copy(_work, _up.host, f"library/{name}:1", _direct[name])


def human_bytes(n):
    """hubcache's HumanBytes: "512 B", "1.5 MiB"."""
    if n < 1024:
        return f"{n} B"
    units, v, i = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], float(n), 0
    while v >= 1024 and i + 1 < len(units):
        v /= 1024
        i += 1
    return f"{v:.1f} {units[i]}"


def image_objects(img):
    """{(kind, digest)} of everything an image consists of."""
    return ({("manifest", d) for d in img.manifests} | {("blob", d) for d in img.blobs})


def image_bytes(img):
    return sum(len(raw) for _, raw in img.manifests.values()) + sum(img.blobs.values())


def ls_json(root):
    r = run_cli("ls", "--root", root, "--json")
    if r.returncode != 0:
        raise AssertionError(f"hubcache ls --json exited {r.returncode}: {r.stderr}")
    return json.loads(r.stdout)


def cli_ok(test, *args):
    r = run_cli(*args)
    test.assertEqual(r.returncode, 0, f"hubcache {' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


def removed_line(stdout, what):
    m = re.search(rf"^removed {re.escape(what)}: (\d+) manifests, (\d+) blobs, (.+)$", stdout, re.M)
    if not m:
        raise AssertionError(f"no `removed {what}: ...` line in:\n{stdout}")
    return int(m[1]), int(m[2]), m[3]


def tree_snapshot(root):
    """{relative path: sha256} of blobs/, manifests/ and tmp/."""
    out = {}
    for sub in ("blobs", "manifests", "tmp"):
        for dirpath, _, files in os.walk(os.path.join(root, sub)):
            for n in files:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, root)] = harness.file_sha256(p)
    return out


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def pull_through(mirror, name):
    """skopeo copy --all of library/NAME:1 through `mirror`; raises unless byte-identical
    to the direct copy."""
    dest = os.path.join(mirror.workdir, f"pull-{name}-{time.monotonic_ns()}")
    harness.skopeo_copy(_work, f"127.0.0.1:{mirror.port}", f"library/{name}:1", dest)
    diffs = harness.compare_dirs(_direct[name], dest)
    if diffs:
        raise AssertionError(f"{name} through the mirror differs from the direct copy: {diffs}")


class CacheTest(unittest.TestCase):
    """Helpers for tests that own a mirror on a fresh root."""

    def new_mirror(self, label, extra_args=(), root=None):
        d = os.path.join(_work, label)
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, _up.url, extra_args=extra_args, root=root)
        self.addCleanup(m.stop)
        return m.start()

    def pull(self, mirror, name):
        pull_through(mirror, name)

    def wait_cached(self, root, names):
        want = set().union(*(image_objects(_img[n]) for n in names)) if names else set()
        wait_until(lambda: want <= set(harness.cache_objects(root)), INDEX_WAIT_S,
                   f"{names} to be cached as files")
        expected = {f"library/{n}": len(_img[n].blobs) for n in names}
        wait_until(lambda: {e["repository"]: e["blobs"] for e in ls_json(root)} == expected,
                   INDEX_WAIT_S, f"`ls --json` to list {expected}")

    def fresh_cache(self, label, names, extra_args=FLUSH_ARGS):
        m = self.new_mirror(label, extra_args)
        for n in names:
            self.pull(m, n)
        self.wait_cached(m.root, names)
        return m

    def stopped_cache(self, label, names):
        m = self.fresh_cache(label, names)
        self.assertEqual(m.stop(signal.SIGTERM), 0, "SIGTERM did not exit 0")
        return m.root

    def repull(self, label, root, name, expect_fetched):
        """Pulls `name` through a new mirror on `root`; the upstream must serve exactly the
        blobs `expect_fetched`, once each."""
        m = self.new_mirror(label, FLUSH_ARGS, root=root)
        _up.sync_log()
        mark = _up.mark()
        self.pull(m, name)
        _up.sync_log()
        got = sorted(line.path.rsplit("/", 1)[1] for line in
                     _up.requests("GET", r"/v2/.*/blobs/.*", "2xx", since=mark))
        self.assertEqual(got, sorted(expect_fetched), "blobs fetched from the upstream")
        return m


class LsRmGc(CacheTest):
    def test_ls_table_and_json(self):
        t0_ms = int(time.time() * 1000)
        m = self.fresh_cache("ls", IMAGES)
        listing = ls_json(m.root)
        now_ms = int(time.time() * 1000)
        self.assertEqual(len(listing), len(IMAGES), listing)
        for e in listing:
            name = e["repository"].split("/", 1)[1]
            img = _img[name]
            with self.subTest(image=name):
                self.assertEqual(set(e), {"repository", "tag", "digest", "media_type",
                                          "size_bytes", "blobs", "last_used_ms"})
                self.assertEqual((e["tag"], e["digest"], e["media_type"], e["size_bytes"],
                                  e["blobs"]),
                                 ("1", img.digest, img.media_type, image_bytes(img),
                                  len(img.blobs)))
                self.assertTrue(t0_ms - 1000 <= e["last_used_ms"] <= now_ms + 1000, e)

        table = cli_ok(self, "ls", "--root", m.root).splitlines()
        self.assertEqual(table[0].split(),
                         ["REPOSITORY", "TAG", "DIGEST", "SIZE", "BLOBS", "LAST", "USED"])
        rows = {}
        for line in table[1:]:
            r = re.match(r"^(\S+)\s+(\S+)\s+(sha256:\S+)\s+(.+?)\s+(\d+)\s+(\S+ ?\S*)$", line)
            self.assertIsNotNone(r, f"unexpected ls row {line!r}")
            rows[r[1]] = r.groups()
        for e in listing:
            self.assertEqual(rows[e["repository"]][1:5],
                             ("1", e["digest"][:19], human_bytes(e["size_bytes"]), str(e["blobs"])))
            self.assertRegex(rows[e["repository"]][5], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$")
        self.assertEqual(len(rows), len(IMAGES))

        # The same listing once the server is gone (ls works on a stopped cache too).
        self.assertEqual(m.stop(signal.SIGTERM), 0)
        strip = lambda lst: sorted((e["repository"], e["digest"], e["size_bytes"], e["blobs"])
                                   for e in lst)
        self.assertEqual(strip(ls_json(m.root)), strip(listing))

    def test_rm_by_tag_keeps_the_shared_layer(self):
        root = self.stopped_cache("rmtag", ["sharea", "shareb"])
        a, b = _img["sharea"], _img["shareb"]
        shared = set(a.blobs) & set(b.blobs)
        self.assertEqual(len(shared), 1, "fixtures: sharea and shareb must share one layer")
        only_a = set(a.blobs) - shared
        before = set(harness.cache_objects(root))
        out = cli_ok(self, "rm", "--root", root, "library/sharea:1")
        self.assertEqual(removed_line(out, "library/sharea:1"),
                         (1, 2, human_bytes(a.size + sum(a.blobs[d] for d in only_a))))
        gone = {("manifest", a.digest)} | {("blob", d) for d in only_a}
        self.assertEqual(set(harness.cache_objects(root)), before - gone)
        self.assertEqual([(e["repository"], e["blobs"]) for e in ls_json(root)],
                         [("library/shareb", 3)])
        self.repull("rmtag-again", root, "sharea", only_a)

    def test_rm_by_digest(self):
        root = self.stopped_cache("rmdigest", ["sharea", "shareb", "docker2"])
        b, d2 = _img["shareb"], _img["docker2"]
        only_b = set(b.blobs) - set(_img["sharea"].blobs)
        before = set(harness.cache_objects(root))
        args = [f"library/shareb@{b.digest}", f"library/docker2@{d2.digest}"]
        out = cli_ok(self, "rm", "--root", root, *args)
        with self.subTest(image=args[0]):  # its first layer is sharea's too
            self.assertEqual(removed_line(out, args[0]),
                             (1, 2, human_bytes(b.size + sum(b.blobs[x] for x in only_b))))
        with self.subTest(image=args[1]):
            self.assertEqual(removed_line(out, args[1]), (1, 3, human_bytes(image_bytes(d2))))
        gone = {("manifest", b.digest)} | {("blob", x) for x in only_b} | image_objects(d2)
        self.assertEqual(set(harness.cache_objects(root)), before - gone)
        self.assertEqual([e["repository"] for e in ls_json(root)], ["library/sharea"])
        self.repull("rmdigest-again", root, "shareb", only_b)

    def test_rm_index_removes_its_children(self):
        root = self.stopped_cache("rmindex", ["multi", "docker2"])
        multi = _img["multi"]
        out = cli_ok(self, "rm", "--root", root, "library/multi:1")
        self.assertEqual(removed_line(out, "library/multi:1"),
                         (3, len(multi.blobs), human_bytes(image_bytes(multi))))
        self.assertEqual(set(harness.cache_objects(root)), image_objects(_img["docker2"]))
        self.assertEqual([e["repository"] for e in ls_json(root)], ["library/docker2"])

    def test_rm_blob(self):
        root = self.stopped_cache("rmblob", ["docker2"])
        d2 = _img["docker2"]
        layer = d2.layers[0]
        out = cli_ok(self, "rm", "--root", root, "--blob", layer)
        self.assertEqual(removed_line(out, layer), (0, 1, human_bytes(d2.blobs[layer])))
        self.assertEqual(set(harness.cache_objects(root)), image_objects(d2) - {("blob", layer)})
        self.assertEqual([(e["repository"], e["blobs"]) for e in ls_json(root)],
                         [("library/docker2", len(d2.blobs) - 1)])
        self.repull("rmblob-again", root, "docker2", [layer])

    def test_usage_errors_exit_2(self):
        root = self.stopped_cache("usage", ["docker2"])
        before = tree_snapshot(root)
        cases = [
            ["rm", "--root", root],
            ["rm", "--root", root, "--blob", "not-a-digest"],
            ["rm", "--root", root, "--blob", "sha256:1234"],
            ["rm", "--root", root, "Library/Upper:1"],
            ["rm", "--root", root, "library/docker2:bad tag"],
            ["rm", "--root", root, "--bogus", "library/docker2:1"],
            ["rm", "--root"],
            ["ls", "--root", root, "extra"],
            ["ls", "--root", root, "--bogus"],
            ["gc", "--root", root, "extra"],
            ["gc", "--root", root, "--bogus"],
        ]
        for args in cases:
            with self.subTest(args=args[:1] + args[3:] if len(args) > 2 else args):
                r = run_cli(*args)
                self.assertEqual(r.returncode, 2, f"{r.stdout}{r.stderr}")
                self.assertTrue(r.stderr.strip(), "no message on stderr")
                self.assertNotIn("removed", r.stdout)
        self.assertEqual(tree_snapshot(root), before, "a rejected command changed the cache")
        r = run_cli("ls", "--root", os.path.join(_work, "no-cache-here"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no-cache-here", r.stderr)

    def test_not_cached_exit_1(self):
        root = self.stopped_cache("notcached", ["docker2"])
        before = tree_snapshot(root)
        for args in (["library/nothere:1"], ["library/docker2:other"],
                     ["library/docker2@sha256:" + "0" * 64], ["--blob", "sha256:" + "0" * 64]):
            with self.subTest(args=args):
                r = run_cli("rm", "--root", root, *args)
                self.assertEqual(r.returncode, 1, f"{r.stdout}{r.stderr}")
                self.assertIn("not cached", r.stderr)
        self.assertEqual(tree_snapshot(root), before)

    def test_gc_dry_run_changes_nothing_then_gc_fixes(self):
        root = self.stopped_cache("gc", ["sharea", "docker2"])
        d2, b = _img["docker2"], _img["shareb"]
        b_config = next(d for d in b.blobs if d not in b.layers)
        b_only = next(d for d in b.layers if d not in _img["sharea"].blobs)
        write_file(os.path.join(root, "tmp", "leftover"), b"x" * 1000)
        wrong = harness.cache_object_path(root, "blob", b_only)
        write_file(wrong, b"wrong bytes" * 300)  # 3300 bytes, no row
        adopted = harness.cache_object_path(root, "blob", b_config)
        with open(fixtures.blob_path("shareb", b_config), "rb") as f:
            write_file(adopted, f.read())  # right bytes, no row
        d2_config = next(d for d in d2.blobs if d not in d2.layers)
        os.unlink(harness.cache_object_path(root, "blob", d2_config))  # row without file
        snapshot, listing = tree_snapshot(root), ls_json(root)
        counts = dict(temp=1, orphans_removed=1, corrupt=0, rows=1, adopted=1, entries=3)

        r = parse_gc(cli_ok(self, "gc", "--root", root, "--dry-run"))
        self.assertTrue(r["dry_run"])
        self.assertEqual({k: r[k] for k in counts}, counts)
        self.assertEqual(r["freed"], human_bytes(1000 + 3300))
        self.assertEqual(tree_snapshot(root), snapshot, "gc --dry-run changed files")
        self.assertEqual(ls_json(root), listing, "gc --dry-run changed the index")
        dry = r

        r = parse_gc(cli_ok(self, "gc", "--root", root))
        self.assertFalse(r["dry_run"])
        self.assertEqual({k: r[k] for k in counts}, counts)
        self.assertEqual(r["freed"], human_bytes(1000 + 3300))
        objects = harness.cache_objects(root)
        self.assertEqual((r["cache_entries"], r["cache_size"], r["server_note"]),
                         (len(objects), human_bytes(sum(objects.values())), ""))
        # The dry run reported the cache the real run left (it printed "0 B" once).
        self.assertEqual((dry["cache_entries"], dry["cache_size"]),
                         (r["cache_entries"], r["cache_size"]))
        self.assertEqual(harness.dir_entries(os.path.join(root, "tmp")), [])
        self.assertFalse(os.path.exists(wrong))
        self.assertEqual(harness.file_sha256(adopted), b_config)
        self.assertEqual({(e["repository"], e["blobs"]) for e in ls_json(root)},
                         {("library/sharea", 3), ("library/docker2", len(d2.blobs) - 1)})
        r = parse_gc(cli_ok(self, "gc", "--root", root, "--verify", "--dry-run"))
        self.assertEqual(r["entries"] + r["adopted"], 0, f"a second gc still finds work: {r}")

        m = self.repull("gc-again", root, "docker2", [d2_config])
        hit = harness.stream_get(m.url, f"/v2/library/shareb/blobs/{b_config}")
        self.assertEqual((hit.status, hit.digest, hit.headers.get("x-hubcache-cache")),
                         (200, b_config, "hit"), "the adopted blob is not served from the cache")

    def test_gc_verify_removes_a_corrupt_blob(self):
        root = self.stopped_cache("verify", ["docker2"])
        d2 = _img["docker2"]
        layer = d2.layers[0]
        path = harness.cache_object_path(root, "blob", layer)
        with open(path, "r+b") as f:
            f.seek(d2.blobs[layer] // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
        corrupted = harness.file_sha256(path)

        r = parse_gc(cli_ok(self, "gc", "--root", root))
        self.assertEqual(r["corrupt"], 0, "gc without --verify does not hash files")
        r = parse_gc(cli_ok(self, "gc", "--root", root, "--verify", "--dry-run"))
        self.assertEqual(r["corrupt"], 1, r)
        self.assertEqual(harness.file_sha256(path), corrupted, "--dry-run removed the file")
        dry = r
        r = parse_gc(cli_ok(self, "gc", "--root", root, "--verify"))
        self.assertEqual((r["corrupt"], r["freed"]), (1, human_bytes(d2.blobs[layer])), r)
        objects = harness.cache_objects(root)
        self.assertEqual((r["cache_entries"], r["cache_size"]),
                         (len(objects), human_bytes(sum(objects.values()))))
        self.assertEqual((dry["cache_entries"], dry["cache_size"]),
                         (r["cache_entries"], r["cache_size"]), "--verify --dry-run's cache size")
        self.assertFalse(os.path.exists(path), "the corrupt blob is still there")
        r = parse_gc(cli_ok(self, "gc", "--root", root, "--verify", "--dry-run"))
        self.assertEqual(r["entries"] + r["adopted"], 0, f"a second gc still finds work: {r}")
        self.repull("verify-again", root, "docker2", [layer])
        wait_until(lambda: os.path.exists(path), INDEX_WAIT_S, "the layer to be cached again")
        self.assertEqual(harness.file_sha256(path), layer)


class GcBesideServer(unittest.TestCase):
    def test_gc_leaves_a_fill_in_flight_alone(self):
        fake = FakeRegistry().start()
        self.addCleanup(fake.stop)
        body = GeneratedBody(8 * MiB + 11, seed=99)  # 4 s at 2 MiB/s
        fake.add_blob("gc/app", body, LAYER)
        fake.set_fault(body.digest, "slow", rate=2 * MiB)
        d = os.path.join(_work, "gc-beside")
        os.makedirs(d)
        m = Mirror(d, fake.url)
        self.addCleanup(m.stop)
        m.start()
        tmp = os.path.join(m.root, "tmp")
        result = {}
        t = threading.Thread(target=lambda: result.update(r=harness.stream_get(
            m.url, f"/v2/gc/app/blobs/{body.digest}", timeout=30, deadline_s=60)), daemon=True)
        t.start()
        wait_until(lambda: any(os.path.getsize(os.path.join(tmp, n)) > 0
                               for n in harness.dir_entries(tmp)), 10, "the fill to start")
        write_file(os.path.join(tmp, "stray"), b"s" * 100)
        in_flight = harness.dir_entries(tmp)
        for args in (["gc"], ["gc", "--verify"]):
            r = parse_gc(cli_ok(self, *args, "--root", m.root))
            self.assertEqual(r["temp"], 0, r)
            self.assertIn("server is running", r["server_note"])
            self.assertTrue(t.is_alive(), "the slow fill ended before gc could be tried")
            self.assertEqual(harness.dir_entries(tmp), in_flight, "gc touched tmp/")
        t.join(timeout=60)
        self.assertFalse(t.is_alive())
        r = result["r"]
        self.assertEqual((r.status, r.size, r.digest, r.error), (200, body.size, body.digest, None))
        path = harness.cache_object_path(m.root, "blob", body.digest)
        wait_until(lambda: os.path.exists(path), 10, "the blob to be cached")
        self.assertEqual(harness.file_sha256(path), body.digest)
        self.assertEqual(harness.dir_entries(tmp), ["stray"])
        self.assertEqual(m.stop(signal.SIGTERM), 0)
        r = parse_gc(cli_ok(self, "gc", "--root", m.root))
        self.assertEqual((r["temp"], r["entries"]), (1, 1), r)  # offline: the stray goes
        self.assertEqual(harness.dir_entries(tmp), [])


def admin(mirror, method, path, token=ADMIN_TOKEN, headers=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return harness.request(mirror.url, method, path, h)


class Admin(CacheTest):
    @classmethod
    def setUpClass(cls):
        d = os.path.join(_work, "admin")
        os.makedirs(d)
        cls.m = Mirror(d, _up.url, extra_args=(*FLUSH_ARGS, "--admin-token", ADMIN_TOKEN,
                                               "--cache-max-size", "1GiB"))
        cls.addClassCleanup(cls.m.stop)
        cls.m.start()
        for name in IMAGES:
            pull_through(cls.m, name)

    def setUp(self):
        if not getattr(Admin, "indexed", False):
            self.wait_cached(self.m.root, IMAGES)
            Admin.indexed = True

    def test_1_off_without_a_token(self):
        plain = self.new_mirror("admin-off")
        digest = _img["docker2"].layers[0]
        for method, path in (("GET", "/admin/images"), ("DELETE", "/admin/images/library/x:1"),
                             ("DELETE", f"/admin/blobs/{digest}")):
            for token in (None, ADMIN_TOKEN):
                with self.subTest(method=method, path=path, token=bool(token)):
                    r = admin(plain, method, path, token)
                    self.assertEqual(r.status, 404, r)
                    self.assertIsNone(r.header("WWW-Authenticate"), r)

    def test_2_token_required(self):
        before = tree_snapshot(self.m.root)
        basic = base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()
        wrong = ["", "Bearer", f"Bearer {ADMIN_TOKEN[:-1]}", f"Bearer {ADMIN_TOKEN}x",
                 f"Bearer {'x' * len(ADMIN_TOKEN)}", ADMIN_TOKEN, f"Basic {basic}"]
        digest = _img["docker2"].layers[0]
        for value in [None] + wrong:
            for method, path in (("GET", "/admin/images"),
                                 ("DELETE", "/admin/images/library/docker2:1"),
                                 ("DELETE", f"/admin/blobs/{digest}")):
                with self.subTest(authorization=value, method=method, path=path):
                    headers = {} if value is None else {"Authorization": value}
                    r = admin(self.m, method, path, token=None, headers=headers)
                    self.assertEqual(r.status, 401, r)
                    self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="hubcache-admin"')
                    self.assertEqual(r.error_codes(), ["UNAUTHORIZED"], r)
                    self.assertNotIn(ADMIN_TOKEN, r.body.decode(errors="replace"))
        self.assertEqual(tree_snapshot(self.m.root), before, "a refused request changed the cache")

    def test_3_list_matches_ls(self):
        r = admin(self.m, "GET", "/admin/images")
        self.assertEqual(r.status, 200, r)
        doc = r.json()
        self.assertEqual(set(doc), {"images", "cache_bytes", "cache_max_bytes"})
        strip = lambda lst: sorted({k: v for k, v in e.items() if k != "last_used_ms"}.items()
                                   for e in lst)
        self.assertEqual(strip(doc["images"]), strip(ls_json(self.m.root)))
        self.assertEqual(len(doc["images"]), len(IMAGES))
        self.assertEqual(doc["cache_bytes"], harness.cache_bytes(self.m.root))
        self.assertEqual(doc["cache_max_bytes"], 1 << 30)

    def test_4_delete_image_by_tag(self):
        root = self.m.root
        a, b = _img["sharea"], _img["shareb"]
        only_a = set(a.blobs) - set(b.blobs)
        cache_before = admin(self.m, "GET", "/admin/images").json()["cache_bytes"]
        r = admin(self.m, "DELETE", "/admin/images/library/sharea:1")
        a_bytes = a.size + sum(a.blobs[d] for d in only_a)
        self.assertEqual((r.status, r.json()),
                         (200, {"manifests_removed": 1, "blobs_removed": 2,
                                "bytes_freed": a_bytes}),
                         r)
        objects = set(harness.cache_objects(root))
        self.assertFalse(({("manifest", a.digest)} | {("blob", d) for d in only_a}) & objects)
        self.assertTrue(image_objects(b) <= objects, "shareb lost objects with sharea")
        doc = admin(self.m, "GET", "/admin/images").json()
        self.assertNotIn("library/sharea", [e["repository"] for e in doc["images"]])
        self.assertEqual(doc["cache_bytes"], cache_before - a_bytes)

        _up.sync_log()
        mark = _up.mark()
        self.pull(self.m, "sharea")
        _up.sync_log()
        self.assertEqual(sorted(line.path.rsplit("/", 1)[1] for line in
                                _up.requests("GET", r"/v2/.*/blobs/.*", "2xx", since=mark)),
                         sorted(only_a), "blobs fetched again after the admin delete")
        self.assertTrue(_up.requests("GET", r"/v2/library/sharea/manifests/1$", "2xx", since=mark),
                        "the deleted tag was still answered from the mirror's memory")

    def test_5_delete_image_by_digest(self):
        d2 = _img["docker2"]
        r = admin(self.m, "DELETE", f"/admin/images/library/docker2@{d2.digest}")
        self.assertEqual((r.status, r.json()),
                         (200, {"manifests_removed": 1, "blobs_removed": 3,
                                "bytes_freed": image_bytes(d2)}), r)
        self.assertFalse(image_objects(d2) & set(harness.cache_objects(self.m.root)))
        self.assertNotIn("library/docker2", [e["repository"] for e in ls_json(self.m.root)])

    def test_6_delete_blob(self):
        root, multi = self.m.root, _img["multi"]
        layer = multi.layers[0]
        r = admin(self.m, "DELETE", f"/admin/blobs/{layer}")
        self.assertEqual((r.status, r.json()),
                         (200, {"manifests_removed": 0, "blobs_removed": 1,
                                "bytes_freed": multi.blobs[layer]}), r)
        self.assertNotIn(("blob", layer), harness.cache_objects(root))
        g = harness.stream_get(self.m.url, f"/v2/library/multi/blobs/{layer}")
        self.assertEqual((g.status, g.digest, g.headers.get("x-hubcache-cache")),
                         (200, layer, "miss"), g)

    def test_7_errors_in_registry_json(self):
        zero = "sha256:" + "0" * 64
        for method, path, status, code in (
                ("DELETE", "/admin/images/library/nothere:1", 404, "MANIFEST_UNKNOWN"),
                ("DELETE", f"/admin/images/library/docker2@{zero}", 404, "MANIFEST_UNKNOWN"),
                ("DELETE", f"/admin/blobs/{zero}", 404, "BLOB_UNKNOWN"),
                ("DELETE", "/admin/blobs/not-a-digest", 400, "DIGEST_INVALID"),
                ("DELETE", "/admin/images/Library/UPPER:1", 400, "NAME_INVALID"),
                ("GET", "/admin/no-such-endpoint", 404, None)):
            with self.subTest(method=method, path=path):
                r = admin(self.m, method, path)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.header("Content-Type"), "application/json", r)
                codes = r.error_codes()
                self.assertEqual(len(codes), 1, r)
                if code:
                    self.assertEqual(codes, [code], r)


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.fake = FakeRegistry().start()
        self.addCleanup(self.fake.stop)
        self.d = os.path.join(_work, f"shutdown-{self._testMethodName}")
        os.makedirs(self.d)

    def test_sigterm_lets_a_slow_transfer_finish(self):
        body = GeneratedBody(5 * MiB + 5, seed=17)  # 5 s at 1 MiB/s
        self.fake.add_blob("stop/app", body, LAYER)
        self.fake.set_fault(body.digest, "slow", rate=1 * MiB)
        m = Mirror(self.d, self.fake.url, extra_args=("--shutdown-grace", "30s"))
        self.addCleanup(m.stop)
        m.start()
        got_some = threading.Event()
        result = {}

        def client():
            try:
                result["r"] = harness.stream_get(
                    m.url, f"/v2/stop/app/blobs/{body.digest}", timeout=30, deadline_s=60,
                    on_chunk=lambda n: got_some.set())
            except Exception as e:  # reported below
                result["r"] = e
            got_some.set()

        t = threading.Thread(target=client, daemon=True)
        t.start()
        self.assertTrue(got_some.wait(30), "no bytes before SIGTERM")
        m.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()

        def refused():
            try:
                harness.request(m.url, "GET", "/v2/", timeout=2)
                return False
            except OSError:
                return True
        wait_until(refused, 5, "the mirror to stop accepting connections")
        self.assertTrue(t.is_alive(), "the transfer ended before the mirror stopped accepting")
        t.join(timeout=60)
        r = result["r"]
        self.assertNotIsInstance(r, Exception)
        self.assertEqual((r.status, r.size, r.digest, r.error), (200, body.size, body.digest, None),
                         f"{r}\n{m.log()[-3000:]}")
        try:
            rc = m.proc.wait(timeout=30)
        except Exception:
            rc = None
        self.assertEqual(rc, 0, f"exit status after SIGTERM\n{m.log()[-3000:]}")
        print(f"\n[shutdown] exited {time.monotonic() - t0:.1f}s after SIGTERM", file=sys.stderr)
        self.assertIn("signal 15 received", m.log())
        path = harness.cache_object_path(m.root, "blob", body.digest)
        self.assertEqual(harness.file_sha256(path), body.digest, "the fill was not committed")
        again = Mirror(self.d, self.fake.url, root=m.root)
        self.addCleanup(again.stop)
        again.start()
        self.assertEqual(again.reconcile_report()["temp_removed"], 0)
        self.assertEqual(again.reconcile_report()["rows_dropped"], 0)
        self.assertEqual(again.reconcile_report()["orphans_adopted"], 0, "the blob was not indexed")

    def test_grace_period_bounds_a_stalled_transfer(self):
        body = GeneratedBody(4 * MiB, seed=18)
        self.fake.add_blob("stop/app", body, LAYER)
        self.fake.set_fault(body.digest, "stall", after=1 * MiB, max_s=60)
        self.addCleanup(self.fake.release_stalls)
        m = Mirror(self.d, self.fake.url, extra_args=("--shutdown-grace", "1s"))
        self.addCleanup(m.stop)
        m.start()
        result = {}
        t = threading.Thread(target=lambda: result.update(r=harness.stream_get(
            m.url, f"/v2/stop/app/blobs/{body.digest}", timeout=30, deadline_s=60)), daemon=True)
        t.start()
        wait_until(lambda: self.fake.bytes_sent(body.digest) >= 1 * MiB, 10, "the stall")
        t0 = time.monotonic()
        m.proc.send_signal(signal.SIGTERM)
        try:
            rc = m.proc.wait(timeout=15)
        except Exception:
            rc = None
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, f"exit status after the grace period\n{m.log()[-3000:]}")
        self.assertGreaterEqual(elapsed, 0.8, "exited before the grace period was over")
        self.assertLess(elapsed, 10, "the grace period did not bound the exit")
        t.join(timeout=35)
        self.assertFalse(t.is_alive())
        self.assertFalse(result["r"].complete, "a stalled transfer cannot have completed")

    def test_last_use_written_at_shutdown_not_on_the_hit(self):
        img = self.fake.add_image("stop/flush")
        m = Mirror(self.d, self.fake.url, extra_args=("--access-flush-interval", "1h"))
        self.addCleanup(m.stop)
        m.start()
        r = harness.request(m.url, "GET", "/v2/stop/flush/manifests/latest",
                            {"Accept": harness.MEDIA_DOCKER_V2})
        self.assertEqual(r.status, 200, r)
        for digest in (img["config_digest"], img["layer_digest"]):
            self.assertEqual(harness.stream_get(m.url, f"/v2/stop/flush/blobs/{digest}").digest,
                             digest)
        wait_until(lambda: len(ls_json(m.root)) == 1 and ls_json(m.root)[0]["blobs"] == 2, 10,
                   "the image to be indexed")
        first = ls_json(m.root)[0]["last_used_ms"]
        wait_until(lambda: time.time() * 1000 > first + 50, 5, "the clock to move on")
        hit_ms = int(time.time() * 1000)
        hit = harness.stream_get(m.url, f"/v2/stop/flush/blobs/{img['layer_digest']}")
        self.assertEqual(hit.headers.get("x-hubcache-cache"), "hit")
        self.assertEqual(ls_json(m.root)[0]["last_used_ms"], first,
                         "a hit's last-use time reached the index before the flush interval")
        self.assertEqual(m.stop(signal.SIGTERM), 0)
        self.assertGreaterEqual(ls_json(m.root)[0]["last_used_ms"], hit_ms - 5,
                                "the pending last-use time was not written at shutdown")


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
