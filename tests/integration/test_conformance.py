"""The OCI distribution-spec conformance suite against hubcache.

Hosted repositories (issue 13): all four groups (pull, push, content discovery, content
management) against `--hosted 'conformance/*'` with deletes enabled, once without client auth and
once with htpasswd (OCI_USERNAME/OCI_PASSWORD, the user in HUBCACHE_PUSH_USERS), automatic
cross-mount on (hubcache mounts a blob it holds without `from`). Every spec that runs must pass.

The mirror: a real upstream (docker-registry + token server, upstream.py) holds library/sharea:1 (an OCI
image manifest, fixtures.py); a hubcache mirrors it; the suite's binary
(../shared/tools/oci-conformance/conformance-v1.1.1.test beside the repository, see its README)
runs with OCI_TEST_PULL=1 against the mirror, given that image as existing content (a mirror is
read-only, so the suite's own push setup is off). Every pull spec that runs must pass.

Hosted on S3 (issue 14): the four groups again against a hubcache with REGISTRY_STORAGE=s3 on a
real Ceph S3 gateway (ceph_rgw.py, started for that class), where every push lands in the bucket
and every read of hosted content is answered from it.

When ../shared/tools/oci-conformance/ is absent the module says so and exits 77 (skip): the one
skip scripts/test.sh allows (scripts/tally.py); in CI the suite is always there. A directory
without the binary, or a suite that ran nothing, is a failure.
"""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402
import harness  # noqa: E402
from ceph_rgw import CephRgw  # noqa: E402
from mirror import Mirror, free_port as harness_free_port  # noqa: E402
from upstream import started_upstream  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "tools", "oci-conformance"))
SUITE = os.path.join(SUITE_DIR, "conformance-v1.1.1.test")
IMAGE = "sharea"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY_RE = re.compile(r"Ran (\d+) of (\d+) Specs.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending "
                        r"\| (\d+) Skipped", re.S)


def run_suite(test, workdir, name, env_vars):
    """Runs the suite with env_vars; asserts every spec that ran passed."""
    test.assertTrue(os.access(SUITE, os.X_OK), f"{SUITE_DIR}/ is there but not {SUITE}")
    report = os.path.join(workdir, f"oci-report-{name}")
    os.makedirs(report)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
    env.update(OCI_HIDE_SKIPPED_WORKFLOWS="1", OCI_REPORT_DIR=report, **env_vars)
    p = subprocess.run([SUITE, "-test.v"], cwd=report, env=env, capture_output=True, text=True,
                       timeout=180)
    out = ANSI_RE.sub("", p.stdout + p.stderr)  # ginkgo colours its summary
    m = SUMMARY_RE.search(out)
    test.assertIsNotNone(m, f"no ginkgo summary (exit {p.returncode}):\n{out[-4000:]}")
    ran, total, passed, failed, _, _ = (int(g) for g in m.groups())
    print(f"OCI conformance {name} against hubcache: {passed} of {ran} specs run passed "
          f"({failed} failed, {total} in the suite)", file=sys.stderr)
    test.assertGreater(ran, 0, out[-4000:])
    test.assertEqual((passed, failed), (ran, 0), out[-6000:])
    test.assertEqual(p.returncode, 0, out[-4000:])
    return ran


ALL_GROUPS = dict(OCI_TEST_PULL="1", OCI_TEST_PUSH="1", OCI_TEST_CONTENT_DISCOVERY="1",
                  OCI_TEST_CONTENT_MANAGEMENT="1", OCI_AUTOMATIC_CROSSMOUNT="1",
                  OCI_NAMESPACE="conformance/myrepo", OCI_CROSSMOUNT_NAMESPACE="conformance/other")


