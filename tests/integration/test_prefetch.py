#!/usr/bin/env python3
"""Prefetch on manifest: a GET of an image manifest the mirror lacked starts its blobs.

Against a real upstream (docker-registry + token server, library/many12:1 of twelve
256 KiB layers, docker2:1, multi:1, sharea:1, shareb:1), one mirror with the caps set
low (HUBCACHE_PREFETCH_MAX_FILLS=3, HUBCACHE_PREFETCH_MAX_BYTES=600KiB):
  - a manifest GET alone brings every blob in, each fetched from the upstream once,
    never more than 3 at a time nor more than 600 KiB announced in flight;
  - a cold skopeo pull (its blob requests racing the prefetch) is byte-identical to a
    direct one and still fetches every blob once;
  - a HEAD, a hit, and an index prefetch nothing; an index's child by digest does.
Against the fault-injecting fake (only for holding bodies mid-transfer, which a real
registry cannot do on demand): with every layer held, exactly the cap runs and the rest
waits; a client GET of a layer being prefetched joins that fill (one upstream GET); with
HUBCACHE_PREFETCH=false nothing is fetched before it is asked for.
Every test uses its own images, so none depends on another having run.
"""
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from fake_upstream import FakeRegistry  # noqa: E402
from mirror import Mirror, wait_until  # noqa: E402
from upstream import started_upstream  # noqa: E402

MAX_FILLS = 3
MAX_BYTES = 600 * 1024
SETTLE_S = 60


def stats(mirror):
    r = harness.request(mirror.url, "GET", "/stats")
    assert r.status == 200, r
    return r.json()["prefetch"]


def settled(mirror, started_and_skipped):
    """Waits until the prefetcher has dealt with `started_and_skipped` blobs in all and
    has nothing running or queued; returns its figures."""
    def done():
        p = stats(mirror)
        if (p["started"] + p["skipped"] >= started_and_skipped and p["active"] == 0
                and p["queued"] == 0):
            return p
        return None
    return wait_until(done, SETTLE_S, "prefetch to settle")


