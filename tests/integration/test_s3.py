#!/usr/bin/env python3
"""S3 storage against a real S3 gateway that checks SigV4 signatures.

One Ceph cluster with its radosgw (ceph_rgw.CephRgw: monitor, memstore OSD, gateway on free
loopback ports, user and bucket created) is started for the whole module (~20 s) and
stopped at its end; every test uses it. A missing radosgw fails the module (it is in
scripts/install-deps.sh), it never skips.

  Gateway.test_checks_signatures   the stand-in is fair: a request signed with the right
                                   secret is answered, one with a wrong secret gets 403
                                   SignatureDoesNotMatch.
  S3ClientEndToEnd.test_itest      tests/s3_client_itest (doctest, C++) against it: Check()
                                   and its one-line errors (wrong secret, unknown key, no such
                                   bucket, unreachable); small objects; keys that need
                                   encoding; ranged GETs; PutStream single-part and multipart
                                   (exactly chunk_size, 2.5 chunks), from a reader that blocks,
                                   and from readers that fail or end early (nothing under the
                                   key, no multipart upload left); List pages; presigned GETs
                                   (and refused when expired or tampered with); many threads;
                                   counters; a 256 MiB object up and down within 32 MiB of RSS
                                   growth (the figures are printed).
  MirrorOnS3, StartChecks          hubcache serving with REGISTRY_STORAGE=s3: see
                                   s3_mirror_cases.py.
  Cluster                          three nodes on the bucket behind HAProxy: 20 clients
                                   fetch each blob from the upstream once, a node pulls
                                   from the bucket what others fetched, a node killed
                                   mid-run: see s3_cluster_cases.py.
"""
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import s3_cluster_cases  # noqa: E402
import s3_hosted_cases  # noqa: E402
import s3_mirror_cases  # noqa: E402
from ceph_rgw import CephRgw  # noqa: E402
from mirror import REPO_ROOT  # noqa: E402

_s3 = None  # the module's CephRgw


def itest_bin():
    return os.environ.get("HUBCACHE_S3_ITEST",
                          os.path.join(REPO_ROOT, "build", "tests", "s3_client_itest"))


def setUpModule():
    global _s3
    work, cleanup = harness.module_workdir("s3")
    unittest.addModuleCleanup(cleanup)
    _s3 = CephRgw(work)
    unittest.addModuleCleanup(_s3.stop)
    _s3.start()
    s3_mirror_cases.setup(_s3)
    s3_cluster_cases.setup(_s3)
    s3_hosted_cases.setup(_s3)


class Gateway(unittest.TestCase):
    def test_checks_signatures(self):
        r = _s3.request("GET", f"/{_s3.bucket}", {"list-type": "2", "max-keys": "1"})
        self.assertEqual(r.status, 200, r)
        right = _s3.secret_key
        try:
            _s3.secret_key = right + "x"
            r = _s3.request("GET", f"/{_s3.bucket}", {"list-type": "2", "max-keys": "1"})
        finally:
            _s3.secret_key = right
        self.assertEqual(r.status, 403, r)
        self.assertIn(b"<Code>SignatureDoesNotMatch</Code>", r.body)


class S3ClientEndToEnd(unittest.TestCase):
    def test_itest(self):
        binary = itest_bin()
        self.assertTrue(os.path.exists(binary), f"{binary} not built (meson compile -C build)")
        env = dict(os.environ)
        env.update(_s3.env())
        p = subprocess.run([binary, "--duration=true"], env=env, capture_output=True, text=True,
                           timeout=150)
        sys.stderr.write(p.stdout[-6000:] if p.returncode else "".join(
            line + "\n" for line in p.stdout.splitlines()
            if line.startswith("memory:") or "test cases" in line or " s: " in line))
        self.assertEqual(p.returncode, 0, f"s3_client_itest failed:\n{p.stdout[-8000:]}\n"
                                          f"{p.stderr[-4000:]}")


# Subclassed here so that they belong to this module: unittest runs a module's
# setUpModule/cleanups around the classes *of that module*, so classes imported
# as they are would stop the module's gateway in between.
class MirrorOnS3(s3_mirror_cases.MirrorOnS3):
    pass


class StartChecks(s3_mirror_cases.StartChecks):
    pass


class Cluster(s3_cluster_cases.Cluster):
    pass


class HostedOnS3(s3_hosted_cases.HostedOnS3):
    pass


if __name__ == "__main__":
    harness.run_module(__file__)