class ConformanceHosted(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tools("htpasswd")
        cls.work, cleanup = harness.module_workdir("conformance-hosted")
        cls.addClassCleanup(cleanup)
        # No upstream: a hosted name must never need one (a closed port).
        cls.dead_upstream = f"http://127.0.0.1:{harness_free_port()}"

    def test_all_groups_without_client_auth(self):
        m = Mirror(self.work, self.dead_upstream,
                   extra_args=["--hosted", "conformance/*", "--delete-enabled", "true"])
        self.addCleanup(m.stop)
        m.start()
        ran = run_suite(self, self.work, "hosted-open", dict(ALL_GROUPS, OCI_ROOT_URL=m.url))
        self.assertGreaterEqual(ran, 75, "all four groups run")

    def test_all_groups_with_htpasswd(self):
        htpasswd = os.path.join(self.work, "htpasswd")
        for user, password in (("ci", "ci-secret-1"), ("reader", "reader-secret-1")):
            subprocess.run(["htpasswd", "-Bb" + ("c" if user == "ci" else ""), htpasswd, user,
                            password], check=True, capture_output=True)
        m = Mirror(self.work, self.dead_upstream,
                   extra_args=["--hosted", "conformance/*", "--delete-enabled", "true",
                               "--push-users", "ci"],
                   env={"REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_PATH": htpasswd})
        self.addCleanup(m.stop)
        m.start()
        ran = run_suite(self, self.work, "hosted-htpasswd",
                        dict(ALL_GROUPS, OCI_ROOT_URL=m.url, OCI_USERNAME="ci",
                             OCI_PASSWORD="ci-secret-1"))
        self.assertGreaterEqual(ran, 75, "all four groups run")
        # The same suite as a user who may pull but not push: its setup is refused.
        r = harness.request(m.url, "POST", "/v2/conformance/x/blobs/uploads/",
                            headers={"Authorization": harness.basic_auth("reader",
                                                                         "reader-secret-1")})
        self.assertEqual((r.status, r.error_codes()), (403, ["DENIED"]), r)


class ConformanceHostedOnS3(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cleanup = harness.module_workdir("conformance-s3")
        cls.addClassCleanup(cleanup)
        cls.s3 = CephRgw(cls.work)
        cls.addClassCleanup(cls.s3.stop)
        cls.s3.start()

    def test_all_groups_on_s3(self):
        s3 = self.s3
        env = s3.storage_env("/conformance")
        dead_upstream = f"http://127.0.0.1:{harness_free_port()}"
        m = Mirror(self.work, dead_upstream,
                   extra_args=["--hosted", "conformance/*", "--delete-enabled", "true"], env=env)
        self.addCleanup(m.stop)
        m.start()
        ran = run_suite(self, self.work, "hosted-s3", dict(ALL_GROUPS, OCI_ROOT_URL=m.url))
        self.assertGreaterEqual(ran, 75, "all four groups run")
        r = s3.request("GET", f"/{s3.bucket}", {"list-type": "2", "prefix": "conformance/hosted/"})
        self.assertIn(b"<Key>conformance/hosted/", r.body, "nothing was pushed to the bucket")


class ConformancePull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tools("docker-registry", "skopeo", "openssl")
        cls.work, cls.up = started_upstream("conformance", cls.addClassCleanup)
        fixtures.push(cls.up, cls.work, IMAGE)
        cls.img = fixtures.describe(cls.up, IMAGE)
        cls.mirror = Mirror(cls.work, cls.up.url)
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()

    def test_pull_group_passes_against_the_mirror(self):
        self.assertEqual(self.img.media_type, harness.MEDIA_OCI_MANIFEST,
                         "the suite asks for an OCI image manifest")
        config = next(d for d in self.img.blobs if d not in self.img.layers)
        run_suite(self, self.work, "pull-mirror",
                  dict(OCI_ROOT_URL=self.mirror.url, OCI_NAMESPACE=self.img.repo,
                       OCI_TEST_PULL="1", OCI_TAG_NAME=self.img.tag,
                       OCI_MANIFEST_DIGEST=self.img.digest, OCI_BLOB_DIGEST=config))


if __name__ == "__main__":
    if not os.path.isdir(SUITE_DIR):
        print(f"SKIP: the OCI conformance suite is not installed here: {SUITE_DIR}/ is absent "
              "(the one skip scripts/test.sh allows; CI always has it)", file=sys.stderr)
        sys.exit(77)
    harness.run_module(__file__)
