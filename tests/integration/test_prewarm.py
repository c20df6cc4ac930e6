#!/usr/bin/env python3
"""`hubcache prewarm` fills a mirror so that pulls work with the upstream gone.

One real upstream (docker-registry + token server) holds library/multi:1 (OCI index, two
platforms), library/docker2:1 (Docker schema2) and library/pinned:1 (a small image built here,
listed by digest). Each image is first copied with skopeo straight from the upstream, for
comparison. Then, against mirrors started with `--tag-freshness 0` (so that every tag request
goes upstream as a revalidating HEAD, which makes the second run's cost visible):

  1. a pre-warm of the list fetches every blob from the upstream exactly once;
  2. a second run fetches no blob and makes the upstream answer only HEADs on tags;
  3. with the upstream stopped, skopeo copies of every listed image (each platform) through
     the mirror succeed and are byte-identical to the direct copies;
  4. a pre-warm racing a live skopeo pull of the same image: the upstream serves each blob once;
  5. a list with malformed lines, another registry and an unknown image: exit 1, line numbers
     reported, the good images warmed anyway;
  6. usage errors exit 2; --platform warms only that platform;
  7. `serve --prewarm-file` warms the list in the background;
  8. POST /admin/prewarm starts a job, GET /admin/prewarm/<id> reports it;
  9. against a mirror with TLS and htpasswd auth: the keep-warm and admin jobs get in as the
     server's internal user, the command line with --user and --cacert (or --insecure).
Steps 1-3 build on each other, so the test methods are numbered.
"""
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror, hubcache_bin, wait_until  # noqa: E402
from harness import make_cert  # noqa: E402
from upstream import PUSH_PASSWORD, PUSH_USER, started_upstream  # noqa: E402

PREWARM_TIMEOUT_S = 90
COPY_TIMEOUT_S = 60
PINNED_LAYER_BYTES = 512 * 1024


