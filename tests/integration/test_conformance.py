"""The OCI distribution-spec conformance suite's pull group against hubcache.

A real upstream (docker-registry + token server, upstream.py) holds library/sharea:1 (an OCI
image manifest, fixtures.py); a hubcache mirrors it; the suite's binary
(../shared/tools/oci-conformance/conformance-v1.1.1.test beside the repository, see its README)
runs with OCI_TEST_PULL=1 against the mirror, given that image as existing content (a mirror is
read-only, so the suite's own push setup is off). Every pull spec that runs must pass.

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
from mirror import Mirror  # noqa: E402
from upstream import Upstream  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SUITE_DIR = os.path.normpath(os.path.join(REPO, "..", "shared", "tools", "oci-conformance"))
SUITE = os.path.join(SUITE_DIR, "conformance-v1.1.1.test")
IMAGE = "sharea"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY_RE = re.compile(r"Ran (\d+) of (\d+) Specs.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending "
                        r"\| (\d+) Skipped", re.S)


class ConformancePull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        harness.require_tools("docker-registry", "skopeo", "openssl")
        cls.work, cleanup = harness.module_workdir("conformance")
        cls.addClassCleanup(cleanup)
        cls.up = Upstream(cls.work)
        cls.addClassCleanup(cls.up.stop)
        cls.up.start()
        fixtures.push(cls.up, cls.work, IMAGE)
        cls.img = fixtures.describe(cls.up, IMAGE)
        cls.mirror = Mirror(cls.work, cls.up.url)
        cls.addClassCleanup(cls.mirror.stop)
        cls.mirror.start()

    def test_pull_group_passes_against_the_mirror(self):
        self.assertTrue(os.access(SUITE, os.X_OK), f"{SUITE_DIR}/ is there but not {SUITE}")
        self.assertEqual(self.img.media_type, harness.MEDIA_OCI_MANIFEST,
                         "the suite asks for an OCI image manifest")
        config = next(d for d in self.img.blobs if d not in self.img.layers)
        report = os.path.join(self.work, "oci-report")
        os.makedirs(report)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
        env.update(OCI_ROOT_URL=self.mirror.url, OCI_NAMESPACE=self.img.repo,
                   OCI_TEST_PULL="1", OCI_TAG_NAME=self.img.tag,
                   OCI_MANIFEST_DIGEST=self.img.digest, OCI_BLOB_DIGEST=config,
                   OCI_HIDE_SKIPPED_WORKFLOWS="1", OCI_REPORT_DIR=report)
        p = subprocess.run([SUITE, "-test.v"], cwd=report, env=env, capture_output=True,
                           text=True, timeout=180)
        out = ANSI_RE.sub("", p.stdout + p.stderr)  # ginkgo colours its summary
        m = SUMMARY_RE.search(out)
        self.assertIsNotNone(m, f"no ginkgo summary (exit {p.returncode}):\n{out[-4000:]}")
        ran, total, passed, failed, _, _ = (int(g) for g in m.groups())
        print(f"OCI conformance pull group against hubcache: {passed} of {ran} specs run passed "
              f"({failed} failed, {total} in the suite)", file=sys.stderr)
        self.assertGreater(ran, 0, out[-4000:])
        self.assertEqual((passed, failed), (ran, 0), out[-6000:])
        self.assertEqual(p.returncode, 0, out[-4000:])


if __name__ == "__main__":
    if not os.path.isdir(SUITE_DIR):
        print(f"SKIP: the OCI conformance suite is not installed here: {SUITE_DIR}/ is absent "
              "(the one skip scripts/test.sh allows; CI always has it)", file=sys.stderr)
        sys.exit(77)
    harness.run_module(__file__)
