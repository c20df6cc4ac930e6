"""Hosted (pushed) content on S3 (issue 14): pushed through one node, served by any other.

Imported by test_s3.py (subclassed there so the module's one Ceph gateway serves it).
Two hubcache nodes, A and B, each with its own local root, on the same bucket (root
directory /hosted-tests), HUBCACHE_HOSTED=team/*, deletes enabled. No upstream content is
involved (the upstream URL points nowhere: hosted names never reach it).

  1 skopeo pushes library fixture docker2 (Docker schema2) to A as team/app:1; B, which
    holds nothing locally, serves it: skopeo pulls it from B byte-identical to a pull
    from A; B's tags/list and _catalog name it; B answers a blob of team/app that team/
    other never linked with 404 BLOB_UNKNOWN;
  2 skopeo pushes fixture multi (an OCI index, --all) to B as team/app:2: A serves it
    byte-identical, and a node started on a fresh, empty root serves it too;
  3 a DELETE of team/app:1's manifest by digest through B: within the nodes' recheck
    interval A answers 404 for it and its tag, and tags/list no longer names "1";
  4 a takeover: the blobs of team/takeover uploaded through A, A stopped, the manifest
    PUT through B (the balancer's next node for that name) is accepted, and a fresh node
    serves the image byte for byte; a manifest naming a blob no node took is still
    refused with MANIFEST_BLOB_UNKNOWN;
  5 `hubcache gc` with REGISTRY_STORAGE=s3: after a manifest is deleted, its blobs (and an
    upload no manifest names) stay while younger than --grace, a dry run only names them,
    then they go from the bucket with their links; a tagged image's blobs stay and a fresh
    node pulls it;
  6 the referrers API across nodes: an artifact whose subject is an image pushed through
    A is pushed through B; A lists it (also filtered by its artifactType; another type
    lists nothing); deleted through A, B lists nothing.
"""
import json
import os
import unittest

import fixtures
import harness
import hosted_push
from mirror import Mirror, run_cli, wait_until

CEPH = None


def setup(ceph):
    global CEPH
    CEPH = ceph


def node_env():
    return dict(CEPH.storage_env("/hosted-tests"), **{
        "HUBCACHE_HOSTED": "team/*",
        "REGISTRY_STORAGE_DELETE_ENABLED": "true",
    })