def build_pinned_layout(root):
    """A one-layer image of its own (distinct blobs), as an OCI layout tagged "1"."""
    layout = fixtures._Layout(root)
    layer, diff_id = layout.add_layer("hubcache-prewarm/pinned/0", "hubcache/pinned.bin",
                                      PINNED_LAYER_BYTES)
    config = layout.add_json(fixtures.MEDIA_OCI_CONFIG, {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/true"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}})
    manifest = layout.add_json(harness.MEDIA_OCI_MANIFEST, {
        "schemaVersion": 2, "mediaType": harness.MEDIA_OCI_MANIFEST, "config": config,
        "layers": [layer]})
    layout.tag(manifest, fixtures.LAYOUT_TAG)


def run_prewarm(args, timeout=PREWARM_TIMEOUT_S):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("REGISTRY_") and not k.startswith("HUBCACHE_")}
    return subprocess.run([hubcache_bin(), "prewarm", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def table_rows(stdout):
    """image -> the rest of its row in the summary table."""
    rows = {}
    for line in stdout.splitlines():
        m = re.match(r"^([a-z0-9.]+/\S+)\s+(.*)$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


class Prewarm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("prewarm", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, "multi")
        fixtures.push(cls.up, cls.work, "docker2")
        pinned_root = os.path.join(cls.work, "pinned-layout")
        build_pinned_layout(pinned_root)
        harness.skopeo(cls.work, [], [
            "copy", "--dest-tls-verify=false", "--dest-creds", f"{PUSH_USER}:{PUSH_PASSWORD}",
            f"oci:{pinned_root}:{fixtures.LAYOUT_TAG}",
            f"docker://{cls.up.host}/library/pinned:{fixtures.LAYOUT_TAG}"])
        cls.images = {name: fixtures.describe(cls.up, name)
                      for name in ("multi", "docker2", "pinned")}
        cls.pinned_ref = f"library/pinned@{cls.images['pinned'].digest}"
        # label -> (source reference, --override-arch or None for `copy --all`)
        cls.copies = {
            "multi-all": ("library/multi:1", None),
            "multi-amd64": ("library/multi:1", "amd64"),
            "multi-arm64": ("library/multi:1", "arm64"),
            "docker2-all": ("library/docker2:1", None),
            "pinned": (cls.pinned_ref, None),
        }
        for label, (ref, arch) in cls.copies.items():
            cls.skopeo_copy(cls.up.host, ref, arch, cls.out("direct", label))

        cls.list_path = os.path.join(cls.work, "images.txt")
        with open(cls.list_path, "w") as f:
            f.write("# what the fleet pulls\n"
                    "multi:1\n"
                    "\n"
                    "docker.io/library/docker2:1   # schema 2\n"
                    f"library/pinned:1@{cls.images['pinned'].digest}\n")
        cls.mirror = cls.start_mirror("main")
        cls.up.sync_log()
        cls.mark_before_first = cls.up.mark()

    @classmethod
    def start_mirror(cls, name, extra_args=(), env=None, tls=False):
        d = os.path.join(cls.work, f"mirror-{name}")
        os.makedirs(d)
        m = Mirror(d, cls.up.url, extra_args=["--tag-freshness", "0", *extra_args], env=env,
                   tls=tls)
        cls.addClassCleanup(m.stop)
        return m.start()

    @classmethod
    def out(cls, phase, label):
        return harness.copy_dest(cls.work, phase, label)

    @classmethod
    def skopeo_copy(cls, host, ref, arch, dest):
        """REF into dir:DEST: every platform (arch None), or linux/ARCH alone."""
        harness.skopeo_copy(cls.work, host, ref, dest, arch=arch, timeout=COPY_TIMEOUT_S)

    def prewarm_ok(self, args):
        r = run_prewarm(args)
        self.assertEqual(r.returncode, 0, f"prewarm {args} failed:\n{r.stdout}\n{r.stderr}")
        return r

    def blob_gets(self, since, name=None):
        """Upstream blob GETs answered 2xx since the mark, by path."""
        rx = rf"/v2/library/{name or '[^/]+'}/blobs/sha256:[0-9a-f]{{64}}(\?.*)?"
        return self.up.requests("GET", rx, "2xx", since=since)

    def assert_each_blob_fetched_once(self, names, since):
        self.up.sync_log()
        for name in names:
            for digest in self.images[name].blobs:
                with self.subTest(blob=f"library/{name}@{digest[:19]}"):
                    rx = rf"/v2/library/{name}/blobs/{digest}(\?.*)?"
                    got = self.up.requests("GET", rx, "2xx", since=since)
                    self.assertEqual(len(got), 1, f"upstream GETs of the blob: {got}")

    def assert_cached(self, mirror, name):
        for digest in self.images[name].blobs:
            r = harness.request(mirror.url, "HEAD", f"/v2/library/{name}/blobs/{digest}")
            self.assertEqual((r.status, r.header("X-Hubcache-Cache")), (200, "hit"),
                             f"library/{name}@{digest} is not in the cache")

    # -- 1-3: warm, warm again, pull with the upstream gone --------------------------------

    def test_1_prewarm_fetches_every_blob_once(self):
        started = time.monotonic()
        r = self.prewarm_ok(["--url", self.mirror.url, "-f", self.list_path])
        type(self).first_run_s = time.monotonic() - started
        rows = table_rows(r.stdout)
        self.assertEqual(set(rows), {"library/multi:1", "library/docker2:1",
                                     f"library/pinned:1@{self.images['pinned'].digest}"},
                         r.stdout)
        for image, row in rows.items():
            self.assertTrue(row.endswith("ok"), f"{image}: {row}")
        self.assertRegex(rows["library/multi:1"], r"^2\s+5\s")  # 2 platforms, 2 configs + 3 layers
        self.assertIn("3 images: 3 ok, 0 failed", r.stdout)
        self.assertRegex(r.stderr, r"image=library/multi:1 state=done")  # plain log lines
        self.assert_each_blob_fetched_once(("multi", "docker2", "pinned"),
                                           self.mark_before_first)
        type(self).first_done = True

    def test_2_second_run_fetches_no_blob_and_only_revalidates_tags(self):
        self.assertTrue(getattr(type(self), "first_done", False), "the first run did not pass")
        self.up.sync_log()
        mark = self.up.mark()
        r = self.prewarm_ok(["--url", self.mirror.url, "-f", self.list_path])
        for image, row in table_rows(r.stdout).items():
            self.assertRegex(row, r"^\d+\s+\d+\s+0 B\s+\S+ \S+\s+ok$", f"{image} fetched bytes")
        self.assertIn("fetched 0 B", r.stdout)
        self.up.sync_log()
        reqs = self.up.requests(since=mark)
        self.assertEqual([l for l in reqs if "/blobs/" in l.path], [], "blob requests upstream")
        tag_heads = [l for l in reqs
                     if l.method == "HEAD" and re.fullmatch(r"/v2/library/\w+/manifests/1", l.path)]
        self.assertEqual([l for l in reqs if l not in tag_heads], [],
                         "the second run asked the upstream for more than tag HEADs")
        self.assertEqual({l.path for l in tag_heads if l.status == 200},
                         {"/v2/library/multi/manifests/1", "/v2/library/docker2/manifests/1"})

    def test_2_within_tag_freshness_a_second_run_asks_the_upstream_nothing(self):
        d = os.path.join(self.work, "mirror-fresh")
        os.makedirs(d)
        mirror = Mirror(d, self.up.url, extra_args=["--tag-freshness", "1h"])
        self.addCleanup(mirror.stop)
        mirror.start()
        self.prewarm_ok(["--url", mirror.url, "-f", self.list_path])
        self.up.sync_log()
        mark = self.up.mark()
        self.prewarm_ok(["--url", mirror.url, "-f", self.list_path])
        self.up.sync_log()
        self.assertEqual(self.up.requests(since=mark), [])

    def test_3_with_the_upstream_down_every_image_pulls_byte_identical(self):
        self.assertTrue(getattr(type(self), "first_done", False), "the first run did not pass")
        self.up.stop()
        try:
            host = f"127.0.0.1:{self.mirror.port}"
            for label, (ref, arch) in self.copies.items():
                with self.subTest(copy=label):
                    dest = self.out("upstream-down", label)
                    try:
                        self.skopeo_copy(host, ref, arch, dest)
                    except harness.SkopeoError as e:
                        self.fail(f"copy {label} through the warm mirror failed: {e}\n"
                                  f"{self.mirror.log()[-3000:]}")
                    self.assertEqual(harness.compare_dirs(self.out("direct", label), dest), [])
        finally:
            self.up.start()

    # -- 4: beside a live pull ------------------------------------------------------------

    def test_4_prewarm_beside_a_live_pull_fetches_each_blob_once(self):
        mirror = self.start_mirror("race")
        self.up.sync_log()
        mark = self.up.mark()
        barrier = threading.Barrier(2, timeout=30)
        outcome = {}

        def pull():
            try:
                barrier.wait()
                self.skopeo_copy(f"127.0.0.1:{mirror.port}", "library/multi:1", None,
                                 self.out("race", "multi-all"))
                outcome["pull"] = "ok"
            except Exception as e:  # reported below
                outcome["pull"] = repr(e)

        t = threading.Thread(target=pull)
        t.start()
        barrier.wait()
        r = run_prewarm(["--url", mirror.url, "--concurrency", "8", "multi:1"])
        t.join(timeout=COPY_TIMEOUT_S + 10)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(outcome.get("pull"), "ok")
        self.assertEqual(harness.compare_dirs(self.out("direct", "multi-all"),
                                              self.out("race", "multi-all")), [])
        self.assert_each_blob_fetched_once(("multi",), mark)

    # -- 5-6: bad input ----------------------------------------------------------------------

    def test_5_malformed_lines_and_an_unknown_image(self):
        mirror = self.start_mirror("bad-list")
        path = os.path.join(self.work, "bad-list.txt")
        with open(path, "w") as f:
            f.write("# line 1: a comment\n"
                    "docker2:1\n"                       # 2: good
                    "Not A Reference\n"                 # 3: malformed
                    "localhost:5000/coreos/etcd:v3.5\n"  # 4: a registry with a port
                    "nope:1\n"                          # 5: unknown tag
                    "\n"
                    "alpine:-bad\n"                     # 7: malformed tag
                    f"pinned@{self.images['pinned'].digest}\n"  # 8: good
                    "quay.io/coreos/etcd:v3.5\n")       # 9: a registry not mirrored here
        r = run_prewarm(["--url", mirror.url, "-f", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for line, text in ((3, "Not A Reference"), (4, "localhost:5000/coreos/etcd:v3.5"),
                           (7, "alpine:-bad")):
            self.assertRegex(r.stderr, rf"line {line}: '{re.escape(text)}': .+ \(skipped\)")
        self.assertIn("cannot be named in a mirror path", r.stderr)
        self.assertNotRegex(r.stderr, r"line [125689]:")
        self.assertIn("3 malformed entries skipped (line 3, line 4, line 7)", r.stdout)
        rows = table_rows(r.stdout)
        self.assertTrue(rows["library/docker2:1"].endswith("ok"), r.stdout)
        self.assertTrue(rows[self.pinned_ref].endswith("ok"), r.stdout)
        self.assertRegex(rows["library/nope:1"], r"failed: unknown tag: .*404", r.stdout)
        # Another registry's image is the mirror's to refuse: it mirrors Docker Hub only.
        self.assertIn("quay.io/coreos/etcd:v3.5", rows, r.stdout + r.stderr)
        self.assertRegex(rows["quay.io/coreos/etcd:v3.5"], r"failed: .*not mirrored here",
                         r.stdout)
        self.assert_cached(mirror, "docker2")
        self.assert_cached(mirror, "pinned")

    def test_6_usage_errors_exit_2(self):
        missing = os.path.join(self.work, "no-such-list.txt")
        cases = [
            ([], "no images"),
            (["--frobnicate", "alpine"], "unknown option"),
            (["-f", missing], "no-such-list.txt"),
            (["-f", self.work], "cannot read"),
            (["-f", self.list_path, "alpine"], "not both"),
            (["--concurrency", "0", "alpine"], "--concurrency"),
            (["--concurrency", "x", "alpine"], "--concurrency"),
            (["--platform", "linux", "alpine"], "--platform"),
            (["--platform", "linux/amd64", "--all-platforms", "alpine"], "exclude"),
            (["--url", "ftp://example", "alpine"], "--url"),
            (["alpine", "--url"], "needs a value"),
            (["--user", "bob", "alpine"], "HUBCACHE_PREWARM_PASSWORD"),
            (["--user", ":secret", "alpine"], "no user name"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r = run_prewarm(args, timeout=20)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn(message, r.stderr)
        r = run_prewarm(["--help"], timeout=20)
        self.assertEqual(r.returncode, 0)
        self.assertIn("--platform", r.stdout)

    def test_6_platform_filter_warms_only_that_platform(self):
        mirror = self.start_mirror("arm64")
        r = self.prewarm_ok(["--url", mirror.url, "--platform", "linux/arm64", "multi:1"])
        self.assertRegex(table_rows(r.stdout)["library/multi:1"], r"^1\s+2\s")
        arm64 = [d for p, d in self.images["multi"].children if p.get("architecture") == "arm64"]
        arm64_manifest = json.loads(self.images["multi"].manifests[arm64[0]][1])
        wanted = {arm64_manifest["config"]["digest"]} | {
            l["digest"] for l in arm64_manifest["layers"]}
        for digest in self.images["multi"].blobs:
            r = harness.request(mirror.url, "HEAD", f"/v2/library/multi/blobs/{digest}")
            self.assertEqual(r.header("X-Hubcache-Cache"), "hit" if digest in wanted else "miss",
                             digest)

    # -- 7: keep warm --------------------------------------------------------------------------

    def test_7_serve_keeps_the_list_warm(self):
        mirror = self.start_mirror("keep-warm", ["--prewarm-file", self.list_path,
                                                 "--prewarm-interval", "1s"])
        finished = re.compile(r"keep-warm run finished images_ok=(\d+) images_failed=(\d+) "
                              r"malformed=\d+ bytes_fetched=(\d+)")
        # The first run starts with the server; one second after it ends, the second.
        runs = wait_until(lambda: len(finished.findall(mirror.log())) >= 2 and
                          finished.findall(mirror.log()), 60, "two keep-warm runs")
        self.assertEqual(runs[0][:2], ("3", "0"), mirror.log()[-3000:])
        self.assertGreater(int(runs[0][2]), 0)
        self.assertEqual(runs[1], ("3", "0", "0"), "the second run fetched again")
        for name in ("multi", "docker2", "pinned"):
            self.assert_cached(mirror, name)
        stats = harness.request(mirror.url, "GET", "/stats").json()
        prewarm = stats["prewarm"]
        self.assertEqual(prewarm["list"], self.list_path)
        self.assertGreaterEqual(prewarm["runs"], 2)
        last = prewarm["last_run"]
        self.assertEqual((last["images_ok"], last["images_failed"], last["bytes_fetched"]),
                         (3, 0, 0), last)
        self.assertGreater(last["bytes_cached"], 0)
        self.assertGreaterEqual(last["finished_ms"], last["started_ms"])
        started = time.monotonic()
        self.assertEqual(mirror.stop(), 0)
        self.assertLess(time.monotonic() - started, 10)

    def test_7_serve_refuses_an_unreadable_prewarm_file(self):
        d = os.path.join(self.work, "mirror-bad-file")
        os.makedirs(d)
        m = Mirror(d, self.up.url, extra_args=["--prewarm-file", os.path.join(d, "missing.txt")])
        r = subprocess.run(m.args, env=m.env, capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--prewarm-file", r.stderr)

    # -- 8: the admin API --------------------------------------------------------------------

    def test_8_admin_api_starts_a_job_and_reports_its_progress(self):
        token = "prewarm-test-admin-token"
        mirror = self.start_mirror("admin", ["--admin-token", token])
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body = json.dumps({"images": ["docker2:1", f"pinned@{self.images['pinned'].digest}"]})

        r = harness.request(mirror.url, "POST", "/admin/prewarm", {"Content-Type":
                                                                   "application/json"}, body)
        self.assertEqual(r.status, 401, r)
        r = harness.request(mirror.url, "POST", "/admin/prewarm", auth, '["Not Valid", "alpine"]')
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.json()["errors"][0]["detail"][0]["index"], 0)

        r = harness.request(mirror.url, "POST", "/admin/prewarm", auth, body)
        self.assertEqual(r.status, 202, r)
        job = r.json()
        self.assertEqual(job["images"], ["library/docker2:1", self.pinned_ref])
        self.assertEqual(harness.request(mirror.url, "GET", job["status_url"]).status, 401)

        def finished():
            r = harness.request(mirror.url, "GET", job["status_url"], auth)
            self.assertEqual(r.status, 200, r)
            doc = r.json()
            return doc if "finished_ms" in doc else None
        doc = wait_until(finished, 60, "the pre-warm job to finish")
        self.assertEqual((doc["id"], doc["state"], doc["images_ok"], doc["images_failed"]),
                         (job["id"], "done", 2, 0), doc)
        self.assertEqual(doc["bytes_fetched"], doc["bytes_total"])
        self.assertEqual([i["state"] for i in doc["images"]], ["done", "done"])
        self.assert_cached(mirror, "docker2")
        self.assert_cached(mirror, "pinned")
        r = harness.request(mirror.url, "GET", "/admin/prewarm/0123456789abcdef", auth)
        self.assertEqual(r.status, 404, r)

    # -- 9: a mirror with TLS and client auth ------------------------------------------------------

    def test_9_locked_down_mirror_prewarms_with_credentials_and_keeps_warm_itself(self):
        # Never a skip: a test that cannot run fails (scripts/install-deps.sh installs it).
        self.assertIsNotNone(shutil.which("htpasswd"),
                             "htpasswd (apache2-utils) is not installed: scripts/install-deps.sh all")
        cert, key = make_cert(self.work, "prewarm-mirror")
        htpasswd = os.path.join(self.work, "prewarm-htpasswd")
        harness.write_htpasswd(htpasswd, ("puller", "pull-secret"))
        token = "prewarm-test-admin-token"
        mirror = self.start_mirror(
            "locked", ["--prewarm-file", self.list_path, "--admin-token", token], tls=True,
            env={"REGISTRY_HTTP_TLS_CERTIFICATE": cert, "REGISTRY_HTTP_TLS_KEY": key,
                 "REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": htpasswd})
        # The keep-warm reaches the server over TLS, as its internal user.
        finished = re.compile(r"keep-warm run finished images_ok=(\d+) images_failed=(\d+)")
        runs = wait_until(lambda: finished.findall(mirror.log()), 60, "a keep-warm run")
        self.assertEqual(runs[0], ("3", "0"), mirror.log()[-3000:])

        # The command line needs the credentials and the certificate.
        base = ["--url", mirror.url, "docker2:1"]
        r = run_prewarm([*base, "--cacert", cert, "--user", "puller:pull-secret"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run_prewarm([*base, "--cacert", cert])
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed: unauthorized", r.stdout)
        r = run_prewarm([*base, "--user", "puller:pull-secret"])
        self.assertEqual(r.returncode, 1)
        self.assertIn("failed: network", r.stdout)  # an unverified certificate
        r = run_prewarm([*base, "--insecure", "--user", "puller:pull-secret"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # An admin job, too, pulls through the server as its internal user.
        ctx = ssl.create_default_context(cafile=cert)
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def call(method, path, body=None):
            conn = http.client.HTTPSConnection("127.0.0.1", mirror.port, timeout=30, context=ctx)
            try:
                conn.request(method, path, body=body, headers=auth)
                r = conn.getresponse()
                return r.status, json.loads(r.read() or b"null")
            finally:
                conn.close()
        status, job = call("POST", "/admin/prewarm", '["multi:1"]')
        self.assertEqual(status, 202, job)
        doc = wait_until(lambda: (lambda d: d if "finished_ms" in d else None)(
            call("GET", job["status_url"])[1]), 60, "the admin job to finish")
        self.assertEqual((doc["state"], doc["images_ok"]), ("done", 1), doc)
        self.assertNotIn("pull-secret", mirror.log())


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
