#!/usr/bin/env python3
"""Hosted repositories in what the mirror reports: /stats `hosted`, /metrics, the admin API,
`hubcache ls` and `hubcache stats`; and that none of it moves the cache's own figures.

Figures: one mirror (`--hosted 'team/*'`) in front of the in-process fake upstream. A
mirrored image is pulled first (the cache's figures are then read), then an OCI image is
pushed into team/app with raw HTTP (two blobs monolithic, one as POST + two PATCHes + PUT),
its manifest tagged 1 and 2, an upload with the wrong digest, an upload left open, a push
to the mirrored name; then the hosted image is pulled by GET and HEAD, and an unknown tag
asked for. Every expected figure comes from the bytes the test pushed.

AdminDelete: with REGISTRY_STORAGE_DELETE_ENABLED off (the registry's DELETE is 405), the
admin API deletes a hosted tag, then the manifest by digest; /stats follows.
"""
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import hosted_push  # noqa: E402
from fake_upstream import FakeRegistry  # noqa: E402
from harness import ACCEPT_ALL  # noqa: E402
from mirror import Mirror, hubcache_bin, run_cli, wait_until  # noqa: E402
from test_stats import (get_json, metric, parse_metrics, promtool_check,  # noqa: E402
                        registry_requests)

ADMIN_TOKEN = "hosted-stats-admin-token"
S = harness.ModuleState()  # the work dir


def setUpModule():
    S.work = harness.cleaned_workdir("hosted-stats", unittest.addModuleCleanup)


def hosted_settled(mirror, want):
    """/stats once its `hosted` figures (cached by the server for a moment) are `want`."""
    def check():
        s = get_json(mirror, "/stats")
        h = s["hosted"]
        return s if all(h[k] == v for k, v in want.items()) else None
    return wait_until(check, 15, f"/stats hosted to be {want}")