class PrefetchRealUpstream(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("prefetch", cls.addClassCleanup)
        cls.images = fixtures.push_described(cls.up, cls.work,
                                             ("many12", "docker2", "multi", "sharea"))
        cls.mirror = cls.start_mirror("mirror")
        cls.addClassCleanup(cls.mirror.stop)

    @classmethod
    def start_mirror(cls, name):
        os.makedirs(os.path.join(cls.work, name))
        m = Mirror(os.path.join(cls.work, name), cls.up.url,
                   env={"HUBCACHE_PREFETCH_MAX_FILLS": str(MAX_FILLS),
                        "HUBCACHE_PREFETCH_MAX_BYTES": f"{MAX_BYTES // 1024}KiB"})
        m.start()
        return m

    def blob_gets(self, image, since):
        self.up.sync_log()
        return {d: self.up.count_requests("GET", rf"/v2/{image.repo}/blobs/{d}", status="2xx",
                                          since=since)
                for d in image.blobs}

    def get_manifest(self, repo, ref, method="GET"):
        r = harness.request(self.mirror.url, method, f"/v2/{repo}/manifests/{ref}",
                            {"Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 200, r)
        return r

    def test_manifest_get_prefetches_every_blob_once_within_the_caps(self):
        # A mirror of its own: the peaks are since its start.
        self.mirror = self.start_mirror("mirror-caps")
        self.addCleanup(self.mirror.stop)
        img = self.images["many12"]
        before = settled(self.mirror, 0)
        self.up.sync_log()
        mark = self.up.mark()
        self.get_manifest(img.repo, "1")
        p = settled(self.mirror, before["started"] + before["skipped"] + len(img.blobs))
        self.assertEqual(p["manifests"] - before["manifests"], 1)
        self.assertEqual(p["started"] - before["started"], len(img.blobs))
        self.assertEqual(p["failed"], before["failed"])
        self.assertEqual(self.blob_gets(img, mark), {d: 1 for d in img.blobs})
        self.assertLessEqual(p["peak_active"], MAX_FILLS)
        self.assertGreaterEqual(p["peak_active"], 2, "prefetch never ran two blobs at once")
        # One fill always may run; beyond it the announced bytes stay under the cap.
        self.assertLessEqual(p["peak_bytes"], MAX_BYTES)
        # Every blob is a hit now, without another upstream request.
        for d in img.blobs:
            r = harness.request(self.mirror.url, "HEAD", f"/v2/{img.repo}/blobs/{d}")
            self.assertEqual((r.status, r.header("X-Hubcache-Cache")), (200, "hit"), d)
        self.assertEqual(self.blob_gets(img, mark), {d: 1 for d in img.blobs})

    def test_cold_pull_racing_the_prefetch_is_identical_and_fetches_once(self):
        img = self.images["docker2"]
        direct = os.path.join(self.work, "direct-docker2")
        harness.skopeo_copy(self.work, self.up.host, "library/docker2:1", direct)
        before = settled(self.mirror, 0)
        self.up.sync_log()
        mark = self.up.mark()
        through = os.path.join(self.work, "mirror-docker2")
        harness.skopeo_copy(self.work, f"127.0.0.1:{self.mirror.port}", "library/docker2:1",
                            through)
        self.assertEqual(harness.compare_dirs(direct, through), [])
        p = settled(self.mirror, before["started"] + before["skipped"] + len(img.blobs))
        self.assertEqual(p["manifests"] - before["manifests"], 1)
        # Each blob was started by the prefetcher or by skopeo, never both.
        self.assertEqual(p["started"] - before["started"] + p["skipped"] - before["skipped"],
                         len(img.blobs))
        self.assertEqual(self.blob_gets(img, mark), {d: 1 for d in img.blobs})

    def test_head_hit_and_index_prefetch_nothing_child_by_digest_does(self):
        share = self.images["sharea"]
        before = settled(self.mirror, 0)
        self.get_manifest(share.repo, "1", method="HEAD")
        self.assertEqual(stats(self.mirror)["manifests"], before["manifests"], "HEAD prefetched")

        multi = self.images["multi"]
        self.assertTrue(multi.children)
        self.get_manifest(multi.repo, "1")  # an index
        self.assertEqual(stats(self.mirror)["manifests"], before["manifests"],
                         "an index prefetched")
        child = multi.children[0][1]
        self.get_manifest(multi.repo, child)
        after_child = stats(self.mirror)
        self.assertEqual(after_child["manifests"], before["manifests"] + 1)
        # The same child again is a hit: nothing more.
        r = self.get_manifest(multi.repo, child)
        self.assertEqual(r.header("X-Hubcache-Cache"), "hit")
        self.assertEqual(stats(self.mirror)["manifests"], after_child["manifests"])
        settled(self.mirror, 0)


class PrefetchHeldBodies(unittest.TestCase):
    def setUp(self):
        self.work, cleanup = harness.module_workdir("prefetch-fake")
        self.addCleanup(cleanup)
        self.fake = FakeRegistry()
        self.fake.start()
        self.addCleanup(self.fake.stop)
        self.addCleanup(self.fake.release_stalls)

    def start_mirror(self, env):
        root = os.path.join(self.work, "mirror")
        os.makedirs(root, exist_ok=True)
        m = Mirror(root, self.fake.url, env=env)
        m.start()
        self.addCleanup(m.stop)
        return m

    def blob_requests(self, digest):
        return len(self.fake.requests(method="GET", path_contains=f"/blobs/{digest}"))

    def test_caps_hold_while_bodies_are_held_and_clients_join(self):
        layers = [bytes([i]) * (200_000 + i) for i in range(6)]
        img = self.fake.add_image("pf/held", "1", layers=layers)
        cd, lds = img["config_digest"], img["layer_digests"]
        for d in lds:
            self.fake.set_fault(d, "stall", after=1000, max_s=30, resume=True)
        m = self.start_mirror({"HUBCACHE_PREFETCH_MAX_FILLS": "2"})
        r = harness.request(m.url, "GET", "/v2/pf/held/manifests/1", {"Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 200, r)
        # The config is not held: it lands, then two layers run and four wait.
        p = wait_until(lambda: (lambda s: s if s["active"] == 2 and s["queued"] == 4 else None)(
            stats(m)), 20, "two held prefetches and four queued")
        self.assertEqual(p["started"], 3)
        wait_until(lambda: self.blob_requests(lds[0]) == 1 and self.blob_requests(lds[1]) == 1,
                   20, "the first two layers requested upstream")
        self.assertEqual([self.blob_requests(d) for d in lds[2:]], [0, 0, 0, 0])

        # A client asks for the first layer, held mid-body: it joins the prefetch.
        got = {}

        def client():
            got["r"] = harness.stream_get(m.url, f"/v2/pf/held/blobs/{lds[0]}")

        t = threading.Thread(target=client)
        t.start()
        wait_until(lambda: stats(m)["joined"] == 1, 20, "the client to join the prefetch")
        self.fake.clear_fault()  # later requests run free; held ones resume
        self.fake.release_stalls()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertTrue(got["r"].complete, got["r"])
        self.assertEqual(got["r"].digest, lds[0])
        p = settled(m, 7)
        self.assertEqual(p["started"], 7)
        self.assertEqual(p["peak_active"], 2)
        self.assertEqual(p["failed"], 0)
        for d in [cd, *lds]:
            self.assertEqual(self.blob_requests(d), 1, d)

    def test_disabled_fetches_nothing_before_it_is_asked(self):
        img = self.fake.add_image("pf/off", "1", layers=[b"x" * 50_000])
        cd, lds = img["config_digest"], img["layer_digests"]
        m = self.start_mirror({"HUBCACHE_PREFETCH": "false"})
        r = harness.request(m.url, "GET", "/v2/pf/off/manifests/1", {"Accept": harness.ACCEPT_ALL})
        self.assertEqual(r.status, 200, r)
        p = stats(m)
        self.assertFalse(p["enabled"])
        self.assertEqual((p["manifests"], p["started"]), (0, 0))
        time.sleep(0.3)  # what a prefetch would have sent by now (bounded, once)
        self.assertEqual((self.blob_requests(cd), self.blob_requests(lds[0])), (0, 0))


if __name__ == "__main__":
    harness.run_module(__file__)
