#!/usr/bin/env python3
"""hubcache's registry API, request by request, against a real upstream.

Exact status codes, headers and bodies of the pull-side distribution API (manifests, blobs,
ranges, tags/list, _catalog, errors), plus what each request costs upstream: the access log
of the upstream docker-registry is the witness. Read-only checks share one mirror; a check
that counts upstream requests or needs a cold cache starts its own mirror (own root, own
port). The upstream holds library/multi:1,10,2,3 (an OCI index of linux/amd64 + linux/arm64/v8)
and library/docker2:1 (Docker schema2).
"""
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from harness import (ACCEPT_ALL, MEDIA_DOCKER_LIST, MEDIA_DOCKER_V2, MEDIA_OCI_INDEX,  # noqa: E402
                     MEDIA_OCI_MANIFEST)
from mirror import Mirror, hubcache_bin  # noqa: E402
from upstream import started_upstream  # noqa: E402

MULTI_TAGS = ("1", "10", "2", "3")  # in lexical order, which is not numeric order
API_VERSION = "registry/2.0"
ZERO_DIGEST = "sha256:" + "0" * 64
# --tag-freshness of the moved-tag checks: short, yet long enough for a loaded machine to
# ask twice inside the window after pushing to the upstream.
MOVE_FRESHNESS_S = 3

S = harness.ModuleState()  # work dir, upstream, described images


def setUpModule():
    S.work, S.up = started_upstream("api", unittest.addModuleCleanup)
    fixtures.push(S.up, S.work, "multi", tags=MULTI_TAGS)
    fixtures.push(S.up, S.work, "docker2")
    S.multi = fixtures.describe(S.up, "multi")
    S.docker2 = fixtures.describe(S.up, "docker2")
    S.mirrors = 0


def hubcache_load():
    """bench/load.cpp's binary: $HUBCACHE_LOAD (set by meson), else beside the hubcache binary."""
    path = os.environ.get("HUBCACHE_LOAD",
                          os.path.join(os.path.dirname(hubcache_bin()), "hubcache-load"))
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"hubcache-load not found or not executable: {path}")
    return path


def path_rx(path):
    """Regex for an upstream access-log path: `path`, with or without a query string."""
    return re.escape(path) + r"(\?.*)?"


class Base(unittest.TestCase):
    def new_mirror(self, *extra_args):
        S.mirrors += 1
        d = os.path.join(S.work, f"mirror-{S.mirrors}")
        os.makedirs(d)
        m = Mirror(d, S.up.url, extra_args=extra_args)
        self.addCleanup(m.stop)
        return m.start()

    def call(self, mirror, method, path, headers=None, body=None, timeout=30):
        r = harness.request(mirror.url, method, path, headers, body, timeout=timeout)
        self.assertEqual(r.header("Docker-Distribution-API-Version"), API_VERSION,
                         f"{method} {path}: every response carries the API version: {r!r}")
        self.assertTrue(r.complete, f"{method} {path}: response cut short: {r!r}")
        return r

    def get_manifest(self, mirror, name, ref, accept=ACCEPT_ALL, method="GET", extra=None):
        h = {"Accept": accept}
        h.update(extra or {})
        return self.call(mirror, method, f"/v2/{name}/manifests/{ref}", h)

    def assert_error(self, r, statuses, codes, what):
        statuses = (statuses,) if isinstance(statuses, int) else statuses
        self.assertIn(r.status, statuses, f"{what}: {r!r}")
        got = r.error_codes()
        self.assertTrue(got, f"{what}: want a registry error body, got {r!r}")
        if codes:
            self.assertTrue(set(got) & set(codes), f"{what}: want a code in {codes}, got {r!r}")

    def assert_manifest(self, r, digest, media_type, raw, head=False):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), media_type, r)
        self.assertEqual(r.header("Docker-Content-Digest"), digest, r)
        self.assertEqual(r.header("Content-Length"), str(len(raw)), r)
        self.assertEqual(r.header("ETag"), f'"{digest}"', r)
        self.assertEqual(r.body, b"" if head else raw, r)

    def sync(self):
        S.up.sync_log()
        return S.up.mark()

    def check_ranges(self, mirror, repo, digest, want):
        size = len(want)
        path = f"/v2/{repo}/blobs/{digest}"
        satisfiable = [("bytes=0-99", 0, 99), (f"bytes={size - 10}-", size - 10, size - 1),
                       ("bytes=-100", size - 100, size - 1),
                       (f"bytes=1000-{size + 5000}", 1000, size - 1)]
        for spec, first, last in satisfiable:
            with self.subTest(range=spec):
                r = self.call(mirror, "GET", path, {"Range": spec})
                self.assertEqual(r.status, 206, r)
                self.assertEqual(r.header("Content-Range"), f"bytes {first}-{last}/{size}", r)
                self.assertEqual(r.header("Content-Length"), str(last - first + 1), r)
                self.assertTrue(r.body == want[first:last + 1], f"{spec}: wrong bytes")
        for spec in (f"bytes={size}-", f"bytes={size + 100}-{size + 200}"):
            with self.subTest(range=spec):
                r = self.call(mirror, "GET", path, {"Range": spec})
                self.assertEqual(r.status, 416, r)


