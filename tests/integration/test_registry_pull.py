#!/usr/bin/env python3
"""skopeo pulls through hubcache are byte-identical to pulls straight from the upstream.

One real upstream (docker-registry + token server) holds library/multi:1 (OCI index, two
platforms), library/docker2:1 (Docker schema2) and library/big100:1 (one 100 MiB layer).
Each image is copied with skopeo into a `dir:` straight from the upstream, then through a
cold mirror, then through the warm mirror (one test: the phases are its steps), and
through a mirror warmed first with the upstream then stopped (another, with its own
mirror); every copy must equal the direct one file by file. The upstream's access log
must show each blob fetched once across the cold and warm copies, and the token server
about one token per repository during the cold one. Each test starts its own mirror, so
they pass alone and in any order.
"""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import harness  # noqa: E402
from mirror import Mirror  # noqa: E402
from upstream import started_upstream  # noqa: E402

IMAGES = ("multi", "docker2", "big100")
# label -> (image, --override-arch or None for `copy --all`)
COPIES = {
    "multi-all": ("multi", None),
    "docker2-all": ("docker2", None),
    "big100-all": ("big100", None),
    "multi-amd64": ("multi", "amd64"),
    "multi-arm64": ("multi", "arm64"),
}
COPY_TIMEOUT_S = 120
MAX_TOKENS_PER_REPO_COLD = 2


def skopeo_copy(workdir, host, image, arch, dest):
    """library/IMAGE:1 into dir:DEST: every platform (arch None), or linux/ARCH alone."""
    harness.skopeo_copy(workdir, host, f"library/{image}:1", dest, arch=arch,
                        timeout=COPY_TIMEOUT_S)


class PullThroughMirror(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work, cls.up = started_upstream("pull", cls.addClassCleanup)
        cls.images = fixtures.push_described(cls.up, cls.work, IMAGES)
        for label, (image, arch) in COPIES.items():
            skopeo_copy(cls.work, cls.up.host, image, arch, cls.out("direct", label))

    def start_mirror(self, name):
        """A fresh mirror (its own empty cache) for one test."""
        d = os.path.join(self.work, name)
        os.makedirs(d)
        self.mirror = Mirror(d, self.up.url)
        self.addCleanup(self.mirror.stop)
        self.mirror.start()
        self.host = f"127.0.0.1:{self.mirror.port}"

    @classmethod
    def out(cls, phase, label):
        return harness.copy_dest(cls.work, phase, label)

    def mirror_log_tail(self):
        return self.mirror.log()[-3000:]

    def copy_all_through_mirror(self, phase):
        for label, (image, arch) in COPIES.items():
            with self.subTest(phase=phase, copy=label):
                dest = self.out(phase, label)
                try:
                    skopeo_copy(self.work, self.host, image, arch, dest)
                except harness.SkopeoError as e:
                    self.fail(f"{phase} copy {label} through the mirror failed: {e}\n"
                              f"mirror log tail:\n{self.mirror_log_tail()}")
                diffs = harness.compare_dirs(self.out("direct", label), dest)
                self.assertEqual(diffs, [], f"{phase} copy {label} differs from direct copy")
                if arch is None:
                    with open(os.path.join(dest, "manifest.json"), "rb") as f:
                        self.assertEqual("sha256:" + harness.sha256_hex(f.read()),
                                         self.images[image].digest)

    def test_cold_then_warm_pulls_are_byte_identical_and_fetch_each_blob_once(self):
        self.up.sync_log()
        log_mark, token_mark = self.up.mark(), self.up.token_mark()
        self.start_mirror("cold-warm")
        self.copy_all_through_mirror("cold")
        self.up.sync_log()
        self.assert_about_one_token_per_repository(token_mark, self.up.token_mark())
        self.copy_all_through_mirror("warm")
        self.up.sync_log()
        for name, img in self.images.items():
            for digest in img.blobs:
                with self.subTest(blob=f"library/{name}@{digest[:19]}"):
                    path = rf"/v2/library/{name}/blobs/{digest}(\?.*)?"
                    got = self.up.requests("GET", path, "2xx", since=log_mark)
                    self.assertEqual(len(got), 1,
                                     f"upstream blob GETs (2xx) across cold+warm copies: {got}")

    def assert_about_one_token_per_repository(self, since, until):
        reqs = self.up.token_requests(since=since, until=until)
        per_repo = {}
        for e in reqs:
            for scope in e["scopes"]:
                parts = scope.split(":")
                if len(parts) == 3 and parts[0] == "repository":
                    per_repo[parts[1]] = per_repo.get(parts[1], 0) + 1
        for name in IMAGES:
            with self.subTest(repo=f"library/{name}"):
                n = per_repo.get(f"library/{name}", 0)
                self.assertGreaterEqual(n, 1, "the cold pull asked for no token")
                self.assertLessEqual(n, MAX_TOKENS_PER_REPO_COLD,
                                     f"token requests for library/{name} during the cold pull: "
                                     f"{json.dumps(reqs, indent=1)[:3000]}")
        self.assertTrue(all(e["user"] == "anonymous" for e in reqs),
                        "the mirror has no upstream credentials; it must ask anonymously")

    def test_upstream_down_still_served_from_cache(self):
        self.start_mirror("down")
        self.copy_all_through_mirror("before-down")
        self.up.stop()
        try:
            self.copy_all_through_mirror("upstream-down")
        finally:
            self.up.start()


if __name__ == "__main__":
    harness.require_tools("docker-registry", "skopeo", "openssl")
    harness.run_module(__file__)