class HostedOnS3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cleanup = harness.module_workdir("s3-hosted")
        cls.addClassCleanup(cleanup)
        cls.a = cls.start_node("a")
        cls.b = cls.start_node("b")

    @classmethod
    def start_node(cls, name):
        d = os.path.join(cls.work, name)
        os.makedirs(d, exist_ok=True)
        m = Mirror(d, "http://127.0.0.1:9", env=node_env())
        cls.addClassCleanup(m.stop)
        m.start()
        return m

    def host(self, node):
        return f"127.0.0.1:{node.port}"

    def push(self, node, fixture, ref, fmt=None):
        args = ["copy", "--all", "--dest-tls-verify=false", "--dest-no-creds"]
        if fmt:
            args += ["--format", fmt]
        args += [f"oci:{fixtures.layout(fixture)}:{fixtures.LAYOUT_TAG}",
                 f"docker://{self.host(node)}/{ref}"]
        try:
            harness.skopeo(self.work, [], args)
        except harness.SkopeoError as e:
            self.fail(f"push of {fixture} to {ref} failed: {e}\n{node.log()[-3000:]}")

    def pull(self, node, ref, label):
        dest = os.path.join(self.work, "pulls", label)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        try:
            harness.skopeo_copy(self.work, self.host(node), ref, dest)
        except harness.SkopeoError as e:
            self.fail(f"pull of {ref} ({label}) failed: {e}\n{node.log()[-3000:]}")
        return dest

    def test_1_pushed_to_one_node_served_by_another(self):
        self.push(self.a, "docker2", "team/app:1", fmt="v2s2")
        from_a = self.pull(self.a, "team/app:1", "1-from-a")
        from_b = self.pull(self.b, "team/app:1", "1-from-b")
        self.assertEqual(harness.compare_dirs(from_a, from_b), [])
        r = harness.request(self.b.url, "GET", "/v2/team/app/tags/list", timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertIn("1", r.json()["tags"])
        r = harness.request(self.b.url, "GET", "/v2/_catalog", timeout=30)
        self.assertIn("team/app", r.json()["repositories"])
        # A blob of team/app is not team/other's.
        r = harness.request(self.b.url, "GET", "/v2/team/app/manifests/1",
                            {"Accept": harness.ACCEPT_ALL}, timeout=30)
        layer = r.json()["layers"][0]["digest"]
        r = harness.request(self.b.url, "GET", f"/v2/team/other/blobs/{layer}", timeout=30)
        self.assertEqual(r.status, 404, r)
        self.assertIn("BLOB_UNKNOWN", r.error_codes())
        type(self).digest_1 = harness.request(
            self.a.url, "HEAD", "/v2/team/app/manifests/1", {"Accept": harness.ACCEPT_ALL},
            timeout=30).header("Docker-Content-Digest")

    def test_2_index_pushed_to_the_other_node_and_a_fresh_one(self):
        self.push(self.b, "multi", "team/app:2")
        from_b = self.pull(self.b, "team/app:2", "2-from-b")
        from_a = self.pull(self.a, "team/app:2", "2-from-a")
        self.assertEqual(harness.compare_dirs(from_b, from_a), [])
        fresh = self.start_node("fresh")
        from_fresh = self.pull(fresh, "team/app:2", "2-from-fresh")
        self.assertEqual(harness.compare_dirs(from_b, from_fresh), [])

    def test_3_delete_through_one_node_is_seen_by_the_other(self):
        digest = getattr(type(self), "digest_1", None)
        self.assertTrue(digest, "test_1 did not record the manifest's digest")
        r = harness.request(self.b.url, "DELETE", f"/v2/team/app/manifests/{digest}", timeout=30)
        self.assertEqual(r.status, 202, r)

        def gone():
            by_digest = harness.request(self.a.url, "GET", f"/v2/team/app/manifests/{digest}",
                                        {"Accept": harness.ACCEPT_ALL}, timeout=30)
            by_tag = harness.request(self.a.url, "GET", "/v2/team/app/manifests/1",
                                     {"Accept": harness.ACCEPT_ALL}, timeout=30)
            return by_digest.status == 404 and by_tag.status == 404

        wait_until(gone, 10, "node A to see the delete made through node B")
        r = harness.request(self.a.url, "GET", "/v2/team/app/tags/list", timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("1", r.json()["tags"])
        self.assertIn("2", r.json()["tags"])

    def test_4_manifest_put_after_the_uploading_node_left(self):
        image = hosted_push.make_image("takeover", [os.urandom(300_000), os.urandom(70_000)])
        gone = self.start_node("takeover-a")
        for digest, data in image["blobs"].items():
            self.assertEqual(hosted_push.upload_blob(gone.url, "team/takeover", data), digest)
        gone.stop()
        got = hosted_push.put_manifest(self.b.url, "team/takeover", "1", image["manifest"])
        self.assertEqual(got, image["digest"])
        fresh = self.start_node("takeover-fresh")
        r = harness.request(fresh.url, "GET", "/v2/team/takeover/manifests/1",
                            {"Accept": harness.ACCEPT_ALL}, timeout=30)
        self.assertEqual((r.status, r.body), (200, image["manifest"]), r)
        for digest, data in image["blobs"].items():
            r = harness.request(fresh.url, "GET", f"/v2/team/takeover/blobs/{digest}", timeout=30)
            self.assertEqual((r.status, r.body == data), (200, True), (digest, r))

        stray = hosted_push.make_image("stray", [os.urandom(1000)])
        for digest, data in stray["blobs"].items():
            if data is stray["config"]:
                hosted_push.upload_blob(self.b.url, "team/takeover", data)
        r = harness.request(self.b.url, "PUT", "/v2/team/takeover/manifests/stray",
                            {"Content-Type": harness.MEDIA_OCI_MANIFEST}, stray["manifest"],
                            timeout=30)
        self.assertEqual(r.status, 400, r)
        self.assertIn("MANIFEST_BLOB_UNKNOWN", r.error_codes())

    def test_5_gc_sweeps_the_bucket(self):
        repo = "team/gc"
        gone = hosted_push.make_image("gc-gone", [os.urandom(200_000), os.urandom(50_000)])
        kept = hosted_push.make_image("gc-kept", [os.urandom(120_000)])
        hosted_push.push_image(self.a.url, repo, "gone", gone)
        hosted_push.push_image(self.a.url, repo, "keep", kept)
        stray = hosted_push.upload_blob(self.a.url, repo, os.urandom(30_000))
        r = harness.request(self.a.url, "DELETE", f"/v2/{repo}/manifests/{gone['digest']}",
                            timeout=30)
        self.assertEqual(r.status, 202, r)

        def key(digest):
            return f"hosted-tests/hosted/blobs/sha256/{digest[7:9]}/{digest[7:]}"

        def present(digest):
            return CEPH.request("HEAD", f"/{CEPH.bucket}/{key(digest)}").status == 200

        def link(digest):
            k = f"hosted-tests/hosted/repositories/{repo}/_layers/sha256/{digest[7:]}"
            return CEPH.request("HEAD", f"/{CEPH.bucket}/{k}").status == 200

        garbage = [*gone["blobs"], stray]
        self.assertTrue(all(present(d) and link(d) for d in garbage))

        def gc(*args):
            p = run_cli("gc", "--root", self.a.root, *args, env=node_env())
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout

        out = gc("--grace", "1h")
        self.assertIn("freed 0 B (0 blobs, 0 links)", out)
        out = gc("--grace", "0s", "--dry-run")
        for d in garbage:
            self.assertIn(f"would remove bucket blob {d}", out)
        self.assertTrue(all(present(d) for d in garbage))
        out = gc("--grace", "0s")
        for d in garbage:
            self.assertIn(f"removed bucket blob {d}", out)
            self.assertFalse(present(d), d)
            self.assertFalse(link(d), d)
        for d in kept["blobs"]:
            self.assertNotIn(d, out)
            self.assertTrue(present(d) and link(d), d)
        fresh = self.start_node("gc-fresh")
        r = harness.request(fresh.url, "GET", f"/v2/{repo}/manifests/keep",
                            {"Accept": harness.ACCEPT_ALL}, timeout=30)
        self.assertEqual((r.status, r.body), (200, kept["manifest"]), r)
        for digest, data in kept["blobs"].items():
            r = harness.request(fresh.url, "GET", f"/v2/{repo}/blobs/{digest}", timeout=30)
            self.assertEqual((r.status, r.body == data), (200, True), digest)

    def test_6_referrers_across_nodes(self):
        repo = "team/ref"
        image = hosted_push.make_image("ref-subject", [os.urandom(40_000)])
        hosted_push.push_image(self.a.url, repo, "1", image)
        empty = b"{}"
        sig = os.urandom(500)
        for data in (empty, sig):
            hosted_push.upload_blob(self.b.url, repo, data)
        kind = "application/vnd.example.signature"
        artifact = json.dumps({
            "schemaVersion": 2,
            "mediaType": harness.MEDIA_OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": hosted_push.sha256(empty), "size": len(empty)},
            "layers": [{"mediaType": "application/octet-stream",
                        "digest": hosted_push.sha256(sig), "size": len(sig)}],
            "subject": {"mediaType": harness.MEDIA_OCI_MANIFEST, "digest": image["digest"],
                        "size": len(image["manifest"])},
            "annotations": {"org.example.by": "test"},
        }).encode()
        digest = hosted_push.put_manifest(self.b.url, repo, hosted_push.sha256(artifact), artifact)

        def listed(node, query=""):
            r = harness.request(node.url, "GET", f"/v2/{repo}/referrers/{image['digest']}{query}",
                                timeout=30)
            self.assertEqual(r.status, 200, r)
            return r.json()["manifests"]

        want = [{"mediaType": harness.MEDIA_OCI_MANIFEST, "digest": digest, "size": len(artifact),
                 "artifactType": kind, "annotations": {"org.example.by": "test"}}]
        self.assertEqual(listed(self.a), want)
        self.assertEqual(listed(self.a, f"?artifactType={kind}"), want)
        self.assertEqual(listed(self.a, "?artifactType=application/vnd.other"), [])
        r = harness.request(self.a.url, "DELETE", f"/v2/{repo}/manifests/{digest}", timeout=30)
        self.assertEqual(r.status, 202, r)
        self.assertEqual(listed(self.b), [])