class SharedMirror(Base):
    """Checks that do not count upstream requests; they share one mirror."""

    @classmethod
    def setUpClass(cls):
        S.mirrors += 1
        d = os.path.join(S.work, f"mirror-{S.mirrors}")
        os.makedirs(d)
        cls.m = Mirror(d, S.up.url)
        cls.addClassCleanup(cls.m.stop)
        cls.m.start()

    def test_v2_root(self):
        r = self.call(self.m, "GET", "/v2/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {}, r)

    def test_manifest_get_and_head_by_tag_and_digest(self):
        arm64 = next(d for p, d in S.multi.children if p.get("architecture") == "arm64")
        cases = [("library/multi", "1", S.multi.digest), ("library/multi", S.multi.digest, None),
                 ("library/multi", arm64, None), ("library/docker2", "1", S.docker2.digest),
                 ("library/docker2", S.docker2.digest, None)]
        for name, ref, digest in cases:
            digest = digest or ref
            img = S.multi if name == "library/multi" else S.docker2
            media_type, raw = img.manifests[digest]
            for method in ("GET", "HEAD"):
                with self.subTest(name=name, ref=ref[:19], method=method):
                    r = self.get_manifest(self.m, name, ref, method=method)
                    self.assert_manifest(r, digest, media_type, raw, head=method == "HEAD")

    def test_manifest_if_none_match(self):
        etag = f'"{S.multi.digest}"'
        for ref in ("1", S.multi.digest):
            with self.subTest(ref=ref[:19]):
                r = self.get_manifest(self.m, "library/multi", ref, extra={"If-None-Match": etag})
                self.assertEqual(r.status, 304, r)
                self.assertEqual(r.body, b"", r)
                r = self.get_manifest(self.m, "library/multi", ref,
                                      extra={"If-None-Match": f'"{ZERO_DIGEST}"'})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("Docker-Content-Digest"), S.multi.digest, r)

    def assert_whole_blob_answer(self, r, digest, size):
        """`r` answers the whole blob: 200, its size, digest and Accept-Ranges: bytes."""
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), str(size), r)
        self.assertEqual(r.header("Docker-Content-Digest"), digest, r)
        self.assertEqual(r.header("Accept-Ranges"), "bytes", r)

    def test_blob_head_and_get(self):
        for img, fixture in ((S.multi, "multi"), (S.docker2, "docker2")):
            for digest, size in img.blobs.items():
                with open(fixtures.blob_path(fixture, digest), "rb") as f:
                    want = f.read()
                path = f"/v2/{img.repo}/blobs/{digest}"
                with self.subTest(blob=f"{img.repo}@{digest[:19]}", method="HEAD"):
                    self.assert_whole_blob_answer(self.call(self.m, "HEAD", path), digest, size)
                with self.subTest(blob=f"{img.repo}@{digest[:19]}", method="GET"):
                    r = self.call(self.m, "GET", path)
                    self.assert_whole_blob_answer(r, digest, size)
                    self.assertTrue(r.body == want, f"body of {digest} differs ({len(r.body)} "
                                                    f"bytes, want {len(want)})")

    def test_range_on_cached_blob(self):
        digest = S.multi.layers[0]
        with open(fixtures.blob_path("multi", digest), "rb") as f:
            want = f.read()
        r = self.call(self.m, "GET", f"/v2/library/multi/blobs/{digest}")
        self.assertEqual(r.status, 200, r)
        self.check_ranges(self.m, "library/multi", digest, want)

    def test_writes_to_mirrored_names_are_denied(self):
        mark = self.sync()
        manifest = S.multi.raw
        cases = [("POST", "/v2/library/multi/blobs/uploads/", None, {}),
                 ("PUT", "/v2/library/multi/manifests/9", manifest,
                  {"Content-Type": MEDIA_OCI_INDEX}),
                 ("DELETE", f"/v2/library/multi/manifests/{S.multi.digest}", None, {}),
                 ("DELETE", f"/v2/library/multi/blobs/{S.multi.layers[0]}", None, {}),
                 ("PATCH", "/v2/library/multi/blobs/uploads/0f6c1b1e-6a43-4b1c-9a7a-2d9b1c1d1e1f",
                  b"x" * 10, {"Content-Type": "application/octet-stream"})]
        for method, path, body, headers in cases:
            with self.subTest(method=method, path=path):
                r = self.call(self.m, method, path, headers, body)
                self.assert_error(r, 403, ["DENIED"], f"{method} {path}")
                self.assertIn("HUBCACHE_HOSTED", r.body.decode(), r)
        S.up.sync_log()
        writes = [l for l in S.up.requests(since=mark) if l.method not in ("GET", "HEAD")]
        self.assertEqual(writes, [], "write requests reached the upstream")

    def test_invalid_names(self):
        mark = self.sync()
        for path in ("/v2/UPPER/manifests/1", "/v2/a..b/manifests/x",
                     f"/v2/library/UPPER/blobs/{S.multi.layers[0]}", "/v2/-lead/tags/list"):
            with self.subTest(path=path):
                r = self.call(self.m, "GET", path)
                self.assert_error(r, 400, ["NAME_INVALID"], path)
        # A path the router cannot even match may be a 404, but still in registry JSON.
        path = "/v2/../etc/manifests/x"
        with self.subTest(path=path):
            r = self.call(self.m, "GET", path)
            self.assertIn(r.status, (400, 404), r)
            if r.status == 400:
                self.assert_error(r, 400, ["NAME_INVALID"], path)
            else:
                self.assertTrue(r.error_codes(), f"{path}: a 404 must be registry JSON: {r!r}")
        S.up.sync_log()
        self.assertEqual(S.up.requests(since=mark), [], "invalid names reached the upstream")

    def test_bad_digests_and_references(self):
        mark = self.sync()
        for ref in ("sha256:abc", "sha256:" + "Z" * 64, "sha256:" + "A" * 64, "notadigest",
                    "sha256:" + "a" * 65):
            with self.subTest(blob=ref):
                path = f"/v2/library/multi/blobs/{ref}"
                self.assert_error(self.call(self.m, "GET", path), 400, ["DIGEST_INVALID"], path)
        for ref in ("sha256:abc", "sha256:" + "Z" * 64, "sha512:" + "a" * 128):
            with self.subTest(manifest=ref[:20]):
                path = f"/v2/library/multi/manifests/{ref}"
                self.assert_error(self.call(self.m, "GET", path, {"Accept": ACCEPT_ALL}), 400,
                                  ["DIGEST_INVALID"], path)
        # Neither a tag nor a digest: no manifest can exist under it, so 404 (as the OCI
        # conformance suite's ".INVALID_MANIFEST_NAME" expects), GET and HEAD alike.
        for ref in (".INVALID_MANIFEST_NAME", ".hidden", "-dash", "a" * 129):
            with self.subTest(manifest=ref[:20]):
                path = f"/v2/library/multi/manifests/{ref}"
                self.assert_error(self.call(self.m, "GET", path, {"Accept": ACCEPT_ALL}), 404,
                                  ["MANIFEST_UNKNOWN"], path)
                self.assertEqual(self.call(self.m, "HEAD", path).status, 404, path)
        S.up.sync_log()
        self.assertEqual(S.up.requests(since=mark), [], "invalid references reached the upstream")

    def test_unknown_objects(self):
        r = self.get_manifest(self.m, "library/multi", "no-such-tag")
        self.assert_error(r, 404, ["MANIFEST_UNKNOWN"], "unknown tag")
        r = self.get_manifest(self.m, "library/multi", ZERO_DIGEST)
        self.assert_error(r, 404, ["MANIFEST_UNKNOWN"], "unknown manifest digest")
        r = self.call(self.m, "GET", f"/v2/library/multi/blobs/{ZERO_DIGEST}")
        self.assert_error(r, 404, ["BLOB_UNKNOWN"], "unknown blob")
        r = self.call(self.m, "HEAD", f"/v2/library/multi/blobs/{ZERO_DIGEST}")
        self.assertEqual(r.status, 404, r)

    def test_ns_query_parameter(self):
        r = self.get_manifest(self.m, "library/multi", "1?ns=docker.io")
        self.assert_manifest(r, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw)
        r = self.get_manifest(self.m, "multi", f"{S.multi.digest}?ns=docker.io", method="HEAD")
        self.assert_manifest(r, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw, head=True)
        digest = S.multi.layers[0]
        r = self.call(self.m, "HEAD", f"/v2/library/multi/blobs/{digest}?ns=docker.io")
        self.assertEqual((r.status, r.header("Docker-Content-Digest")), (200, digest), r)
        r = self.call(self.m, "GET", "/v2/library/multi/tags/list?ns=docker.io")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(sorted(r.json().get("tags")), list(MULTI_TAGS), r)

    def test_tags_list_pagination(self):
        # The upstream (distribution 2.8) lists tags in no particular order and ignores n and
        # last, so paging is the mirror's own: lexical order, as the distribution spec says.
        r = self.call(self.m, "GET", "/v2/library/multi/tags/list")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("name"), "library/multi", r)
        self.assertEqual(sorted(r.json().get("tags")), list(MULTI_TAGS), r)
        self.assertIsNone(r.header("Link"), r)

        r = self.call(self.m, "GET", "/v2/library/multi/tags/list?n=3")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("tags"), ["1", "10", "2"], r)
        m = re.fullmatch(r'<([^>]+)>;\s*rel="next"', r.header("Link") or "")
        self.assertIsNotNone(m, f"Link header: {r!r}")
        nxt = urllib.parse.urlsplit(m.group(1))
        self.assertEqual(nxt.path, "/v2/library/multi/tags/list", r)
        q = urllib.parse.parse_qs(nxt.query)
        self.assertEqual((q.get("n"), q.get("last")), (["3"], ["2"]), r)

        r = self.call(self.m, "GET", m.group(1))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("tags"), ["3"], r)
        self.assertIsNone(r.header("Link"), f"the last page has no next: {r!r}")

        r = self.call(self.m, "GET", "/v2/library/multi/tags/list?last=1")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json().get("tags"), ["10", "2", "3"], r)


    def test_load_generator_on_cached_objects(self):
        """hubcache-load (bench/rates.sh's client) against hits: a HEAD run ends on time (a
        HEAD has no body to wait for), GET's MB/s is its requests times the body's length,
        and the strict client sees no error (no body after a HEAD, no wrong length)."""
        load = hubcache_load()
        digest = S.docker2.digest
        media_type, raw = S.docker2.manifests[digest]
        layer = max(S.docker2.layers, key=lambda d: S.docker2.blobs[d])
        manifest_path = f"/v2/library/docker2/manifests/{digest}"
        blob_path = f"/v2/library/docker2/blobs/{layer}"
        self.assert_manifest(self.get_manifest(self.m, "library/docker2", digest), digest,
                             media_type, raw)
        self.assertEqual(self.call(self.m, "GET", blob_path).status, 200)
        seconds = 0.4
        cases = [("HEAD", manifest_path, 0), ("GET", manifest_path, len(raw)),
                 ("HEAD", blob_path, 0), ("GET", blob_path, S.docker2.blobs[layer])]
        for method, path, body_bytes in cases:
            with self.subTest(method=method, path=path):
                argv = [load, "-c", "4", "-t", "2", "-d", str(seconds), "-m", method,
                        "-H", f"Accept: {ACCEPT_ALL}", "-p", "t", self.m.url + path]
                t0 = time.monotonic()
                p = subprocess.run(argv, capture_output=True, text=True, timeout=15)
                elapsed = time.monotonic() - t0
                self.assertEqual(p.returncode, 0, f"{argv}: {p.stdout}{p.stderr}")
                self.assertLess(elapsed, seconds + 3, f"{method} run did not end on time")
                figures = {}
                for line in p.stdout.splitlines():
                    if line and not line.startswith("#"):
                        name, value, _unit = line.split()
                        figures[name] = value
                requests = int(figures["t_requests"])
                self.assertGreater(requests, 0, p.stdout)
                self.assertEqual(figures["t_errors"], "0", p.stdout)
                want_mbps = requests * body_bytes / seconds / 1e6
                self.assertAlmostEqual(float(figures["t_MBps"]), want_mbps, delta=0.006,
                                       msg=p.stdout)
                self.assertGreater(float(figures["t_max"]), 0, p.stdout)