class Figures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeRegistry().start()
        cls.addClassCleanup(cls.fake.stop)
        cls.mirrored = cls.fake.add_image("stats/mirrored", "1", layer_bytes=b"m" * 40_000)
        d = os.path.join(S.work, "figures")
        os.makedirs(d)
        # Without prefetch: the mirrored pull's outcomes are named request by request.
        cls.m = Mirror(d, cls.fake.url, extra_args=(
            "--hosted", "team/*", "--admin-token", ADMIN_TOKEN, "--access-log", "off",
            "--prefetch", "false"))
        cls.addClassCleanup(cls.m.stop)
        cls.m.start()
        cls.pull_mirrored()
        cls.before = cls.cache_settled()
        cls.push_started_ms = int(time.time() * 1000)
        cls.push()
        cls.pull_hosted()

    @classmethod
    def get(cls, method, path, want_status, want_cache, body=None):
        r = harness.request(cls.m.url, method, path, {"Accept": ACCEPT_ALL})
        if r.status != want_status or r.header("X-Hubcache-Cache") != want_cache:
            raise AssertionError(f"{method} {path}: want {want_status} {want_cache}, got {r!r}")
        if body is not None and r.body != body:
            raise AssertionError(f"{method} {path}: wrong body ({len(r.body)} bytes)")
        return r

    @classmethod
    def pull_mirrored(cls):
        img = cls.mirrored
        cls.get("GET", "/v2/stats/mirrored/manifests/1", 200, "miss", img["manifest"])
        cls.get("GET", f"/v2/stats/mirrored/blobs/{img['config_digest']}", 200, "miss",
                img["config"])
        cls.get("GET", f"/v2/stats/mirrored/blobs/{img['layer_digest']}", 200, "miss",
                img["layer"])
        wait_until(lambda: get_json(cls.m, "/stats?repositories=0")["fills"]["in_flight"] == 0,
                   20, "the downloads to be committed")
        cls.get("GET", f"/v2/stats/mirrored/blobs/{img['layer_digest']}", 200, "hit",
                img["layer"])
        cls.cache_bytes = len(img["manifest"]) + len(img["config"]) + len(img["layer"])

    @classmethod
    def cache_settled(cls):
        def check():
            s = get_json(cls.m, "/stats")
            ok = (registry_requests(s) == 4 and s["cache"]["entries"] == 3
                  and s["cache"]["size_bytes"] == cls.cache_bytes)
            return s if ok else None
        return wait_until(check, 15, "the cache's figures to settle")

    @classmethod
    def push(cls):
        url = cls.m.url
        cls.image = hosted_push.make_image("team/app", [b"first layer " * 200,
                                                        b"second layer " * 500])
        big = hosted_push.sha256(cls.image["layers"][1])
        hosted_push.push_image(url, "team/app", "1", cls.image, chunked=(big,))
        hosted_push.put_manifest(url, "team/app", "2", cls.image["manifest"])
        # The wrong digest: received, counted, refused.
        cls.wrong = b"not what the digest says"
        r = harness.request(url, "POST", "/v2/team/app/blobs/uploads/?digest="
                            + hosted_push.sha256(b"something else"),
                            {"Content-Type": "application/octet-stream"}, cls.wrong)
        assert r.status == 400 and "DIGEST_INVALID" in r.error_codes(), r
        # An upload left open.
        r = harness.request(url, "POST", "/v2/team/app/blobs/uploads/", {"Content-Length": "0"},
                            b"")
        assert r.status == 202, r
        # A push to the mirrored name.
        r = harness.request(url, "POST", "/v2/stats/mirrored/blobs/uploads/",
                            {"Content-Length": "0"}, b"")
        assert r.status == 403 and "DENIED" in r.error_codes(), r

    @classmethod
    def pull_hosted(cls):
        img = cls.image
        layer1 = img["layers"][0]
        cls.get("GET", "/v2/team/app/manifests/1", 200, "hosted", img["manifest"])
        cls.get("HEAD", "/v2/team/app/manifests/2", 200, "hosted")
        cls.get("GET", f"/v2/team/app/blobs/{hosted_push.sha256(layer1)}", 200, "hosted", layer1)
        cls.get("HEAD", f"/v2/team/app/blobs/{hosted_push.sha256(img['layers'][1])}", 200,
                "hosted")
        r = cls.get("GET", "/v2/team/app/manifests/nope", 404, None)
        cls.not_found_bytes = len(r.body)

    # -- expected figures -------------------------------------------------------------------------

    @property
    def blob_bytes(self):
        return sum(len(b) for b in self.image["blobs"].values())

    def expected(self):
        return {
            "patterns": ["team/*"],
            "repositories": 1, "manifests": 1, "tags": 2, "blobs": 3,
            "bytes": self.blob_bytes, "uploads_in_progress": 1,
            # Manifests: two PUTs, GET, HEAD, the 404; blobs: GET, HEAD.
            "requests": {"manifest": 5, "blob": 2, "total": 7},
            "bytes_served": len(self.image["manifest"]) + len(self.image["layers"][0])
            + self.not_found_bytes,
            # Three blobs, the wrong digest, the open upload.
            "uploads_started": 5, "uploads_purged": 0, "push_blobs": 3,
            "push_bytes": self.blob_bytes + len(self.wrong), "push_manifests": 2,
            "push_digest_mismatches": 1, "push_refused": 1, "deletes": 0,
        }

    def stats(self):
        e = self.expected()
        return hosted_settled(self.m, {"requests": e["requests"], "blobs": e["blobs"],
                                       "uploads_in_progress": e["uploads_in_progress"]})

    # -- /stats -----------------------------------------------------------------------------------

    def test_hosted_figures_are_exact(self):
        s = self.stats()
        h = dict(s["hosted"])
        listing = h.pop("repository_list")
        self.assertEqual(h, self.expected())
        self.assertEqual(len(listing), 1, listing)
        repo = dict(listing[0])
        last_push = repo.pop("last_push_ms")
        self.assertEqual(repo, {"name": "team/app", "size_bytes": self.blob_bytes,
                                "manifests": 1, "tags": ["1", "2"]})
        self.assertTrue(self.push_started_ms - 1000 <= last_push <= s["now_ms"], last_push)
        # Without the listing, the totals stay and the list is null.
        light = get_json(self.m, "/stats?repositories=0")
        self.assertIsNone(light["hosted"]["repository_list"])
        self.assertEqual(light["hosted"]["bytes"], self.blob_bytes)

    def test_the_cache_figures_ignore_hosted_content(self):
        s = self.stats()
        b = self.before
        self.assertEqual(s["cache"], b["cache"])
        self.assertEqual(s["cache"]["size_bytes"], self.cache_bytes)
        self.assertEqual(s["requests"], b["requests"])
        self.assertEqual(s["requests"]["manifest"]["errors"], 0)
        self.assertEqual(s["hit_ratio"], b["hit_ratio"])
        self.assertEqual(s["bytes"], b["bytes"])
        self.assertEqual(s["fills"], b["fills"])
        self.assertEqual([r["name"] for r in s["repositories"]], ["stats/mirrored"])
        routes = s["http"]["routes"]
        self.assertEqual(routes["manifest"]["cache"], {"miss": 1, "hosted": 5})
        self.assertEqual(routes["blob"]["cache"], {"hit": 1, "miss": 2, "hosted": 2})
        # On disk too: the cache's files are what they were.
        self.assertEqual(harness.cache_bytes(self.m.root), self.cache_bytes)

    # -- /metrics ---------------------------------------------------------------------------------

    def test_metrics(self):
        self.stats()
        r = harness.request(self.m.url, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        mt = parse_metrics(r.body.decode())
        e = self.expected()
        want = {
            "hubcache_hosted_bytes": e["bytes"],
            "hubcache_hosted_blobs": 3,
            "hubcache_hosted_manifests": 1,
            "hubcache_hosted_tags": 2,
            "hubcache_hosted_repositories": 1,
            "hubcache_hosted_uploads_in_progress": 1,
            "hubcache_push_bytes_total": e["push_bytes"],
            "hubcache_push_blobs_total": 3,
            "hubcache_push_manifests_total": 2,
            "hubcache_push_refused_total": 1,
            "hubcache_push_digest_mismatches_total": 1,
            "hubcache_push_uploads_started_total": 5,
            "hubcache_push_uploads_purged_total": 0,
            "hubcache_hosted_deletes_total": 0,
            "hubcache_cache_size_bytes": self.cache_bytes,
        }
        for name, value in want.items():
            with self.subTest(name=name):
                self.assertIn((name, ()), mt)
                self.assertEqual(metric(mt, name), value)
        self.assertEqual(metric(mt, "hubcache_served_bytes_total", source="hosted"),
                         e["bytes_served"])
        self.assertEqual(metric(mt, "hubcache_requests_total", kind="manifest", result="error"), 0)
        for route, code, n in (("manifest", "2xx", 4), ("manifest", "4xx", 1), ("blob", "2xx", 2)):
            self.assertEqual(metric(mt, "hubcache_http_requests_total", route=route,
                                    cache="hosted", code=code), n, (route, code))
        status, findings = promtool_check(r.body)
        self.assertEqual(status, 0, findings)
        self.assertEqual(findings.strip(), "", "promtool lint findings")

    # -- CLI --------------------------------------------------------------------------------------

    def test_ls_lists_hosted_repositories(self):
        p = run_cli("ls", "--root", self.m.root)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(any(x.startswith("stats/mirrored ") for x in lines), p.stdout)
        hosted = [x.split() for x in lines if x.startswith("team/app ")]
        self.assertEqual(len(hosted), 1, p.stdout)
        self.assertEqual(hosted[0][:3], ["team/app", "2", "1"], p.stdout)  # tags, manifests
        self.assertIn("hosted", hosted[0], p.stdout)
        self.assertTrue(any(x.startswith("HOSTED REPOSITORY") for x in lines), p.stdout)
        # --json stays the cached images (as GET /admin/images).
        p = run_cli("ls", "--root", self.m.root, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("team/app", p.stdout)

    def test_cli_stats(self):
        self.stats()
        p = subprocess.run([hubcache_bin(), "stats", "--url", self.m.url], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"Hosted\s+.* in 3 blobs, 1 repositories, 2 manifests pushed, "
                                   r"1 uploads in progress")


class AdminDelete(unittest.TestCase):
    def test_admin_deletes_a_hosted_tag_then_the_manifest(self):
        d = os.path.join(S.work, "admin")
        os.makedirs(d)
        # No upstream at all: a hosted name never needs one.
        m = Mirror(d, "http://127.0.0.1:1", extra_args=(
            "--hosted", "team/*", "--admin-token", ADMIN_TOKEN, "--access-log", "off"))
        self.addCleanup(m.stop)
        m.start()
        image = hosted_push.make_image("team/del", [b"layer to delete " * 64])
        hosted_push.push_image(m.url, "team/del", "1", image)
        hosted_push.put_manifest(m.url, "team/del", "2", image["manifest"])
        blob_bytes = sum(len(b) for b in image["blobs"].values())
        hosted_settled(m, {"tags": 2, "manifests": 1})
        admin = {"Authorization": "Bearer " + ADMIN_TOKEN}

        # The registry API may not delete here; the admin API may.
        r = harness.request(m.url, "DELETE", "/v2/team/del/manifests/2")
        self.assertEqual(r.status, 405, r)
        self.assertIn("UNSUPPORTED", r.error_codes())
        r = harness.request(m.url, "DELETE", "/admin/images/team/del:2")
        self.assertEqual(r.status, 401, r)
        r = harness.request(m.url, "DELETE", "/admin/images/team/del:2", admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"hosted": True, "deleted": "team/del:2",
                                    "manifests_removed": 0, "blobs_removed": 0, "bytes_freed": 0})
        r = harness.request(m.url, "GET", "/v2/team/del/manifests/2", {"Accept": ACCEPT_ALL})
        self.assertEqual(r.status, 404, r)
        self.assertIn("MANIFEST_UNKNOWN", r.error_codes())
        r = harness.request(m.url, "GET", "/v2/team/del/manifests/1", {"Accept": ACCEPT_ALL})
        self.assertEqual((r.status, r.header("X-Hubcache-Cache")), (200, "hosted"), r)
        s = hosted_settled(m, {"tags": 1, "deletes": 1})
        self.assertEqual(s["hosted"]["manifests"], 1)
        self.assertEqual([(x["name"], x["tags"]) for x in s["hosted"]["repository_list"]],
                         [("team/del", ["1"])])
        # Again: it is gone.
        r = harness.request(m.url, "DELETE", "/admin/images/team/del:2", admin)
        self.assertEqual(r.status, 404, r)
        self.assertIn("MANIFEST_UNKNOWN", r.error_codes())

        # By digest: the manifest and its remaining tag; the blobs wait for `hubcache gc`.
        r = harness.request(m.url, "DELETE", f"/admin/images/team/del@{image['digest']}", admin)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["manifests_removed"], 1)
        r = harness.request(m.url, "GET", "/v2/team/del/manifests/1", {"Accept": ACCEPT_ALL})
        self.assertEqual(r.status, 404, r)
        s = hosted_settled(m, {"manifests": 0, "deletes": 2})
        h = s["hosted"]
        self.assertEqual((h["repositories"], h["tags"], h["blobs"], h["bytes"]),
                         (0, 0, len(image["blobs"]), blob_bytes))
        self.assertEqual(h["repository_list"], [])
        self.assertEqual(s["cache"]["size_bytes"], 0)


if __name__ == "__main__":
    harness.require_tools("promtool")
    harness.run_module(__file__)