class OwnMirror(Base):
    """Checks that need a cold cache or count upstream requests: one mirror each."""

    def test_ns_of_another_registry_is_unknown(self):
        """?ns= names the registry (containerd); this mirror has Docker Hub's content only."""
        m = self.new_mirror()
        mark = self.sync()
        digest = S.multi.layers[0]
        paths = [("GET", "/v2/library/multi/manifests/1"), ("HEAD", "/v2/library/multi/manifests/1"),
                 ("GET", f"/v2/library/multi/manifests/{S.multi.digest}"),
                 ("GET", f"/v2/library/multi/blobs/{digest}"),
                 ("HEAD", f"/v2/library/multi/blobs/{digest}"),
                 ("GET", "/v2/library/multi/tags/list")]
        for query in ("ns=ghcr.io", "ns=quay.io", "ns=", "ns=docker.io.example.com",
                      "ns=registry-1.docker.io", "ns=docker.io&ns=ghcr.io", "ns=ghcr.io&ns=docker.io"):
            for method, path in paths:
                with self.subTest(query=query, method=method, path=path):
                    r = self.call(m, method, f"{path}?{query}", {"Accept": ACCEPT_ALL})
                    self.assertEqual(r.status, 404, r)
                    if method == "GET":
                        self.assert_error(r, 404, ["NAME_UNKNOWN"], f"{method} {path}?{query}")
                    self.assertIsNone(r.header("Docker-Content-Digest"), r)
        S.up.sync_log()
        self.assertEqual(S.up.requests(path_regex=r"/v2/library/.*", since=mark), [],
                         "a request for another registry's repository was asked upstream")
        # Docker Hub's own name (what containerd sends for docker.io images) still works.
        r = self.get_manifest(m, "library/multi", "1?ns=docker.io")
        self.assert_manifest(r, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw)

    def test_short_name_is_library_name(self):
        m = self.new_mirror()
        mark = self.sync()
        short = self.get_manifest(m, "multi", "1")
        full = self.get_manifest(m, "library/multi", "1")
        self.assert_manifest(short, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw)
        self.assert_manifest(full, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw)
        S.up.sync_log()
        gets = S.up.requests("GET", path_rx("/v2/library/multi/manifests/1"), "2xx", since=mark)
        self.assertEqual(len(gets), 1, f"one upstream manifest GET for both names: {gets}")
        stray = S.up.requests(path_regex=r"/v2/multi/.*", since=mark)
        self.assertEqual(stray, [], "the mirror must ask the upstream for library/multi")

    def test_cached_tag_within_freshness_stays_local(self):
        m = self.new_mirror()
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)
        mark = self.sync()
        for _ in range(3):
            self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                                 MEDIA_OCI_INDEX, S.multi.raw)
        S.up.sync_log()
        self.assertEqual(S.up.requests(path_regex=r"/v2/library/multi/manifests/.*", since=mark),
                         [], "a fresh cached tag was asked upstream (default --tag-freshness 60s)")

    def test_manifest_by_digest_is_never_reasked(self):
        m = self.new_mirror("--tag-freshness", "0s")
        ref = S.multi.digest
        self.assert_manifest(self.get_manifest(m, "library/multi", ref), ref, MEDIA_OCI_INDEX,
                             S.multi.raw)
        mark = self.sync()
        for method in ("GET", "HEAD", "GET"):
            r = self.get_manifest(m, "library/multi", ref, method=method)
            self.assert_manifest(r, ref, MEDIA_OCI_INDEX, S.multi.raw, head=method == "HEAD")
        S.up.sync_log()
        self.assertEqual(S.up.requests(path_regex=r"/v2/library/multi/manifests/.*", since=mark),
                         [], "a manifest by digest was asked upstream again")

    def test_tag_freshness_zero_revalidates_with_head(self):
        m = self.new_mirror("--tag-freshness", "0s")
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)
        mark = self.sync()
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)
        S.up.sync_log()
        tag_rx = path_rx("/v2/library/multi/manifests/1")
        heads = S.up.requests("HEAD", tag_rx, "2xx", since=mark)
        gets = S.up.requests("GET", tag_rx, since=mark)
        self.assertGreaterEqual(len(heads), 1, "a stale tag must be revalidated with a HEAD")
        self.assertEqual(gets, [], "an unchanged tag must not be downloaded again")

    def check_moved_tag(self, first_method):
        """A tag moved upstream: the old manifest within --tag-freshness, the new one after.

        library/docker2:<tag> starts at docker2's manifest and moves to the same manifest
        formatted differently (same blobs, another digest)."""
        tag = f"moving-{first_method.lower()}"
        old, old_raw = S.docker2.digest, S.docker2.raw
        new_raw = json.dumps(json.loads(old_raw), indent=1).encode()
        self.assertNotEqual(new_raw, old_raw)
        S.up.put_manifest("library/docker2", tag, S.docker2.media_type, old_raw)
        m = self.new_mirror("--tag-freshness", f"{MOVE_FRESHNESS_S}s")
        tag_rx = path_rx(f"/v2/library/docker2/manifests/{tag}")
        mark = self.sync()

        asked = time.monotonic()
        self.assert_manifest(self.get_manifest(m, "library/docker2", tag), old, S.docker2.media_type,
                             old_raw)
        answered = time.monotonic()  # the mirror checked the tag between asked and now
        new = S.up.put_manifest("library/docker2", tag, S.docker2.media_type, new_raw)
        self.assertEqual(new, "sha256:" + harness.sha256_hex(new_raw))
        for method in ("GET", "HEAD"):
            r = self.get_manifest(m, "library/docker2", tag, method=method)
            self.assert_manifest(r, old, S.docker2.media_type, old_raw, head=method == "HEAD")
        self.assertLess(time.monotonic() - asked, MOVE_FRESHNESS_S,
                        "too slow to check the freshness window: the requests above ended after it")
        S.up.sync_log()
        self.assertEqual(len(S.up.requests(path_regex=tag_rx, status="2xx", since=mark)), 1,
                         "a fresh tag was asked upstream again within --tag-freshness")

        # After the window: the first request of either method finds the tag moved.
        time.sleep(max(0.0, answered + MOVE_FRESHNESS_S + 0.1 - time.monotonic()))
        for method in (first_method, "HEAD" if first_method == "GET" else "GET"):
            r = self.get_manifest(m, "library/docker2", tag, method=method)
            self.assert_manifest(r, new, S.docker2.media_type, new_raw, head=method == "HEAD")
        S.up.sync_log()
        self.assertGreaterEqual(len(S.up.requests("HEAD", tag_rx, "2xx", since=mark)), 1,
                                "the stale tag was not revalidated with a HEAD")
        self.assertEqual(len(S.up.requests("GET", tag_rx, "2xx", since=mark)), 2,
                         "the moved tag was not fetched exactly once more")
        # The old manifest stays what its digest names.
        self.assert_manifest(self.get_manifest(m, "library/docker2", old), old, S.docker2.media_type,
                             old_raw)

    def test_moved_tag_followed_by_get_after_freshness(self):
        self.check_moved_tag("GET")

    def test_moved_tag_followed_by_head_after_freshness(self):
        self.check_moved_tag("HEAD")

    def test_stale_tag_served_while_upstream_down(self):
        m = self.new_mirror("--tag-freshness", "0s")
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)
        S.up.stop()
        try:
            for method in ("GET", "HEAD"):
                with self.subTest(method=method):
                    r = self.get_manifest(m, "library/multi", "1", method=method)
                    self.assert_manifest(r, S.multi.digest, MEDIA_OCI_INDEX, S.multi.raw,
                                         head=method == "HEAD")
            r = self.get_manifest(m, "library/multi", "2")
            self.assert_error(r, (502, 503), [], "an uncached tag with the upstream down")
            self.assertTrue(r.error_codes(), f"want registry error JSON: {r!r}")
        finally:
            S.up.start()

    def test_blob_head_miss_asks_upstream_with_head(self):
        m = self.new_mirror()
        digest = S.docker2.layers[0]
        rx = path_rx(f"/v2/library/docker2/blobs/{digest}")
        mark = self.sync()
        r = self.call(m, "HEAD", f"/v2/library/docker2/blobs/{digest}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), str(S.docker2.blobs[digest]), r)
        self.assertEqual(r.header("Docker-Content-Digest"), digest, r)
        S.up.sync_log()
        self.assertGreaterEqual(S.up.count_requests("HEAD", rx, "2xx", since=mark), 1)
        self.assertEqual(S.up.requests("GET", rx, since=mark), [],
                         "a HEAD on a cold blob must not download it")

    def test_range_on_cold_blob(self):
        m = self.new_mirror()
        digest = S.docker2.layers[1]
        with open(fixtures.blob_path("docker2", digest), "rb") as f:
            want = f.read()
        r = self.call(m, "GET", f"/v2/library/docker2/blobs/{digest}", {"Range": "bytes=0-99"})
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.header("Content-Range"), f"bytes 0-99/{len(want)}", r)
        self.assertTrue(r.body == want[:100], "wrong bytes for bytes=0-99 on a cold blob")
        r = self.call(m, "GET", f"/v2/library/docker2/blobs/{digest}")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == want, "full GET after a cold Range GET returned wrong bytes")
        self.check_ranges(m, "library/docker2", digest, want)

    def test_catalog_lists_cached_repositories(self):
        m = self.new_mirror()
        self.assertEqual(self.get_manifest(m, "library/multi", "1").status, 200)
        r = self.call(m, "GET", "/v2/_catalog")
        self.assertEqual(r.status, 200, r)
        repos = r.json().get("repositories")
        self.assertIsInstance(repos, list, r)
        self.assertIn("library/multi", repos, r)
        self.assertNotIn("library/docker2", repos, "_catalog lists what is cached, not more")

    def check_narrow_accept(self, m, accept):
        """A client that does not accept OCI indexes never gets the (cached) OCI index."""
        for method in ("GET", "HEAD"):
            with self.subTest(accept=accept, method=method):
                r = self.get_manifest(m, "library/multi", "1", accept=accept, method=method)
                u = S.up.request(method, "/v2/library/multi/manifests/1", {"Accept": accept})
                self.assertNotEqual(r.header("Content-Type"), MEDIA_OCI_INDEX, r)
                self.assertEqual(r.status, u.status,
                                 f"want what the upstream answers for Accept {accept}: {u!r}; "
                                 f"got {r!r}")
                if r.status == 404 and method == "GET":
                    self.assertIn("MANIFEST_UNKNOWN", r.error_codes(), r)
                elif r.status == 200:
                    self.assertIn(r.header("Content-Type"), accept.split(", "), r)

    def test_narrow_accept_after_index_is_cached(self):
        m = self.new_mirror()
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)
        for accept in (MEDIA_DOCKER_V2, MEDIA_OCI_MANIFEST,
                       f"{MEDIA_DOCKER_LIST}, {MEDIA_DOCKER_V2}"):
            self.check_narrow_accept(m, accept)

    def test_narrow_accept_on_cold_tag_does_not_poison_cache(self):
        m = self.new_mirror()
        self.check_narrow_accept(m, MEDIA_DOCKER_V2)
        self.assert_manifest(self.get_manifest(m, "library/multi", "1"), S.multi.digest,
                             MEDIA_OCI_INDEX, S.multi.raw)


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
